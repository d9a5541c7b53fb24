//! Whether a scenario can run on a board with a kernel: the engine asks this before anything
//! boots. A scenario names features (`requires:`); this module knows what each needs of the
//! kernel's `.config`, of its modules and of the board.

use crate::host::board::Board;
use crate::provision::Kernel;
use crate::scenario::{Feature, Location, Scenario};
use std::collections::BTreeMap;
use std::fmt;

/// What the requirements read of a kernel: its `.config` and its `VERSION.PATCHLEVEL`
/// (`None` when unknown).
#[derive(Debug, Clone, Copy)]
pub struct KernelFacts<'a> {
    pub config: &'a BTreeMap<String, String>,
    pub version: Option<(u32, u32)>,
}

/// The first kernel that makes itself an empty device tree when the firmware hands it none
/// ("of: Create of_root if no dtb provided by firmware", "x86/of: Unconditionally call
/// unflatten_and_copy_device_tree()"), so overlays have a root to land on.
const OWN_DEVICE_TREE_SINCE: (u32, u32) = (6, 9);

/// The first kernel taken to make device tree nodes for a PCI host bridge the firmware
/// describes only in ACPI ("PCI: of: Create device tree PCI host bridge node",
/// `of_pci_make_host_bridge_node()`), and so for the PCI devices under it. Checked on x86_64-q35:
/// 6.12 makes none, 7.3 does; the version between is the series' merge as best known, erring
/// late (a kernel refused here that had it loses a cell; one let through without it fails its
/// overlay step saying the device has no node).
const PCI_NODES_WITHOUT_FIRMWARE_TREE_SINCE: (u32, u32) = (6, 15);

/// What `board` and `kernel` lack for `feature`; empty when it is there.
pub fn missing(feature: Feature, board: Board, kernel: KernelFacts) -> Vec<String> {
    let config = kernel.config;
    let mut out = Vec::new();
    let mut need = |opt: &str, modules_ok: bool| {
        let ok = match config.get(opt).map(String::as_str) {
            Some("y") => true,
            Some("m") => modules_ok,
            _ => false,
        };
        if !ok {
            let want = if modules_ok { "y or m" } else { "y" };
            out.push(format!("{opt}={want}"));
        }
    };
    match feature {
        Feature::OfOverlay => {
            need("CONFIG_OF_OVERLAY", false);
            need("CONFIG_CONFIGFS_FS", true);
            if !board.firmware_device_tree() {
                // The kernel unflattens its own built-in empty tree.
                need("CONFIG_OF_FLATTREE", false);
            }
        }
        Feature::PciOfNodes => need("CONFIG_PCI_DYNAMIC_OF_NODES", false),
        Feature::Netdevsim => need("CONFIG_NETDEVSIM", true),
        Feature::Devlink => need("CONFIG_NET_DEVLINK", false),
        Feature::PciHotplug => need("CONFIG_HOTPLUG_PCI_PCIE", false),
        Feature::MemoryHotplug => {
            need("CONFIG_MEMORY_HOTPLUG", false);
            need("CONFIG_MEMORY_HOTREMOVE", false);
            if board == Board::X86_64Q35 {
                // q35 announces DIMMs through ACPI (PNP0C80 devices).
                need("CONFIG_ACPI_HOTPLUG_MEMORY", false);
            }
        }
        Feature::Lockdep => need("CONFIG_PROVE_LOCKING", false),
        Feature::Kasan => need("CONFIG_KASAN", false),
        Feature::VirtioMem => {
            need("CONFIG_VIRTIO_MEM", true);
            need("CONFIG_MEMORY_HOTREMOVE", false);
        }
        Feature::OfUnittest => need("CONFIG_OF_UNITTEST", false),
        // pci_overlay_driver: rig's module, which [`check_kernel`] looks for.
        Feature::NetdevsimModule | Feature::OutboundNetwork | Feature::PciOverlayDriver => {}
    }
    if feature == Feature::NetdevsimModule
        && config.get("CONFIG_NETDEVSIM").map(String::as_str) != Some("m")
    {
        out.push("CONFIG_NETDEVSIM=m (a module rig can unload)".into());
    }
    out.extend(board_lacks(feature, board));
    // A device tree to overlay: the board's, or one the kernel makes itself.
    let this = match kernel.version {
        Some((a, b)) => format!("this one is {a}.{b}"),
        None => "this one's version is unknown".into(),
    };
    let since = |v: (u32, u32)| kernel.version.is_some_and(|k| k >= v);
    match feature {
        Feature::OfOverlay if !board.firmware_device_tree() && !since(OWN_DEVICE_TREE_SINCE) => {
            let (major, minor) = OWN_DEVICE_TREE_SINCE;
            out.push(format!(
                "a kernel that makes its own device tree ({board}'s firmware hands it none; \
                 Linux {major}.{minor}+ does, {this}), or a board booted with one (arm64-virt)"
            ))
        }
        Feature::PciOfNodes
            if !board.firmware_device_tree() && !since(PCI_NODES_WITHOUT_FIRMWARE_TREE_SINCE) =>
        {
            let (major, minor) = PCI_NODES_WITHOUT_FIRMWARE_TREE_SINCE;
            out.push(format!(
                "a kernel that makes device tree nodes for an ACPI-described PCI host bridge \
                 (Linux {major}.{minor}+, {this}), or a board booted with a device tree \
                 (arm64-virt)"
            ))
        }
        _ => {}
    }
    out
}

