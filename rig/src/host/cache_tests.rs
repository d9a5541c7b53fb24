//! Tests of [`super`]: keys, builds once, locks, leftovers, damaged entries.
use super::*;

#[test]
fn key_depends_on_labels_and_values() {
    let a = CacheKey::new("k").str("a", "bc").hex();
    let b = CacheKey::new("k").str("ab", "c").hex();
    let c = CacheKey::new("k").str("a", "bc").hex();
    assert_ne!(a, b);
    assert_eq!(a, c);
    assert_ne!(CacheKey::new("x").hex(), CacheKey::new("y").hex());
}

#[test]
fn tree_key_follows_content_not_mtime() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("f"), "one").unwrap();
    let k1 = CacheKey::new("t").tree("t", d.path()).unwrap().hex();
    fs::write(d.path().join("f"), "one").unwrap();
    let k2 = CacheKey::new("t").tree("t", d.path()).unwrap().hex();
    fs::write(d.path().join("f"), "two").unwrap();
    let k3 = CacheKey::new("t").tree("t", d.path()).unwrap().hex();
    assert_eq!(k1, k2);
    assert_ne!(k1, k3);
}

#[test]
fn get_or_build_builds_once_and_cleans_up_failures() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path());
    let key = CacheKey::new("x");
    let mut builds = 0;
    for _ in 0..2 {
        let p = cache
            .get_or_build::<CacheError>("thing", &key, |dir| {
                builds += 1;
                fs::write(dir.join("out"), "ok").unwrap();
                Ok(())
            })
            .unwrap();
        assert_eq!(fs::read_to_string(p.join("out")).unwrap(), "ok");
    }
    assert_eq!(builds, 1);

    let bad = CacheKey::new("bad");
    let r = cache.get_or_build::<CacheError>("thing", &bad, |_| {
        Err(CacheError::Hash {
            path: "/nope".into(),
            source: io::Error::other("boom"),
        })
    });
    assert!(r.is_err());
    assert!(!cache.entry("thing", &bad).exists());
    let leftovers: Vec<_> = fs::read_dir(d.path().join("thing"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn concurrent_builders_of_one_entry_build_it_once_and_never_overlap() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path());
    let key = CacheKey::new("shared");
    let builds = Arc::new(AtomicUsize::new(0));
    let inside = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicUsize::new(0));
    // Builders that found the entry's lock taken.
    let waiting = Arc::new((Mutex::new(0usize), Condvar::new()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (cache, key) = (cache.clone(), key.clone());
            let (builds, inside, overlapped) = (builds.clone(), inside.clone(), overlapped.clone());
            let waiting = waiting.clone();
            std::thread::spawn(move || {
                let (count, changed) = &*waiting;
                // flock is per open file description: threads contend like processes do.
                cache
                    .get_or_build_with::<CacheError>(
                        "thing",
                        &key,
                        &mut || {
                            *count.lock().unwrap() += 1;
                            changed.notify_all();
                        },
                        &mut |_, _| {},
                        |dir| {
                            if inside.fetch_add(1, Ordering::SeqCst) > 0 {
                                overlapped.fetch_add(1, Ordering::SeqCst);
                            }
                            builds.fetch_add(1, Ordering::SeqCst);
                            // Still building when every other builder has come to the lock.
                            let n = count.lock().unwrap();
                            let ten_s = std::time::Duration::from_secs(10);
                            drop(changed.wait_timeout_while(n, ten_s, |n| *n < 3).unwrap());
                            fs::write(dir.join("out"), "whole").unwrap();
                            inside.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        },
                    )
                    .unwrap()
            })
        })
        .collect();
    for t in threads {
        let p = t.join().unwrap();
        assert_eq!(fs::read_to_string(p.join("out")).unwrap(), "whole");
    }
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    assert_eq!(overlapped.load(Ordering::SeqCst), 0);
    assert_eq!(
        *waiting.0.lock().unwrap(),
        3,
        "not every other builder waited"
    );
}

