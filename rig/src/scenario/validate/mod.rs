//! Raw scenario → [`Scenario`]: the checks that need more than one field, the overlay
//! directory, or the rest of the file. Each error points at the field it is about.

use super::raw::{self, HumanDuration, RawStep};
use super::*;
use crate::host::board::{DIMM_SLOTS, HOTPLUG_ROOT_PORTS};
use rig_yaml::{Node, Path};
use std::collections::BTreeSet;

type R<T> = Result<T, ScenarioError>;

mod allow;
mod board_devices;
/// The longest duration a file may give (a deadline further out is a typo).
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest scenario or step name.
const MAX_NAME: usize = 200;

mod host;
#[cfg(test)]
pub(crate) use allow::{
    driver as allowed_driver, DEVICES, HOTPLUG_ROOM, OBJECT_PROPS, OBJECT_TYPE, PCI_PROPS,
};
#[cfg(test)]
pub(crate) use host::QMP_ALLOWED;
mod steps;
use steps::Within;

/// Ids the scenario creates, so later steps can be checked against them.
#[derive(Default)]
struct Ids {
    pci: BTreeSet<String>,
    overlays: BTreeSet<String>,
    dimms: BTreeSet<String>,
    netdevsim: BTreeSet<u32>,
    /// virtio-mem devices of `devices:`, with their sizes.
    virtio_mem: BTreeSet<String>,
    virtio_sizes: std::collections::BTreeMap<String, u64>,
    /// Memory backends QMP `object-add` steps create (`device_add`'s `memdev` names one).
    objects: BTreeSet<String>,
}

