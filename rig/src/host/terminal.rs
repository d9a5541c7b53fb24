//! The user's terminal in raw mode (`rig console`), put back however rig ends: by drop, or by
//! the signal path ([`super::cleanup`]) when a signal ends rig while the terminal is raw.

use std::os::fd::BorrowedFd;

use rustix::termios::{self, OptionalActions, Termios};

use super::cleanup::{Action, Registration};

/// Puts the terminal on stdin in raw mode until dropped (no-op when stdin is not a terminal).
pub struct RawTerminal {
    fd: BorrowedFd<'static>,
    saved: Option<(Termios, Registration)>,
}

impl RawTerminal {
    /// Raw mode on stdin.
    pub fn enter() -> RawTerminal {
        Self::enter_fd(rustix::stdio::stdin())
    }

    /// Raw mode on the terminal `fd`; the saved mode is restored on drop or on the signal path.
    pub fn enter_fd(fd: BorrowedFd<'static>) -> RawTerminal {
        if !termios::isatty(fd) {
            return RawTerminal { fd, saved: None };
        }
        let Ok(saved) = termios::tcgetattr(fd) else {
            return RawTerminal { fd, saved: None };
        };
        let mut t = saved.clone();
        t.make_raw();
        let _ = termios::tcsetattr(fd, OptionalActions::Now, &t);
        // Registered after the change: if the signal path ran meanwhile, `new` restores now.
        let reg = Registration::new(Action::RestoreTerminal {
            fd,
            saved: saved.clone(),
        });
        RawTerminal {
            fd,
            saved: Some((saved, reg)),
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some((t, reg)) = self.saved.take() {
            let fd = self.fd;
            let _ = reg.settle(|| termios::tcsetattr(fd, OptionalActions::Now, &t));
        }
    }
}
