use super::*;

#[test]
fn the_embedded_tree_is_the_checkouts() {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(get("images/init/init").is_some());
    assert!(get("overlays/simple-node.dtso").is_some());
    assert!(get("scenarios/matrix.yaml").is_some());
    for a in files() {
        let on_disk = fs::read(checkout.join(a.path)).unwrap();
        assert!(on_disk == a.bytes, "{} differs from the checkout", a.path);
    }
}

#[test]
fn materialised_once_with_modes_and_again_when_damaged() {
    let cache = tempfile::tempdir().unwrap();
    let cache = Cache::at(cache.path());
    let dir = materialise(&cache).unwrap();
    assert_eq!(dir, cache.entry(CACHE_KIND, &key()));
    let mode = |p: &str| fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("images/init/init"), 0o755);
    assert_eq!(mode("images/init/etc/rig/init.d/50-ssh.sh"), 0o755);
    assert_eq!(mode("images/rootfs/packages.txt"), 0o644);
    assert_eq!(mode("images/init/etc"), 0o755);
    for a in files() {
        assert_eq!(fs::read(dir.join(a.path)).unwrap(), a.bytes, "{}", a.path);
    }
    // A damaged copy is not used: it is unpacked again.
    fs::write(dir.join("images/init/init"), "tampered").unwrap();
    let again = materialise(&cache).unwrap();
    assert_eq!(again, dir);
    assert_eq!(
        fs::read(dir.join("images/init/init")).unwrap(),
        get("images/init/init").unwrap()
    );
}

#[test]
fn two_processes_worth_of_threads_unpack_one_tree() {
    let cache = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| materialise(&Cache::at(cache.path())).unwrap()))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(dirs.windows(2).all(|w| w[0] == w[1]));
    let kind = cache.path().join(CACHE_KIND);
    let names: Vec<_> = fs::read_dir(&kind)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".lock-"))
        .collect();
    assert_eq!(names, [key().hex()], "no temporary folder is left");
}