/// What `board` itself lacks for `feature`, whatever the kernel. (A device tree for overlays
/// is not among them: a kernel can make its own, see [`missing`].)
fn board_lacks(feature: Feature, board: Board) -> Option<String> {
    match feature {
        Feature::MemoryHotplug if !board.supports_dimm_hotplug() => Some(format!(
            "a board that signals DIMM hot-plug to the guest ({board} does not; use x86_64-q35)"
        )),
        Feature::OfUnittest if !board.firmware_device_tree() => Some(format!(
            "a board booted with a device tree for the unit tests to run against ({board} has \
             none; use arm64-virt)"
        )),
        _ => None,
    }
}

/// Why a scenario cannot run on a board with a kernel: one entry per unmet `requires` entry
/// (or the `boards` restriction), each pointing at where the file asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub scenario: String,
    pub board: Board,
    pub unmet: Vec<Unmet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub at: Location,
    /// A feature name, or `boards`.
    pub what: String,
    pub missing: Vec<String>,
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {} needs {}",
            self.at,
            self.at.path,
            self.what,
            self.missing.join(", ")
        )
    }
}

impl Unsupported {
    /// One line, for a matrix cell's skip reason.
    pub fn summary(&self) -> String {
        self.unmet
            .iter()
            .map(|u| format!("{} needs {}", u.what, u.missing.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scenario `{}` cannot run on {}:",
            self.scenario, self.board
        )?;
        for u in &self.unmet {
            write!(f, "\n  {u}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unsupported {}

/// What can be told before any kernel is provisioned: whether `scenario` can run on `board`
/// at all (its `boards`, and what its requirements need of the board itself). The run asks
/// this first; [`check_kernel`] asks it again among the rest.
pub fn check_board(scenario: &Scenario, board: Board) -> Result<(), Unsupported> {
    let mut unmet = boards_unmet(scenario, board);
    for r in &scenario.requires {
        if let Some(lack) = board_lacks(r.feature, board) {
            unmet.push(Unmet {
                at: r.at.clone(),
                what: r.feature.name().into(),
                missing: vec![lack],
            });
        }
    }
    unsupported(scenario, board, unmet)
}

/// The scenario's `boards` restriction, when `board` is not among them.
fn boards_unmet(scenario: &Scenario, board: Board) -> Vec<Unmet> {
    if scenario.boards.contains(&board) {
        return Vec::new();
    }
    let names: Vec<&str> = scenario.boards.iter().map(|b| b.name()).collect();
    vec![Unmet {
        at: scenario.boards_at.clone(),
        what: "boards".into(),
        missing: vec![format!("one of {} (not {board})", names.join(", "))],
    }]
}

/// Whether `scenario` can run on `board` with `kernel` (its `.config` as
/// [`crate::provision::parse_kconfig`] reads it, and its version).
pub fn check_requirements(
    scenario: &Scenario,
    board: Board,
    kernel: KernelFacts,
) -> Result<(), Unsupported> {
    let mut unmet = boards_unmet(scenario, board);
    for r in &scenario.requires {
        let missing = missing(r.feature, board, kernel);
        if !missing.is_empty() {
            unmet.push(Unmet {
                at: r.at.clone(),
                what: r.feature.name().into(),
                missing,
            });
        }
    }
    unsupported(scenario, board, unmet)
}

/// [`check_requirements`] for a resolved kernel: reads its `.config`, and for
/// `of_overlay` also wants rig's configfs overlay module among the kernel's modules
/// (`lib/modules/<release>/extra/rig_of_configfs.ko`, built by [`crate::provision::kbuild`]).
pub fn check_kernel(scenario: &Scenario, board: Board, kernel: &Kernel) -> Result<(), Unsupported> {
    let config = match kernel.config_options() {
        Ok(c) => c,
        Err(e) => {
            let unmet = Unmet {
                at: Location {
                    file: scenario.file.clone(),
                    line: 1,
                    column: 1,
                    path: String::new(),
                },
                what: format!("kernel {}", kernel.name),
                missing: vec![format!("a readable .config ({e})")],
            };
            return unsupported(scenario, board, vec![unmet]);
        }
    };
    let facts = KernelFacts {
        config: &config,
        version: kernel.version(),
    };
    let mut unmet = match check_requirements(scenario, board, facts) {
        Ok(()) => Vec::new(),
        Err(u) => u.unmet,
    };
    if let Some(t) = &scenario.trace {
        let missing: Vec<String> = t
            .spec
            .needs_config()
            .into_iter()
            .filter(|o| config.get(*o).map(String::as_str) != Some("y"))
            .map(|o| format!("{o}=y"))
            .collect();
        if !missing.is_empty() {
            unmet.push(Unmet {
                at: t.at.clone(),
                what: "trace".into(),
                missing,
            });
        }
    }
    for r in &scenario.requires {
        let Some(module) = rig_module(r.feature) else {
            continue;
        };
        if !kernel.extra_module(module).is_file() {
            let need = format!("the {module} module (rig-built kernels have it)");
            match unmet.iter_mut().find(|u| u.what == r.feature.name()) {
                Some(u) => u.missing.push(need),
                None => unmet.push(Unmet {
                    at: r.at.clone(),
                    what: r.feature.name().into(),
                    missing: vec![need],
                }),
            }
        }
    }
    unsupported(scenario, board, unmet)
}

/// rig's own out-of-tree module a feature needs among the kernel's modules
/// (`lib/modules/<release>/extra/`, built by [`crate::provision::kbuild`]).
fn rig_module(feature: Feature) -> Option<&'static str> {
    match feature {
        Feature::OfOverlay => Some(crate::provision::kbuild::OF_CONFIGFS_MODULE),
        Feature::PciOverlayDriver => Some(crate::provision::kbuild::PCI_OVERLAY_MODULE),
        _ => None,
    }
}

/// `Ok` when nothing is unmet, else the `Unsupported` naming every unmet requirement.
fn unsupported(scenario: &Scenario, board: Board, unmet: Vec<Unmet>) -> Result<(), Unsupported> {
    if unmet.is_empty() {
        return Ok(());
    }
    Err(Unsupported {
        scenario: scenario.name.clone(),
        board,
        unmet,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{load, parse_str};
    use std::path::{Path, PathBuf};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios")
    }

    fn fixture_overlays() -> PathBuf {
        fixtures().join("overlays")
    }

    /// A 6.1 kernel (before kernels made their own device tree) with `config`.
    fn facts(config: &BTreeMap<String, String>) -> KernelFacts<'_> {
        KernelFacts {
            config,
            version: Some((6, 1)),
        }
    }

    fn good(text: &str) -> Scenario {
        parse_str(text, "t.yaml", &fixture_overlays()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn requires_the_kernel_lacks() {
        let path = fixtures().join("needs-netdevsim.yaml");
        let s = load(&path, &fixture_overlays()).unwrap();
        let cfg = crate::provision::parse_kconfig(
            &std::fs::read_to_string(fixtures().join("kernel-no-netdevsim.config")).unwrap(),
        );
        let e = check_requirements(&s, Board::X86_64Q35, facts(&cfg)).unwrap_err();
        let file = path.display();
        assert_eq!(
            e.to_string(),
            format!(
                "scenario `needs-netdevsim` cannot run on x86_64-q35:\n  \
                 {file}:5:5: requires[1]: netdevsim needs CONFIG_NETDEVSIM=y or m"
            )
        );
        assert_eq!(e.summary(), "netdevsim needs CONFIG_NETDEVSIM=y or m");
        assert_eq!(e.unmet.len(), 1);
        assert_eq!((e.unmet[0].at.line, e.unmet[0].at.column), (5, 5));

        let mut cfg = cfg;
        cfg.insert("CONFIG_NETDEVSIM".into(), "m".into());
        check_requirements(&s, Board::X86_64Q35, facts(&cfg)).unwrap();
        check_requirements(&s, Board::Arm64Virt, facts(&cfg)).unwrap();
        cfg.insert("CONFIG_NET_DEVLINK".into(), "m".into());
        let e = check_requirements(&s, Board::X86_64Q35, facts(&cfg)).unwrap_err();
        assert_eq!(e.summary(), "devlink needs CONFIG_NET_DEVLINK=y");
    }

    #[test]
    fn requirements_depend_on_the_board() {
        let cfg = crate::provision::parse_kconfig(
            &std::fs::read_to_string(fixtures().join("kernel-no-netdevsim.config")).unwrap(),
        );
        let s = good(
            "requires: [memory_hotplug, of_overlay]\nsteps:\n  - memory_add: {id: d, size: 128M}\n",
        );
        // x86's firmware hands a 6.1 kernel no device tree to overlay.
        let e = check_requirements(&s, Board::X86_64Q35, facts(&cfg)).unwrap_err();
        assert_eq!(e.unmet.len(), 1, "{e}");
        assert_eq!(e.unmet[0].what, "of_overlay");
        assert!(
            e.unmet[0].missing.iter().any(|m| m.contains(
                "a kernel that makes its own device tree (x86_64-q35's firmware hands it none; \
                 Linux 6.9+ does, this one is 6.1)"
            )),
            "{e}"
        );
        // arm64 virt does not tell the guest about DIMMs.
        let e = check_requirements(&s, Board::Arm64Virt, facts(&cfg)).unwrap_err();
        assert_eq!(e.unmet.len(), 1, "{e}");
        assert_eq!(e.unmet[0].what, "memory_hotplug");
        assert_eq!((e.unmet[0].at.line, e.unmet[0].at.column), (1, 12));

        let s = good("boards: [arm64-virt]\nsteps:\n  - sleep: 1s\n");
        let e = check_requirements(&s, Board::X86_64Q35, facts(&cfg)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario `t` cannot run on x86_64-q35:\n  t.yaml:1:1: boards: boards needs one of \
             arm64-virt (not x86_64-q35)"
        );
        check_requirements(&s, Board::Arm64Virt, facts(&BTreeMap::new())).unwrap();
    }

    /// Overlays on x86 are decided by the kernel, not the board's name: a kernel that makes its
    /// own (empty) device tree and has the options takes them; one that lacks either does not.
    #[test]
    fn x86_overlays_need_a_kernel_that_makes_its_own_device_tree() {
        let s = good("requires: [of_overlay, pci_of_nodes]\nsteps:\n  - sleep: 1s\n");
        let mut cfg: BTreeMap<String, String> = [
            "CONFIG_OF_OVERLAY",
            "CONFIG_CONFIGFS_FS",
            "CONFIG_OF_FLATTREE",
            "CONFIG_PCI_DYNAMIC_OF_NODES",
        ]
        .into_iter()
        .map(|o| (o.to_string(), "y".to_string()))
        .collect();
        let at = |version| KernelFacts {
            config: &cfg,
            version,
        };
        check_requirements(&s, Board::X86_64Q35, at(Some((7, 3)))).unwrap();
        // 6.12 makes its own empty tree, but no nodes for an ACPI-described PCI host bridge.
        let e = check_requirements(&s, Board::X86_64Q35, at(Some((6, 12)))).unwrap_err();
        assert_eq!(e.unmet.len(), 1, "{e}");
        assert_eq!(e.unmet[0].what, "pci_of_nodes");
        assert!(e.summary().contains("PCI host bridge"), "{e}");
        let e = check_requirements(&s, Board::X86_64Q35, at(Some((6, 8)))).unwrap_err();
        assert_eq!(e.unmet.len(), 2, "{e}");
        assert!(e.summary().contains("this one is 6.8"), "{e}");
        let e = check_requirements(&s, Board::X86_64Q35, at(None)).unwrap_err();
        assert!(e.summary().contains("version is unknown"), "{e}");
        // arm64 virt's firmware tree is there whatever the version.
        check_requirements(&s, Board::Arm64Virt, at(Some((6, 1)))).unwrap();
        cfg.remove("CONFIG_OF_FLATTREE");
        cfg.remove("CONFIG_PCI_DYNAMIC_OF_NODES");
        let at = |version| KernelFacts {
            config: &cfg,
            version,
        };
        let e = check_requirements(&s, Board::X86_64Q35, at(Some((7, 3)))).unwrap_err();
        assert_eq!(
            e.summary(),
            "of_overlay needs CONFIG_OF_FLATTREE=y; pci_of_nodes needs CONFIG_PCI_DYNAMIC_OF_NODES=y"
        );
        let e = check_requirements(&s, Board::Arm64Virt, at(Some((7, 3)))).unwrap_err();
        assert_eq!(
            e.summary(),
            "pci_of_nodes needs CONFIG_PCI_DYNAMIC_OF_NODES=y"
        );
    }

    /// What the board alone decides is known before any kernel: the same unmet entries as the
    /// full check names for the board, none of the kernel's.
    #[test]
    fn the_board_is_checked_without_a_kernel() {
        let s = good(
            "requires: [memory_hotplug, of_unittest, of_overlay, netdevsim]\nsteps:\n  \
             - memory_add: {id: d, size: 128M}\n",
        );
        // The OF unit tests need the board's own tree; an overlay can land on one the kernel
        // makes, so only a kernel can refuse it.
        let e = check_board(&s, Board::X86_64Q35).unwrap_err();
        assert_eq!(e.unmet.len(), 1, "{e}");
        assert_eq!(e.unmet[0].what, "of_unittest");
        assert!(e.unmet[0].missing[0].contains("device tree"), "{e}");
        let e = check_board(&s, Board::Arm64Virt).unwrap_err();
        assert_eq!(e.unmet.len(), 1, "{e}");
        assert_eq!(e.unmet[0].what, "memory_hotplug");
        assert_eq!(e.unmet[0].missing.len(), 1, "{e}");

        let s = good("boards: [arm64-virt]\nsteps:\n  - sleep: 1s\n");
        let e = check_board(&s, Board::X86_64Q35).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario `t` cannot run on x86_64-q35:\n  t.yaml:1:1: boards: boards needs one of \
             arm64-virt (not x86_64-q35)"
        );
        check_board(&s, Board::Arm64Virt).unwrap();
        let s = good("requires: [netdevsim]\nsteps:\n  - sleep: 1s\n");
        check_board(&s, Board::X86_64Q35).unwrap();
    }

    /// An arm64 kernel `release` in `dir` whose `.config` is `config`; and the config's path.
    fn kernel_in(
        dir: &std::path::Path,
        release: &str,
        config: &str,
    ) -> (crate::provision::Kernel, std::path::PathBuf) {
        let path = dir.join("config");
        std::fs::write(&path, config).unwrap();
        let kernel = crate::provision::Kernel {
            name: "k".into(),
            arch: crate::host::board::Arch::Arm64,
            release: release.into(),
            image: dir.join("Image"),
            modules_root: dir.join("mods"),
            config: path.clone(),
            vmlinux: None,
            provenance: BTreeMap::new(),
        };
        (kernel, path)
    }

    #[test]
    fn check_kernel_reads_config_and_looks_for_the_overlay_module() {
        let dir = tempfile::tempdir().unwrap();
        let (kernel, config) = kernel_in(
            dir.path(),
            "6.12.0-rig",
            "CONFIG_OF_OVERLAY=y\nCONFIG_CONFIGFS_FS=y\n",
        );
        let s = good(
            "boards: [arm64-virt]\nrequires: [of_overlay]\nsteps:\n  \
             - overlay_load: {file: simple-node.dtso}\n",
        );
        let e = check_kernel(&s, Board::Arm64Virt, &kernel).unwrap_err();
        assert_eq!(
            e.summary(),
            "of_overlay needs the rig_of_configfs module (rig-built kernels have it)"
        );
        assert_eq!(e.unmet[0].at.to_string(), "t.yaml:2:12");
        let extra = dir.path().join("mods/lib/modules/6.12.0-rig/extra");
        std::fs::create_dir_all(&extra).unwrap();
        std::fs::write(extra.join("rig_of_configfs.ko"), "").unwrap();
        check_kernel(&s, Board::Arm64Virt, &kernel).unwrap();

        std::fs::remove_file(&config).unwrap();
        let e = check_kernel(&s, Board::Arm64Virt, &kernel).unwrap_err();
        assert!(e.summary().contains("a readable .config"), "{e}");
    }

    /// A `trace:` block needs ftrace, and what it names: trace events, the function tracer.
    #[test]
    fn check_kernel_wants_ftrace_for_a_trace_block() {
        let dir = tempfile::tempdir().unwrap();
        let (kernel, _) = kernel_in(
            dir.path(),
            "7.3.4-rig",
            "CONFIG_FTRACE=y\nCONFIG_EVENT_TRACING=y\n",
        );
        let events = good("trace: {events: ['devlink:*']}\nsteps:\n  - sleep: 1s\n");
        check_kernel(&events, Board::Arm64Virt, &kernel).unwrap();
        let functions = good("trace:\n  functions: [devlink_reload]\nsteps:\n  - sleep: 1s\n");
        let e = check_kernel(&functions, Board::Arm64Virt, &kernel).unwrap_err();
        assert_eq!(
            e.summary(),
            "trace needs CONFIG_FUNCTION_TRACER=y, CONFIG_DYNAMIC_FTRACE=y"
        );
        assert_eq!(e.unmet[0].at.to_string(), "t.yaml:2:3");
    }
}
