//! What a scenario may make the host do. Scenario files are input: their ids, device names and
//! file names reach QEMU (over QMP), host tools (dtc) and guest shell commands, so each is held
//! to a safe alphabet here, and anything that would let a file run a host command or touch a
//! host path outside `overlays/` and the run folder is refused:
//!
//! - QMP commands are an allow-list: read-only `query-*` and the machine and device controls
//!   scenarios need. `human-monitor-command`, `migrate` (`exec:` runs a host shell),
//!   `screendump`, `dump-guest-memory`, `pmemsave`, `blockdev-*`, `chardev-add`, `netdev_add`
//!   and the like are refused.
//! - Devices (`devices:`, `pci_hotplug`, QMP `device_add`) are an allow-list of drivers, each
//!   with the properties it takes and a check of each value ([`allow`]): no host-backed kind
//!   (`vfio-*`, `usb-mtp`, `ipmi-bmc-sim`, …) nor property naming a host file or backend gets
//!   through, whatever QEMU adds. Objects (`object-add`) are RAM backends without `prealloc`;
//!   with DIMMs and virtio-mem they hold at most the boards' hot-plug room.
//! - Overlay files are plain `[A-Za-z0-9._-]` names of `.dtso` files that really live in
//!   `overlays/` (a symlink out of it is refused), and include no file (`/include/`,
//!   `/incbin/`: [`crate::provision::overlay::forbidden_directive`]).
//! - Kernel parameters cannot carry rig's console markers (`RIG-READY …`), which the kernel
//!   echoes on the console while it boots.

use super::allow::{self, Value};
use super::{list, Check, R};
use crate::host::board::{DEFAULT_MEMORY_MIB, MAX_MEMORY_MIB};
use rig_yaml::Path;

/// QMP commands a scenario may send (besides every `query-*`).
pub(crate) const QMP_ALLOWED: &[&str] = &[
    "quit",
    "stop",
    "cont",
    "system_reset",
    "system_powerdown",
    "system_wakeup",
    "inject-nmi",
    "send-key",
    "set_link",
    "balloon",
    "device_add",
    "device_del",
    "object-add",
    "object-del",
    "qom-get",
    "qom-list",
    "qom-list-types",
    "qom-list-properties",
    "device-list-properties",
];

/// Letters, digits and `chars`.
pub(crate) fn safe(s: &str, chars: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || chars.contains(c))
}

/// Where a device is added: memory devices need a backend, which only QMP `object-add`
/// creates, so they come from QMP `device_add` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// `devices: [{qemu: …}]`
    Boot,
    /// `pci_hotplug`
    Hotplug,
    /// QMP `device_add`
    Qmp,
}

