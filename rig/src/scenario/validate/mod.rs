//! Raw scenario → [`Scenario`]: the checks that need more than one field, the overlay
//! directory, or the rest of the file. Each error points at the field it is about.

use super::raw;
use super::*;
use crate::host::board::{DIMM_SLOTS, HOTPLUG_ROOT_PORTS};
use crate::steps::check::{Check, Ids, R};
use crate::steps::control;
use rig_yaml::{Node, Path};

mod board_devices;

#[cfg(test)]
pub(crate) use crate::steps::check::allow::{
    driver as allowed_driver, DEVICES, HOTPLUG_ROOM, OBJECT_PROPS, OBJECT_TYPE, PCI_PROPS,
};
#[cfg(test)]
pub(crate) use crate::steps::check::host::QMP_ALLOWED;

pub(super) fn validate(
    raw: raw::RawScenario,
    tree: &Node,
    file: &str,
    overlay_dirs: &[PathBuf],
) -> R<Scenario> {
    let root = Path::root();
    let mut v = Check {
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

    let trace = match raw.trace {
        None => None,
        Some(t) => Some(trace_block(&v, t, &root.key("trace"))?),
    };

    let timeout = v.duration(
        raw.timeout,
        defaults::SCENARIO_TIMEOUT,
        &root.key("timeout"),
    )?;

    let mut ids = Ids::default();
    control::collect_ids(&raw.steps, &mut ids);
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

    let steps = control::steps(&v, raw.steps, &root.key("steps"), Within::Top)?;

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
        trace,
        steps,
        notices: v.notices.into_inner(),
    })
}

/// The `trace:` block checked, errors at the refused name.
fn trace_block(
    v: &Check<'_>,
    raw: crate::steps::trace::RawTrace,
    path: &Path,
) -> R<super::TraceBlock> {
    use crate::steps::trace::{validate, TraceField};
    match validate(raw) {
        Ok(spec) => Ok(super::TraceBlock {
            spec,
            at: v.location(path, false),
        }),
        Err((field, message)) => {
            let at = match field {
                TraceField::Event(i) => path.key("events").index(i),
                TraceField::Function(i) => path.key("functions").index(i),
                TraceField::BufferKb => path.key("buffer_kb"),
                TraceField::Block => path.clone(),
            };
            Err(v.err(&at, message))
        }
    }
}
