//! `overlay_load` and `overlay_unload`: DT overlays compiled once per run with dtc, uploaded
//! once per boot, applied and removed through configfs.
//!
//! The guest keeps each compiled overlay under a name made of its content hash
//! (`/tmp/rig-overlay-<sha256>.dtbo`), so a scenario that applies and removes the same overlay
//! twenty times sends it once; every `overlay_load` after the first costs one guest command.

use super::check::{Check, Ids, R};
use super::engine::shell::checked;
use super::engine::{Engine, StepError};
use super::kind::{ExpectStatus, InParallel, Kind, RawKind};
use super::scalars::HumanDuration;
use super::{Feature, Step, StepKind, Within};
use crate::host::text::error_chain;
use base64::Engine as _;
use rig_yaml::Path;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The default `timeout` of the overlay steps.
pub const OVERLAY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an overlay_load step: {file: NAME.dtso, id, under_pci, timeout, may_fail, name}"
)]
pub struct RawOverlayLoad {
    #[serde(default)]
    pub name: Option<String>,
    pub file: String,
    #[serde(default)]
    pub id: Option<String>,
    /// Apply under the DT node the kernel made for this hot-plugged PCI device.
    #[serde(default)]
    pub under_pci: Option<String>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an overlay_unload step: {id: …, timeout, may_fail, name}"
)]
pub struct RawOverlayUnload {
    #[serde(default)]
    pub name: Option<String>,
    pub id: String,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub may_fail: bool,
}

/// Compile `file` with dtc and apply it through configfs as `/sys/kernel/config/device-tree/overlays/<id>`.
#[derive(Debug, Clone)]
pub struct OverlayLoadStep {
    /// The resolved, existing `.dtso` file.
    pub file: PathBuf,
    pub id: String,
    /// Apply under the DT node the kernel made for this hot-plugged PCI device (the overlay's
    /// `target-path = ""` is that node); `None`: paths are from the root.
    pub under_pci: Option<String>,
    pub timeout: Duration,
}

/// Remove the overlay applied as `id`.
#[derive(Debug, Clone)]
pub struct OverlayUnloadStep {
    pub id: String,
    pub timeout: Duration,
}

impl RawOverlayLoad {
    /// The overlay's id: the one given, or the file's stem.
    fn overlay_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            std::path::Path::new(&self.file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
    }
}

impl RawKind for RawOverlayLoad {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::OfOverlay)
    }

    fn collect_ids(&self, ids: &mut Ids) {
        ids.overlays.insert(self.overlay_id());
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Never
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let o = self;
        let id = o.overlay_id();
        let file = cx.overlay_file(&o.file, &kp.key("file"))?;
        let id_ok = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !id_ok {
            return Err(cx.err(
                &kp.key(if o.id.is_some() { "id" } else { "file" }),
                format!("invalid overlay id `{id}` (letters, digits, `-`, `.`, `_`)"),
            ));
        }
        if let Some(dev) = &o.under_pci {
            cx.known_id(dev, &cx.ids.pci, "pci_hotplug", &kp.key("under_pci"))?;
        }
        Ok((
            cx.name(o.name, kp)?,
            StepKind::OverlayLoad(OverlayLoadStep {
                file,
                id,
                under_pci: o.under_pci,
                timeout: cx.timeout(o.timeout, OVERLAY_TIMEOUT, kp)?,
            }),
        ))
    }
}

impl RawKind for RawOverlayUnload {
    fn timeout_given(&self) -> bool {
        self.timeout.is_some()
    }

    fn may_fail(&self) -> bool {
        self.may_fail
    }

    fn implied_feature(&self, _: &Ids) -> Option<Feature> {
        Some(Feature::OfOverlay)
    }

    fn in_parallel(&self) -> InParallel {
        InParallel::Guest
    }

    fn validate(self, cx: &Check, kp: &Path, _: Within) -> R<(Option<String>, StepKind)> {
        let o = self;
        cx.known_id(&o.id, &cx.ids.overlays, "overlay_load", &kp.key("id"))?;
        Ok((
            cx.name(o.name, kp)?,
            StepKind::OverlayUnload(OverlayUnloadStep {
                id: o.id,
                timeout: cx.timeout(o.timeout, OVERLAY_TIMEOUT, kp)?,
            }),
        ))
    }
}

/// Overlay file → compiled overlay, and whether this boot's guest has it.
#[derive(Default)]
struct Compiled(HashMap<PathBuf, CompiledOverlay>);