#[test]
fn a_build_waits_for_another_process_holding_the_entry_lock() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path());
    let key = CacheKey::new("other-process");
    let kind_dir = d.path().join("thing");
    fs::create_dir_all(&kind_dir).unwrap();
    let lock = kind_dir.join(format!(".lock-{}", key.hex()));
    // Another process holds the lock, says so, and publishes the entry once told that we wait
    // for it (or, should we never say so, after 30 s).
    let entry = cache.entry("thing", &key);
    let script = format!(
        "echo held; timeout 30 head -n 1 >/dev/null; mkdir {t}; echo theirs > {t}/out; mv {t} {e}",
        t = kind_dir.join(".tmp-theirs").display(),
        e = entry.display()
    );
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("flock(1) from util-linux");
    let mut said = String::new();
    let mut from_holder = io::BufReader::new(holder.stdout.take().unwrap());
    io::BufRead::read_line(&mut from_holder, &mut said).unwrap();
    assert_eq!(said, "held\n", "the other process never took the lock");
    let mut go = holder.stdin.take();
    let mut waited = false;
    let mut built = false;
    let p = cache
        .get_or_build_with::<CacheError>(
            "thing",
            &key,
            &mut || {
                waited = true;
                // It may publish now: we are about to block on its lock.
                if let Some(mut go) = go.take() {
                    go.write_all(b"go\n").unwrap();
                }
            },
            &mut |_, _| {},
            |_| {
                built = true;
                Ok(())
            },
        )
        .unwrap();
    drop(go);
    assert!(holder.wait().unwrap().success());
    assert!(waited, "did not wait for the other process");
    assert!(
        !built,
        "built although the other process published the entry"
    );
    assert_eq!(fs::read_to_string(p.join("out")).unwrap(), "theirs\n");
}

#[test]
fn a_killed_build_leaves_no_entry_and_its_leftovers_are_never_used() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path());
    let key = CacheKey::new("killed");
    let kind_dir = d.path().join("thing");
    fs::create_dir_all(&kind_dir).unwrap();
    // What a build SIGKILLed halfway leaves: a temporary directory with a truncated file.
    let stale = kind_dir.join(format!(".tmp-{}-dead01", key.hex()));
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join("out"), "trunc").unwrap();
    assert!(!cache.entry("thing", &key).exists());
    let p = cache
        .get_or_build::<CacheError>("thing", &key, |dir| {
            assert!(
                !dir.join("out").exists(),
                "the build started from leftovers"
            );
            fs::write(dir.join("out"), "complete").unwrap();
            Ok(())
        })
        .unwrap();
    assert_eq!(fs::read_to_string(p.join("out")).unwrap(), "complete");
    assert!(
        !stale.exists(),
        "the dead build's leftovers were not removed"
    );
    // A build that panics (unwinds) publishes nothing either.
    let key2 = CacheKey::new("panics");
    let c2 = cache.clone();
    let r = std::panic::catch_unwind(move || {
        let _ = c2.get_or_build::<CacheError>("thing", &key2, |dir| {
            fs::write(dir.join("out"), "half").unwrap();
            panic!("build died");
        });
    });
    assert!(r.is_err());
    assert!(!cache.entry("thing", &CacheKey::new("panics")).exists());
}

/// Builds `kind`/`key` in `cache` with two files; counts builds in `builds`, damage messages in
/// `damaged`.
fn build_two_files(
    cache: &Cache,
    key: &CacheKey,
    builds: &mut u32,
    damaged: &mut Vec<String>,
) -> PathBuf {
    cache
        .get_or_build_with::<CacheError>(
            "thing",
            key,
            &mut || {},
            &mut |_, why| damaged.push(why.to_string()),
            |dir| {
                *builds += 1;
                fs::write(dir.join("vmlinuz"), vec![0x5a; 8192]).unwrap();
                fs::create_dir(dir.join("lib")).unwrap();
                fs::write(dir.join("lib/modules.dep"), "a.ko:\n").unwrap();
                std::os::unix::fs::symlink("../vmlinuz", dir.join("lib/link")).unwrap();
                Ok(())
            },
        )
        .unwrap()
}

