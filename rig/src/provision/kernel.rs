//! What a provisioned kernel is, whoever made it (Debian's package or a rig build): the leaf that
//! [`super::image`] and [`super::kbuild`] both produce and the rest of rig consumes.

use crate::host::board::Arch;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A kernel ready to boot: image, modules, config, and where it came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Kernel {
    /// The name it was asked for: `debian-6.1`, `rig-6.12`, `rig-6.12-kasan`.
    pub name: String,
    pub arch: Arch,
    /// `uname -r` of the kernel.
    pub release: String,
    /// The bootable image (bzImage / Image / vmlinuz; `vmlinux.pvh` for rig's x86_64 builds).
    pub image: PathBuf,
    /// A directory holding `lib/modules/<release>/` (modules.dep included).
    pub modules_root: PathBuf,
    /// The kernel's `.config`.
    pub config: PathBuf,
    /// Unstripped vmlinux for symbolization, when rig built it.
    pub vmlinux: Option<PathBuf>,
    /// Provenance for reports: package version and checksum, or source + patches + config hash.
    pub provenance: BTreeMap<String, String>,
}

/// The kernel's `.config` could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read kernel config {path}")]
pub struct ConfigUnreadable {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl Kernel {
    /// The `.config` as a map of `CONFIG_X` → value (`y`, `m`, `"str"`, number); unset options absent.
    pub fn config_options(&self) -> Result<BTreeMap<String, String>, ConfigUnreadable> {
        let text = std::fs::read_to_string(&self.config).map_err(|source| ConfigUnreadable {
            path: self.config.clone(),
            source,
        })?;
        Ok(parse_kconfig(&text))
    }

    /// The kernel's `VERSION.PATCHLEVEL`, read from its release (`7.3.4-rig` → `(7, 3)`).
    pub fn version(&self) -> Option<(u32, u32)> {
        release_version(&self.release)
    }

    /// Where an out-of-tree module `name` (built into `extra/`) would be.
    pub fn extra_module(&self, name: &str) -> PathBuf {
        self.modules_root
            .join("lib/modules")
            .join(&self.release)
            .join("extra")
            .join(format!("{name}.ko"))
    }
}

/// `VERSION.PATCHLEVEL` of a kernel release string (`6.1.0-50-amd64` → `(6, 1)`).
pub fn release_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Parses `.config` text: `CONFIG_X=v` lines; `# CONFIG_X is not set` and comments are skipped.
pub fn parse_kconfig(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_versions() {
        assert_eq!(release_version("7.3.4-rig"), Some((7, 3)));
        assert_eq!(release_version("6.1.0-50-amd64"), Some((6, 1)));
        assert_eq!(release_version("6.12.118-rig"), Some((6, 12)));
        assert_eq!(release_version("7.3"), Some((7, 3)));
        assert_eq!(release_version("rig"), None);
        assert_eq!(release_version("7"), None);
    }

    #[test]
    fn kconfig_parsing() {
        let m = parse_kconfig("# c\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n");
        assert_eq!(m.get("CONFIG_A").map(String::as_str), Some("y"));
        assert!(!m.contains_key("CONFIG_B"));
        assert_eq!(m.get("CONFIG_C").map(String::as_str), Some("\"x y\""));
    }
}
