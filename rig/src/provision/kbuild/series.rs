//! The Debian kernel sources rig builds its own kernels from, one per series: `rig-6.12` from
//! the host's `linux-source-6.12` package (`/usr/src/linux-source-6.12.tar.xz`), `rig-7.3` from
//! `linux-source-7.3` fetched into rig's cache.
//!
//! **Fetched, pinned.** `images/linux-source-<series>.json` names the package, its exact version,
//! the Debian suites it comes from and the tarball's sha256. rig takes the package the way it
//! takes Debian's kernel images: `mmdebstrap --variant=extract` into a scratch folder (private apt
//! lists; the host's apt sources and dpkg are never touched), checks the tarball's hash against
//! the pin, and keeps only the tarball (`<cache>/kernel-tarball/<key>/`). The pin is the source's
//! identity, so a build's cache key is known before anything is fetched.

use super::KbuildError;
use crate::host::cache::{sha256_file, Cache, CacheKey};
use crate::host::events::{Event, Events};
use crate::host::process::run_logged;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Debian kernel source series rig builds `rig-<series>[-FLAVOR]` from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Series {
    /// Linux 6.12 (LTS), from the host's `linux-source-6.12` package.
    V6_12,
    /// Linux 7.3, `linux-source-7.3` from trixie-backports, fetched and pinned.
    V7_3,
}

/// Where the host's package puts the 6.12 tarball.
pub const HOST_612_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

impl Series {
    /// The series `rig kernel build --source` and `rig kernel bench` default to.
    pub const DEFAULT: Series = Series::V7_3;

    /// Every series, newest first (the order `rig kernel list` shows them in).
    pub const ALL: [Series; 2] = [Series::V7_3, Series::V6_12];

    /// `7.3`: the part of a kernel name after `rig-`.
    pub fn version(self) -> &'static str {
        match self {
            Series::V6_12 => "6.12",
            Series::V7_3 => "7.3",
        }
    }

    /// The source's name (`rig kernel build --source`): `debian-7.3`.
    pub fn source_name(self) -> String {
        format!("debian-{}", self.version())
    }

    /// The folder the tarball unpacks to: `linux-source-7.3`.
    pub fn tarball_dir(self) -> String {
        format!("linux-source-{}", self.version())
    }

    /// The series a version names (`6.12`, `7.3`).
    pub fn from_version(v: &str) -> Option<Series> {
        Series::ALL.into_iter().find(|s| s.version() == v)
    }

    /// The pin manifest's path relative to the repository (fetched series only).
    pub fn pin_manifest(self) -> Option<String> {
        match self {
            Series::V6_12 => None,
            Series::V7_3 => Some(format!("images/linux-source-{}.json", self.version())),
        }
    }
}

/// The series whose fragments and patches fit a kernel tree: the one of the tree's own
/// `VERSION.PATCHLEVEL` (its Makefile), else the newest older one, else the oldest.
pub fn of_tree(tree: &Path) -> Series {
    let text = fs::read_to_string(tree.join("Makefile")).unwrap_or_default();
    let field = |name: &str| -> Option<u32> {
        text.lines().take(20).find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().parse().ok()).flatten()
        })
    };
    let numeric = |s: Series| -> (u32, u32) {
        let (a, b) = s.version().split_once('.').unwrap_or(("0", "0"));
        (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
    };
    let oldest = Series::ALL[Series::ALL.len() - 1];
    match (field("VERSION"), field("PATCHLEVEL")) {
        (Some(v), Some(p)) => Series::ALL
            .into_iter()
            .find(|s| numeric(*s) <= (v, p))
            .unwrap_or(oldest),
        _ => oldest,
    }
}

impl std::fmt::Display for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.version())
    }
}

/// What a manifest pins for a fetched source package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePin {
    #[serde(rename = "_comment")]
    pub comment: Option<String>,
    /// The suite apt resolves from (`trixie`), and the one the package lives in
    /// (`trixie-backports`): both go into the private source list.
    pub suites: Vec<String>,
    pub package: String,
    pub version: String,
    /// The tarball inside the package (`usr/src/linux-source-7.3.tar.xz`).
    pub tarball: String,
    pub tarball_sha256: String,
}

