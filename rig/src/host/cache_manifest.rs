//! What makes a cache entry trustworthy after the fact: it is on disk before it has its name,
//! and it says what it holds.
//!
//! [`seal`] runs on a finished build, before the rename that publishes it: a manifest is
//! written last, [`MANIFEST`] (the kind, size and SHA-256 of every file, the target of every
//! symlink, every folder), then every file and folder of the entry, the manifest included, is
//! made durable (`syncfs`). After a power loss, an entry either is not there (the rename was
//! not on disk: it is built again) or is whole.
//!
//! [`check`] runs on every hit: every listed item must be there with its kind, size and link
//! target; file contents are hashed too when the entry is small ([`HASH_ON_HIT_MAX`]) or when a
//! full check is asked for. A damaged entry is discarded and rebuilt by the cache, never used.
//! An entry without a manifest was made by a rig from before manifests and is used as it is (a
//! kernel build is not redone for that); a manifest that cannot be read whole is damage.
//!
//! Folders named `.git` are synced but not listed: git changes its own files under its own
//! locks (the bisect fixture's repository gets worktrees), and `git fsck` is what checks them.

use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The manifest's name inside an entry.
pub const MANIFEST: &str = ".rig-manifest";

const HEADER: &str = "rig-cache-manifest 1";

/// Entries whose files add up to at most this many bytes have their contents hashed on every
/// hit (a few milliseconds); bigger ones are checked by size, and hashed by a full check.
pub const HASH_ON_HIT_MAX: u64 = 16 << 20;

/// How much of an entry a check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Sizes, kinds and link targets; contents too for a small entry.
    Hit,
    /// Everything, contents of every file included.
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    File {
        path: Vec<u8>,
        size: u64,
        sha256: String,
    },
    Dir {
        path: Vec<u8>,
    },
    Link {
        path: Vec<u8>,
        target: Vec<u8>,
    },
    /// A device node, fifo or socket: its kind is all there is.
    Other {
        path: Vec<u8>,
    },
}

/// A name in a manifest line: printable ASCII but `%` as is, every other byte as `%XX`.
fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x21..0x7f).contains(&b) && b != b'%' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn render(items: &[Item]) -> String {
    let mut s = format!("{HEADER}\n");
    for it in items {
        let line = match it {
            Item::File { path, size, sha256 } => format!("f {size} {sha256} {}", encode(path)),
            Item::Dir { path } => format!("d {}", encode(path)),
            Item::Link { path, target } => format!("l {} {}", encode(target), encode(path)),
            Item::Other { path } => format!("o {}", encode(path)),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str(&format!("end {}\n", items.len()));
    s
}

/// The items of a manifest's text; `Err` says why it is not a whole manifest.
fn parse(text: &str) -> Result<Vec<Item>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err("its first line is not the manifest header".into());
    }
    let mut items = Vec::new();
    for (n, line) in lines.enumerate() {
        let bad = || format!("line {} is malformed", n + 2);
        let mut f = line.split(' ');
        let item = match (f.next(), f.next(), f.next(), f.next(), f.next()) {
            (Some("end"), Some(count), None, ..) => {
                if count.parse::<usize>().ok() != Some(items.len()) {
                    return Err(format!("it ends after {} of {count} items", items.len()));
                }
                return Ok(items);
            }
            (Some("f"), Some(size), Some(sha), Some(p), None) if sha.len() == 64 => Item::File {
                path: decode(p).ok_or_else(bad)?,
                size: size.parse().map_err(|_| bad())?,
                sha256: sha.to_string(),
            },
            (Some("d"), Some(p), None, ..) => Item::Dir {
                path: decode(p).ok_or_else(bad)?,
            },
            (Some("l"), Some(t), Some(p), None, ..) => Item::Link {
                path: decode(p).ok_or_else(bad)?,
                target: decode(t).ok_or_else(bad)?,
            },
            (Some("o"), Some(p), None, ..) => Item::Other {
                path: decode(p).ok_or_else(bad)?,
            },
            _ => return Err(bad()),
        };
        items.push(item);
    }
    Err("it is cut short (no end line)".into())
}