fn overlay_id(o: &raw::RawOverlayLoad) -> String {
    o.id.clone().unwrap_or_else(|| {
        std::path::Path::new(&o.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

fn collect_ids(steps: &[RawStep], ids: &mut Ids) {
    for s in steps {
        match s {
            RawStep::PciHotplug(p) => {
                ids.pci.insert(p.id.clone());
            }
            RawStep::OverlayLoad(o) => {
                ids.overlays.insert(overlay_id(o));
            }
            RawStep::MemoryAdd(m) => {
                ids.dimms.insert(m.id.clone());
            }
            RawStep::NetdevsimNew(n) => {
                ids.netdevsim.insert(n.id);
            }
            RawStep::Qmp(q) if q.execute == "object-add" => {
                let id = q.arguments.as_ref().and_then(|a| a.get("id"));
                if let Some(id) = id.and_then(|i| i.as_str()) {
                    ids.objects.insert(id.to_string());
                }
            }
            _ => {}
        }
        collect_ids(s.children(), ids);
    }
}

fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

struct V<'a> {
    tree: &'a Node,
    file: &'a str,
    /// Where overlay names are looked up, in order (the first folder holding the name wins).
    overlay_dirs: &'a [PathBuf],
    transport: Via,
    requires: Vec<Feature>,
    boards: Vec<Board>,
    ids: Ids,
    /// What virtio-mem devices hold, bytes.
    virtio_total: u64,
    /// Bytes of RAM each DIMM and `object-add` backend the steps create takes (the largest
    /// size given to an id), for the hot-plug room.
    memory: std::cell::RefCell<std::collections::BTreeMap<String, u64>>,
    /// Deprecation notices for old spellings the file uses ([`Scenario::notices`]).
    notices: std::cell::RefCell<Vec<String>>,
}

impl V<'_> {
    fn location(&self, path: &Path, key: bool) -> Location {
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

    fn error(&self, loc: Location, message: String) -> ScenarioError {
        ScenarioError::Invalid {
            file: loc.file,
            line: loc.line,
            column: loc.column,
            path: loc.path,
            message,
        }
    }

    /// An error about the value at `path`.
    fn err(&self, path: &Path, message: impl Into<String>) -> ScenarioError {
        self.error(self.location(path, false), message.into())
    }

    /// An error about the key that ends `path`.
    fn err_key(&self, path: &Path, message: impl Into<String>) -> ScenarioError {
        self.error(self.location(path, true), message.into())
    }

    fn duration(&self, d: Option<HumanDuration>, default: Duration, path: &Path) -> R<Duration> {
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
    fn timeout(&self, d: Option<HumanDuration>, default: Duration, step: &Path) -> R<Duration> {
        self.duration(d, default, &step.key("timeout"))
    }

    fn name(&self, name: Option<String>, path: &Path) -> R<Option<String>> {
        match name {
            Some(n) if n.trim().is_empty() => Err(self.err(&path.key("name"), "empty name")),
            Some(n) => self.printable(&n, &path.key("name")).map(|_| Some(n)),
            n => Ok(n),
        }
    }

    /// Names are shown on terminals and in reports: no control characters (escape sequences),
    /// at most [`MAX_NAME`] characters.
    fn printable(&self, text: &str, path: &Path) -> R<()> {
        if text.chars().any(char::is_control) {
            return Err(self.err(path, "control characters are not allowed in names"));
        }
        if text.chars().count() > MAX_NAME {
            return Err(self.err(path, format!("longer than {MAX_NAME} characters")));
        }
        Ok(())
    }

    fn qemu_id(&self, id: &str, path: &Path) -> R<()> {
        if allow::qemu_id(id) {
            Ok(())
        } else {
            Err(self.err(
                path,
                format!("invalid id `{id}`: QEMU ids start with a letter and hold letters, digits, `-`, `.`, `_`"),
            ))
        }
    }

    fn known_id(&self, id: &str, set: &BTreeSet<String>, what: &str, path: &Path) -> R<()> {
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
    fn via(&self, v: Option<Via>, path: &Path) -> Via {
        self.old_hvc_name(path);
        v.unwrap_or(self.transport)
    }

    /// Notes a deprecation notice when the transport at `path` is spelled the old way
    /// ([`crate::guest::transport::OLD_HVC_NAME`]).
    fn old_hvc_name(&self, path: &Path) {
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
    fn overlay_file(&self, name: &str, path: &Path) -> R<PathBuf> {
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

pub(super) fn validate(
    raw: raw::RawScenario,
    tree: &Node,
    file: &str,
    overlay_dirs: &[PathBuf],
) -> R<Scenario> {
    let root = Path::root();
    let mut v = V {
        tree,
        file,
        overlay_dirs,
        transport: raw.transport.unwrap_or_default(),
        requires: Vec::new(),
        boards: Vec::new(),
        ids: Ids::default(),
        virtio_total: 0,
        memory: Default::default(),
        notices: Default::default(),
    };
    v.old_hvc_name(&root.key("transport"));

    let name = match raw.name {
        Some(n) if n.trim().is_empty() => return Err(v.err(&root.key("name"), "empty name")),
        Some(n) => {
            v.printable(&n, &root.key("name"))?;
            n
        }
        None => std::path::Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.to_string()),
    };

    let boards_path = root.key("boards");
    let boards_at = v.location(&boards_path, true);
    let boards = match raw.boards {
        None => Board::ALL.to_vec(),
        Some(list) => {
            if list.is_empty() {
                return Err(v.err(
                    &boards_path,
                    "empty list (leave `boards` out to run on every board)",
                ));
            }
            let mut out: Vec<Board> = Vec::new();
            for (i, b) in list.into_iter().enumerate() {
                if out.contains(&b.0) {
                    return Err(v.err(
                        &boards_path.index(i),
                        format!("board `{}` is listed twice", b.0),
                    ));
                }
                out.push(b.0);
            }
            out
        }
    };
    v.boards = boards.clone();

    let req_path = root.key("requires");
    let mut requires = Vec::new();
    for (i, f) in raw.requires.into_iter().enumerate() {
        let p = req_path.index(i);
        if v.requires.contains(&f) {
            return Err(v.err(&p, format!("feature `{f}` is listed twice")));
        }
        v.requires.push(f);
        requires.push(Requirement {
            feature: f,
            at: v.location(&p, false),
        });
    }

    for (i, param) in raw.cmdline.iter().enumerate() {
        if param.trim().is_empty() || param.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(v.err(
                &root.key("cmdline").index(i),
                format!("`{param}` is not one kernel parameter (one per entry, no spaces)"),
            ));
        }
        v.cmdline_param(param, &root.key("cmdline").index(i))?;
    }

    let timeout = v.duration(
        raw.timeout,
        defaults::SCENARIO_TIMEOUT,
        &root.key("timeout"),
    )?;

    let mut ids = Ids::default();
    collect_ids(&raw.steps, &mut ids);
    let pci_devices = ids.pci.len();
    if pci_devices > HOTPLUG_ROOT_PORTS {
        return Err(v.err(
            &root.key("steps"),
            format!("hot-plugs {pci_devices} distinct PCI devices; boards have {HOTPLUG_ROOT_PORTS} root ports"),
        ));
    }
    let dimms = ids.dimms.len();
    if dimms > DIMM_SLOTS as usize {
        return Err(v.err(
            &root.key("steps"),
            format!("plugs {dimms} distinct DIMMs; boards have {DIMM_SLOTS} slots"),
        ));
    }
    v.ids = ids;
    let devices = v.devices(raw.devices, &root.key("devices"))?;
    for d in &devices {
        if let BoardDevice::VirtioMem { id, size_bytes } = d {
            v.ids.virtio_mem.insert(id.clone());
            v.ids.virtio_sizes.insert(id.clone(), *size_bytes);
            v.virtio_total += size_bytes;
        }
    }

    let steps = v.steps(raw.steps, &root.key("steps"), Within::Top)?;

    Ok(Scenario {
        name,
        description: raw.description.unwrap_or_default(),
        file: file.to_string(),
        boards,
        boards_at,
        requires,
        cmdline: raw.cmdline,
        default_timeout: raw.timeout.is_none(),
        timeout,
        transport: v.transport,
        expect: raw.expect,
        allow: raw.allow,
        devices,
        steps,
        notices: v.notices.into_inner(),
    })
}
