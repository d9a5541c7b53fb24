//! Deadlines: at native (KVM) speed, scaled for the machine a guest runs on (TCG, a foreign
//! architecture) and for the host's load (`RIG_TIMEOUT_SCALE`).

use super::qemu::Accel;
use crate::host::board::{Arch, Board};
use std::time::Duration;

/// `RIG_TIMEOUT_SCALE` is not a positive number.
#[derive(Debug, thiserror::Error)]
#[error("RIG_TIMEOUT_SCALE=`{value}` is not a positive number up to 1000 (e.g. 2 or 1.5)")]
pub struct BadTimeoutScale {
    pub value: String,
}

/// `RIG_TIMEOUT_SCALE` (default 1): a factor on every default timeout, for loaded hosts.
pub fn env_timeout_scale() -> Result<f64, BadTimeoutScale> {
    match std::env::var("RIG_TIMEOUT_SCALE") {
        Err(_) => Ok(1.0),
        Ok(v) => match v.trim().parse::<f64>() {
            // Bounded: a scale like 1e300 would overflow every deadline (a panic, not a wait).
            Ok(f) if f.is_finite() && f > 0.0 && f <= 1000.0 => Ok(f),
            _ => Err(BadTimeoutScale { value: v }),
        },
    }
}

/// How much slower than native a guest on `board` runs with `accel`: 1 under KVM, 3 under TCG,
/// 4 under TCG for a guest of another architecture than the host's (every instruction
/// translated from a foreign ISA); times [`env_timeout_scale`] (an invalid one counts as 1:
/// the CLI refuses it up front). Every default timeout (QEMU's boot and commands, scenario
/// steps) is multiplied by it.
pub fn timeout_scale(accel: Accel, board: Board) -> f64 {
    let machine = match accel {
        Accel::Kvm => 1.0,
        Accel::Tcg if Arch::host() == Some(board.arch()) => 3.0,
        Accel::Tcg => 4.0,
    };
    machine * env_timeout_scale().unwrap_or(1.0)
}

/// Deadlines, scaled for the accelerator.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub boot: Duration,
    pub command: Duration,
    pub qmp: Duration,
    /// How long a hot-unplug may take (pciehp waits ~5 s after the attention button).
    pub unplug: Duration,
}

impl Timeouts {
    /// At native (KVM) speed; [`Timeouts::for_machine`] scales them.
    pub const NATIVE: Timeouts = Timeouts {
        boot: Duration::from_secs(30),
        command: Duration::from_secs(30),
        qmp: Duration::from_secs(10),
        unplug: Duration::from_secs(20),
    };

    /// [`Timeouts::NATIVE`] scaled by [`timeout_scale`].
    pub fn for_machine(accel: Accel, board: Board) -> Self {
        Self::NATIVE.scaled(timeout_scale(accel, board))
    }

    pub fn scaled(self, factor: f64) -> Self {
        Timeouts {
            boot: self.boot.mul_f64(factor),
            command: self.command.mul_f64(factor),
            qmp: self.qmp.mul_f64(factor),
            unplug: self.unplug.mul_f64(factor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_scale_with_the_accelerator_and_foreign_arches() {
        let (x86, arm) = (Board::X86_64Q35, Board::Arm64Virt);
        if std::env::var_os("RIG_TIMEOUT_SCALE").is_none() {
            assert_eq!(timeout_scale(Accel::Kvm, x86), 1.0);
            let host_board = if Arch::host() == Some(Arch::Arm64) {
                arm
            } else {
                x86
            };
            let foreign = if host_board == x86 { arm } else { x86 };
            assert_eq!(timeout_scale(Accel::Tcg, host_board), 3.0);
            assert_eq!(timeout_scale(Accel::Tcg, foreign), 4.0);
        }
    }
}
