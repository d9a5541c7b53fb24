//! The context raw steps are validated in ([`Check`]): the file's tree (for positions), what
//! the scenario requires and creates, and the checks several kinds share. Every problem is one
//! [`ScenarioError`] naming the file, line, column and field path.

use super::scalars::HumanDuration;
use super::Feature;
use crate::guest::transport::Via;
use crate::host::board::Board;
use rig_yaml::{Node, Path};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) mod allow;
pub(crate) mod host;

pub(crate) type R<T> = Result<T, ScenarioError>;

/// The longest duration a file may give (a deadline further out is a typo).
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest scenario or step name.
const MAX_NAME: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Anything wrong with the file's content: syntax, types, unknown fields, semantics.
    #[error("{file}:{line}:{column}: {}", with_path(.path, .message))]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        /// The field path, like `steps[3].pci_hotplug.driver`; empty for the whole document.
        path: String,
        message: String,
    },
}

fn with_path(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{path}: {message}")
    }
}

/// Where something was written in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The field path, like `steps[3]` or `requires[1]`.
    pub path: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Ids the scenario creates, so later steps can be checked against them.
#[derive(Default)]
pub(crate) struct Ids {
    pub(crate) pci: BTreeSet<String>,
    pub(crate) overlays: BTreeSet<String>,
    pub(crate) dimms: BTreeSet<String>,
    pub(crate) netdevsim: BTreeSet<u32>,
    /// virtio-mem devices of `devices:`, with their sizes.
    pub(crate) virtio_mem: BTreeSet<String>,
    pub(crate) virtio_sizes: std::collections::BTreeMap<String, u64>,
    /// Memory backends QMP `object-add` steps create (`device_add`'s `memdev` names one).
    pub(crate) objects: BTreeSet<String>,
}

pub(crate) fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

pub(crate) struct Check<'a> {
    pub(crate) tree: &'a Node,
    pub(crate) file: &'a str,
    /// Where overlay names are looked up, in order (the first folder holding the name wins).
    pub(crate) overlay_dirs: &'a [PathBuf],
    pub(crate) transport: Via,
    pub(crate) requires: Vec<Feature>,
    pub(crate) boards: Vec<Board>,
    pub(crate) ids: Ids,
    /// What virtio-mem devices hold, bytes.
    pub(crate) virtio_total: u64,
    /// Bytes of RAM each DIMM and `object-add` backend the steps create takes (the largest
    /// size given to an id), for the hot-plug room.
    pub(crate) memory: std::cell::RefCell<std::collections::BTreeMap<String, u64>>,
    /// Deprecation notices for old spellings the file uses ([`Scenario::notices`]).
    pub(crate) notices: std::cell::RefCell<Vec<String>>,
}

