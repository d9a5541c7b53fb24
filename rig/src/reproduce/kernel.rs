//! Which kernel a replay boots, and the check that it is the one the run used.
//!
//! A kernel name from a record is data: `debian-6.1` and `rig-6.12[-FLAVOR]` are provisioned by
//! rig's own recipes (pinned package, Debian's source and rig's fragments and patches), so the
//! record only picks among them. A `tree:PATH` kernel would run PATH's Makefile and
//! `merge_config.sh`: rig builds one only from a tree the user names on the command line
//! (`rig reproduce … --tree PATH`), and only when that tree's source identity is the recorded
//! one. The rule is the same for a bundle and a local run folder — to reuse the recorded tree,
//! name it (`--tree` with the path the error shows).

use super::checked::CheckedRecord;
use super::ReproduceError;
use crate::host::cache::Cache;
use crate::host::events::Events;
use crate::provision::kbuild::source;
use crate::provision::KernelSpec;
use std::path::Path;

/// The kernel name the replay boots: the recorded one, or for a tree kernel the same flavor
/// built from `tree` once its identity matches. Decided before anything is built or run.
pub fn replay_kernel(r: &CheckedRecord, tree: Option<&Path>) -> Result<String, ReproduceError> {
    let name = &r.kernel.name;
    let recorded = r.kernel.provenance.get("source_identity");
    match (&r.spec, tree) {
        (KernelSpec::Tree { path, .. }, None) => Err(ReproduceError::TreeNeeded {
            kernel: name.clone(),
            tree: path.clone(),
            identity: recorded.cloned().unwrap_or_else(|| "not recorded".into()),
        }),
        (KernelSpec::Tree { flavor, .. }, Some(tree)) => {
            let Some(recorded) = recorded else {
                return Err(ReproduceError::BadRecord {
                    path: crate::run::record::RECORD_FILE.into(),
                    message: format!(
                        "kernel `{name}` has no kernel.provenance.source_identity to check \
                         --tree against"
                    ),
                });
            };
            let now = source::tree_identity(tree).map_err(|e| ReproduceError::TreeUnusable {
                tree: tree.to_path_buf(),
                source: Box::new(e),
            })?;
            if &now != recorded {
                return Err(ReproduceError::TreeMismatch {
                    kernel: name.clone(),
                    tree: tree.to_path_buf(),
                    recorded: recorded.clone(),
                    now,
                });
            }
            Ok(KernelSpec::tree_name(tree, flavor))
        }
        (_, Some(_)) => Err(ReproduceError::TreeNotNeeded {
            kernel: name.clone(),
        }),
        (_, None) => Ok(name.clone()),
    }
}

/// Which recorded kernel identity fields must match for a replay to be the same kernel.
const IDENTITY_FIELDS: [&str; 6] = [
    "version",
    "image_sha256",
    "source_identity",
    "config_sha256",
    "patches",
    "flavor",
];

/// Provisions `kernel` (the name [`replay_kernel`] chose) and checks it is the recorded one.
pub fn check(
    kernel: &str,
    r: &CheckedRecord,
    cache: &Cache,
    events: &Events,
) -> Result<(), ReproduceError> {
    let k =
        crate::provision::resolve_kernel(kernel, r.board.arch(), cache, events).map_err(|e| {
            ReproduceError::Provision {
                kernel: kernel.to_string(),
                source: Box::new(e),
            }
        })?;
    for field in IDENTITY_FIELDS {
        if let (Some(was), Some(now)) = (r.kernel.provenance.get(field), k.provenance.get(field)) {
            if was != now {
                return Err(ReproduceError::KernelChanged {
                    kernel: kernel.to_string(),
                    field: field.into(),
                    recorded: was.clone(),
                    now: now.clone(),
                });
            }
        }
    }
    Ok(())
}
