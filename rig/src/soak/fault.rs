//! The faults a soak injects, what each run of one looks like (its scenario and the seeded
//! moment of the fault), and which exit codes are the right verdict for it.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;

/// One thing that goes wrong in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// QEMU SIGKILLed by someone else mid-step.
    QemuKill,
    /// QEMU SIGSTOPped mid-step (it hangs; nobody sends SIGCONT).
    QemuStop,
    /// The guest kernel panics mid-step (`echo c > /proc/sysrq-trigger`).
    GuestPanic,
    /// A guest command never returns while the console stays alive.
    GuestHang,
    /// The guest's command console goes silent mid-command (its shell stopped).
    ConsoleSilent,
    /// Random bytes (NULs, marker bytes, no newline at the end) on the console during a command.
    GarbageFlood,
    /// Thousands of printk lines during a command.
    PrintkFlood,
    /// QEMU's QMP socket file removed mid-run.
    QmpSocketGone,
    /// The ssh port taken by another process before QEMU binds it.
    SshPortTaken,
    /// The guest's dropbear killed mid-command over ssh.
    DropbearKilled,
    /// The artifacts directory on a (tiny, nearly) full filesystem.
    ArtifactsFull,
    /// Ctrl-C (SIGINT to rig's process group) at a random moment.
    Sigint,
    /// SIGTERM to rig at a random moment.
    Sigterm,
    /// Two rigs at once on the same empty cache (both need the same kernel and rootfs).
    TwoRigsEmptyCache,
    /// rig killed while it fills an empty cache, then a normal run on that cache.
    KillDuringCacheBuild,
}

impl Fault {
    pub const ALL: [Fault; 15] = [
        Fault::QemuKill,
        Fault::QemuStop,
        Fault::GuestPanic,
        Fault::GuestHang,
        Fault::ConsoleSilent,
        Fault::GarbageFlood,
        Fault::PrintkFlood,
        Fault::QmpSocketGone,
        Fault::SshPortTaken,
        Fault::DropbearKilled,
        Fault::ArtifactsFull,
        Fault::Sigint,
        Fault::Sigterm,
        Fault::TwoRigsEmptyCache,
        Fault::KillDuringCacheBuild,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::QemuKill => "qemu-kill",
            Fault::QemuStop => "qemu-stop",
            Fault::GuestPanic => "guest-panic",
            Fault::GuestHang => "guest-hang",
            Fault::ConsoleSilent => "console-silent",
            Fault::GarbageFlood => "garbage-flood",
            Fault::PrintkFlood => "printk-flood",
            Fault::QmpSocketGone => "qmp-socket-gone",
            Fault::SshPortTaken => "ssh-port-taken",
            Fault::DropbearKilled => "dropbear-killed",
            Fault::ArtifactsFull => "artifacts-full",
            Fault::Sigint => "sigint",
            Fault::Sigterm => "sigterm",
            Fault::TwoRigsEmptyCache => "two-rigs-empty-cache",
            Fault::KillDuringCacheBuild => "kill-during-cache-build",
        }
    }

    /// What the right verdict is, for the README and `rig soak --help`.
    pub fn expectation(self) -> &'static str {
        match self {
            Fault::QemuKill | Fault::QemuStop => "125 (host-side)",
            Fault::GuestPanic | Fault::GuestHang | Fault::ConsoleSilent => "1 (kernel-side)",
            Fault::GarbageFlood | Fault::PrintkFlood | Fault::QmpSocketGone => {
                "0 (the command's real result)"
            }
            Fault::SshPortTaken => "125 if taken after rig chose it, 0 if rig could avoid it",
            Fault::DropbearKilled | Fault::ArtifactsFull => "125 (host-side)",
            Fault::Sigint => "130",
            Fault::Sigterm => "143",
            Fault::TwoRigsEmptyCache => "0 and 0, each entry built once",
            Fault::KillDuringCacheBuild => "128+N, then 0 on the same cache",
        }
    }

    /// Whether the fault needs a fresh, empty cache.
    pub fn empty_cache(self) -> bool {
        matches!(self, Fault::TwoRigsEmptyCache | Fault::KillDuringCacheBuild)
    }

    /// Parses `a,b,c` (or `all`).
    pub fn parse_list(s: &str) -> Result<Vec<Fault>, UnknownFault> {
        let mut out = Vec::new();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "all" {
                out.extend(Fault::ALL);
                continue;
            }
            let f = Fault::ALL
                .into_iter()
                .find(|f| f.name() == word)
                .ok_or_else(|| UnknownFault {
                    name: word.to_string(),
                })?;
            out.push(f);
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            return Err(UnknownFault { name: s.into() });
        }
        Ok(out)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown fault `{name}` (known: {})", Fault::ALL.map(Fault::name).join(", "))]
pub struct UnknownFault {
    pub name: String,
}