fn allowed_drivers() -> String {
    allow::DEVICES
        .iter()
        .map(|d| d.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Check<'_> {
    /// A QEMU device: a driver of the allow-list ([`allow::DEVICES`]), each property one that
    /// driver takes, with a value of its kind. From QMP, `props` is the whole argument map:
    /// its `driver` and `id` are the caller's to check.
    pub(crate) fn device(
        &self,
        driver: &str,
        props: &serde_json::Map<String, serde_json::Value>,
        (driver_path, props_path): (&Path, &Path),
        place: Place,
    ) -> R<()> {
        if !safe(driver, "-_.,") {
            return Err(self.err(
                driver_path,
                format!("invalid QEMU device driver `{driver}`"),
            ));
        }
        let Some(d) = allow::driver(driver) else {
            let why = match allow::host_reach(driver) {
                Some(kind) => format!("`{driver}` devices reach into the host (`{kind}`)"),
                None => format!("QEMU device `{driver}` is not on the scenario allow-list"),
            };
            return Err(self.err(
                driver_path,
                format!(
                    "{why}: not allowed in scenarios (allowed: {}; see scenarios/README.md)",
                    allowed_drivers()
                ),
            ));
        };
        if d.memory && place != Place::Qmp {
            let instead = match place {
                Place::Boot => "a `virtio_mem` device",
                _ => "a `memory_add` step, or QMP `object-add` then `device_add`",
            };
            return Err(self.err(
                driver_path,
                format!(
                    "`{driver}` needs a memory backend, which only QMP `object-add` creates: use {instead}"
                ),
            ));
        }
        for (k, v) in props {
            if place == Place::Qmp && matches!(k.as_str(), "driver" | "id") {
                continue;
            }
            let path = props_path.key(k);
            let Some(kind) = d.prop(k) else {
                let why = if allow::names_host(k) {
                    format!("property `{k}` names a host file or QEMU backend")
                } else {
                    format!("property `{k}` is not on the allow-list of `{driver}`")
                };
                return Err(self.err_key(
                    &path,
                    format!(
                        "{why}: not allowed in scenarios (`{driver}` takes: {})",
                        list(d.prop_names())
                    ),
                ));
            };
            self.value(kind, v, &path, &format!("`{driver}` property `{k}`"))?;
        }
        Ok(())
    }

    /// A value of `kind` at `path`; `what` names it in the error.
    pub(crate) fn value(
        &self,
        kind: Value,
        v: &serde_json::Value,
        path: &Path,
        what: &str,
    ) -> R<()> {
        if !kind.accepts(v) {
            return Err(self.err(path, format!("{what} must be {}, not {v}", kind.describe())));
        }
        if kind == Value::Memdev {
            let id = v.as_str().unwrap_or_default();
            if !self.ids.objects.contains(id) {
                return Err(self.err(
                    path,
                    format!(
                        "no QMP `object-add` of this scenario creates memory backend `{id}` \
                         (created: {})",
                        list(&self.ids.objects)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A QMP command a scenario may send; `device_add` and `object-add` are held to the device
    /// and object allow-lists.
    pub(crate) fn qmp_command(
        &self,
        execute: &str,
        arguments: &serde_json::Map<String, serde_json::Value>,
        path: &Path,
    ) -> R<()> {
        let exec_path = path.key("execute");
        if !safe(execute, "-_") {
            return Err(self.err(&exec_path, format!("invalid QMP command name `{execute}`")));
        }
        if !execute.starts_with("query-") && !QMP_ALLOWED.contains(&execute) {
            return Err(self.err(
                &exec_path,
                format!(
                    "QMP command `{execute}` is not allowed in scenarios (it could run host commands or \
                     reach host files); allowed: query-*, {}",
                    QMP_ALLOWED.join(", ")
                ),
            ));
        }
        let args = path.key("arguments");
        match execute {
            "device_add" => {
                let Some(driver) = arguments.get("driver").and_then(|d| d.as_str()) else {
                    return Err(self.err(&args, "`device_add` needs a `driver`"));
                };
                if let Some(id) = arguments.get("id") {
                    self.value(Value::Id, id, &args.key("id"), "`device_add` argument `id`")?;
                }
                self.device(driver, arguments, (&args.key("driver"), &args), Place::Qmp)
            }
            "object-add" => self.object_add(arguments, &args),
            // The others name nothing on the host; QEMU refuses arguments they do not take.
            _ => Ok(()),
        }
    }

    /// `object-add`: a RAM backend ([`allow::OBJECT_TYPE`]) with an id and a size, counted
    /// against the hot-plug room, and only the properties of [`allow::OBJECT_PROPS`].
    pub(crate) fn object_add(
        &self,
        arguments: &serde_json::Map<String, serde_json::Value>,
        args: &Path,
    ) -> R<()> {
        let props: Vec<&str> = allow::OBJECT_PROPS.iter().map(|(k, _)| *k).collect();
        let kind = arguments
            .get("qom-type")
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        if kind != allow::OBJECT_TYPE {
            return Err(self.err(
                &args.key("qom-type"),
                format!(
                    "object type `{kind}` is not allowed in scenarios (allowed: {})",
                    allow::OBJECT_TYPE
                ),
            ));
        }
        if let Some(id) = arguments.get("id") {
            self.value(Value::Id, id, &args.key("id"), "`object-add` argument `id`")?;
        }
        for (k, v) in arguments {
            if matches!(k.as_str(), "qom-type" | "id") {
                continue;
            }
            let p = args.key(k);
            if k == "prealloc" || k == "prealloc-threads" {
                return Err(self.err_key(
                    &p,
                    format!(
                        "`{k}` is not allowed in scenarios: QEMU would allocate the whole backend \
                         on the host at once (allowed: {})",
                        list(&props)
                    ),
                ));
            }
            let Some((_, vk)) = allow::OBJECT_PROPS.iter().find(|(o, _)| o == k) else {
                let why = if allow::names_host(k) {
                    format!("property `{k}` names a host file or QEMU backend")
                } else {
                    format!("property `{k}` is not on the allow-list of `{kind}`")
                };
                return Err(self.err_key(
                    &p,
                    format!(
                        "{why}: not allowed in scenarios (allowed: {})",
                        list(&props)
                    ),
                ));
            };
            self.value(*vk, v, &p, &format!("`{kind}` property `{k}`"))?;
        }
        let Some(id) = arguments.get("id").and_then(|i| i.as_str()) else {
            return Err(self.err(args, "`object-add` needs an `id`"));
        };
        let Some(size) = arguments.get("size").and_then(allow::bytes) else {
            return Err(self.err(
                args,
                format!("`object-add` needs a `size`: {}", Value::Bytes.describe()),
            ));
        };
        self.add_memory(&format!("backend {id}"), size, &args.key("size"))
    }

    /// Counts `size` bytes of RAM for `what` (a DIMM or backend id: added again, the larger
    /// size counts, since one id exists once at a time) against the hot-plug room.
    pub(crate) fn add_memory(&self, what: &str, size: u64, path: &Path) -> R<()> {
        let mut m = self.memory.borrow_mut();
        let e = m.entry(what.to_string()).or_default();
        *e = (*e).max(size);
        let total: u64 = m.values().sum::<u64>() + self.virtio_total;
        if total > allow::HOTPLUG_ROOM {
            return Err(self.err(
                path,
                format!(
                    "the scenario would hot-plug {} MiB of memory in all (virtio-mem devices, \
                     DIMMs, `object-add` backends): at most {} MiB (the boards' maxmem is {} MiB, \
                     up to {} MiB of it booted)",
                    total >> 20,
                    allow::HOTPLUG_ROOM >> 20,
                    MAX_MEMORY_MIB,
                    2 * DEFAULT_MEMORY_MIB
                ),
            ));
        }
        Ok(())
    }

    /// A kernel parameter that cannot forge rig's console markers.
    pub(crate) fn cmdline_param(&self, param: &str, path: &Path) -> R<()> {
        if param.contains("RIG-") || param.contains('\u{1e}') {
            return Err(self.err(
                path,
                format!("`{param}` holds a rig console marker (`RIG-…`), which the kernel would echo at boot"),
            ));
        }
        Ok(())
    }

    /// An overlay file given by name must be a plain, safe file name whose real location is in
    /// the overlay folder `dir` it was found in.
    pub(crate) fn overlay_contained(
        &self,
        name: &str,
        file: &std::path::Path,
        dir: &std::path::Path,
        path: &Path,
    ) -> R<()> {
        if !safe(name, "-_.") {
            return Err(self.err(
                path,
                format!("overlay `{name}`: file names are letters, digits, `-`, `.`, `_`"),
            ));
        }
        let real = file.canonicalize().ok();
        let real_dir = dir.canonicalize().ok();
        match (real, real_dir) {
            (Some(r), Some(d)) if r.parent() == Some(d.as_path()) => Ok(()),
            _ => Err(self.err(
                path,
                format!(
                    "overlay `{name}` is not a file of {} (a link out of it?)",
                    dir.display()
                ),
            )),
        }
    }

    /// An overlay's source names no other file (dtc would read it on the host): the first
    /// `/include/`, `/incbin/` or `#include` is an error naming the overlay's file:line:column.
    pub(crate) fn overlay_source(&self, name: &str, file: &std::path::Path, path: &Path) -> R<()> {
        use crate::provision::overlay::{forbidden_directive, read_source};
        let bytes =
            read_source(file).map_err(|e| self.err(path, format!("overlay `{name}`: {e}")))?;
        match forbidden_directive(&bytes) {
            None => Ok(()),
            Some((line, column, directive)) => Err(self.err(
                path,
                format!(
                    "overlay {}:{line}:{column}: {}",
                    file.display(),
                    directive.problem()
                ),
            )),
        }
    }
}
