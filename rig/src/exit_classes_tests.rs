//! Each error kind's class, over constructed errors: the exit codes the CLI had when it
//! downcast a list of types, and the nested errors' classes seen through their wrappers.

use super::*;
use crate::bisect::{git::GitError, BisectError};
use crate::guest::transport::TransportError;
use crate::guest::GuestError;
use crate::host::board::{Board, UnknownName};
use crate::machine::spec::SpecError;
use crate::machine::state::{BootStall, MachineState};
use crate::machine::vm::VmError;
use crate::matrix::{MatrixError, MatrixRunError};
use crate::prepare::PrepareError;
use crate::provision::kbuild::KbuildError;
use crate::provision::{image::ImageError, ProvisionError};
use crate::report::ReportError;
use crate::reproduce::ReproduceError;
use crate::run::RunError;
use crate::scenario::ScenarioError;
use std::path::PathBuf;
use std::time::Duration;

fn io() -> std::io::Error {
    std::io::Error::other("disk on fire")
}

fn unknown_board() -> UnknownName {
    UnknownName {
        what: "board",
        given: "riscv".into(),
        known: "x86_64-q35, arm64-virt".into(),
    }
}

fn invalid_scenario() -> ScenarioError {
    ScenarioError::Invalid {
        file: "s.yaml".into(),
        line: 2,
        column: 3,
        path: "steps[0]".into(),
        message: "bogus".into(),
    }
}

fn never_ready(stall: BootStall, state: MachineState) -> VmError {
    VmError::NeverReady {
        stall,
        waited: Duration::from_secs(60),
        state,
        console: "[    1.0] hello".into(),
        artifacts: PathBuf::from("/runs/x"),
    }
}

fn unknown_kernel() -> ProvisionError {
    ProvisionError::UnknownKernel {
        name: "nope".into(),
    }
}

fn guest_image(source: ProvisionError) -> GuestError {
    GuestError::Image {
        kernel: "nope".into(),
        board: Board::X86_64Q35,
        source: Box::new(source),
    }
}

fn prepare_image(source: ProvisionError) -> PrepareError {
    PrepareError::Image {
        kernel: "nope".into(),
        board: Board::X86_64Q35,
        source: Box::new(source),
    }
}

fn kbuild_unknown_flavor() -> KbuildError {
    KbuildError::UnknownFlavor {
        flavor: "nope".into(),
        known: "kasan".into(),
    }
}

fn missing_source() -> KbuildError {
    KbuildError::MissingSource {
        path: "/src".into(),
        hint: "clone it",
    }
}

fn image_io() -> ImageError {
    ImageError::Io {
        what: "writing".into(),
        path: "/cache/x".into(),
        source: io(),
    }
}