#[test]
fn a_published_entry_holds_a_manifest_of_every_file() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path());
    let key = CacheKey::new("sealed");
    let p = build_two_files(&cache, &key, &mut 0, &mut Vec::new());
    let text = fs::read_to_string(p.join(manifest::MANIFEST)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "rig-cache-manifest 1");
    assert_eq!(lines[1], "d lib");
    assert_eq!(lines[2], "l ../vmlinuz lib/link");
    assert!(lines[3].starts_with("f 6 ") && lines[3].ends_with(" lib/modules.dep"));
    assert!(lines[4].starts_with("f 8192 ") && lines[4].ends_with(" vmlinuz"));
    assert_eq!(lines[5], "end 4");
    assert_eq!(
        cache.verify("thing", &key, manifest::Depth::Full),
        Some(Ok(()))
    );
    assert_eq!(
        cache.verify("thing", &CacheKey::new("absent"), manifest::Depth::Full),
        None
    );
}

#[test]
fn a_damaged_entry_is_detected_discarded_and_rebuilt() {
    type Damage = fn(&Path);
    let cases: [(&str, Damage, &str); 7] = [
        // What a power loss leaves of a file renamed into place unsynced.
        (
            "zero-length",
            |e| fs::write(e.join("vmlinuz"), "").unwrap(),
            "vmlinuz is 0 bytes, the manifest says 8192",
        ),
        (
            "cut short",
            |e| {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(e.join("vmlinuz"))
                    .unwrap();
                f.set_len(4096).unwrap();
            },
            "vmlinuz is 4096 bytes",
        ),
        (
            "same size, other bytes",
            |e| fs::write(e.join("vmlinuz"), vec![0u8; 8192]).unwrap(),
            "vmlinuz does not hold what it held when made",
        ),
        (
            "missing",
            |e| fs::remove_file(e.join("lib/modules.dep")).unwrap(),
            "lib/modules.dep is missing",
        ),
        (
            "symlink retargeted",
            |e| {
                fs::remove_file(e.join("lib/link")).unwrap();
                std::os::unix::fs::symlink("/etc/passwd", e.join("lib/link")).unwrap();
            },
            "lib/link is no longer the same symlink",
        ),
        (
            "manifest cut short",
            |e| {
                let m = e.join(manifest::MANIFEST);
                let t = fs::read_to_string(&m).unwrap();
                fs::write(&m, &t[..t.len() / 2]).unwrap();
            },
            "its manifest is damaged",
        ),
        (
            "manifest emptied",
            |e| fs::write(e.join(manifest::MANIFEST), "").unwrap(),
            "its manifest is damaged",
        ),
    ];
    for (what, damage, says) in cases {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::at(d.path());
        let key = CacheKey::new("damaged");
        let (mut builds, mut damaged) = (0, Vec::new());
        let p = build_two_files(&cache, &key, &mut builds, &mut damaged);
        damage(&p);
        let p2 = build_two_files(&cache, &key, &mut builds, &mut damaged);
        assert_eq!(p2, p);
        assert_eq!(builds, 2, "{what}: the damaged entry was used");
        assert_eq!(damaged.len(), 1, "{what}");
        assert!(damaged[0].contains(says), "{what}: {}", damaged[0]);
        assert_eq!(fs::read(p.join("vmlinuz")).unwrap(), vec![0x5a; 8192]);
        assert_eq!(
            cache.verify("thing", &key, manifest::Depth::Full),
            Some(Ok(()))
        );
        // Nothing of the damaged entry is left beside the new one.
        let left: Vec<_> = fs::read_dir(d.path().join("thing"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".lock-"))
            .collect();
        assert_eq!(left, vec![key.hex()], "{what}");
        // And the new one is a hit.
        build_two_files(&cache, &key, &mut builds, &mut damaged);
        assert_eq!(builds, 2, "{what}");
    }
}

