//! Whether a scenario can run on a board with a kernel: the engine asks this before anything
//! boots. A scenario names features (`requires:`); this module knows what each needs of the
//! kernel's `.config`, of its modules and of the board.

use crate::host::board::Board;
use crate::provision::Kernel;
use crate::scenario::{Feature, Location, Scenario};
use std::collections::BTreeMap;
use std::fmt;

/// What `board` and a kernel with `config` lack for `feature`; empty when it is there.
pub fn missing(feature: Feature, board: Board, config: &BTreeMap<String, String>) -> Vec<String> {
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
        }
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
        Feature::NetdevsimModule | Feature::OutboundNetwork => {}
    }
    if feature == Feature::NetdevsimModule
        && config.get("CONFIG_NETDEVSIM").map(String::as_str) != Some("m")
    {
        out.push("CONFIG_NETDEVSIM=m (a module rig can unload)".into());
    }
    out.extend(board_lacks(feature, board));
    out
}

/// What `board` itself lacks for `feature`, whatever the kernel.
fn board_lacks(feature: Feature, board: Board) -> Option<String> {
    match feature {
        Feature::OfOverlay if board != Board::Arm64Virt => Some(format!(
            "a board booted with a device tree ({board} has none, so overlay nodes never \
             become platform devices; use arm64-virt)"
        )),
        Feature::MemoryHotplug if !board.supports_dimm_hotplug() => Some(format!(
            "a board that signals DIMM hot-plug to the guest ({board} does not; use x86_64-q35)"
        )),
        Feature::OfUnittest if board != Board::Arm64Virt => Some(format!(
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

/// Whether `scenario` can run on `board` with a kernel whose `.config` is `kernel_config`
/// (see [`crate::provision::parse_kconfig`]).
pub fn check_requirements(
    scenario: &Scenario,
    board: Board,
    kernel_config: &BTreeMap<String, String>,
) -> Result<(), Unsupported> {
    let mut unmet = boards_unmet(scenario, board);
    for r in &scenario.requires {
        let missing = missing(r.feature, board, kernel_config);
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
    let mut unmet = match check_requirements(scenario, board, &config) {
        Ok(()) => Vec::new(),
        Err(u) => u.unmet,
    };
    let module = crate::provision::kbuild::OF_CONFIGFS_MODULE;
    let ko = kernel.extra_module(module);
    if let Some(r) = scenario
        .requires
        .iter()
        .find(|r| r.feature == Feature::OfOverlay)
    {
        if !ko.is_file() {
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
        let e = check_requirements(&s, Board::X86_64Q35, &cfg).unwrap_err();
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
        check_requirements(&s, Board::X86_64Q35, &cfg).unwrap();
        check_requirements(&s, Board::Arm64Virt, &cfg).unwrap();
        cfg.insert("CONFIG_NET_DEVLINK".into(), "m".into());
        let e = check_requirements(&s, Board::X86_64Q35, &cfg).unwrap_err();
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
        // x86 has no device tree to overlay.
        let e = check_requirements(&s, Board::X86_64Q35, &cfg).unwrap_err();
        assert_eq!(e.unmet.len(), 1, "{e}");
        assert_eq!(e.unmet[0].what, "of_overlay");
        assert!(e.unmet[0].missing[0].contains("device tree"), "{e}");
        // arm64 virt does not tell the guest about DIMMs.
        let e = check_requirements(&s, Board::Arm64Virt, &cfg).unwrap_err();
        assert_eq!(e.unmet.len(), 1, "{e}");
        assert_eq!(e.unmet[0].what, "memory_hotplug");
        assert_eq!((e.unmet[0].at.line, e.unmet[0].at.column), (1, 12));

        let s = good("boards: [arm64-virt]\nsteps:\n  - sleep: 1s\n");
        let e = check_requirements(&s, Board::X86_64Q35, &cfg).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario `t` cannot run on x86_64-q35:\n  t.yaml:1:1: boards: boards needs one of \
             arm64-virt (not x86_64-q35)"
        );
        check_requirements(&s, Board::Arm64Virt, &BTreeMap::new()).unwrap();
    }

    /// What the board alone decides is known before any kernel: the same unmet entries as the
    /// full check names for the board, none of the kernel's.
    #[test]
    fn the_board_is_checked_without_a_kernel() {
        let s = good(
            "requires: [memory_hotplug, of_overlay, netdevsim]\nsteps:\n  \
             - memory_add: {id: d, size: 128M}\n",
        );
        let e = check_board(&s, Board::X86_64Q35).unwrap_err();
        assert_eq!(e.unmet.len(), 1, "{e}");
        assert_eq!(e.unmet[0].what, "of_overlay");
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

    #[test]
    fn check_kernel_reads_config_and_looks_for_the_overlay_module() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "CONFIG_OF_OVERLAY=y\nCONFIG_CONFIGFS_FS=y\n").unwrap();
        let kernel = crate::provision::Kernel {
            name: "rig-6.12".into(),
            arch: crate::host::board::Arch::Arm64,
            release: "6.12.0-rig".into(),
            image: dir.path().join("Image"),
            modules_root: dir.path().join("mods"),
            config: config.clone(),
            vmlinux: None,
            provenance: BTreeMap::new(),
        };
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
}
