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
