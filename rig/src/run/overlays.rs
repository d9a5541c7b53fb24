//! DT overlay steps: compile once per run with dtc, upload once per boot, apply through configfs.
//!
//! The guest keeps each compiled overlay under a name made of its content hash
//! (`/tmp/rig-overlay-<sha256>.dtbo`), so a scenario that applies and removes the same overlay
//! twenty times sends it once; every `overlay_load` after the first costs one guest command.

use super::compiled_overlay::CompiledOverlay;
use super::exec::{Exec, StepError};
use crate::host::text::error_chain;
use crate::scenario;
use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

impl Exec<'_> {
    pub(super) fn overlay_load(&mut self, o: &scenario::OverlayLoadStep) -> Result<(), StepError> {
        let guest_path = self.upload_overlay(&o.file, o.timeout)?;
        let cmd = match &o.under_pci {
            None => overlay_apply_cmd(&o.id, &guest_path),
            Some(dev) => {
                let addr = self.pci_address_now(dev).ok_or_else(|| {
                    StepError::Kernel(format!("PCI device {dev} has no address in the guest"))
                })?;
                let d = format!("/sys/kernel/config/device-tree/overlays/{}", o.id);
                format!(
                    "{}; cat {guest_path} > {d}/dtbo; read -r s < {d}/status; echo \"$s\"",
                    base_node_cmd(&o.id, &addr),
                )
            }
        };
        let out = self.sh_ok(&cmd, o.timeout, &format!("applying overlay {}", o.id))?;
        if out.trim() != "applied" {
            return Err(StepError::Kernel(format!(
                "overlay {} status is `{}`, not `applied`",
                o.id,
                out.trim()
            )));
        }
        Ok(())
    }

    /// Compiles `file` (once per run) and puts it into the guest (once per boot); returns its
    /// guest path.
    fn upload_overlay(&mut self, file: &Path, timeout: Duration) -> Result<String, StepError> {
        if !self.overlays.contains_key(file) {
            let compiled = self.compile_overlay(file)?;
            self.overlays.insert(file.to_path_buf(), compiled);
        }
        let o = &self.overlays[file];
        if o.uploaded {
            return Ok(o.guest_path.clone());
        }
        let (path, cmd) = (o.guest_path.clone(), upload_cmd(o));
        self.sh_ok(&cmd, timeout, "uploading the overlay")?;
        if let Some(o) = self.overlays.get_mut(file) {
            o.uploaded = true;
        }
        Ok(path)
    }

    fn compile_overlay(&self, file: &Path) -> Result<CompiledOverlay, StepError> {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let out: PathBuf = self.dir.file(&format!("{stem}.dtbo"));
        crate::provision::overlay::compile(file, &out)
            .map_err(|e| StepError::Rig(error_chain(&e)))?;
        let bytes =
            std::fs::read(&out).map_err(|e| StepError::Rig(format!("{}: {e}", out.display())))?;
        Ok(CompiledOverlay::new(bytes))
    }
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