/// A point in a child rig's life, read from its `events.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// The child was started.
    Spawned,
    /// Its first provisioning step began building.
    Building,
    /// QEMU was started.
    QemuSpawned,
    /// The guest printed RIG-READY.
    BootReady,
    /// Scenario step N (1-based) began.
    Step(usize),
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anchor::Spawned => f.write_str("start"),
            Anchor::Building => f.write_str("cache build"),
            Anchor::QemuSpawned => f.write_str("QEMU start"),
            Anchor::BootReady => f.write_str("boot ready"),
            Anchor::Step(n) => write!(f, "step {n}"),
        }
    }
}

/// The seeded choices of one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Moment {
    /// The fault is a guest command that starts this long into the work step.
    InGuest { delay_s: f64 },
    /// The soak acts this long after `anchor`.
    After { anchor: Anchor, delay_s: f64 },
    /// A signal this long after `anchor`; `group`: to rig's process group (Ctrl-C), else its pid.
    Signal {
        signal: i32,
        group: bool,
        anchor: Anchor,
        delay_s: f64,
    },
    /// The artifacts filesystem has this much room left when rig starts.
    Headroom { kib: u64 },
    /// The port is taken before rig starts (rig must pick another) or as soon as rig chose it.
    Port { before_rig: bool },
    /// The second rig starts this long after the first.
    Offset { delay_s: f64 },
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::InGuest { delay_s } => write!(f, "in the guest {delay_s:.1}s into step 1"),
            Moment::After { anchor, delay_s } => write!(f, "{anchor} + {delay_s:.1}s"),
            Moment::Signal {
                signal,
                group,
                anchor,
                delay_s,
            } => write!(
                f,
                "signal {signal} to {} at {anchor} + {delay_s:.1}s",
                if *group { "the group" } else { "rig" }
            ),
            Moment::Headroom { kib } => write!(f, "{kib} KiB free"),
            Moment::Port { before_rig: true } => f.write_str("taken before rig started"),
            Moment::Port { before_rig: false } => f.write_str("taken once rig chose it"),
            Moment::Offset { delay_s } => write!(f, "second rig {delay_s:.1}s later"),
        }
    }
}

/// One planned run: which fault, when, and the scenario the child rig runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub index: usize,
    pub fault: Fault,
    pub seed: u64,
    pub moment: Moment,
    #[serde(skip)]
    pub scenario: String,
}

/// The run's own random source: the soak seed and the run index decide everything.
pub fn run_rng(seed: u64, index: usize) -> ChaCha8Rng {
    {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index as u64);
        rng
    }
}

/// `lo..hi` seconds, to 0.1 s.
fn secs(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    ((lo + rng.gen::<f64>() * (hi - lo)) * 10.0).round() / 10.0
}

/// A YAML single-quoted scalar.
fn yq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The scenario of a run: a work step (where the fault strikes), then a QMP and a guest step
/// that only pass if the machine is still fine.
fn scenario(fault: Fault, work: &str, timeout: &str, via_ssh: bool) -> String {
    let via = if via_ssh { ", via: ssh" } else { "" };
    format!(
        "name: soak-{fault}\ntimeout: 4m\nsteps:\n  - guest: {{name: work, run: {}, timeout: \
         {timeout}{via}}}\n  - qmp: {{name: status, execute: query-status}}\n  - guest: \
         {{name: after, run: 'true', timeout: 20s{via}}}\n",
        yq(work)
    )
}