#[test]
fn every_error_kind_has_its_class() {
    let hang = || {
        never_ready(
            BootStall::Silent(Duration::from_secs(30)),
            MachineState::Running,
        )
    };
    let cases: Vec<(&str, Box<dyn Classify>, ExitClass)> = vec![
        // Bad input on its own.
        ("UnknownName", Box::new(unknown_board()), BadInput),
        (
            "BadTimeoutScale",
            Box::new(crate::machine::timeouts::BadTimeoutScale { value: "x".into() }),
            BadInput,
        ),
        (
            "CmdlineError",
            Box::new(crate::machine::qemu::CmdlineError::TooLong { len: 9, max: 1 }),
            BadInput,
        ),
        (
            "ScenarioError::Invalid",
            Box::new(invalid_scenario()),
            BadInput,
        ),
        (
            "ScenarioError::Read",
            Box::new(ScenarioError::Read {
                path: "/s.yaml".into(),
                source: io(),
            }),
            BadInput,
        ),
        (
            "Unsupported",
            Box::new(crate::run::requirements::Unsupported {
                scenario: "s".into(),
                board: Board::Arm64Virt,
                unmet: vec![],
            }),
            BadInput,
        ),
        (
            "UnknownFault",
            Box::new(crate::soak::fault::UnknownFault { name: "x".into() }),
            BadInput,
        ),
        (
            "ReportError::Empty",
            Box::new(ReportError::Empty { dirs: vec![] }),
            BadInput,
        ),
        (
            "ProvisionError::UnknownKernel",
            Box::new(unknown_kernel()),
            BadInput,
        ),
        (
            "KbuildError::UnknownKernel",
            Box::new(KbuildError::UnknownKernel {
                name: "rig-6.1".into(),
                known: "kasan".into(),
            }),
            BadInput,
        ),
        (
            "KbuildError::UnknownFlavor",
            Box::new(kbuild_unknown_flavor()),
            BadInput,
        ),
        (
            "MatrixError::UnknownSet",
            Box::new(MatrixError::UnknownSet {
                given: "x".into(),
                known: "pr".into(),
            }),
            BadInput,
        ),
        (
            "ReproduceError::NotARun",
            Box::new(ReproduceError::NotARun { dir: "/d".into() }),
            BadInput,
        ),
        (
            "ReproduceError::TreeUnusable(MissingSource)",
            Box::new(ReproduceError::TreeUnusable {
                tree: "/src".into(),
                source: Box::new(missing_source()),
            }),
            BadInput,
        ),
        (
            "GitError::UnknownRevision",
            Box::new(GitError::UnknownRevision {
                rev: "v9".into(),
                repo: "/src".into(),
            }),
            BadInput,
        ),
        (
            "BisectError::GoodReproduces",
            Box::new(BisectError::GoodReproduces {
                commit: "abc".into(),
                title: "t".into(),
                hits: 1,
                runs: 2,
            }),
            BadInput,
        ),
        // Bad input seen through wrappers.
        (
            "GuestError::Image(UnknownKernel)",
            Box::new(guest_image(unknown_kernel())),
            BadInput,
        ),
        (
            "ProvisionError::Build(UnknownFlavor)",
            Box::new(ProvisionError::Build(kbuild_unknown_flavor())),
            BadInput,
        ),
        (
            "PrepareError::Image(ProjectNeedsBuild)",
            Box::new(prepare_image(ProvisionError::ProjectNeedsBuild {
                kernel: "debian-6.1".into(),
                project: "/p/rig.yaml".into(),
            })),
            BadInput,
        ),
        (
            "ProvisionError::Project(Invalid)",
            Box::new(ProvisionError::Project(
                crate::project::ProjectError::Invalid {
                    file: "rig.yaml".into(),
                    line: 2,
                    column: 15,
                    message: "kernel.fragments[0]: config fragment x is not a file".into(),
                },
            )),
            BadInput,
        ),
        (
            "PrepareError::Image(UnknownKernel)",
            Box::new(prepare_image(unknown_kernel())),
            BadInput,
        ),
        (
            "RunError::Prepare(Image(UnknownKernel))",
            Box::new(RunError::Prepare(prepare_image(unknown_kernel()))),
            BadInput,
        ),
        ("SpecError", Box::new(SpecError::RestoreNeedsHvc), BadInput),
        (
            "RunError::Machine",
            Box::new(RunError::Machine(SpecError::RestoreNeedsHvc)),
            BadInput,
        ),
        (
            "BenchError::Machine",
            Box::new(crate::bench::BenchError::Machine(
                SpecError::RestoreNeedsHvc,
            )),
            BadInput,
        ),
        (
            "RunError::Unsupported",
            Box::new(RunError::Unsupported(
                crate::run::requirements::Unsupported {
                    scenario: "s".into(),
                    board: Board::Arm64Virt,
                    unmet: vec![],
                },
            )),
            BadInput,
        ),
        (
            "MatrixError::Invalid",
            Box::new(MatrixError::Invalid(invalid_scenario())),
            BadInput,
        ),
        (
            "ReproduceError::Scenario",
            Box::new(ReproduceError::Scenario(invalid_scenario())),
            BadInput,
        ),
        (
            "ReproduceError::Provision(UnknownKernel)",
            Box::new(ReproduceError::Provision {
                kernel: "nope".into(),
                source: Box::new(unknown_kernel()),
            }),
            BadInput,
        ),
        (
            "ReproduceError::Run(Prepare(Image(UnknownKernel)))",
            Box::new(ReproduceError::Run(RunError::Prepare(prepare_image(
                unknown_kernel(),
            )))),
            BadInput,
        ),
        (
            "BenchError::Prepare(Image(UnknownKernel))",
            Box::new(crate::bench::BenchError::Prepare(prepare_image(
                unknown_kernel(),
            ))),
            BadInput,
        ),
        (
            "VmError::Cmdline",
            Box::new(VmError::Cmdline(
                crate::machine::qemu::CmdlineError::TooLong { len: 9, max: 1 },
            )),
            BadInput,
        ),
        (
            "BisectError::Git(NotARepo)",
            Box::new(BisectError::Git(GitError::NotARepo {
                path: "/x".into(),
                detail: "no .git".into(),
            })),
            BadInput,
        ),
        // The kernel's failure: a boot that printed and hung while QEMU ran it.
        ("VmError::NeverReady(hang)", Box::new(hang()), Kernel),
        (
            "GuestError::Vm(hang)",
            Box::new(GuestError::Vm(Box::new(hang()))),
            Kernel,
        ),
        (
            "RunError::Snapshot(Vm(hang))",
            Box::new(RunError::Snapshot(Box::new(GuestError::Vm(Box::new(
                hang(),
            ))))),
            Kernel,
        ),
        // rig's own failures.
        (
            "VmError::NeverReady(no output)",
            Box::new(never_ready(BootStall::NoOutput, MachineState::Running)),
            Infra,
        ),
        (
            "VmError::NeverReady(silent, QEMU stopped)",
            Box::new(never_ready(
                BootStall::Silent(Duration::from_secs(30)),
                MachineState::ProcessStopped,
            )),
            Infra,
        ),
        (
            "VmError::Snapshot",
            Box::new(VmError::Snapshot("no".into())),
            Infra,
        ),
        (
            "ProcessError",
            Box::new(crate::host::process::ProcessError::Spawn {
                program: "qemu".into(),
                source: io(),
            }),
            Infra,
        ),
        (
            "ArtifactsError",
            Box::new(crate::host::artifacts::ArtifactsError {
                path: "/runs".into(),
                source: io(),
            }),
            Infra,
        ),
        (
            "CacheError",
            Box::new(crate::host::cache::CacheError::Lock {
                path: "/c".into(),
                source: io(),
            }),
            Infra,
        ),
        (
            "SetupError",
            Box::new(crate::host::apt::SetupError::NotRoot(vec!["qemu"])),
            Infra,
        ),
        (
            "TransportError",
            Box::new(TransportError::Other {
                transport: "hvc",
                message: "x".into(),
            }),
            Infra,
        ),
        ("ImageError", Box::new(image_io()), Infra),
        (
            "KbuildError::MissingSource",
            Box::new(missing_source()),
            Infra,
        ),
        (
            "GuestError::Image(Image(Io))",
            Box::new(guest_image(ProvisionError::Image(image_io()))),
            Infra,
        ),
        ("GuestError::NoSsh", Box::new(GuestError::NoSsh), Infra),
        (
            "PrepareError::MissingTools",
            Box::new(PrepareError::MissingTools {
                missing: "qemu-system-arm".into(),
                source: crate::host::apt::SetupError::NotRoot(vec!["qemu-system-arm"]),
            }),
            Infra,
        ),
        (
            "PrepareError::Image(Image(Io))",
            Box::new(prepare_image(ProvisionError::Image(image_io()))),
            Infra,
        ),
        ("RunError::NoRuns", Box::new(RunError::NoRuns), Infra),
        (
            "RunError::SnapshotNeedsHvc",
            Box::new(RunError::SnapshotNeedsHvc),
            BadInput,
        ),
        (
            "MatrixError::Read",
            Box::new(MatrixError::Read {
                path: "/m.yaml".into(),
                source: io(),
            }),
            Infra,
        ),
        (
            "MatrixRunError::Report",
            Box::new(MatrixRunError::Report(ReportError::Empty { dirs: vec![] })),
            Infra,
        ),
        (
            "ReproduceError::Read",
            Box::new(ReproduceError::Read {
                path: "/r".into(),
                source: io(),
            }),
            Infra,
        ),
        (
            "ReproduceError::TreeUnusable(Io)",
            Box::new(ReproduceError::TreeUnusable {
                tree: "/src".into(),
                source: Box::new(KbuildError::Io {
                    what: "reading".into(),
                    path: "/src".into(),
                    source: io(),
                }),
            }),
            Infra,
        ),
        (
            "ReproduceError::Provision(MissingSource)",
            Box::new(ReproduceError::Provision {
                kernel: "tree:/src".into(),
                source: Box::new(ProvisionError::Build(missing_source())),
            }),
            Infra,
        ),
        (
            "SoakError::NoRuns",
            Box::new(crate::soak::SoakError::NoRuns),
            Infra,
        ),
        (
            "BisectError::Interrupted",
            Box::new(BisectError::Interrupted { signal: 2 }),
            Infra,
        ),
        (
            "GitError::Failed",
            Box::new(GitError::Failed {
                args: "log".into(),
                dir: "/src".into(),
                stderr: "x".into(),
            }),
            Infra,
        ),
    ];
    for (name, e, want) in &cases {
        assert_eq!(e.exit_class(), *want, "{name}");
    }
}

#[test]
fn classes_are_the_documented_exit_codes() {
    assert_eq!(BadInput.code(), 2);
    assert_eq!(Kernel.code(), 1);
    assert_eq!(Infra.code(), 125);
}
