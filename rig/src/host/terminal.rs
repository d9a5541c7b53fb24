//! The user's terminal in raw mode (`rig console`), put back however rig ends: by drop, or by
//! the signal path ([`super::cleanup`]) when a signal ends rig while the terminal is raw.

use super::cleanup::{Action, Registration};

/// Puts the terminal on stdin in raw mode until dropped (no-op when stdin is not a terminal).
pub struct RawTerminal {
    fd: i32,
    saved: Option<(libc::termios, Registration)>,
}

impl RawTerminal {
    /// Raw mode on stdin.
    pub fn enter() -> RawTerminal {
        Self::enter_fd(0)
    }

    /// Raw mode on the terminal `fd`; the saved mode is restored on drop or on the signal path.
    pub fn enter_fd(fd: i32) -> RawTerminal {
        // SAFETY: an all-zero termios is valid storage; isatty/tcgetattr only read `fd`.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::isatty(fd) } != 1 || unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return RawTerminal { fd, saved: None };
        }
        let saved = t;
        // SAFETY: cfmakeraw edits our copy; tcsetattr applies it to `fd`.
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        // Registered after the change: if the signal path ran meanwhile, `new` restores now.
        let reg = Registration::new(Action::RestoreTerminal { fd, saved });
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
            // SAFETY: tcsetattr with the termios tcgetattr filled for `fd`.
            reg.settle(|| unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) });
        }
    }
}
