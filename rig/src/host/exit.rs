//! Documented exit codes: they separate "the kernel failed" from "the rig could not run it".
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | pass: the scenario ran and the kernel showed no unexpected report |
//! | 1    | kernel failure: the scenario ran and found reports (or an expected one was missing) |
//! | 2    | bad input: a broken scenario file, an unknown board or kernel name, bad flags |
//! | 125  | infra error: rig could not run it (QEMU died, image build failed, guest unreachable) |
//!
//! `rig boot -- CMD` passes the guest command's own exit status through, and uses 125 for
//! rig failures. 125 is also what `git bisect run` treats as "skip this commit".

pub const PASS: i32 = 0;
pub const KERNEL_FAILURE: i32 = 1;
pub const BAD_INPUT: i32 = 2;
pub const INFRA: i32 = 125;

/// What kind of failure an error is: which exit code it ends `rig` with. Every library error
/// says its own class ([`Classify`]); the CLI turns the class into the code and never looks
/// at error types itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// A broken scenario or matrix file, an unknown name, bad flags or environment (exit 2).
    BadInput,
    /// The kernel failed (exit 1): a boot that printed and then hung.
    Kernel,
    /// rig could not do it (exit 125).
    Infra,
}

impl ExitClass {
    pub fn code(self) -> i32 {
        match self {
            ExitClass::BadInput => BAD_INPUT,
            ExitClass::Kernel => KERNEL_FAILURE,
            ExitClass::Infra => INFRA,
        }
    }
}

/// An error that knows its [`ExitClass`]. An error wrapping another one takes the inner
/// error's class rather than guessing; the impls are in `crate::exit_classes`.
pub trait Classify {
    fn exit_class(&self) -> ExitClass;
}

impl<T: Classify + ?Sized> Classify for Box<T> {
    fn exit_class(&self) -> ExitClass {
        (**self).exit_class()
    }
}