/// Reads and checks the pin at `path`.
pub fn read_pin(path: &Path) -> Result<SourcePin, KbuildError> {
    let text = fs::read_to_string(path).map_err(|source| KbuildError::Io {
        what: "cannot read the kernel source pin".into(),
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |detail: String| KbuildError::BadPin {
        path: path.to_path_buf(),
        detail,
    };
    let pin: SourcePin = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.~_:/".contains(c))
    };
    if pin.suites.is_empty() || !pin.suites.iter().all(|s| safe(s)) {
        return Err(bad("`suites` must name one or more Debian suites".into()));
    }
    for (field, value) in [
        ("package", &pin.package),
        ("version", &pin.version),
        ("tarball", &pin.tarball),
    ] {
        if !safe(value) || value.contains("..") {
            return Err(bad(format!("`{field}` is not a plain name: {value:?}")));
        }
    }
    if pin.tarball.starts_with('/') {
        return Err(bad(
            "`tarball` must be relative to the package's root".into()
        ));
    }
    if pin.tarball_sha256.len() != 64 || !pin.tarball_sha256.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Err(bad("`tarball_sha256` must be 64 hex digits".into()));
    }
    Ok(pin)
}

/// The pin of a fetched series, from the assets below `repo`.
pub fn pin(series: Series, repo: &Path) -> Result<Option<SourcePin>, KbuildError> {
    series
        .pin_manifest()
        .map(|rel| read_pin(&repo.join(rel)))
        .transpose()
}

const TARBALL_KIND: &str = "kernel-tarball";
/// Bumped when the fetch below changes what lands in an entry.
const FETCH_RECIPE: &str = "kernel-tarball-1";

/// The fetched tarball for `pin` (fetched on first use, then from the cache).
pub fn fetched_tarball(
    series: Series,
    pin: &SourcePin,
    cache: &Cache,
    events: &Events,
) -> Result<PathBuf, KbuildError> {
    let mut key = CacheKey::new(TARBALL_KIND);
    key.str("recipe", FETCH_RECIPE)
        .str("package", &pin.package)
        .str("version", &pin.version)
        .str("sha256", &pin.tarball_sha256);
    let file = format!("{}.tar.xz", series.tarball_dir());
    let step = format!("kernel source {}", series.source_name());
    let detail = || {
        Some(format!(
            "fetching Debian's {}={} ({})",
            pin.package,
            pin.version,
            pin.suites.join(", ")
        ))
    };
    let entry = cache.provision(TARBALL_KIND, &key, events, &step, detail, |dir| {
        fetch_into(pin, dir, &file, events, &step)
    })?;
    Ok(entry.join(file))
}

/// `mmdebstrap --variant=extract` of the pinned package into a scratch folder inside `dir`,
/// then the tarball (hash checked) moved to `dir/file` and the scratch removed.
fn fetch_into(
    pin: &SourcePin,
    dir: &Path,
    file: &str,
    events: &Events,
    step: &str,
) -> Result<(), KbuildError> {
    let scratch = dir.join("extract");
    let log = dir.join("fetch.log");
    let mirror = crate::provision::image::rootfs::mirror();
    events.emit(Event::StepProgress {
        step: step.to_string(),
        message: format!(
            "mmdebstrap --variant=extract {}={}",
            pin.package, pin.version
        ),
        fraction: None,
    });
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg("--variant=extract")
        .arg(format!("--architectures={}", host_debian_arch()))
        .arg(format!("--include={}={}", pin.package, pin.version))
        .arg(&pin.suites[0])
        .arg(&scratch);
    for suite in &pin.suites {
        cmd.arg(format!("deb {mirror} {suite} main"));
    }
    run_logged(cmd, &log)?;
    let got = scratch.join(&pin.tarball);
    if !got.is_file() {
        return Err(KbuildError::BadPin {
            path: got,
            detail: format!("{}={} did not hold this file", pin.package, pin.version),
        });
    }
    let sha = sha256_file(&got)?;
    if sha != pin.tarball_sha256 {
        return Err(KbuildError::PinMismatch {
            what: format!("{}={} {}", pin.package, pin.version, pin.tarball),
            want: pin.tarball_sha256.clone(),
            got: sha,
        });
    }
    let dest = dir.join(file);
    fs::rename(&got, &dest).map_err(|source| KbuildError::Io {
        what: "cannot keep the fetched tarball".into(),
        path: dest.clone(),
        source,
    })?;
    fs::remove_dir_all(&scratch).map_err(|source| KbuildError::Io {
        what: "cannot remove the extraction folder".into(),
        path: scratch.clone(),
        source,
    })
}

