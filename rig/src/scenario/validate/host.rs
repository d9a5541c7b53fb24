//! What a scenario may make the host do. Scenario files are input: their ids, device names and
//! file names reach QEMU (over QMP), host tools (dtc) and guest shell commands, so each is held
//! to a safe alphabet here, and anything that would let a file run a host command or touch a
//! host path outside `overlays/` and the run folder is refused:
//!
//! - QMP commands are an allow-list: read-only `query-*` and the machine and device controls
//!   scenarios need. `human-monitor-command`, `migrate` (`exec:` runs a host shell),
//!   `screendump`, `dump-guest-memory`, `pmemsave`, `blockdev-*`, `chardev-add`, `netdev_add`
//!   and the like are refused.
//! - Devices (`pci_hotplug`, QMP `device_add`) may not be of a host-backed kind (`vfio-*`,
//!   `vhost-*`, `loader`, `usb-host`, …) nor name a host file or backend in their properties
//!   (`romfile`, `file`, `chardev`, `drive`, …); objects (`object-add`) are RAM backends only.
//! - Overlay files are plain `[A-Za-z0-9._-]` names of `.dtso` files that really live in
//!   `overlays/` (a symlink out of it is refused).
//! - Kernel parameters cannot carry rig's console markers (`RIG-READY …`), which the kernel
//!   echoes on the console while it boots.

use super::{R, V};
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

/// Device kinds whose job is to reach into the host.
const HOST_BACKED_DRIVERS: &[&str] = &[
    "vfio",
    "vhost",
    "loader",
    "guest-loader",
    "usb-host",
    "pci-assign",
    "kvm-pci-assign",
    "ivshmem",
    "virtio-9p",
    "u2f-passthru",
    "ccid-card-passthru",
    "xen",
    "nvdimm",
    "tpm",
];

/// Device and object properties that name host files or QEMU backends.
const HOST_PROPS: &[&str] = &[
    "romfile",
    "file",
    "filename",
    "path",
    "mem-path",
    "host",
    "hostaddr",
    "hostbus",
    "hostport",
    "hostdevice",
    "sysfsdev",
    "fd",
    "vhostfd",
    "vhostfds",
    "chardev",
    "drive",
    "netdev",
    "fsdev",
    "memdev",
    "script",
    "downscript",
    "iommufd",
];

/// Objects `object-add` may create.
const OBJECTS_ALLOWED: &[&str] = &["memory-backend-ram", "memory-backend-memfd"];

/// Letters, digits and `chars`.
pub(super) fn safe(s: &str, chars: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || chars.contains(c))
}

impl V<'_> {
    /// A QEMU device: a safe driver name, not host-backed, no property naming a host resource.
    pub(super) fn device(
        &self,
        driver: &str,
        props: &serde_json::Map<String, serde_json::Value>,
        driver_path: &Path,
        props_path: &Path,
    ) -> R<()> {
        if !safe(driver, "-_.,") {
            return Err(self.err(
                driver_path,
                format!("invalid QEMU device driver `{driver}`"),
            ));
        }
        if let Some(kind) = HOST_BACKED_DRIVERS
            .iter()
            .find(|k| driver == **k || driver.starts_with(&format!("{k}-")))
        {
            return Err(self.err(
                driver_path,
                format!(
                    "`{driver}` devices reach into the host (`{kind}`): not allowed in scenarios"
                ),
            ));
        }
        self.no_host_props(props, props_path)
    }

    fn no_host_props(
        &self,
        props: &serde_json::Map<String, serde_json::Value>,
        path: &Path,
    ) -> R<()> {
        for k in props.keys() {
            if HOST_PROPS.contains(&k.as_str()) || k.starts_with("x-") {
                return Err(self.err_key(
                    &path.key(k),
                    format!("property `{k}` names a host file or QEMU backend: not allowed in scenarios"),
                ));
            }
        }
        Ok(())
    }

    /// A QMP command a scenario may send, with its arguments checked where they create things.
    pub(super) fn qmp_command(
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
                let driver = arguments
                    .get("driver")
                    .and_then(|d| d.as_str())
                    .unwrap_or_default();
                self.device(driver, arguments, &args.key("driver"), &args)
            }
            "object-add" => {
                let kind = arguments
                    .get("qom-type")
                    .and_then(|d| d.as_str())
                    .unwrap_or_default();
                if !OBJECTS_ALLOWED.contains(&kind) {
                    return Err(self.err(
                        &args.key("qom-type"),
                        format!(
                            "object type `{kind}` is not allowed in scenarios (allowed: {})",
                            OBJECTS_ALLOWED.join(", ")
                        ),
                    ));
                }
                self.no_host_props(arguments, &args)
            }
            _ => Ok(()),
        }
    }

    /// A kernel parameter that cannot forge rig's console markers.
    pub(super) fn cmdline_param(&self, param: &str, path: &Path) -> R<()> {
        if param.contains("RIG-") || param.contains('\u{1e}') {
            return Err(self.err(
                path,
                format!("`{param}` holds a rig console marker (`RIG-…`), which the kernel would echo at boot"),
            ));
        }
        Ok(())
    }

    /// An overlay file given by name must be a plain, safe file name whose real location is in
    /// the overlays directory.
    pub(super) fn overlay_contained(
        &self,
        name: &str,
        file: &std::path::Path,
        path: &Path,
    ) -> R<()> {
        if !safe(name, "-_.") {
            return Err(self.err(
                path,
                format!("overlay `{name}`: file names are letters, digits, `-`, `.`, `_`"),
            ));
        }
        let real = file.canonicalize().ok();
        let dir = self.overlays_dir.canonicalize().ok();
        match (real, dir) {
            (Some(r), Some(d)) if r.parent() == Some(d.as_path()) => Ok(()),
            _ => Err(self.err(
                path,
                format!(
                    "overlay `{name}` is not a file of {} (a link out of it?)",
                    self.overlays_dir.display()
                ),
            )),
        }
    }
}
