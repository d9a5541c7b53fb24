//! What one run of a soak looks like: its scenario, the seeded moment or variant of its fault,
//! and the run's own arguments. Every choice comes from the soak's seed and the run's index.

use super::fault::{Anchor, BundleVariant, Fault, Moment, Plan};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rig_yaml::single_quoted;

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

/// The scenario of a run: a work step (where the fault strikes), then a QMP and a guest step
/// that only pass if the machine is still fine.
fn scenario(fault: Fault, work: &str, timeout: &str, via_ssh: bool) -> String {
    let via = if via_ssh { ", via: ssh" } else { "" };
    format!(
        "name: soak-{fault}\ntimeout: 4m\nsteps:\n  - guest: {{name: work, run: {}, timeout: \
         {timeout}{via}}}\n  - qmp: {{name: status, execute: query-status}}\n  - guest: \
         {{name: after, run: 'true', timeout: 20s{via}}}\n",
        single_quoted(work)
    )
}

/// Variant `nth` of `n` taken in turn, from a start the seed draws.
fn in_turn(seed: u64, nth: usize, n: usize) -> usize {
    let start = ChaCha8Rng::seed_from_u64(seed).gen_range(0..n);
    (start + nth) % n
}

/// A scenario that boots and runs one quick command.
pub(crate) const QUICK: &str =
    "name: soak-quick\ntimeout: 4m\nsteps:\n  - guest: {name: work, run: 'true', timeout: 20s}\n";

/// Where a hostile scenario's host paths point: decoys in the run's `outside/` folder
/// (substituted when the run's scenario is written), never the host's own files, so a rig that
/// let one through damages nothing (QEMU would grow a `memory-backend-file` to its size) and
/// the soak sees the decoy touched.
pub(crate) const OUTSIDE: &str = "@OUTSIDE@";

/// Scenarios with a device or object that would reach the host, and what rig's refusal must
/// name. Everything else in them is valid: rig would boot them if it missed the device.
pub(crate) const HOSTILE_DEVICES: [(&str, &str); 7] = [
    (
        "usb-mtp",
        "name: soak-hostile-device\ndevices:\n  - qemu: {driver: usb-mtp, props: {rootdir: '@OUTSIDE@/share'}}\n\
         steps:\n  - guest: {name: after, run: 'true', timeout: 20s}\n",
    ),
    (
        "usb-mtp",
        "name: soak-hostile-device\nsteps:\n  - qmp: {execute: device_add, arguments: {driver: \
         usb-mtp, id: mtp0, rootdir: '@OUTSIDE@/share'}}\n  - guest: {name: after, run: 'true', timeout: 20s}\n",
    ),
    (
        "ipmi-bmc-sim",
        "name: soak-hostile-device\ndevices:\n  - qemu: {driver: ipmi-bmc-sim, props: {sdrfile: \
         '@OUTSIDE@/sdr'}}\nsteps:\n  - guest: {name: after, run: 'true', timeout: 20s}\n",
    ),
    (
        "ipmi-bmc-sim",
        "name: soak-hostile-device\nrequires: [pci_hotplug]\nsteps:\n  - pci_hotplug: {id: b, \
         driver: ipmi-bmc-sim, props: {sdrfile: '@OUTSIDE@/sdr'}}\n  - guest: {name: after, run: \
         'true', timeout: 20s}\n",
    ),
    (
        "prealloc",
        "name: soak-hostile-device\nsteps:\n  - qmp: {execute: object-add, arguments: \
         {qom-type: memory-backend-ram, id: m0, size: 1073741824, prealloc: true}}\n  - guest: \
         {name: after, run: 'true', timeout: 20s}\n",
    ),
    (
        "memory-backend-file",
        "name: soak-hostile-device\nsteps:\n  - qmp: {execute: object-add, arguments: \
         {qom-type: memory-backend-file, id: m0, size: 134217728, mem-path: '@OUTSIDE@/mem', share: \
         true}}\n  - guest: {name: after, run: 'true', timeout: 20s}\n",
    ),
    (
        "romfile",
        "name: soak-hostile-device\nrequires: [pci_hotplug]\nsteps:\n  - pci_hotplug: {id: \
         nic1, driver: e1000e, props: {romfile: '@OUTSIDE@/rom'}}\n  - guest: {name: after, run: \
         'true', timeout: 20s}\n",
    ),
];

