//! One emulated machine: board → QEMU argv and kernel cmdline (pure functions), the supervised
//! QEMU process with its serial console byte stream and QMP connection, and the choice of
//! accelerator.

pub mod accel;
pub mod console;
pub mod qemu;
pub mod qmp;
pub mod timeouts;
pub mod vm;
