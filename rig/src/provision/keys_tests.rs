//! The cache keys rig's assets give (kernel builds, rootfs, initramfs init, Debian kernels) are
//! the same whether the assets are read from the checkout or from the copy embedded in the
//! binary (`crate::assets`): a CI cache of kernels built from a checkout stays valid.

use crate::host::board::Arch;
use crate::host::cache::Cache;
use crate::provision::image::{debian, initramfs, rootfs::RootfsRecipe};
use std::path::Path;

/// Every cache key that depends on the assets below `repo`, labelled.
fn keys(repo: &Path, tarball: &Path) -> Vec<(String, String)> {
    let mut out = crate::provision::kbuild::keys_for_assets(repo, tarball);
    for arch in [Arch::X86_64, Arch::Arm64] {
        let rootfs = RootfsRecipe::load(arch, repo).and_then(|r| r.key());
        out.push((format!("rootfs {arch}"), rootfs.unwrap().hex()));
        let pin = debian::pin_from(&repo.join(debian::MANIFEST), arch).unwrap();
        out.push((
            format!("debian-kernel {arch}"),
            debian::key(arch, &pin).hex(),
        ));
    }
    let init = initramfs::init_key(&repo.join("images/init")).unwrap();
    out.push(("initramfs-init".into(), init.hex()));
    out
}

#[test]
fn embedded_assets_give_the_checkouts_cache_keys() {
    let tarball = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tarball.path(), "stand-in for linux-source-6.12.tar.xz").unwrap();
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let embedded = crate::assets::materialise(&Cache::at(cache.path())).unwrap();
    let want = keys(checkout, tarball.path());
    let have = keys(&embedded, tarball.path());
    for (label, key) in &have {
        eprintln!("{label:<40} {key}");
    }
    assert!(
        want.iter().all(|(_, k)| !k.starts_with("error")),
        "{want:?}"
    );
    assert_eq!(have, want);
    // And through the path every caller uses.
    assert_eq!(keys(&crate::repo_root(), tarball.path()), want);
}