impl Check<'_> {
    pub(crate) fn location(&self, path: &Path, key: bool) -> Location {
        let mark = if key {
            self.tree.locate_key(path)
        } else {
            self.tree.locate(path)
        };
        Location {
            file: self.file.to_string(),
            line: mark.line,
            column: mark.column,
            path: path.to_string(),
        }
    }

    pub(crate) fn error(&self, loc: Location, message: String) -> ScenarioError {
        ScenarioError::Invalid {
            file: loc.file,
            line: loc.line,
            column: loc.column,
            path: loc.path,
            message,
        }
    }

    /// An error about the value at `path`.
    pub(crate) fn err(&self, path: &Path, message: impl Into<String>) -> ScenarioError {
        self.error(self.location(path, false), message.into())
    }

    /// An error about the key that ends `path`.
    pub(crate) fn err_key(&self, path: &Path, message: impl Into<String>) -> ScenarioError {
        self.error(self.location(path, true), message.into())
    }

    pub(crate) fn duration(
        &self,
        d: Option<HumanDuration>,
        default: Duration,
        path: &Path,
    ) -> R<Duration> {
        match d {
            None => Ok(default),
            Some(HumanDuration(d)) if d.is_zero() => Err(self.err(path, "must be longer than 0s")),
            // Deadlines are instants: a duration past any clock is a typo, never a plan.
            Some(HumanDuration(d)) if d > MAX_DURATION => {
                Err(self.err(path, "must be at most 30 days"))
            }
            Some(HumanDuration(d)) => Ok(d),
        }
    }

    /// A step's `timeout` field (at `step.timeout`), or its kind's default.
    pub(crate) fn timeout(
        &self,
        d: Option<HumanDuration>,
        default: Duration,
        step: &Path,
    ) -> R<Duration> {
        self.duration(d, default, &step.key("timeout"))
    }

    pub(crate) fn name(&self, name: Option<String>, path: &Path) -> R<Option<String>> {
        match name {
            Some(n) if n.trim().is_empty() => Err(self.err(&path.key("name"), "empty name")),
            Some(n) => self.printable(&n, &path.key("name")).map(|_| Some(n)),
            n => Ok(n),
        }
    }

    /// Names are shown on terminals and in reports: no control characters (escape sequences),
    /// at most [`MAX_NAME`] characters.
    pub(crate) fn printable(&self, text: &str, path: &Path) -> R<()> {
        if text.chars().any(char::is_control) {
            return Err(self.err(path, "control characters are not allowed in names"));
        }
        if text.chars().count() > MAX_NAME {
            return Err(self.err(path, format!("longer than {MAX_NAME} characters")));
        }
        Ok(())
    }

    pub(crate) fn qemu_id(&self, id: &str, path: &Path) -> R<()> {
        if allow::qemu_id(id) {
            Ok(())
        } else {
            Err(self.err(
                path,
                format!("invalid id `{id}`: QEMU ids start with a letter and hold letters, digits, `-`, `.`, `_`"),
            ))
        }
    }

    pub(crate) fn known_id(
        &self,
        id: &str,
        set: &BTreeSet<String>,
        what: &str,
        path: &Path,
    ) -> R<()> {
        if set.contains(id) {
            Ok(())
        } else {
            Err(self.err(
                path,
                format!("no {what} step creates `{id}` (created: {})", list(set)),
            ))
        }
    }

    /// The step's `via` (at `path`), else the scenario's transport.
    pub(crate) fn via(&self, v: Option<Via>, path: &Path) -> Via {
        self.old_hvc_name(path);
        v.unwrap_or(self.transport)
    }

    /// Notes a deprecation notice when the transport at `path` is spelled the old way
    /// ([`crate::guest::transport::OLD_HVC_NAME`]).
    pub(crate) fn old_hvc_name(&self, path: &Path) {
        use crate::guest::transport::{old_hvc_notice, OLD_HVC_NAME};
        let Some(Node::Scalar { value, .. }) = self.tree.get(path) else {
            return;
        };
        if value != OLD_HVC_NAME {
            return;
        }
        let key = path.to_string();
        let key = key.rsplit('.').next().unwrap_or(&key);
        let at = self.location(path, false);
        let notice = old_hvc_notice(
            &format!("`{key}: {OLD_HVC_NAME}`"),
            &format!("`{key}: {}`", Via::Hvc.name()),
        );
        self.notices.borrow_mut().push(format!(
            "{}:{}:{}: {}: {notice}",
            at.file, at.line, at.column, at.path
        ));
    }

    /// Resolves an overlay name to an existing `.dtso` directly in one of the overlay folders
    /// (the first that has it).
    pub(crate) fn overlay_file(&self, name: &str, path: &Path) -> R<PathBuf> {
        let known = || -> String {
            let mut v: Vec<String> = self
                .overlay_dirs
                .iter()
                .filter_map(|d| std::fs::read_dir(d).ok())
                .flat_map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".dtso"))
                })
                .collect();
            v.sort();
            v.dedup();
            list(v)
        };
        let plain = !name.is_empty()
            && !name.contains('/')
            && !name.contains('\\')
            && name != "."
            && name != "..";
        if !plain || !name.ends_with(".dtso") {
            let dirs: Vec<String> = self
                .overlay_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            return Err(self.err(
                path,
                format!(
                    "overlay `{name}` must be a `.dtso` file name in {} (known: {})",
                    dirs.join(" or "),
                    known()
                ),
            ));
        }
        let Some((dir, file)) = self
            .overlay_dirs
            .iter()
            .map(|d| (d, d.join(name)))
            .find(|(_, f)| f.is_file())
        else {
            return Err(self.err(
                path,
                format!("unknown overlay `{name}` (known: {})", known()),
            ));
        };
        self.overlay_contained(name, &file, dir, path)?;
        self.overlay_source(name, &file, path)?;
        Ok(file)
    }
}