/// A fake WARNING (as `scenarios/fake-warning.yaml` writes it), then a sleep in which the soak
/// fills the artifacts filesystem.
fn report_disk_full() -> String {
    let lines = [
        "------------[ cut here ]------------",
        "WARNING: CPU: 0 PID: 1 at drivers/base/core.c:123 device_del+0x10/0x20",
        "Modules linked in:",
        "CPU: 0 UID: 0 PID: 1 Comm: sh Not tainted 6.12.0-rig #1",
        "RIP: 0010:device_del+0x10/0x20",
        "Call Trace:",
        " <TASK>",
        " device_unregister+0x1c/0x60",
        " rig_fake_teardown+0x2a/0x40",
        " </TASK>",
        "---[ end trace 0000000000000000 ]---",
    ];
    let quoted: Vec<String> = lines.iter().map(|l| format!("'{l}'")).collect();
    let warn = format!(
        "for l in {}; do printf '<4>%s\\n' \"$l\" > /dev/kmsg; done",
        quoted.join(" ")
    );
    format!(
        "name: soak-report-disk-full\ntimeout: 4m\ncmdline: [printk.devkmsg=on]\nsteps:\n  - \
         guest: {{name: warn, run: {}, timeout: 60s}}\n  - guest: {{name: sleep, run: 'sleep \
         6', timeout: 60s}}\n",
        single_quoted(&warn)
    )
}