impl Kind for OverlayLoadStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        let o = self;
        let guest_path = upload_overlay(e, &o.file, o.timeout)?;
        let cmd = match &o.under_pci {
            None => overlay_apply_cmd(&o.id, &guest_path),
            Some(dev) => {
                let addr = super::pci::address_now(e, dev).ok_or_else(|| {
                    StepError::Kernel(format!("PCI device {dev} has no address in the guest"))
                })?;
                let d = format!("/sys/kernel/config/device-tree/overlays/{}", o.id);
                format!(
                    "{}; cat {guest_path} > {d}/dtbo; read -r s < {d}/status; echo \"$s\"",
                    base_node_cmd(&o.id, &addr),
                )
            }
        };
        let out = e.sh_ok(&cmd, o.timeout, &format!("applying overlay {}", o.id))?;
        if out.trim() != "applied" {
            return Err(StepError::Kernel(format!(
                "overlay {} status is `{}`, not `applied`",
                o.id,
                out.trim()
            )));
        }
        Ok(())
    }
}

impl Kind for OverlayUnloadStep {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn timeout_mut(&mut self) -> Option<&mut Duration> {
        Some(&mut self.timeout)
    }

    fn exec(&self, _: &Step, e: &mut Engine<'_>) -> Result<(), StepError> {
        e.sh_ok(
            &overlay_remove_cmd(&self.id),
            self.timeout,
            &format!("removing overlay {}", self.id),
        )
        .map(drop)
    }

    fn job_script(&self, step: &Step, _: &Engine<'_>) -> Option<Result<String, StepError>> {
        Some(Ok(checked(
            &overlay_remove_cmd(&self.id),
            &ExpectStatus::OneOf(vec![0]),
            step.may_fail,
        )))
    }
}

/// Compiles `file` (once per run) and puts it into the guest (once per boot); returns its
/// guest path.
fn upload_overlay(
    e: &mut Engine<'_>,
    file: &std::path::Path,
    timeout: Duration,
) -> Result<String, StepError> {
    if !e.kept::<Compiled>().0.contains_key(file) {
        let compiled = compile_overlay(e, file)?;
        e.kept::<Compiled>().0.insert(file.to_path_buf(), compiled);
    }
    let Some(o) = e.kept::<Compiled>().0.get(file) else {
        return Err(StepError::Rig(format!(
            "{} was not compiled",
            file.display()
        )));
    };
    if o.uploaded {
        return Ok(o.guest_path.clone());
    }
    let (path, cmd) = (o.guest_path.clone(), upload_cmd(o));
    e.sh_ok(&cmd, timeout, "uploading the overlay")?;
    if let Some(o) = e.kept::<Compiled>().0.get_mut(file) {
        o.uploaded = true;
    }
    Ok(path)
}

fn compile_overlay(e: &Engine<'_>, file: &std::path::Path) -> Result<CompiledOverlay, StepError> {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out: PathBuf = e.dir().file(&format!("{stem}.dtbo"));
    crate::provision::overlay::compile(file, &out).map_err(|e| StepError::Rig(error_chain(&e)))?;
    let bytes =
        std::fs::read(&out).map_err(|e| StepError::Rig(format!("{}: {e}", out.display())))?;
    Ok(CompiledOverlay::new(bytes))
}

/// An overlay compiled on the host, and where this boot's guest has it.
#[derive(Debug, Clone)]
struct CompiledOverlay {
    dtbo: Vec<u8>,
    /// The guest path, named by content.
    guest_path: String,
    /// Already in this boot's guest.
    uploaded: bool,
}

impl CompiledOverlay {
    fn new(dtbo: Vec<u8>) -> Self {
        let hash = hex::encode(Sha256::digest(&dtbo));
        CompiledOverlay {
            guest_path: format!("/tmp/rig-overlay-{}.dtbo", &hash[..32]),
            dtbo,
            uploaded: false,
        }
    }
}

/// Removes an overlay: `remove` first, whose write fails with `of_overlay_remove()`'s error
/// (rmdir cannot report one), then the configfs directory.
fn overlay_remove_cmd(id: &str) -> String {
    let d = format!("/sys/kernel/config/device-tree/overlays/{id}");
    format!("echo 1 > {d}/remove && rmdir {d}")
}

/// Writes the overlay to its guest path (through a temporary name, so a half-written file is
/// never taken for the overlay).
fn upload_cmd(o: &CompiledOverlay) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(&o.dtbo);
    let p = &o.guest_path;
    format!("echo {b64} | base64 -d > {p}.part && mv -f {p}.part {p}")
}

