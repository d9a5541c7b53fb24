use super::*;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/matrix")
}

fn fixture() -> (Matrix, Vec<Arc<Scenario>>) {
    load(
        &fixtures().join("matrix.yaml"),
        &crate::repo_root().join("overlays"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn fake_kernel(name: &str, arch: Arch, config: &str) -> Kernel {
    Kernel {
        name: name.into(),
        arch,
        release: "6.x".into(),
        image: PathBuf::from("/nonexistent/image"),
        modules_root: PathBuf::from("/nonexistent/modules"),
        config: fixtures().join(config),
        vmlinux: None,
        provenance: Default::default(),
    }
}

fn scenario_names(dir: &Path) -> Vec<Scenario> {
    crate::scenario::load_dir(dir, &crate::repo_root().join("overlays")).unwrap()
}

#[test]
fn a_fixture_matrix_lists_exactly_its_cells_with_skip_reasons() {
    let (m, scenarios) = fixture();
    let set = m.set("small").unwrap();
    let mut asked = Vec::new();
    let planned = plan(set.cells(&scenarios), &mut |k, arch| {
        asked.push(format!("{k}/{arch:?}"));
        Ok(match k {
            "debian-6.1" => fake_kernel(k, arch, "kernel-debian.config"),
            _ => fake_kernel(k, arch, "kernel-rig.config"),
        })
    });
    // Each kernel is resolved once per arch, only where a cell needs its features.
    assert_eq!(
        asked,
        ["debian-6.1/X86_64", "debian-6.1/Arm64", "rig-7.3/Arm64"]
    );
    let listed = render_list(&planned);
    assert_eq!(
        listed,
        "\
skip   x86_64-q35::debian-6.1::arm-only         boards needs one of arm64-virt (not x86_64-q35)
skip   x86_64-q35::debian-6.1::needs-netdevsim  netdevsim needs CONFIG_NETDEVSIM=y or m
run    x86_64-q35::debian-6.1::plain
run    arm64-virt::debian-6.1::arm-only
skip   arm64-virt::debian-6.1::needs-netdevsim  netdevsim needs CONFIG_NETDEVSIM=y or m
run    arm64-virt::debian-6.1::plain
run    arm64-virt::rig-7.3::arm-only (×3)
run    arm64-virt::rig-7.3::needs-netdevsim (×3)
8 cells: 5 run, 3 skipped, 0 cannot be provisioned
"
    );
    let json = planned_json("small", &planned);
    assert_eq!(json["cells"].as_array().unwrap().len(), 8);
    assert_eq!(json["cells"][0]["plan"], "skip");
    assert_eq!(json["cells"][6]["repeat"], 3);

    let tiny = m.set("tiny").unwrap().cells(&scenarios);
    let names: Vec<String> = tiny.iter().map(Cell::name).collect();
    assert_eq!(names, ["x86_64-q35::debian-6.1::plain"]);
    assert_eq!(
        m.set("nope").unwrap_err().to_string(),
        "unknown matrix set `nope` (known: small, tiny)"
    );
}

#[test]
fn a_kernel_that_cannot_be_provisioned_makes_its_cells_errors() {
    let (m, scenarios) = fixture();
    let planned = plan(m.set("tiny").unwrap().cells(&scenarios), &mut |_, _| {
        Err("no network".into())
    });
    assert_eq!(
        planned[0].plan,
        Plan::Error("cannot provision debian-6.1: no network".into())
    );
    assert!(render_list(&planned).starts_with("error  x86_64-q35::debian-6.1::plain  cannot"));
}

#[test]
fn the_shipped_matrix_loads_and_smoke_is_debian_only() {
    let (m, scenarios) = load_default().unwrap_or_else(|e| panic!("{e}"));
    for set in ["smoke", "full", "nightly", "controls"] {
        assert!(!m.set(set).unwrap().cells(&scenarios).is_empty(), "{set}");
    }
    let smoke = m.set(DEFAULT_SET).unwrap();
    assert!(smoke.kernels().iter().all(|(k, _)| k == "debian-6.1"));
    // The positive controls fail by design: they are in no set that must pass.
    for set in ["smoke", "full", "nightly"] {
        let cells = m.set(set).unwrap().cells(&scenarios);
        assert!(
            !cells
                .iter()
                .any(|c| c.scenario.name == "fake-warning" || c.kernel.contains("known-bad")),
            "{set} holds a positive control"
        );
    }
}

fn bad(text: &str) -> String {
    let scenarios = scenario_names(&fixtures());
    match parse_str(text, "m.yaml", &scenarios) {
        Ok(m) => panic!("validated: {m:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn matrix_errors_name_file_line_column_and_field() {
    assert_eq!(
        bad("sets:\n  s:\n    cells:\n      - kernels: [debian-6.1]\n        scenarios: [plain]\n        boards: [x86_64-q35, nope]\n"),
        "m.yaml:6:30: sets.s.cells[0].boards[1]: unknown board `nope` (known: x86_64-q35, arm64-virt)"
    );
    assert_eq!(
        bad("sets:\n  s:\n    cells:\n      - kernels: [debian-6.2]\n        scenarios: [plain]\n"),
        "m.yaml:4:19: sets.s.cells[0].kernels[0]: unknown kernel `debian-6.2`: known kernels are \
         debian-6.1, rig-6.12[-FLAVOR] and tree:PATH[#FLAVOR] (a kernel source tree rig builds)"
    );
    assert_eq!(
        bad("sets:\n  s:\n    cells:\n      - kernels: [debian-6.1]\n        scenarios: [pci-*]\n"),
        "m.yaml:5:21: sets.s.cells[0].scenarios[0]: `pci-*` matches no scenario (known: \
         arm-only, needs-netdevsim, plain)"
    );
    assert_eq!(
        bad("sets:\n  s:\n    cells:\n      - kernels: [debian-6.1]\n        scenarios: [plain]\n        repeats: 2\n"),
        "m.yaml:6:9: sets.s.cells[0].repeats: unknown field `repeats` (known: kernels, boards, \
         scenarios, exclude, repeat)"
    );
    assert_eq!(
        bad("sets:\n  s:\n    cells:\n      - kernels: [debian-6.1]\n        scenarios: [plain]\n      - kernels: [debian-6.1]\n        scenarios: ['*']\n"),
        "m.yaml:6:9: sets.s.cells[1]: cell x86_64-q35::debian-6.1::plain is already in this set"
    );
    assert_eq!(
        bad("sets:\n  s:\n    cells:\n      - kernels: [debian-6.1]\n        scenarios: [plain]\n        repeat: 0\n"),
        "m.yaml:6:17: sets.s.cells[0].repeat: must be at least 1"
    );
    assert_eq!(
        bad("sets:\n  s:\n    cells:\n      - kernels: [debian-6.1]\n        scenarios: [plain]\n        exclude: [plain]\n"),
        "m.yaml:6:18: sets.s.cells[0].exclude: excludes every scenario selected"
    );
    assert_eq!(bad("sets: {}\n"), "m.yaml:1:7: sets: defines no set");
    assert!(
        bad("sets:\n  s: [\n").starts_with("m.yaml:"),
        "{}",
        bad("sets:\n  s: [\n")
    );
}

#[test]
fn an_infra_error_is_retried_once_inside_the_cell_and_says_so() {
    let (_, scenarios) = fixture();
    let plain = scenarios
        .iter()
        .find(|s| s.name == "plain")
        .unwrap()
        .clone();
    let cell = Cell {
        board: Board::X86_64Q35,
        // Provisioning fails at once: rig cannot run it (exit 125), twice.
        kernel: "tree:/nonexistent/linux".into(),
        scenario: plain,
        repeat: 1,
    };
    let tmp = tempfile::tempdir().unwrap();
    let opts = CellOptions {
        accel: crate::machine::spec::AccelChoice::Tcg,
        auto_setup: false,
        artifacts: tmp.path().join("runs"),
        vmcore: crate::run::Vmcore::Never,
    };
    let cache = crate::host::cache::Cache::at(tmp.path().join("cache"));
    let o = run_cell(&cell, &opts, &cache, &crate::host::events::Events::none());
    assert_eq!(o.verdict, crate::run::Verdict::Infra);
    assert_eq!(o.attempts, 2);
    assert_eq!(o.notes.len(), 1);
    assert!(
        o.notes[0].starts_with("infra error (exit 125) on attempt 1 (")
            && o.notes[0].ends_with("; retrying once inside the cell"),
        "{}",
        o.notes[0]
    );
    let text = o.render();
    assert!(text.starts_with(&o.notes[0]), "{text}");
    assert!(text.contains("(after 2 attempts)"), "{text}");
    // No run folder to reproduce from: the `rig run` line of the cell, last.
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("reproduce: rig run ")
            && last.ends_with("--board x86_64-q35 --kernel tree:/nonexistent/linux --repeat 1"),
        "{last}"
    );
    // The first attempt is marked so reports count only the retry.
    let first: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(crate::report::SUPERSEDED_FILE).is_file())
        .collect();
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(
        !first[0].to_string_lossy().ends_with("-retry-0"),
        "{first:?}"
    );
}
