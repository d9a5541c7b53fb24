//! DT overlay steps: compile once per run with dtc, upload, apply through configfs.

use super::exec::{error_chain, Exec, StepError};
use crate::scenario;
use base64::Engine as _;
use std::time::Duration;

impl Exec<'_> {
    pub(super) fn overlay_load(&mut self, o: &scenario::OverlayLoadStep) -> Result<(), StepError> {
        self.upload_overlay(&o.file, &o.id, o.timeout)?;
        let cmd = match &o.under_pci {
            None => self.overlay_apply_cmd(&o.id),
            Some(dev) => {
                let addr = self.pci_address_now(dev).ok_or_else(|| {
                    StepError::Kernel(format!("PCI device {dev} has no address in the guest"))
                })?;
                let d = format!("/sys/kernel/config/device-tree/overlays/{}", o.id);
                format!(
                    "{}; cat /tmp/rig-overlay-{}.dtbo > {d}/dtbo; cat {d}/status",
                    base_node_cmd(&o.id, &addr),
                    o.id
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

    pub(super) fn upload_overlay(
        &mut self,
        file: &std::path::Path,
        id: &str,
        timeout: Duration,
    ) -> Result<(), StepError> {
        let dtbo = match self.overlays.get(file) {
            Some(p) => p.clone(),
            None => {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let out = self.dir.file(&format!("{stem}.dtbo"));
                crate::provision::overlay::compile(file, &out)
                    .map_err(|e| StepError::Rig(error_chain(&e)))?;
                self.overlays.insert(file.to_path_buf(), out.clone());
                out
            }
        };
        let bytes =
            std::fs::read(&dtbo).map_err(|e| StepError::Rig(format!("{}: {e}", dtbo.display())))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        self.sh_ok(
            &format!("echo {b64} | base64 -d > /tmp/rig-overlay-{id}.dtbo"),
            timeout,
            "uploading the overlay",
        )
        .map(drop)
    }

    pub(super) fn overlay_apply_cmd(&self, id: &str) -> String {
        let d = format!("/sys/kernel/config/device-tree/overlays/{id}");
        format!("mkdir {d} && cat /tmp/rig-overlay-{id}.dtbo > {d}/dtbo; cat {d}/status")
    }
}

/// Creates overlay `id`'s configfs directory with `base` set to the DT node the kernel made for
/// the PCI function at `addr` (PCI_DYNAMIC_OF_NODES), so `target-path = ""` means that node.
fn base_node_cmd(id: &str, addr: &str) -> String {
    let d = format!("/sys/kernel/config/device-tree/overlays/{id}");
    format!(
        "n=$(readlink -f /sys/bus/pci/devices/{addr}/of_node) && [ -d \"$n\" ] || \
         {{ echo \"PCI function {addr} has no device tree node\"; exit 1; }}; \
         mkdir {d} && echo \"${{n#/sys/firmware/devicetree/base}}\" > {d}/base || exit 1"
    )
}

#[cfg(test)]
mod tests {
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
}