/// Creates the overlay directory, writes the blob, prints the status. The status is read with a
/// shell builtin: one fork fewer under TCG.
fn overlay_apply_cmd(id: &str, guest_path: &str) -> String {
    let d = format!("/sys/kernel/config/device-tree/overlays/{id}");
    format!("mkdir {d} && cat {guest_path} > {d}/dtbo; read -r s < {d}/status; echo \"$s\"")
}

/// Creates overlay `id`'s configfs directory with `base` set to the DT node the kernel made for
/// the PCI function at `addr` (PCI_DYNAMIC_OF_NODES), so `target-path = ""` means that node.
///
/// The function's `of_node` link names it where there is one; but the kernel makes these nodes
/// after the device is registered, so 6.12 and 7.3 create no link for them, and the node's path
/// is built as the kernel names it (`of_pci_make_dev_node()`): the host bridge's node, then a
/// `pci@SLOT,FUNC` (bridges) or `dev@SLOT,FUNC` (others) per PCI hop, in hex. The host bridge's
/// node is its parent's `of_node` (arm64 virt: the firmware tree's `pcie@…`), or, on a machine
/// whose firmware describes the bridge in ACPI only (x86 q35, 6.15+), the node the kernel made
/// for it under the root: `/pci@DOMAIN,BUS` (`of_pci_make_host_bridge_node()`).
fn base_node_cmd(id: &str, addr: &str) -> String {
    let d = format!("/sys/kernel/config/device-tree/overlays/{id}");
    format!(
        "n=$(readlink -f /sys/bus/pci/devices/{addr}/of_node 2>/dev/null); \
         if [ ! -d \"$n\" ]; then d=$(readlink -f /sys/bus/pci/devices/{addr}); rel=; \
         while [ -n \"$d\" ] && [ -e \"$d/config\" ]; do f=${{d##*/}}; s=${{f##*:}}; \
         read -r c < \"$d/class\"; case $c in 0x0604*|0x0607*) t=pci;; *) t=dev;; esac; \
         rel=\"/$t@$(printf %x 0x${{s%.*}}),$(printf %x 0x${{s#*.}})$rel\"; d=${{d%/*}}; done; \
         h=$(readlink -f \"${{d%/*}}/of_node\" 2>/dev/null); \
         if [ ! -d \"$h\" ]; then b=${{d##*/pci}}; \
         h=/sys/firmware/devicetree/base/pci@$(printf %x 0x${{b%:*}}),$(printf %x 0x${{b#*:}}); fi; \
         [ -d \"$h\" ] && n=$h$rel; fi; \
         [ -n \"$n\" ] && [ -d \"$n\" ] || \
         {{ echo \"PCI function {addr} has no device tree node\"; exit 1; }}; \
         mkdir {d} && echo \"${{n#/sys/firmware/devicetree/base}}\" > {d}/base || exit 1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_are_named_by_content() {
        let a = CompiledOverlay::new(b"\xd0\x0d\xfe\xed one".to_vec());
        let b = CompiledOverlay::new(b"\xd0\x0d\xfe\xed one".to_vec());
        let c = CompiledOverlay::new(b"\xd0\x0d\xfe\xed two".to_vec());
        assert_eq!(a.guest_path, b.guest_path);
        assert_ne!(a.guest_path, c.guest_path);
        assert!(a.guest_path.starts_with("/tmp/rig-overlay-"));
        assert!(!a.uploaded);
        let up = upload_cmd(&a);
        assert!(up.contains(&base64::engine::general_purpose::STANDARD.encode(&a.dtbo)));
        assert!(up.ends_with(&format!("mv -f {p}.part {p}", p = a.guest_path)));
        let apply = overlay_apply_cmd("clk", &a.guest_path);
        assert!(apply.starts_with("mkdir /sys/kernel/config/device-tree/overlays/clk && cat "));
        assert!(apply.contains("read -r s < /sys/kernel/config/device-tree/overlays/clk/status"));
    }
}

#[cfg(test)]
mod tests_pci {
    use super::*;

