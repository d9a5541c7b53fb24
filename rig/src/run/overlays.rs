//! DT overlay steps: compile once per run with dtc, upload, apply through configfs.

use super::exec::{error_chain, Exec, StepError};
use crate::scenario;
use base64::Engine as _;
use std::time::Duration;

impl Exec<'_> {
    pub(super) fn overlay_load(&mut self, o: &scenario::OverlayLoadStep) -> Result<(), StepError> {
        self.upload_overlay(&o.file, &o.id, o.timeout)?;
        let cmd = self.overlay_apply_cmd(&o.id);
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