fn rel_path(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(std::ffi::OsStr::from_bytes(rel))
}

/// SHA-256 of an open file, from its start.
fn hash(f: &mut fs::File) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(h.finalize()))
}

fn with_path(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Every item below `root` (sorted, parents before children), each with whether it is inside a
/// `.git` folder (then it is synced but not listed).
fn walk(root: &Path, rel: &[u8], in_git: bool, items: &mut Vec<(Item, bool)>) -> io::Result<()> {
    let dir = rel_path(root, rel);
    let mut names: Vec<std::ffi::OsString> = fs::read_dir(&dir)
        .map_err(with_path(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(with_path(&dir))?;
    names.sort();
    for name in names {
        if rel.is_empty() && name == MANIFEST {
            continue;
        }
        let mut child = rel.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(name.as_bytes());
        let path = rel_path(root, &child);
        let meta = fs::symlink_metadata(&path).map_err(with_path(&path))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            let git = in_git || name == ".git";
            items.push((
                Item::Dir {
                    path: child.clone(),
                },
                in_git,
            ));
            walk(root, &child, git, items)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(with_path(&path))?;
            items.push((
                Item::Link {
                    path: child,
                    target: target.into_os_string().into_vec(),
                },
                in_git,
            ));
        } else if ft.is_file() {
            items.push((
                Item::File {
                    path: child,
                    size: meta.len(),
                    sha256: String::new(),
                },
                in_git,
            ));
        } else if ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket() {
            items.push((Item::Other { path: child }, in_git));
        }
    }
    Ok(())
}

/// Opens a file or folder for fsync: read-only, without following a symlink.
fn open_for_sync(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Makes the finished build in `dir` durable and writes its manifest (see the module's text).
/// Call before renaming `dir` into place; fsync the folder that holds it after.
///
/// Durability is one `syncfs(2)` of the filesystem after every file's writeback was started:
/// an fsync per file costs a device cache flush each (measured: 104 s for the 92 000 files of
/// the kernel source entry, 12 s for a Debian kernel's 4 500), `syncfs` one flush in all.
#[allow(unsafe_code)]
pub fn seal(dir: &Path) -> io::Result<()> {
    let mut listed = Vec::new();
    walk(dir, &[], false, &mut listed)?;
    for (item, in_git) in &mut listed {
        let Item::File { path, size, sha256 } = item else {
            continue;
        };
        let p = rel_path(dir, path);
        let mut f = match open_for_sync(&p) {
            Ok(f) => f,
            // A file this user cannot read (a tree extracted with foreign owners): listed by
            // size; `syncfs` makes it durable all the same.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                *sha256 = "-".repeat(64);
                continue;
            }
            Err(e) => return Err(with_path(&p)(e)),
        };
        if !*in_git {
            *sha256 = hash(&mut f).map_err(with_path(&p))?;
            let now = f.metadata().map_err(with_path(&p))?.len();
            if now != *size {
                return Err(io::Error::other(format!(
                    "{} changed while the entry was sealed",
                    p.display()
                )));
            }
        }
        // Start the writeback now, so that it runs while the next files are hashed.
        // rig's only unsafe blocks (each says why): host/process.rs `die_with_rig`,
        // machine/channel.rs `ShellPair::pass_to`, host/cache_manifest.rs `seal`.
        // SAFETY: kept unsafe: neither std nor rustix wraps sync_file_range(2) (fdatasync would
        // wait for each file, POSIX_FADV_DONTNEED would also drop the page cache). A plain
        // system call on a descriptor `f` owns, with no pointer argument; it only starts
        // writeback, and its result is advisory (syncfs below makes everything durable).
        unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    let items: Vec<Item> = listed
        .into_iter()
        .filter(|(_, in_git)| !in_git)
        .map(|(i, _)| i)
        .collect();
    let manifest = dir.join(MANIFEST);
    {
        use std::io::Write;
        let mut f = fs::File::create(&manifest).map_err(with_path(&manifest))?;
        f.write_all(render(&items).as_bytes())
            .map_err(with_path(&manifest))?;
    }
    // Every file, folder and the manifest on disk.
    let d = open_for_sync(dir).map_err(with_path(dir))?;
    rustix::fs::syncfs(&d).map_err(|e| with_path(dir)(e.into()))
}

/// Checks the entry at `dir` against its manifest: `Err(why)` when it is damaged. An entry
/// without a manifest (made before manifests) passes.
pub fn check(dir: &Path, depth: Depth) -> Result<(), String> {
    let manifest = dir.join(MANIFEST);
    let text = match fs::read(&manifest) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("its manifest cannot be read: {e}")),
    };
    let text = String::from_utf8(text).map_err(|_| "its manifest is not text".to_string())?;
    let items = parse(&text).map_err(|why| format!("its manifest is damaged: {why}"))?;
    let total: u64 = items
        .iter()
        .map(|i| match i {
            Item::File { size, .. } => *size,
            _ => 0,
        })
        .sum();
    let hash_contents = depth == Depth::Full || total <= HASH_ON_HIT_MAX;
    for item in &items {
        check_item(dir, item, hash_contents)?;
    }
    Ok(())
}

fn check_item(dir: &Path, item: &Item, hash_contents: bool) -> Result<(), String> {
    let (Item::File { path, .. }
    | Item::Dir { path }
    | Item::Link { path, .. }
    | Item::Other { path }) = item;
    let p = rel_path(dir, path);
    let name = String::from_utf8_lossy(path);
    let meta = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(format!("{name} is missing")),
        Err(e) => return Err(format!("{name} cannot be read: {e}")),
    };
    let ft = meta.file_type();
    match item {
        Item::File { size, sha256, .. } => {
            if !ft.is_file() {
                return Err(format!("{name} is no longer a file"));
            }
            if meta.size() != *size {
                return Err(format!(
                    "{name} is {} bytes, the manifest says {size}",
                    meta.size()
                ));
            }
            // `-`: a file rig could not read when it sealed the entry.
            if hash_contents && !sha256.starts_with('-') {
                let got = fs::File::open(&p)
                    .and_then(|mut f| hash(&mut f))
                    .map_err(|e| format!("{name} cannot be read: {e}"))?;
                if &got != sha256 {
                    return Err(format!("{name} does not hold what it held when made"));
                }
            }
        }
        Item::Dir { .. } if !ft.is_dir() => return Err(format!("{name} is no longer a folder")),
        Item::Link { target, .. } => {
            let now = fs::read_link(&p).map(|t| t.into_os_string().into_vec());
            if !ft.is_symlink() || now.as_deref().ok() != Some(target.as_slice()) {
                return Err(format!("{name} is no longer the same symlink"));
            }
        }
        Item::Other { .. } if ft.is_file() || ft.is_dir() || ft.is_symlink() => {
            return Err(format!("{name} changed kind"));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_whatever_bytes_they_hold() {
        for name in [
            &b"plain/name.c"[..],
            b"sp ace%25\n\xff\xfe",
            b"\xc3\xa9t\xc3\xa9",
        ] {
            let e = encode(name);
            assert!(!e.contains(' ') && !e.contains('\n'), "{e}");
            assert_eq!(decode(&e).unwrap(), name);
        }
        assert_eq!(decode("%G0"), None);
        assert_eq!(decode("%4"), None);
    }

    #[test]
    fn a_manifest_cut_short_or_altered_is_not_read_as_whole() {
        let items = vec![
            Item::Dir {
                path: b"d".to_vec(),
            },
            Item::File {
                path: b"d/f x".to_vec(),
                size: 3,
                sha256: "a".repeat(64),
            },
            Item::Link {
                path: b"l".to_vec(),
                target: b"d/f x".to_vec(),
            },
        ];
        let text = render(&items);
        assert_eq!(parse(&text).unwrap(), items);
        let cut = &text[..text.len() - 6];
        assert!(parse(cut).is_err());
        let no_end: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert!(parse(&no_end).unwrap_err().contains("cut short"));
        assert!(parse(&text.replace("end 3", "end 4")).is_err());
        assert!(parse(&text.replace("f 3 ", "f x ")).is_err());
        assert!(parse("").is_err());
    }
}