/// The plan of run `index` of a soak with `seed`.
///
/// `nth` is how many runs of the same fault come before it: hostile input takes its variants in
/// turn from a seeded start, so as many runs as variants try every one.
pub fn plan(fault: Fault, seed: u64, index: usize, nth: usize) -> Plan {
    let mut rng = run_rng(seed, index);
    let mut repeat = 1;
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
        Fault::HostileBundle => (
            Moment::Bundle {
                variant: BundleVariant::ALL[in_turn(seed, nth, BundleVariant::ALL.len())],
            },
            QUICK.to_string(),
        ),
        Fault::HostileDevice => {
            let (variant, text) = HOSTILE_DEVICES[in_turn(seed, nth, HOSTILE_DEVICES.len())];
            (
                Moment::Device {
                    variant: variant.to_string(),
                },
                text.to_string(),
            )
        }
        Fault::ReportDiskFull => (
            // During the sleep after the warning: report.json is written after it.
            Moment::After {
                anchor: Anchor::Step(2),
                delay_s: secs(&mut rng, 0.3, 3.0),
            },
            report_disk_full(),
        ),
        Fault::KillAtRepetition => {
            repeat = rng.gen_range(3..=5);
            (
                Moment::Signal {
                    signal: libc::SIGKILL,
                    group: rng.gen_bool(0.5),
                    anchor: Anchor::Repetition(rng.gen_range(1..=repeat as usize)),
                    delay_s: secs(&mut rng, 0.0, 4.0),
                },
                scenario(fault, "sleep 2", "60s", false),
            )
        }
        Fault::QemuStopInQmpWait => (
            Moment::After {
                anchor: Anchor::Qmp("device_del"),
                delay_s: secs(&mut rng, 0.2, 1.0),
            },
            format!(
                "name: soak-{fault}\ntimeout: 4m\nrequires: [pci_hotplug]\nsteps:\n  - \
                 pci_hotplug: {{id: nic1, driver: e1000e}}\n  - pci_unplug: {{id: nic1, timeout: \
                 30s}}\n  - guest: {{name: after, run: 'true', timeout: 20s}}\n"
            ),
        ),
        Fault::DropbearKilledInParallel => {
            let delay_s = secs(&mut rng, 0.3, 4.0);
            let kill = format!("sleep {delay_s}; kill -9 $(pidof dropbear)");
            (
                Moment::InGuest { delay_s },
                format!(
                    "name: soak-{fault}\ntimeout: 4m\nsteps:\n  - parallel:\n      deadline: \
                     90s\n      steps:\n        - guest: {{name: over-ssh, run: 'sleep 8', \
                     timeout: 60s, via: ssh}}\n        - guest: {{name: kill-dropbear, run: {}, \
                     timeout: 60s}}\n  - guest: {{name: after, run: 'true', timeout: 20s}}\n",
                    single_quoted(&kill)
                ),
            )
        }
        Fault::TreeUntrackedFile => (
            Moment::Untracked {
                // Under `debian/`: Debian's top-level .gitignore ignores everything else there.
                file: format!("debian/rig-soak-{:016x}.txt", rng.gen::<u64>()),
            },
            QUICK.to_string(),
        ),
    };
    Plan {
        index,
        fault,
        seed,
        moment,
        repeat,
        scenario,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_reproducible_from_the_seed_and_differ_between_runs() {
        for f in Fault::ALL {
            let a = plan(f, 42, 3, 0);
            let b = plan(f, 42, 3, 0);
            assert_eq!(a.moment, b.moment, "{f}");
            assert_eq!(a.scenario, b.scenario, "{f}");
            assert_eq!(a.repeat, b.repeat, "{f}");
        }
        let moments: Vec<Moment> = (0..20)
            .map(|i| plan(Fault::QemuKill, 42, i, i).moment)
            .collect();
        assert!(moments.windows(2).any(|w| w[0] != w[1]), "{moments:?}");
    }

    #[test]
    fn every_generated_scenario_is_valid() {
        let overlays = crate::repo_root().join("overlays");
        for f in Fault::ALL
            .into_iter()
            .filter(|&f| f != Fault::HostileDevice)
        {
            for i in 0..5 {
                let p = plan(f, 7, i, i);
                if let Err(e) = crate::scenario::parse_str(&p.scenario, "soak.yaml", &overlays) {
                    panic!("{f}: {e}\n{}", p.scenario);
                }
            }
        }
        crate::scenario::parse_str(QUICK, "soak.yaml", &overlays).unwrap();
    }

    /// Each hostile scenario is refused for its device or object, and only for it: without
    /// that line (the rest of the file is the same) it is a valid scenario rig would boot.
    #[test]
    fn every_hostile_scenario_is_refused_for_its_device_alone() {
        let overlays = crate::repo_root().join("overlays");
        for (variant, text) in HOSTILE_DEVICES {
            let e = crate::scenario::parse_str(text, "soak.yaml", &overlays)
                .expect_err(text)
                .to_string();
            assert!(e.contains(variant), "{variant}: {e}");
            let tamed = text
                .replace(
                    "usb-mtp, props: {rootdir: '@OUTSIDE@/share'}",
                    "pci-testdev",
                )
                .replace(
                    "usb-mtp, id: mtp0, rootdir: '@OUTSIDE@/share'",
                    "pci-testdev, id: t0",
                )
                .replace(
                    "ipmi-bmc-sim, props: {sdrfile: '@OUTSIDE@/sdr'}",
                    "pci-testdev",
                )
                .replace(
                    "driver: ipmi-bmc-sim, props: {sdrfile: '@OUTSIDE@/sdr'}",
                    "driver: e1000e",
                )
                .replace(", prealloc: true", "")
                .replace("memory-backend-file", "memory-backend-ram")
                .replace(", mem-path: '@OUTSIDE@/mem'", "")
                .replace(", props: {romfile: '@OUTSIDE@/rom'}", "");
            assert!(!tamed.contains(OUTSIDE), "{tamed}");
            if let Err(e) = crate::scenario::parse_str(&tamed, "soak.yaml", &overlays) {
                panic!("{variant}: without the hostile part: {e}\n{tamed}");
            }
        }
        // As many runs as variants try every one, from wherever the seed starts.
        for seed in 0..5 {
            let n = HOSTILE_DEVICES.len();
            let drawn: std::collections::BTreeSet<String> = (0..n)
                .map(|nth| plan(Fault::HostileDevice, seed, 3 * nth, nth).scenario)
                .collect();
            assert_eq!(drawn.len(), n);
            let n = BundleVariant::ALL.len();
            let drawn: Vec<String> = (0..n)
                .map(|nth| {
                    plan(Fault::HostileBundle, seed, nth, nth)
                        .moment
                        .to_string()
                })
                .collect();
            let unique: std::collections::BTreeSet<&String> = drawn.iter().collect();
            assert_eq!(unique.len(), n, "{drawn:?}");
        }
    }

    #[test]
    fn kill_at_repetition_strikes_within_the_runs_repetitions() {
        for i in 0..50 {
            let p = plan(Fault::KillAtRepetition, 11, i, i);
            assert!((3..=5).contains(&p.repeat), "{}", p.repeat);
            match p.moment {
                Moment::Signal {
                    signal,
                    anchor: Anchor::Repetition(k),
                    ..
                } => {
                    assert_eq!(signal, libc::SIGKILL);
                    assert!((1..=p.repeat as usize).contains(&k), "{k}");
                }
                m => panic!("{m:?}"),
            }
        }
        assert_eq!(plan(Fault::QemuKill, 11, 0, 0).repeat, 1);
    }
}