/// The plan of run `index` of a soak with `seed`.
pub fn plan(fault: Fault, seed: u64, index: usize) -> Plan {
    let mut rng = run_rng(seed, index);
    let host_step = |rng: &mut ChaCha8Rng| Moment::After {
        anchor: Anchor::Step(1),
        delay_s: secs(rng, 0.5, 3.0),
    };
    let quiet = scenario(fault, "sleep 4", "60s", false);
    let (moment, scenario) = match fault {
        Fault::QemuKill => (host_step(&mut rng), quiet),
        Fault::QemuStop => (
            host_step(&mut rng),
            scenario(fault, "sleep 4", "10s", false),
        ),
        Fault::QmpSocketGone => {
            let anchor = if rng.gen_bool(0.5) {
                Anchor::BootReady
            } else {
                Anchor::Step(1)
            };
            let delay_s = secs(&mut rng, 0.0, 2.0);
            (Moment::After { anchor, delay_s }, quiet)
        }
        Fault::GuestPanic | Fault::GuestHang | Fault::ConsoleSilent => {
            let delay_s = secs(&mut rng, 0.2, 3.0);
            let then = match fault {
                Fault::GuestPanic => "echo c > /proc/sysrq-trigger; sleep 60",
                Fault::GuestHang => "sleep 100000",
                // Stops the shell that reads rig's commands (and the command): silence.
                _ => "kill -STOP $PPID $$",
            };
            let work = format!("sleep {delay_s}; {then}");
            (
                Moment::InGuest { delay_s },
                scenario(fault, &work, "10s", false),
            )
        }
        Fault::GarbageFlood | Fault::PrintkFlood => {
            let delay_s = secs(&mut rng, 0.2, 2.0);
            let flood = if fault == Fault::GarbageFlood {
                "head -c 262144 /dev/urandom > /dev/console"
            } else {
                "i=0; while [ $i -lt 2000 ]; do echo \"rig-soak flood line $i\" > /dev/kmsg; \
                 i=$((i+1)); done"
            };
            let work = format!("sleep {delay_s}; {flood}; echo done");
            (
                Moment::InGuest { delay_s },
                scenario(fault, &work, "120s", false),
            )
        }
        Fault::SshPortTaken => (
            Moment::Port {
                before_rig: rng.gen_bool(0.5),
            },
            scenario(fault, "sleep 1", "60s", true),
        ),
        Fault::DropbearKilled => {
            let delay_s = secs(&mut rng, 0.2, 2.0);
            let work =
                format!("(sleep {delay_s}; kill -9 $(pidof dropbear)) >/dev/null 2>&1 & sleep 20");
            (
                Moment::InGuest { delay_s },
                scenario(fault, &work, "60s", true),
            )
        }
        Fault::ArtifactsFull => (
            // Less than a boot's console log: the filesystem fills during boot or the steps.
            Moment::Headroom {
                kib: 4 * rng.gen_range(0..=10u64),
            },
            quiet,
        ),
        Fault::Sigint | Fault::Sigterm => {
            let anchor = [
                Anchor::Spawned,
                Anchor::QemuSpawned,
                Anchor::BootReady,
                Anchor::Step(1),
                Anchor::Step(2),
            ][rng.gen_range(0..5)];
            let (signal, group) = if fault == Fault::Sigint {
                (libc::SIGINT, true)
            } else {
                (libc::SIGTERM, false)
            };
            let delay_s = secs(&mut rng, 0.0, 1.5);
            (
                Moment::Signal {
                    signal,
                    group,
                    anchor,
                    delay_s,
                },
                quiet,
            )
        }
        Fault::TwoRigsEmptyCache => (
            Moment::Offset {
                delay_s: secs(&mut rng, 0.0, 2.0),
            },
            scenario(fault, "sleep 1", "60s", false),
        ),
        Fault::KillDuringCacheBuild => {
            let (signal, group) = [
                (libc::SIGKILL, true),
                (libc::SIGTERM, false),
                (libc::SIGINT, true),
            ][rng.gen_range(0..3)];
            (
                Moment::Signal {
                    signal,
                    group,
                    anchor: Anchor::Building,
                    delay_s: secs(&mut rng, 0.0, 12.0),
                },
                scenario(fault, "sleep 1", "60s", false),
            )
        }
    };
    Plan {
        index,
        fault,
        seed,
        moment,
        scenario,
    }
}

/// The faults of runs `0..runs`: every fault in turn, each round in a seeded order, so every
/// fault gets `runs / faults` runs (one more for the first few).
pub fn schedule(faults: &[Fault], runs: usize, seed: u64) -> Vec<Fault> {
    let mut out = Vec::with_capacity(runs);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    while out.len() < runs {
        let mut round = faults.to_vec();
        round.shuffle(&mut rng);
        out.extend(round.into_iter().take(runs - out.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_strictly() {
        assert_eq!(
            Fault::parse_list("qemu-kill, sigint,qemu-kill").unwrap(),
            vec![Fault::QemuKill, Fault::Sigint]
        );
        assert_eq!(Fault::parse_list("all").unwrap().len(), Fault::ALL.len());
        let e = Fault::parse_list("qemu-kil").unwrap_err();
        assert!(e.to_string().contains("unknown fault `qemu-kil`"), "{e}");
        assert!(Fault::parse_list(" , ").is_err());
    }

    #[test]
    fn plans_are_reproducible_from_the_seed_and_differ_between_runs() {
        for f in Fault::ALL {
            let a = plan(f, 42, 3);
            let b = plan(f, 42, 3);
            assert_eq!(a.moment, b.moment, "{f}");
            assert_eq!(a.scenario, b.scenario, "{f}");
        }
        let moments: Vec<Moment> = (0..20)
            .map(|i| plan(Fault::QemuKill, 42, i).moment)
            .collect();
        assert!(moments.windows(2).any(|w| w[0] != w[1]), "{moments:?}");
    }

    #[test]
    fn every_generated_scenario_is_valid() {
        let overlays = crate::repo_root().join("overlays");
        for f in Fault::ALL {
            for i in 0..5 {
                let p = plan(f, 7, i);
                if let Err(e) = crate::scenario::parse_str(&p.scenario, "soak.yaml", &overlays) {
                    panic!("{f}: {e}\n{}", p.scenario);
                }
            }
        }
    }

    #[test]
    fn the_schedule_spreads_runs_evenly_over_the_faults() {
        let s = schedule(&Fault::ALL, 100, 1);
        assert_eq!(s.len(), 100);
        for f in Fault::ALL {
            let n = s.iter().filter(|&&x| x == f).count();
            assert!((6..=7).contains(&n), "{f}: {n}");
        }
        assert_eq!(schedule(&Fault::ALL, 100, 1), s);
        assert_ne!(schedule(&Fault::ALL, 100, 2), s);
    }
}
