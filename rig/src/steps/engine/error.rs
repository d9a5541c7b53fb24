//! How a step fails ([`StepError`]), and the failure a run records ([`Failure`]).

use crate::guest::GuestError;
use crate::host::text::error_chain;

/// A step that did not happen as asked (the run's report keeps it as a `StepFailure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The step's label.
    pub step: String,
    /// `file:line:column` of the step in the scenario (empty for the engine's own setup).
    pub at: String,
    pub message: String,
    /// Rig could not run it (as opposed to the kernel not doing it).
    pub infra: bool,
}

/// A guest command that did not finish in time (as opposed to a guest that died).
pub(super) fn is_timeout(e: &GuestError) -> bool {
    use crate::guest::transport::TransportError;
    matches!(e, GuestError::Transport { source, .. } if matches!(**source, TransportError::Timeout { .. }))
}

/// Why a step failed. The last three are decided when the failure is recorded
/// ([`Engine::resolve`]), by asking whether QEMU still runs the guest and whether the guest still
/// answers: a host that stopped QEMU or a broken ssh channel is rig's failure, not the kernel's.
pub(crate) enum StepError {
    /// The kernel did not do what the step asked.
    Kernel(String),
    /// Rig could not carry the step out.
    Rig(String),
    /// Something the guest had to do in time did not happen (a QMP event such as
    /// `DEVICE_DELETED` never came): the kernel's failure if QEMU runs the guest.
    NotDone(String),
    /// A guest command did not finish in time: the kernel's (the command or the kernel hangs)
    /// if the guest still answers or QEMU runs it with its console dead; rig's if QEMU does not.
    Hung(String),
    /// rig's channel into the guest (ssh) broke: rig's failure while the guest still answers on
    /// its console; the kernel's when the whole guest stopped answering while QEMU runs it.
    ChannelLost(String),
    /// QEMU did not answer a QMP command: rig's failure always; what QEMU is doing says why
    /// (stopped on the host, stuck) and whether the run can go on.
    QemuSilent(String),
}

impl From<crate::machine::vm::VmError> for StepError {
    fn from(e: crate::machine::vm::VmError) -> Self {
        match &e {
            crate::machine::vm::VmError::Qmp {
                source: crate::machine::qmp::QmpError::EventTimeout { .. },
                ..
            } => StepError::NotDone(error_chain(&e)),
            crate::machine::vm::VmError::Qmp {
                source: crate::machine::qmp::QmpError::Io { .. },
                ..
            } => StepError::QemuSilent(error_chain(&e)),
            _ => StepError::Rig(error_chain(&e)),
        }
    }
}

impl From<crate::machine::qmp::QmpError> for StepError {
    fn from(e: crate::machine::qmp::QmpError) -> Self {
        use crate::machine::qmp::QmpError;
        match e {
            QmpError::EventTimeout { .. } => StepError::NotDone(error_chain(&e)),
            QmpError::Io { .. } => StepError::QemuSilent(error_chain(&e)),
            _ => StepError::Rig(error_chain(&e)),
        }
    }
}

impl From<GuestError> for StepError {
    fn from(e: GuestError) -> Self {
        use crate::guest::transport::TransportError;
        match e {
            GuestError::Vm(v) => (*v).into(),
            GuestError::Transport { ref source, .. } => match **source {
                TransportError::Timeout { .. } => StepError::Hung(error_chain(&e)),
                TransportError::Disconnected { .. } => StepError::ChannelLost(error_chain(&e)),
                _ => StepError::Rig(error_chain(&e)),
            },
            other => StepError::Rig(error_chain(&other)),
        }
    }
}

impl StepError {
    /// A guest command over ssh that failed: by how it failed.
    pub(crate) fn from_transport(e: &crate::guest::transport::TransportError) -> Self {
        use crate::guest::transport::TransportError;
        match e {
            TransportError::Timeout { .. } => StepError::Hung(error_chain(e)),
            TransportError::Disconnected { .. } => StepError::ChannelLost(error_chain(e)),
            TransportError::GuestDied { .. } | TransportError::Other { .. } => {
                StepError::Rig(error_chain(e))
            }
        }
    }
}
