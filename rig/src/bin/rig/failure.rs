//! Errors on their way out of `rig`, each with the exit class its source said. Only an error
//! that implements [`Classify`] converts into a [`Failure`] (by `?` or [`Context`]); anything
//! else (JSON, I/O the command does itself) says its class at the call site ([`Infra`]), so no
//! error reaches the exit code without one.

use rig::host::exit::{Classify, ExitClass};
use std::fmt::Display;

pub(crate) struct Failure {
    pub(crate) class: ExitClass,
    pub(crate) error: anyhow::Error,
}

pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;

/// `Failure` implements no `std::error::Error` (nor `Classify`), so this does not overlap with
/// `From<Failure> for Failure`.
impl<E: Classify + std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            class: e.exit_class(),
            error: e.into(),
        }
    }
}

/// `anyhow`'s `with_context` for classified errors: the message added, the class kept.
pub(crate) trait Context<T> {
    fn with_context<C: Display + Send + Sync + 'static>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Classify + std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn with_context<C: Display + Send + Sync + 'static>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Failure {
            class: e.exit_class(),
            error: anyhow::Error::new(e).context(f()),
        })
    }
}

/// An error from outside rig's library (the command's own file writes, JSON): rig's failure.
pub(crate) trait Infra<T> {
    fn infra(self) -> Result<T>;
    fn infra_context<C: Display + Send + Sync + 'static>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<anyhow::Error>> Infra<T> for std::result::Result<T, E> {
    fn infra(self) -> Result<T> {
        self.map_err(|e| Failure {
            class: ExitClass::Infra,
            error: e.into(),
        })
    }

    fn infra_context<C: Display + Send + Sync + 'static>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Failure {
            class: ExitClass::Infra,
            error: e.into().context(f()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rig::host::board::UnknownName;

    fn unknown() -> std::result::Result<(), UnknownName> {
        Err(UnknownName {
            what: "board",
            given: "riscv".into(),
            known: "x86_64-q35".into(),
        })
    }

    #[test]
    fn a_classified_error_keeps_its_class_through_context() {
        let f = unknown().with_context(|| "parsing flags").unwrap_err();
        assert_eq!(f.class, ExitClass::BadInput);
        assert_eq!(f.error.to_string(), "parsing flags");
        let f: Failure = unknown().unwrap_err().into();
        assert_eq!(f.class.code(), 2);
    }

    #[test]
    fn an_unclassified_error_is_infra_where_it_is_said() {
        let r: std::result::Result<(), std::io::Error> = Err(std::io::Error::other("x"));
        let f = r.infra_context(|| "writing out.html").unwrap_err();
        assert_eq!(f.class.code(), 125);
        assert_eq!(f.error.to_string(), "writing out.html");
    }
}