    #[test]
    fn base_node_comes_from_the_functions_of_node_link() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let node = root.join("sys/firmware/devicetree/base/pcie@10000000/pci@1,0/dev@0,0");
        std::fs::create_dir_all(&node).unwrap();
        let func = root.join("sys/bus/pci/devices/0000:01:00.0");
        std::fs::create_dir_all(&func).unwrap();
        std::os::unix::fs::symlink(&node, func.join("of_node")).unwrap();
        std::fs::create_dir_all(root.join("sys/kernel/config/device-tree/overlays")).unwrap();
        let run = |addr: &str| {
            let script =
                base_node_cmd("pcidt", addr).replace("/sys/", &format!("{}/sys/", root.display()));
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap()
        };
        let out = run("0000:01:00.0");
        assert!(out.status.success(), "{out:?}");
        let base = root.join("sys/kernel/config/device-tree/overlays/pcidt/base");
        let written = std::fs::read_to_string(base).unwrap();
        assert!(
            written.trim().ends_with("/pcie@10000000/pci@1,0/dev@0,0"),
            "{written}"
        );
        let out = run("0000:02:00.0");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("has no device tree node"));
    }

    /// 6.12 makes no `of_node` link for the nodes it creates after registering the device: the
    /// path is built from the PCI hops below the host bridge's node.
    #[test]
    fn base_node_without_a_link_is_built_from_the_pci_hops() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let dt = root.join("sys/firmware/devicetree/base/pcie@10000000");
        std::fs::create_dir_all(dt.join("pci@1,0/pci@0,0/dev@1f,3")).unwrap();
        let host = root.join("sys/devices/platform/4010000000.pcie");
        std::os::unix::fs::symlink(&dt, {
            std::fs::create_dir_all(&host).unwrap();
            host.join("of_node")
        })
        .unwrap();
        // root port 00:01.0 -> bridge 01:00.0 -> function 02:1f.3
        let port = host.join("pci0000:00/0000:00:01.0");
        let bridge = port.join("0000:01:00.0");
        let func = bridge.join("0000:02:1f.3");
        for (dir, class) in [
            (&port, "0x060400"),
            (&bridge, "0x060400"),
            (&func, "0x00ff00"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("config"), b"").unwrap();
            std::fs::write(dir.join("class"), format!("{class}\n")).unwrap();
        }
        let devices = root.join("sys/bus/pci/devices");
        std::fs::create_dir_all(&devices).unwrap();
        std::os::unix::fs::symlink(&func, devices.join("0000:02:1f.3")).unwrap();
        std::os::unix::fs::symlink(&bridge, devices.join("0000:01:00.0")).unwrap();
        std::fs::create_dir_all(root.join("sys/kernel/config/device-tree/overlays")).unwrap();
        let run = |id: &str, addr: &str| {
            let script =
                base_node_cmd(id, addr).replace("/sys/", &format!("{}/sys/", root.display()));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let base = root.join(format!("sys/kernel/config/device-tree/overlays/{id}/base"));
            std::fs::read_to_string(base).unwrap()
        };
        let b = run("a", "0000:02:1f.3");
        assert!(
            b.trim()
                .ends_with("/pcie@10000000/pci@1,0/pci@0,0/dev@1f,3"),
            "{b}"
        );
        let b = run("b", "0000:01:00.0");
        assert!(b.trim().ends_with("/pcie@10000000/pci@1,0/pci@0,0"), "{b}");
    }

    /// x86 q35 (ACPI): the host bridge has no node link and no parent with one; its node is the
    /// one the kernel made under the root, `/pci@DOMAIN,BUS`.
    #[test]
    fn base_node_under_an_acpi_host_bridge_is_under_its_made_node() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let dt = root.join("sys/firmware/devicetree/base/pci@0,10");
        std::fs::create_dir_all(dt.join("pci@1,0/dev@0,0")).unwrap();
        // root port 0000:10:01.0 -> pci-testdev 0000:14:00.0, under host bridge pci0000:10
        let port = root.join("sys/devices/pci0000:10/0000:10:01.0");
        let func = port.join("0000:14:00.0");
        for (dir, class) in [(&port, "0x060400"), (&func, "0x00ff00")] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("config"), b"").unwrap();
            std::fs::write(dir.join("class"), format!("{class}\n")).unwrap();
        }
        let devices = root.join("sys/bus/pci/devices");
        std::fs::create_dir_all(&devices).unwrap();
        std::os::unix::fs::symlink(&func, devices.join("0000:14:00.0")).unwrap();
        std::fs::create_dir_all(root.join("sys/kernel/config/device-tree/overlays/t")).unwrap();
        let script = base_node_cmd("t", "0000:14:00.0")
            .replace("/sys/", &format!("{}/sys/", root.display()));
        let script = script.replace("mkdir ", "mkdir -p ");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let base = root.join("sys/kernel/config/device-tree/overlays/t/base");
        let b = std::fs::read_to_string(base).unwrap();
        assert!(b.trim().ends_with("/pci@0,10/pci@1,0/dev@0,0"), "{b}");
        // Without the made node there is none to give.
        std::fs::remove_dir_all(&dt).unwrap();
        let script = base_node_cmd("u", "0000:14:00.0")
            .replace("/sys/", &format!("{}/sys/", root.display()));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("has no device tree node"));
    }
}
