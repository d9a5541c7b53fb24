//! What rig must undo when a signal ends it. Destructors clean up on every other way out
//! (success, error, panic unwinding); SIGINT/SIGTERM/SIGHUP end rig from the signal thread
//! ([`super::process::install_signal_handlers`]) with `exit`, which runs none of them. So
//! whatever would be left behind registers here while it exists: a temporary folder (a cache
//! entry being built, a VM's socket folder), a file that is only scratch (`--snapshot`'s
//! `state.bin`), a terminal in raw mode. The signal thread runs every registered action after it
//! has killed rig's children and before it exits ([`run_all`]).
//!
//! One lock orders the owner and the handler: the owner's last act on its resource (publish it
//! by a rename, remove it, restore the terminal) runs under the lock and unregisters it
//! ([`Registration::settle`]); the handler runs actions under the same lock. So a resource is
//! either settled by its owner or cleaned by the handler, never both, never half of each (a cache
//! entry is never renamed into place while the handler is removing it). Once the handler has
//! run, new resources are refused ([`guarded`]) or cleaned at once ([`Registration::new`]).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// What the signal path does for one registered resource.
pub enum Action {
    /// Remove a folder and everything in it.
    RemoveDir(PathBuf),
    /// Remove a file.
    RemoveFile(PathBuf),
    /// Put the terminal on `fd` back in the mode saved before rig changed it.
    RestoreTerminal {
        fd: BorrowedFd<'static>,
        saved: rustix::termios::Termios,
    },
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::RemoveDir(p) => write!(f, "RemoveDir({})", p.display()),
            Action::RemoveFile(p) => write!(f, "RemoveFile({})", p.display()),
            Action::RestoreTerminal { fd, .. } => {
                write!(f, "RestoreTerminal({})", fd.as_raw_fd())
            }
        }
    }
}

impl Action {
    fn run(&self) {
        match self {
            Action::RemoveDir(p) => {
                let _ = std::fs::remove_dir_all(p);
            }
            Action::RemoveFile(p) => {
                let _ = std::fs::remove_file(p);
            }
            Action::RestoreTerminal { fd, saved } => {
                let now = rustix::termios::OptionalActions::Now;
                let _ = rustix::termios::tcsetattr(fd, now, saved);
            }
        }
    }
}

struct Registry {
    next: u64,
    actions: Vec<(u64, Action)>,
    /// The signal path has run: rig is exiting.
    closed: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: 1,
    actions: Vec::new(),
    closed: false,
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while holding the lock leaves a valid list: keep using it.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    fn add(&mut self, action: Action) -> Registration {
        let id = self.next;
        self.next += 1;
        self.actions.push((id, action));
        Registration { id }
    }

    /// Removes `id`; false if the handler took it already.
    fn remove(&mut self, id: u64) -> bool {
        let before = self.actions.len();
        self.actions.retain(|(i, _)| *i != id);
        self.actions.len() != before
    }
}

/// A registered action; dropping it unregisters the action without running it.
#[must_use = "the action is unregistered when this is dropped"]
pub struct Registration {
    id: u64,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Registration({})", self.id)
    }
}

impl Registration {
    /// Registers `action` for the signal path. If that has run already (rig is exiting), the
    /// action runs now instead.
    pub fn new(action: Action) -> Registration {
        let mut r = registry();
        if r.closed {
            action.run();
            return Registration { id: 0 };
        }
        r.add(action)
    }

    /// Runs `last` (the owner's own last act on the resource) so that the signal path cannot run
    /// this action meanwhile, then unregisters it. `None` if the signal path has cleaned the
    /// resource already: rig is exiting, and `last` did not run.
    pub fn settle<T>(self, last: impl FnOnce() -> T) -> Option<T> {
        let mut r = registry();
        if self.id == 0 || !r.remove(self.id) {
            return None;
        }
        let out = last();
        drop(r);
        std::mem::forget(self);
        Some(out)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        registry().remove(self.id);
    }
}

/// Creates a resource and registers its cleanup in one step, so that the signal path cannot
/// run between the two (and leave what `create` made behind). Fails without creating anything
/// once the signal path has run.
pub fn guarded<T>(
    create: impl FnOnce() -> io::Result<T>,
    action: impl FnOnce(&T) -> Action,
) -> io::Result<(T, Registration)> {
    let mut r = registry();
    if r.closed {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "rig is exiting on a signal",
        ));
    }
    let made = create()?;
    let reg = r.add(action(&made));
    Ok((made, reg))
}

/// The signal path: runs every registered action, newest first, and refuses new ones from now
/// on. Called by the signal thread after it has killed rig's children, right before it exits.
pub fn run_all() {
    let mut r = registry();
    r.closed = true;
    let actions = std::mem::take(&mut r.actions);
    for (_, a) in actions.iter().rev() {
        a.run();
    }
}

/// A temporary folder ([`tempfile::TempDir`]) that the signal path removes too: removed when
/// dropped, or moved into place by [`TempDir::rename_to`].
pub struct TempDir {
    dir: Option<tempfile::TempDir>,
    reg: Option<Registration>,
}

impl fmt::Debug for TempDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TempDir({})", self.path().display())
    }
}

impl TempDir {
    /// Creates the folder with `make` (a `tempfile::Builder` call) and registers its removal.
    pub fn new(make: impl FnOnce() -> io::Result<tempfile::TempDir>) -> io::Result<TempDir> {
        let (dir, reg) = guarded(make, |d| Action::RemoveDir(d.path().to_path_buf()))?;
        Ok(TempDir {
            dir: Some(dir),
            reg: Some(reg),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    /// Renames the folder to `dest` (publishes it): the signal path either removes the folder
    /// before or finds nothing to remove after, never removes half of it under its new name. On
    /// failure the folder is removed, as on drop.
    pub fn rename_to(mut self, dest: &Path) -> io::Result<()> {
        let (Some(dir), Some(reg)) = (self.dir.take(), self.reg.take()) else {
            return Err(io::Error::other("temporary folder already gone"));
        };
        let renamed = reg.settle(|| {
            let r = std::fs::rename(dir.path(), dest);
            if r.is_ok() {
                // Renamed away: nothing left to remove at the old name.
                let _ = dir.keep();
            } else {
                drop(dir);
            }
            r
        });
        renamed.unwrap_or_else(|| {
            Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "rig is exiting on a signal",
            ))
        })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let (Some(dir), Some(reg)) = (self.dir.take(), self.reg.take()) {
            // Removed under the lock: the signal path is not removing it at the same time.
            reg.settle(|| drop(dir));
        }
    }
}

#[cfg(test)]
#[path = "cleanup_tests.rs"]
mod tests;