/// The host's Debian architecture (the extract variant fetches arch-independent source
/// packages for it).
fn host_debian_arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("pin.json");
        fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn names_round_trip() {
        for s in Series::ALL {
            assert_eq!(Series::from_version(s.version()), Some(s));
        }
        assert_eq!(Series::V7_3.source_name(), "debian-7.3");
        assert_eq!(Series::V6_12.tarball_dir(), "linux-source-6.12");
        assert_eq!(Series::from_version("6.1"), None);
    }

    #[test]
    fn a_tree_gets_the_series_of_its_version() {
        let d = tempfile::tempdir().unwrap();
        let at = |v: &str| {
            let (a, b) = v.split_once('.').unwrap();
            fs::write(
                d.path().join("Makefile"),
                format!("# SPDX\nVERSION = {a}\nPATCHLEVEL = {b}\nSUBLEVEL = 0\n"),
            )
            .unwrap();
            of_tree(d.path())
        };
        assert_eq!(at("7.3"), Series::V7_3);
        assert_eq!(at("7.9"), Series::V7_3);
        assert_eq!(at("6.12"), Series::V6_12);
        assert_eq!(at("7.1"), Series::V6_12);
        assert_eq!(at("5.10"), Series::V6_12);
        fs::remove_file(d.path().join("Makefile")).unwrap();
        assert_eq!(of_tree(d.path()), Series::V6_12);
    }

    #[test]
    fn the_checkouts_pins_read() {
        let repo = crate::repo_root();
        let p = pin(Series::V7_3, &repo).unwrap().unwrap();
        assert_eq!(p.package, "linux-source-7.3");
        assert!(p.tarball.ends_with("linux-source-7.3.tar.xz"));
        assert!(pin(Series::V6_12, &repo).unwrap().is_none());
    }

    #[test]
    fn a_pin_that_could_reach_the_host_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let good = r#"{"suites":["trixie"],"package":"linux-source-7.3","version":"7.3.4-1",
            "tarball":"usr/src/linux-source-7.3.tar.xz","tarball_sha256":"%SHA%"}"#
            .replace("%SHA%", &"a".repeat(64));
        read_pin(&write(d.path(), &good)).unwrap();
        for (from, to, says) in [
            ("linux-source-7.3\",\"version", "x y\",\"version", "package"),
            ("usr/src/linux", "../../etc/linux", "tarball"),
            ("\"usr/src/", "\"/usr/src/", "relative"),
            ("[\"trixie\"]", "[]", "suites"),
            ("\"7.3.4-1\"", "\"7.3.4-1 --x\"", "version"),
        ] {
            let text = good.replacen(from, to, 1);
            assert_ne!(text, good, "{from}");
            let e = read_pin(&write(d.path(), &text)).unwrap_err();
            assert!(e.to_string().contains(says), "{from}: {e}");
        }
        let e = read_pin(&write(d.path(), &good.replace(&"a".repeat(64), "abc"))).unwrap_err();
        assert!(e.to_string().contains("64 hex"), "{e}");
        let e = read_pin(&write(d.path(), &good.replace("\"suites\"", "\"suite\""))).unwrap_err();
        assert!(e.to_string().contains("pin.json"), "{e}");
    }
}
