//! One emulated machine: board → QEMU argv and kernel cmdline (pure functions), the supervised
//! QEMU process with its two console byte streams (kernel console, command shell) and QMP
//! connection, the choice of accelerator, and the machine's spec ([`spec::MachineSpec`]).

pub mod accel;
mod boot;
pub mod channel;
pub mod console;
pub mod dtb;
pub mod exit;
pub mod qemu;
pub mod qmp;
pub mod snapshot;
pub mod spec;
pub mod state;
pub mod stream;
pub mod timeouts;
pub mod vm;
pub mod vm_config;
pub mod vmcore;
