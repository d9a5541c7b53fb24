//! What every stage stands on: child-process ownership, the content-addressed cache, the run's
//! artifacts folder, typed events, terminal-safe text, host tools (doctor/setup), exit codes, and the board and
//! architecture names every stage speaks of, per-user private directories. Uses std and crates only.

pub mod apt;
pub mod artifacts;
pub mod board;
mod build_bar;
pub mod cache;
pub mod cleanup;
pub mod doctor;
pub mod events;
pub mod exit;
pub mod path;
pub mod process;
pub mod shell;
pub mod terminal;
pub mod text;
pub mod userdir;
mod version;
