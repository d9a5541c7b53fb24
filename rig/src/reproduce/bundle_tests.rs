//! Bundles as untrusted input: what `--bundle` packs, and what unpacking refuses.

use super::tests::{folder_record, run_folder, write_record};
use super::unpack::{unpack_within, Limits};
use super::*;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{Read, Write};

#[test]
fn a_bundle_unpacks_into_a_run_folder_with_the_same_record() {
    let dir = run_folder();
    let out = dir.path().join("b.tar.gz");
    let cache = tempfile::tempdir().unwrap();
    let b = bundle(dir.path(), &out, &Cache::at(cache.path())).unwrap();
    for want in [
        RECORD_FILE,
        "report.json",
        "scenario/fake-warning.yaml",
        BUNDLE_README,
    ] {
        assert!(
            b.held.iter().any(|h| h == want),
            "{want} not in {:?}",
            b.held
        );
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let r = open(&out, elsewhere.path()).unwrap();
    assert!(r.dir.starts_with(elsewhere.path()));
    assert_eq!(r.record, open(dir.path(), dir.path()).unwrap().record);
    assert_eq!(r.failing_titles, ["WARNING in device_del"]);
    let readme = std::fs::read_to_string(r.dir.join(BUNDLE_README)).unwrap();
    assert!(readme.contains("rig reproduce b.tar.gz"), "{readme}");
    assert!(readme.contains("version: 6.1.176-1"), "{readme}");

    let junk = elsewhere.path().join("junk.tar.gz");
    std::fs::write(&junk, "not a tarball").unwrap();
    let e = open(&junk, elsewhere.path()).unwrap_err();
    assert!(e.to_string().contains("not a rig bundle"), "{e}");
}

/// A file the record points at that rig does not own is not packed, whatever the record says.
#[test]
fn a_bundle_packs_the_kernel_config_only_from_rigs_cache() {
    let dir = run_folder();
    let secrets = tempfile::tempdir().unwrap();
    let secret = secrets.path().join("id_ed25519");
    std::fs::write(&secret, "PRIVATE KEY").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut rec = folder_record(dir.path());
    rec["kernel"]["config"] = secret.display().to_string().into();
    write_record(dir.path(), &rec);
    let out = dir.path().join("b.tar.gz");
    let b = bundle(dir.path(), &out, &Cache::at(cache.path())).unwrap();
    assert!(!b.held.iter().any(|h| h == "kernel/config"), "{:?}", b.held);
    assert!(
        b.left_out
            .iter()
            .any(|w| w.contains("is not a kernel's config in rig's cache")),
        "{:?}",
        b.left_out
    );
    let unpacked = open(&out, secrets.path()).unwrap();
    assert!(!unpacked.dir.join("kernel/config").exists());

    // A file in the cache that is not a kernel entry's config is not packed either …
    let entry = cache.path().join("debian-kernel/0123abcd");
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::write(entry.join("config-6.1"), "CONFIG_X=y\n").unwrap();
    std::fs::write(entry.join("other"), "not the config").unwrap();
    std::fs::write(entry.join("kernel.json"), r#"{"config": "config-6.1"}"#).unwrap();
    rec["kernel"]["config"] = entry.join("other").display().to_string().into();
    write_record(dir.path(), &rec);
    let b = bundle(dir.path(), &out, &Cache::at(cache.path())).unwrap();
    assert!(!b.held.iter().any(|h| h == "kernel/config"), "{:?}", b.held);
    // … and the entry's own config is.
    rec["kernel"]["config"] = entry.join("config-6.1").display().to_string().into();
    write_record(dir.path(), &rec);
    let b = bundle(dir.path(), &out, &Cache::at(cache.path())).unwrap();
    assert!(b.held.iter().any(|h| h == "kernel/config"), "{:?}", b.held);
}

#[test]
fn a_bundle_packs_fragments_by_flavor_not_by_the_records_list() {
    let dir = run_folder();
    let mut rec = folder_record(dir.path());
    rec["kernel"]["name"] = "rig-6.12".into();
    rec["kernel"]["provenance"] = serde_json::json!({
        "flavor": "",
        "fragments": "../../Cargo.toml ../../../../../../etc/hostname",
    });
    write_record(dir.path(), &rec);
    let out = dir.path().join("b.tar.gz");
    let cache = tempfile::tempdir().unwrap();
    let b = bundle(dir.path(), &out, &Cache::at(cache.path())).unwrap();
    let frags: Vec<&String> = b
        .held
        .iter()
        .filter(|h| h.starts_with("kernel/fragments/"))
        .collect();
    assert!(!frags.is_empty(), "{:?}", b.held);
    for f in frags {
        assert!(f.ends_with(".config"), "{f}");
    }
    assert!(!b
        .held
        .iter()
        .any(|h| h.contains("Cargo.toml") || h.contains("hostname")));
}

#[test]
fn a_run_folder_file_that_links_out_is_not_packed() {
    let dir = run_folder();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("secret");
    std::fs::write(&secret, "secret").unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("console.log")).unwrap();
    let out = dir.path().join("b.tar.gz");
    let e = bundle(dir.path(), &out, &Cache::at(elsewhere.path())).unwrap_err();
    assert!(e.is_bad_input());
    assert!(
        e.to_string().contains("console.log: a symbolic link"),
        "{e}"
    );
    assert!(!out.exists());
}

/// A `.tar.gz` of `entries`, built by hand so it can hold what `tar::Builder` refuses to write.
fn tarball(path: &Path, entries: &[(&[u8], tar::EntryType, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let mut gz = GzEncoder::new(f, Compression::fast());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.as_old_mut().linkname[..11].copy_from_slice(b"/etc/passwd");
            h.set_size(0);
        }
        h.set_cksum();
        gz.write_all(h.as_bytes()).unwrap();
        if !matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            gz.write_all(data).unwrap();
            let pad = (512 - data.len() % 512) % 512;
            gz.write_all(&vec![0; pad]).unwrap();
        }
    }
    gz.write_all(&[0; 1024]).unwrap();
    gz.finish().unwrap();
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "b.tar.gz")
        .collect()
}

