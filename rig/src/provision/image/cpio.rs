//! Writing initramfs archives: the kernel's `newc` cpio format (see the kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`), gzip'd in-process with flate2.

use super::ImageError;
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

/// The gzip stream of an archive: deterministic (no name, mtime 0, as `gzip -n` writes), so the
/// same `fill` gives the same bytes every run.
type GzOut = GzEncoder<io::BufWriter<fs::File>>;

/// Writes a gzip'd newc archive to `out` (appending it as one more gzip member when `append`),
/// filled by `fill`.
pub(crate) fn write_gz_archive(
    out: &Path,
    append: bool,
    fill: impl FnOnce(&mut NewcWriter<GzOut>) -> io::Result<()>,
) -> Result<(), ImageError> {
    let io_err = |source| ImageError::Io {
        what: "cannot write archive".into(),
        path: out.to_path_buf(),
        source,
    };
    let file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(out)
        .map_err(io_err)?;
    let gz = GzBuilder::new().mtime(0).write(
        io::BufWriter::with_capacity(1 << 20, file),
        Compression::default(),
    );
    let mut w = NewcWriter::new(gz);
    fill(&mut w)
        .and_then(|()| w.finish())
        .and_then(GzEncoder::finish)
        .and_then(|mut b| b.flush())
        .map_err(io_err)
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// A writer of "newc" cpio archives (the format the kernel unpacks into its rootfs): 110-byte ASCII
/// headers, names and data padded to 4 bytes, a `TRAILER!!!` entry. Every entry is owned by
/// root:root with mtime 0, so archives are reproducible and need no privileges to build.
pub struct NewcWriter<W: Write> {
    out: W,
    next_ino: u32,
    offset: u64,
    dirs: BTreeSet<String>,
}

impl<W: Write> NewcWriter<W> {
    pub fn new(out: W) -> Self {
        NewcWriter {
            out,
            next_ino: 1,
            offset: 0,
            dirs: BTreeSet::new(),
        }
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = ((4 - self.offset % 4) % 4) as usize;
        self.out.write_all(&[0u8; 3][..n])?;
        self.offset += n as u64;
        Ok(())
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, rdev: (u32, u32)) -> io::Result<()> {
        let size = u32::try_from(size)
            .map_err(|_| io::Error::other(format!("{name}: too large for a newc archive")))?;
        let nlink = if mode & 0o170000 == S_IFDIR { 2 } else { 1 };
        let ino = self.next_ino;
        self.next_ino += 1;
        let namesize = name.len() + 1;
        let h = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
            0, 0, 0, 0, 0, rdev.0, rdev.1, 0
        );
        self.out.write_all(h.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.offset += (h.len() + namesize) as u64;
        self.pad()
    }

    fn check_name(name: &str) -> io::Result<()> {
        if name.is_empty() || name.starts_with('/') || name.contains('\0') {
            return Err(io::Error::other(format!("bad archive name `{name}`")));
        }
        Ok(())
    }

    /// A directory (`perm` e.g. 0o755).
    pub fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        Self::check_name(name)?;
        self.dirs.insert(name.to_string());
        self.header(name, S_IFDIR | (perm & 0o7777), 0, (0, 0))
    }

    /// Every missing parent directory of `name` (0755), outermost first.
    pub fn parents(&mut self, name: &str) -> io::Result<()> {
        let comps: Vec<&str> = name.split('/').collect();
        for i in 1..comps.len() {
            let d = comps[..i].join("/");
            if !self.dirs.contains(&d) {
                self.dir(&d, 0o755)?;
            }
        }
        Ok(())
    }

    /// A regular file with `data`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.file_from(name, perm, data.len() as u64, &mut &data[..])
    }

    /// A regular file of exactly `size` bytes read from `src`.
    pub fn file_from(
        &mut self,
        name: &str,
        perm: u32,
        size: u64,
        src: &mut dyn Read,
    ) -> io::Result<()> {
        Self::check_name(name)?;
        self.header(name, S_IFREG | (perm & 0o7777), size, (0, 0))?;
        let copied = io::copy(&mut src.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::other(format!(
                "{name}: expected {size} bytes, read {copied}"
            )));
        }
        self.offset += size;
        self.pad()
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        Self::check_name(name)?;
        self.header(name, S_IFLNK | 0o777, target.len() as u64, (0, 0))?;
        self.out.write_all(target.as_bytes())?;
        self.offset += target.len() as u64;
        self.pad()
    }

    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        Self::check_name(name)?;
        self.header(name, S_IFCHR | (perm & 0o7777), 0, (major, minor))
    }

    /// Adds the directories, regular files and symlinks below `root` (sorted; other file types
    /// are skipped), named `prefix/relative` (`relative` alone when `prefix` is empty). `skip`
    /// gets archive names and leaves out those it returns true for (and their subtrees).
    pub fn add_tree(
        &mut self,
        root: &Path,
        prefix: &str,
        skip: &dyn Fn(&str) -> bool,
    ) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mut entries: Vec<_> = fs::read_dir(root)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let file_name = e.file_name();
            let Some(file_name) = file_name.to_str() else {
                return Err(io::Error::other(format!(
                    "{}: not UTF-8",
                    e.path().display()
                )));
            };
            let name = if prefix.is_empty() {
                file_name.to_string()
            } else {
                format!("{prefix}/{file_name}")
            };
            if skip(&name) {
                continue;
            }
            let path = e.path();
            let meta = fs::symlink_metadata(&path)?;
            let perm = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_dir() {
                self.dir(&name, perm)?;
                self.add_tree(&path, &name, skip)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path)?;
                let target = target.to_str().ok_or_else(|| {
                    io::Error::other(format!("{}: link target not UTF-8", path.display()))
                })?;
                self.symlink(&name, target)?;
            } else if ft.is_file() {
                let mut f = fs::File::open(&path)?;
                self.file_from(&name, perm, meta.len(), &mut f)?;
            }
        }
        Ok(())
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        Ok(self.out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    /// Lists an archive with the host's cpio: `mode owner name [-> target]` lines.
    pub(crate) fn cpio_list(archive: &[u8]) -> String {
        let mut child = Command::new("cpio")
            .args(["-t", "-v", "--quiet", "-H", "newc"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(archive).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn newc_round_trips_through_host_cpio() {
        crate::host::doctor::require("cpio").unwrap_or_else(|e| panic!("{e}"));
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("tree");
        fs::create_dir_all(t.join("etc/rig")).unwrap();
        fs::write(t.join("etc/rig/modules"), "virtio_net\n").unwrap();
        fs::write(t.join("odd"), "12345").unwrap(); // length not a multiple of 4
        std::os::unix::fs::symlink("/bin/busybox", t.join("sh")).unwrap();

        let mut w = NewcWriter::new(Vec::new());
        w.char_dev("console", 0o600, 5, 1).unwrap();
        w.add_tree(&t, "", &|n| n == "odd").unwrap();
        w.parents("root/.ssh/authorized_keys").unwrap();
        w.file("root/.ssh/authorized_keys", 0o600, b"ssh-ed25519 AAAA")
            .unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);

        let listing = cpio_list(&bytes);
        let lines: Vec<&str> = listing.lines().collect();
        let find = |name: &str| {
            lines
                .iter()
                .find(|l| l.ends_with(&format!(" {name}")) || l.contains(&format!(" {name} -> ")))
                .unwrap_or_else(|| panic!("{name} missing from\n{listing}"))
                .to_string()
        };
        assert!(find("console").starts_with("crw-------"));
        assert!(find("etc/rig").starts_with("drwx"));
        assert!(find("etc/rig/modules").contains(" root "));
        assert!(find("sh").contains("sh -> /bin/busybox"));
        assert!(find("root/.ssh").starts_with("drwxr-xr-x"));
        assert!(find("root/.ssh/authorized_keys").starts_with("-rw-------"));
        assert!(!listing.contains("odd"));

        // Extract and compare content byte for byte.
        let x = d.path().join("x");
        fs::create_dir_all(&x).unwrap();
        let mut w = NewcWriter::new(Vec::new());
        w.add_tree(&t, "", &|_| false).unwrap();
        let bytes = w.finish().unwrap();
        let mut child = Command::new("cpio")
            .args([
                "-i",
                "-d",
                "--quiet",
                "-H",
                "newc",
                "--no-absolute-filenames",
            ])
            .current_dir(&x)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(fs::read(x.join("odd")).unwrap(), b"12345");
        assert_eq!(
            fs::read(x.join("etc/rig/modules")).unwrap(),
            b"virtio_net\n"
        );
        assert_eq!(
            fs::read_link(x.join("sh")).unwrap(),
            PathBuf::from("/bin/busybox")
        );
    }
}