#[test]
fn a_big_entry_is_checked_by_size_on_a_hit_and_by_content_in_a_full_check() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path());
    let key = CacheKey::new("big");
    let big = manifest::HASH_ON_HIT_MAX as usize + 1;
    let mut builds = 0;
    let build = |builds: &mut u32| {
        cache
            .get_or_build::<CacheError>("thing", &key, |dir| {
                *builds += 1;
                fs::write(dir.join("vmlinux"), vec![1u8; big]).unwrap();
                Ok(())
            })
            .unwrap()
    };
    let p = build(&mut builds);
    // Same size, one byte changed: only reading it all can tell.
    {
        use std::io::{Seek, SeekFrom};
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(p.join("vmlinux"))
            .unwrap();
        f.seek(SeekFrom::Start(big as u64 / 2)).unwrap();
        f.write_all(&[2]).unwrap();
    }
    build(&mut builds);
    assert_eq!(builds, 1, "a big entry was hashed on a hit");
    let full = cache.verify("thing", &key, manifest::Depth::Full).unwrap();
    assert!(full.unwrap_err().contains("vmlinux does not hold"));
}

#[test]
fn an_entry_from_before_manifests_is_used_as_it_is() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path());
    let key = CacheKey::new("legacy");
    let entry = cache.entry("thing", &key);
    fs::create_dir_all(&entry).unwrap();
    fs::write(entry.join("bzImage"), "old").unwrap();
    let p = cache
        .get_or_build::<CacheError>("thing", &key, |_| panic!("rebuilt a legacy entry"))
        .unwrap();
    assert_eq!(fs::read_to_string(p.join("bzImage")).unwrap(), "old");
}

#[test]
fn git_metadata_is_synced_but_not_listed() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path());
    let key = CacheKey::new("repo");
    let p = cache
        .get_or_build::<CacheError>("thing", &key, |dir| {
            fs::create_dir_all(dir.join("repo/.git/refs")).unwrap();
            fs::write(dir.join("repo/.git/HEAD"), "ref: x\n").unwrap();
            fs::write(dir.join("repo/Makefile"), "all:\n").unwrap();
            Ok(())
        })
        .unwrap();
    let text = fs::read_to_string(p.join(manifest::MANIFEST)).unwrap();
    assert!(text.contains("d repo/.git\n"), "{text}");
    assert!(!text.contains("HEAD") && !text.contains("refs"), "{text}");
    // git changing its own files (a worktree added) is not damage.
    fs::write(p.join("repo/.git/HEAD"), "ref: refs/heads/other\n").unwrap();
    fs::create_dir_all(p.join("repo/.git/worktrees/w")).unwrap();
    assert_eq!(
        cache.verify("thing", &key, manifest::Depth::Full),
        Some(Ok(()))
    );
}

#[test]
fn a_provisioning_step_says_when_it_rebuilds_a_damaged_entry() {
    use crate::host::events::{Event, EventSink, Events};
    use std::sync::{Arc, Mutex};
    struct Warnings(Mutex<Vec<String>>);
    impl EventSink for Warnings {
        fn emit(&self, e: &Event) {
            if let Event::Warning { message } = e {
                self.0.lock().unwrap().push(message.clone());
            }
        }
    }
    let warnings = Arc::new(Warnings(Mutex::new(Vec::new())));
    let events = Events::none().with(warnings.clone());
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path());
    let key = CacheKey::new("provisioned");
    let provision = || {
        cache
            .provision::<CacheError>(
                "initramfs",
                &key,
                &events,
                "initramfs x",
                || None,
                |dir| {
                    fs::write(dir.join("initrd.img"), vec![7u8; 1000]).unwrap();
                    Ok(())
                },
            )
            .unwrap()
    };
    let p = provision();
    fs::write(p.join("initrd.img"), "").unwrap();
    provision();
    let w = warnings.0.lock().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("initramfs x: the cache entry "),
        "{}",
        w[0]
    );
    assert!(
        w[0].contains("initrd.img is 0 bytes, the manifest says 1000")
            && w[0].ends_with("discarding it and building it again"),
        "{}",
        w[0]
    );
    assert_eq!(fs::read(p.join("initrd.img")).unwrap(), vec![7u8; 1000]);
}
