//! The flavor catalogue: which config fragments (`images/kconfig/`) and patch sets
//! (`images/patches/<series>/`) make each `rig-<SERIES>[-FLAVOR]`, and the names that select them.

use super::{KbuildError, Series};
use crate::host::board::Arch;
use std::path::{Path, PathBuf};

/// A flavor: which fragments (from `images/kconfig/`) and patch sets (`images/patches/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flavor {
    pub name: String,
    pub fragments: Vec<String>,
    pub patch_sets: Vec<String>,
}

/// The default flavor's fragments, in merge order.
pub const DEFAULT_FRAGMENTS: &[&str] = &["base", "hotplug", "of", "devlink", "debug"];

/// One entry of the flavor catalogue: fragments merged after the default ones, patch sets
/// applied to the source, and what the flavor is for.
#[derive(Debug, Clone, Copy)]
pub struct FlavorSpec {
    pub name: &'static str,
    pub extra_fragments: &'static [&'static str],
    pub patch_sets: &'static [&'static str],
    pub about: &'static str,
}

/// Every flavor rig knows; the default one is `""`.
pub const CATALOGUE: &[FlavorSpec] = &[
    FlavorSpec {
        name: "",
        extra_fragments: &[],
        patch_sets: &[],
        about: "lockdep, debug lists/objects, LKDTM, hot-plug, OF overlays, devlink, netdevsim",
    },
    FlavorSpec {
        name: "kasan",
        extra_fragments: &["kasan"],
        patch_sets: &[],
        about: "default + generic KASAN",
    },
    FlavorSpec {
        name: "kobject-release",
        extra_fragments: &["kobject-release"],
        patch_sets: &[],
        about: "default + delayed kobject release (widens use-after-release windows)",
    },
    FlavorSpec {
        name: "of-unittest",
        extra_fragments: &["of-unittest"],
        patch_sets: &[],
        about: "default + the OF unit tests at boot (arm64: 356 tests against QEMU's tree)",
    },
    FlavorSpec {
        name: "known-bad-devlink-wait",
        extra_fragments: &[],
        patch_sets: &["known-bad-devlink-wait"],
        about: "positive control (seeds 000, 002): overlay removal no longer waits for \
                device-link removal",
    },
    FlavorSpec {
        name: "known-bad-devlink-reload",
        extra_fragments: &[],
        patch_sets: &["known-bad-devlink-reload"],
        about: "positive control (seed 001): devlink reload runs on an instance unregistered \
                meanwhile",
    },
    FlavorSpec {
        name: "known-bad-hotplug-lock",
        extra_fragments: &[],
        patch_sets: &["known-bad-hotplug-lock"],
        about: "positive control (seed 003): memory online/offline from sysfs blocks on \
                device_hotplug_lock instead of backing off",
    },
    FlavorSpec {
        name: "known-bad-async-probe",
        extra_fragments: &[],
        patch_sets: &["known-bad-async-probe", "async-probe-window"],
        about: "positive control (seed 004): an asynchronous probe binds a device being deleted \
                (device_del()'s window held open 20 ms)",
    },
    FlavorSpec {
        name: "async-probe-window",
        extra_fragments: &[],
        patch_sets: &["async-probe-window"],
        about: "negative control (seed 004): the fixed kernel with the known-bad flavor's 20 ms \
                window in device_del()",
    },
];

/// The names of every flavor, default (`""`) first.
pub fn flavor_names() -> impl Iterator<Item = &'static str> {
    CATALOGUE.iter().map(|f| f.name)
}

/// The flavor called `name` (`""` or `default` for the default one).
pub fn flavor(name: &str) -> Result<Flavor, KbuildError> {
    let name = if name == "default" { "" } else { name };
    let spec =
        CATALOGUE
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| KbuildError::UnknownFlavor {
                flavor: name.to_string(),
                known: known_flavors(),
            })?;
    let fragments = DEFAULT_FRAGMENTS
        .iter()
        .chain(spec.extra_fragments)
        .map(|s| s.to_string())
        .collect();
    Ok(Flavor {
        name: name.to_string(),
        fragments,
        patch_sets: spec.patch_sets.iter().map(|s| s.to_string()).collect(),
    })
}

pub(super) fn known_flavors() -> String {
    flavor_names()
        .map(|f| if f.is_empty() { "(default)" } else { f })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rig-7.3` or `rig-7.3-FLAVOR`.
pub fn kernel_name(series: Series, flavor: &str) -> String {
    if flavor.is_empty() {
        format!("rig-{series}")
    } else {
        format!("rig-{series}-{flavor}")
    }
}

/// The series and flavor named by `rig-<SERIES>[-FLAVOR]`.
pub fn parse_kernel_name(name: &str) -> Result<(Series, String), KbuildError> {
    let unknown = || KbuildError::UnknownKernel {
        name: name.to_string(),
        known: known_flavors(),
    };
    let rest = name.strip_prefix("rig-").ok_or_else(unknown)?;
    let (series, rest) = Series::ALL
        .into_iter()
        .find_map(|s| {
            rest.strip_prefix(s.version())
                .filter(|r| r.is_empty() || r.starts_with('-'))
                .map(|r| (s, r))
        })
        .ok_or_else(unknown)?;
    let flavor = match rest {
        "" => "",
        r => r
            .strip_prefix('-')
            .filter(|f| !f.is_empty())
            .ok_or_else(unknown)?,
    };
    if !flavor_names().any(|f| f == flavor) {
        return Err(unknown());
    }
    Ok((series, flavor.to_string()))
}

/// The fragment files of a flavor for an arch and series, in merge order: for each fragment
/// `<f>.config`, then those present of `<f>.<arch>.config`, `<f>.<series>.config` and
/// `<f>.<arch>.<series>.config` (what a series renamed or added).
pub fn fragment_files(
    kconfig_dir: &Path,
    flavor: &Flavor,
    arch: Arch,
    series: Series,
) -> Result<Vec<PathBuf>, KbuildError> {
    let mut out = Vec::new();
    for f in &flavor.fragments {
        let common = kconfig_dir.join(format!("{f}.config"));
        if !common.is_file() {
            return Err(KbuildError::MissingFragment { path: common });
        }
        out.push(common);
        for variant in [
            format!("{f}.{arch}.config"),
            format!("{f}.{series}.config"),
            format!("{f}.{arch}.{series}.config"),
        ] {
            let path = kconfig_dir.join(variant);
            if path.is_file() {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// A flavor's patch set folder for a series: `images/patches/<series>/<set>/`.
pub fn patch_set_dir(patches_dir: &Path, series: Series, set: &str) -> PathBuf {
    patches_dir.join(series.version()).join(set)
}