#[test]
fn unpacking_refuses_paths_out_of_the_folder_links_and_devices() {
    use tar::EntryType::*;
    let cases: [(&[u8], tar::EntryType, &str); 8] = [
        (b"/tmp/rig-abs", Regular, "has an absolute path"),
        (b"../escape", Regular, "not a plain relative path"),
        (
            b"scenario/../../escape",
            Regular,
            "not a plain relative path",
        ),
        (b"./../escape", Regular, "not a plain relative path"),
        (b"scenario/overlays", Symlink, "is a symbolic link"),
        (b"run.json", Link, "is a hard link"),
        (b"dev-null", Char, "is a character device"),
        (b"fifo", Fifo, "is a FIFO"),
    ];
    for (name, kind, says) in cases {
        let d = tempfile::tempdir().unwrap();
        let b = d.path().join("b.tar.gz");
        tarball(&b, &[(b"run.json", Regular, b"{}"), (name, kind, b"x")]);
        let e = unpack(&b, d.path()).unwrap_err();
        assert!(e.is_bad_input());
        assert!(
            e.to_string().contains(says),
            "{}: {e}",
            String::from_utf8_lossy(name)
        );
        assert!(leftovers(d.path()).is_empty(), "{:?}", leftovers(d.path()));
    }
    assert!(!Path::new("/tmp/rig-abs").exists());
}

#[test]
fn unpacking_a_gzip_bomb_stops_at_the_cap_before_writing_it() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("b.tar.gz");
    // One entry of 300 MiB of zeros: about 300 KiB compressed.
    let size: u64 = 300 << 20;
    let f = std::fs::File::create(&b).unwrap();
    let mut tar = tar::Builder::new(GzEncoder::new(f, Compression::fast()));
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "console.log", std::io::repeat(0).take(size))
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let packed = std::fs::metadata(&b).unwrap().len();
    assert!(packed < 2 << 20, "{packed} bytes");
    let e = unpack(&b, d.path()).unwrap_err();
    assert!(e.is_bad_input());
    assert!(
        e.to_string().contains(&format!(
            "entry `console.log` ({size} bytes) would take it past {MAX_UNPACKED_BYTES} bytes unpacked"
        )),
        "{e}"
    );
    assert!(leftovers(d.path()).is_empty(), "{:?}", leftovers(d.path()));

    // Many small files that add up pass the cap as well.
    let many: Vec<(Vec<u8>, Vec<u8>)> = (0..40)
        .map(|i| (format!("f{i}").into_bytes(), vec![7u8; 1000]))
        .collect();
    let entries: Vec<(&[u8], tar::EntryType, &[u8])> = many
        .iter()
        .map(|(n, data)| (n.as_slice(), tar::EntryType::Regular, data.as_slice()))
        .collect();
    tarball(&b, &entries);
    let small = Limits {
        bytes: 30_000,
        entries: MAX_ENTRIES,
    };
    let e = unpack_within(&b, d.path(), small).unwrap_err();
    assert!(
        e.to_string().contains("would take it past 30000 bytes"),
        "{e}"
    );
    assert!(leftovers(d.path()).is_empty());
}

#[test]
fn unpacking_stops_at_the_entry_cap() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("b.tar.gz");
    let names: Vec<Vec<u8>> = (0..=MAX_ENTRIES)
        .map(|i| format!("f{i}").into_bytes())
        .collect();
    let entries: Vec<(&[u8], tar::EntryType, &[u8])> = names
        .iter()
        .map(|n| (n.as_slice(), tar::EntryType::Regular, &b""[..]))
        .collect();
    tarball(&b, &entries);
    let e = unpack(&b, d.path()).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("more than {MAX_ENTRIES} entries")),
        "{e}"
    );
    assert!(leftovers(d.path()).is_empty());
}

/// `tar czf b.tar.gz -C folder .` writes `./` and `./name`: a repacked bundle still unpacks.
#[test]
fn a_bundle_packed_by_tar_with_dot_paths_unpacks() {
    use tar::EntryType::*;
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("b.tar.gz");
    tarball(
        &b,
        &[
            (b"./", Directory, b""),
            (b"./scenario/", Directory, b""),
            (b"./run.json", Regular, b"{}"),
            (b"./scenario/x.yaml", Regular, b"name: x"),
        ],
    );
    let dir = unpack(&b, d.path()).unwrap();
    assert_eq!(std::fs::read(dir.join("run.json")).unwrap(), b"{}");
    assert_eq!(
        std::fs::read(dir.join("scenario/x.yaml")).unwrap(),
        b"name: x"
    );
}
