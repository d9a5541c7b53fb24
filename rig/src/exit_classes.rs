//! Every public library error's [`ExitClass`]: bad input (exit 2), a kernel failure (exit 1) or
//! rig's own failure (exit 125). An error that wraps another takes the inner error's class.
//! The CLI accepts only errors that implement [`Classify`], so a new error type that reaches it
//! without saying its class does not compile. Mixed enums match every variant: a new variant
//! is a decision too.
//!
//! The impls live here, not beside each type, so one table shows every class.

use crate::host::exit::{Classify, ExitClass};
use ExitClass::{BadInput, Infra, Kernel};

/// Errors that are rig's own failure whatever their variant (I/O, child processes, QEMU, the
/// guest's transports, rig's own files).
macro_rules! infra {
    ($($t:ty),* $(,)?) => {
        $(impl Classify for $t {
            fn exit_class(&self) -> ExitClass {
                Infra
            }
        })*
    };
}

/// Errors that are bad input whatever their variant (names, scenario files, flags, environment).
macro_rules! bad_input {
    ($($t:ty),* $(,)?) => {
        $(impl Classify for $t {
            fn exit_class(&self) -> ExitClass {
                BadInput
            }
        })*
    };
}

infra!(
    crate::host::process::ProcessError,
    crate::host::process::CommandError,
    crate::host::artifacts::ArtifactsError,
    crate::host::cache::CacheError,
    crate::assets::AssetsError,
    crate::host::apt::SetupError,
    crate::host::userdir::UserDirError,
    crate::machine::console::ConsoleError,
    crate::machine::exit::QemuExit,
    crate::machine::qmp::QmpError,
    crate::guest::ssh::SshError,
    crate::guest::hvc_shell::NulInCommand,
    crate::guest::transport::TransportError,
    crate::dmesg::SymbolizeError,
    crate::provision::overlay::OverlayError,
    crate::provision::image::ImageError,
    crate::provision::kernel::ConfigUnreadable,
);

bad_input!(
    crate::host::board::UnknownName,
    crate::machine::timeouts::BadTimeoutScale,
    crate::machine::qemu::CmdlineError,
    // Parts of a machine that cannot go together (ssh on a restored guest).
    crate::machine::spec::SpecError,
    crate::scenario::ScenarioError,
    crate::project::ProjectError,
    crate::run::requirements::Unsupported,
    crate::soak::fault::UnknownFault,
    // `rig report DIRS`: the folders and baseline the user named.
    crate::report::ReportError,
);

impl Classify for crate::machine::vm::VmError {
    fn exit_class(&self) -> ExitClass {
        use crate::machine::vm::VmError as E;
        match self {
            E::Process(e) => e.exit_class(),
            E::Cmdline(e) => e.exit_class(),
            // A kernel that printed and then hung while QEMU ran it: the kernel's failure.
            E::NeverReady { .. } if self.is_boot_hang() => Kernel,
            E::NeverReady { .. }
            | E::Artifact { .. }
            | E::QemuExited(_)
            | E::Console { .. }
            | E::Snapshot(_)
            | E::InitFailed { .. }
            | E::Qmp { .. }
            | E::SocketTimeout { .. } => Infra,
        }
    }
}

impl Classify for crate::machine::dtb::DtbError {
    fn exit_class(&self) -> ExitClass {
        use crate::machine::dtb::DtbError as E;
        match self {
            E::UserDir(e) => e.exit_class(),
            E::Malformed(_) | E::Dump { .. } | E::Io { .. } => Infra,
        }
    }
}

impl Classify for crate::guest::GuestError {
    fn exit_class(&self) -> ExitClass {
        use crate::guest::GuestError as E;
        match self {
            E::Image { source, .. } => source.exit_class(),
            E::Vm(e) => e.exit_class(),
            E::Ssh { source, .. } => source.exit_class(),
            E::Transport { source, .. } => source.exit_class(),
            E::NoSsh => Infra,
        }
    }
}

impl Classify for crate::prepare::PrepareError {
    fn exit_class(&self) -> ExitClass {
        use crate::prepare::PrepareError as E;
        match self {
            E::MissingTools { source, .. } => source.exit_class(),
            E::Image { source, .. } => source.exit_class(),
        }
    }
}

impl Classify for crate::provision::kbuild::KbuildError {
    fn exit_class(&self) -> ExitClass {
        use crate::provision::kbuild::KbuildError as E;
        match self {
            E::UnknownKernel { .. } | E::UnknownFlavor { .. } => BadInput,
            E::Patch { source, .. } => source.exit_class(),
            E::Command(e) => e.exit_class(),
            E::Cache(e) => e.exit_class(),
            E::Process(e) => e.exit_class(),
            E::MissingSource { .. }
            | E::MissingFragment { .. }
            | E::EmptyPatchSet { .. }
            | E::DroppedOptions { .. }
            | E::Make { .. }
            | E::Io { .. }
            | E::Corrupt { .. }
            | E::BadPin { .. }
            | E::PinMismatch { .. } => Infra,
        }
    }
}

impl Classify for crate::provision::ProvisionError {
    fn exit_class(&self) -> ExitClass {
        use crate::provision::ProvisionError as E;
        match self {
            E::UnknownKernel { .. } | E::ProjectNeedsBuild { .. } => BadInput,
            E::Image(e) => e.exit_class(),
            E::Build(e) => e.exit_class(),
            E::Project(e) => e.exit_class(),
        }
    }
}

impl Classify for crate::run::RunError {
    fn exit_class(&self) -> ExitClass {
        use crate::run::RunError as E;
        match self {
            E::Unsupported(e) => e.exit_class(),
            E::Prepare(e) => e.exit_class(),
            E::Artifacts(e) => e.exit_class(),
            E::Modules { source, .. } => source.exit_class(),
            E::Snapshot(e) => e.exit_class(),
            // A run's options that cannot go with its scenario: refused before anything runs.
            E::SnapshotNeedsHvc => BadInput,
            E::Machine(e) => e.exit_class(),
            E::NoRuns | E::Report { .. } => Infra,
        }
    }
}

impl Classify for crate::matrix::MatrixError {
    fn exit_class(&self) -> ExitClass {
        use crate::matrix::MatrixError as E;
        match self {
            E::Read { .. } => Infra,
            E::Invalid(e) => e.exit_class(),
            E::UnknownSet { .. } => BadInput,
        }
    }
}

impl Classify for crate::matrix::MatrixRunError {
    fn exit_class(&self) -> ExitClass {
        use crate::matrix::MatrixRunError as E;
        match self {
            E::Artifacts(e) => e.exit_class(),
            // The matrix folder's own reports, which rig has just written: unreadable is rig's.
            E::Report(_) | E::Write { .. } | E::Provision(_) => Infra,
        }
    }
}

impl Classify for crate::reproduce::ReproduceError {
    fn exit_class(&self) -> ExitClass {
        use crate::provision::kbuild::KbuildError;
        use crate::reproduce::ReproduceError as E;
        match self {
            E::Provision { source, .. } => source.exit_class(),
            E::Run(e) => e.exit_class(),
            E::Scenario(e) => e.exit_class(),
            E::TreeUnusable { source, .. } => match **source {
                // The `--tree` named holds no kernel source.
                KbuildError::MissingSource { .. } => BadInput,
                _ => source.exit_class(),
            },
            E::Read { .. } | E::BundleWrite { .. } => Infra,
            // The folder or bundle named, or the flags given, do not fit the recorded run.
            E::NotARun { .. }
            | E::BadRecord { .. }
            | E::Outside { .. }
            | E::NoScenario { .. }
            | E::ScenarioChanged { .. }
            | E::TreeNeeded { .. }
            | E::TreeNotNeeded { .. }
            | E::TreeMismatch { .. }
            | E::KernelChanged { .. }
            | E::Bundle { .. } => BadInput,
        }
    }
}

impl Classify for crate::bench::BenchError {
    fn exit_class(&self) -> ExitClass {
        use crate::bench::BenchError as E;
        match self {
            E::Prepare(e) => e.exit_class(),
            E::Machine(e) => e.exit_class(),
            E::Guest(e) => e.exit_class(),
            E::Run(e) => e.exit_class(),
            E::Bare { .. } | E::Round { .. } | E::NoRuns => Infra,
        }
    }
}

impl Classify for crate::soak::SoakError {
    fn exit_class(&self) -> ExitClass {
        use crate::soak::SoakError as E;
        match self {
            E::Spawn(e) => e.exit_class(),
            E::Io { .. } | E::Mount { .. } | E::Plan { .. } | E::Prepare { .. } | E::NoRuns => {
                Infra
            }
        }
    }
}

impl Classify for crate::bisect::git::GitError {
    fn exit_class(&self) -> ExitClass {
        use crate::bisect::git::GitError as E;
        match self {
            E::NotARepo { .. } | E::UnknownRevision { .. } => BadInput,
            E::Failed { .. } | E::Spawn(_) => Infra,
        }
    }
}

impl Classify for crate::bisect::BisectError {
    fn exit_class(&self) -> ExitClass {
        use crate::bisect::BisectError as E;
        match self {
            E::Git(e) => e.exit_class(),
            E::Cache(e) => e.exit_class(),
            // The endpoints given do not behave as `good` and `bad`.
            E::BadDoesNotReproduce { .. }
            | E::GoodReproduces { .. }
            | E::EndpointUntestable { .. } => BadInput,
            E::Infra(_) | E::Interrupted { .. } | E::Log { .. } => Infra,
        }
    }
}

#[cfg(test)]
#[path = "exit_classes_tests.rs"]
mod tests;
