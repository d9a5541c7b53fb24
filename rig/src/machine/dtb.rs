//! arm64 virt's device tree without the 32 virtio-mmio transports QEMU always puts in it.
//!
//! rig's devices are all virtio-pci, so those transports never carry a device, yet every boot
//! creates 32 platform devices for them and probes each (`of_platform_default_populate_init`
//! and `virtio_mmio_init`: ~0.1 s of every TCG boot of rig's lockdep kernels, bare QEMU,
//! interleaved boots). rig asks QEMU for the tree it would give this very machine
//! (`-machine virt,dumpdtb=F`: no guest runs, ~50 ms), turns those nodes into `FDT_NOP`s (the
//! way libfdt's `fdt_nop_node` deletes a node: nothing moves, so every offset and phandle
//! stays valid) and boots with `-dtb`. QEMU still writes `/chosen` (command line, initrd) and
//! the memory nodes into a `-dtb` tree at load, and re-randomizes its `rng-seed` at every reset,
//! as for its own. The result is kept per user, keyed by the dump's argv and the QEMU binary.

use super::qemu::{self, QemuConfig};
use crate::host::board::Board;
use crate::host::cache::CacheKey;
use crate::host::process::Supervised;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Top-level nodes rig removes: unit names before `@`.
const DROPPED_NODES: &[&str] = &["virtio_mmio"];

#[derive(Debug, thiserror::Error)]
pub enum DtbError {
    #[error("not a flattened device tree: {0}")]
    Malformed(&'static str),
    #[error("dumping QEMU's device tree ({argv}): {why}")]
    Dump { argv: String, why: String },
    #[error(transparent)]
    UserDir(#[from] crate::host::userdir::UserDirError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn be32(b: &[u8], at: usize) -> Result<u32, DtbError> {
    b.get(at..at + 4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .ok_or(DtbError::Malformed("truncated"))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// `fdt` with every node directly below the root whose name (before `@`) is in `drop`, and
/// everything below it, overwritten with `FDT_NOP` tokens. Same size, same offsets.
pub fn without_top_level_nodes(fdt: &[u8], drop: &[&str]) -> Result<Vec<u8>, DtbError> {
    if be32(fdt, 0)? != FDT_MAGIC {
        return Err(DtbError::Malformed("bad magic"));
    }
    let total = be32(fdt, 4)? as usize;
    let start = be32(fdt, 8)? as usize;
    let size = be32(fdt, 36)? as usize;
    if total > fdt.len() || start.checked_add(size).is_none_or(|end| end > total) {
        return Err(DtbError::Malformed("structure block outside the blob"));
    }
    let end = start + size;
    let mut out = fdt.to_vec();
    let mut at = start;
    let mut depth = 0usize;
    // (offset of the dropped node's BEGIN_NODE, its depth)
    let mut dropping: Option<(usize, usize)> = None;
    loop {
        if at >= end {
            return Err(DtbError::Malformed("structure block has no FDT_END"));
        }
        let token = be32(fdt, at)?;
        let here = at;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                let name_len = fdt[at..end]
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or(DtbError::Malformed("unterminated node name"))?;
                let name = String::from_utf8_lossy(&fdt[at..at + name_len]);
                at = align4(at + name_len + 1);
                depth += 1;
                let unit = name.split('@').next().unwrap_or_default();
                if dropping.is_none() && depth == 2 && drop.contains(&unit) {
                    dropping = Some((here, depth));
                }
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(DtbError::Malformed("unbalanced FDT_END_NODE"));
                }
                if let Some((from, d)) = dropping {
                    if d == depth {
                        for word in out[from..at].chunks_exact_mut(4) {
                            word.copy_from_slice(&FDT_NOP.to_be_bytes());
                        }
                        dropping = None;
                    }
                }
                depth -= 1;
            }
            FDT_PROP => {
                let len = be32(fdt, at)? as usize;
                at = align4(at + 8 + len);
            }
            FDT_NOP => {}
            FDT_END if depth == 0 => return Ok(out),
            FDT_END => return Err(DtbError::Malformed("FDT_END inside a node")),
            _ => return Err(DtbError::Malformed("unknown structure token")),
        }
    }
}

/// `fdt` without the free space after its last block, `totalsize` set to match. QEMU's dump is
/// a 1 MiB blob, mostly free space, and QEMU doubles a `-dtb` file's size when it loads it: a
/// tree over the 2 MiB arm64 Linux accepts, which stops the kernel before its first line.
pub fn packed(fdt: &[u8]) -> Result<Vec<u8>, DtbError> {
    if be32(fdt, 0)? != FDT_MAGIC {
        return Err(DtbError::Malformed("bad magic"));
    }
    let total = be32(fdt, 4)? as usize;
    let field = |at| be32(fdt, at).map(|v| v as usize);
    let (off_struct, off_strings, off_rsv) = (field(8)?, field(12)?, field(16)?);
    let (size_strings, size_struct) = (field(32)?, field(36)?);
    // The reserve map: 16-byte (address, size) entries up to an all-zero one.
    let mut rsv_end = off_rsv;
    loop {
        let entry = fdt
            .get(rsv_end..rsv_end + 16)
            .ok_or(DtbError::Malformed("reserve map runs off the blob"))?;
        rsv_end += 16;
        if entry.iter().all(|&b| b == 0) {
            break;
        }
    }
    let end = [
        rsv_end,
        off_struct.saturating_add(size_struct),
        off_strings.saturating_add(size_strings),
    ]
    .into_iter()
    .max()
    .unwrap_or_default();
    if end > total || total > fdt.len() {
        return Err(DtbError::Malformed("a block lies outside the blob"));
    }
    let mut out = fdt[..end].to_vec();
    out[4..8].copy_from_slice(&(end as u32).to_be_bytes());
    Ok(out)
}

/// QEMU's argv for the machine `cfg` describes, to dump its device tree: the same machine, no
/// kernel, no sockets or descriptors (so it is also the cache key). [`with_dump_target`] adds
/// where the tree goes. `None` when rig boots the board with QEMU's own tree: x86 (no device
/// tree), or a scenario device that is itself a virtio-mmio device (`virtio-…-device`), which
/// needs the transports.
pub fn dump_argv(cfg: &QemuConfig) -> Option<Vec<String>> {
    if cfg.board != Board::Arm64Virt {
        return None;
    }
    let mmio_device = cfg.devices.iter().any(|d| match d {
        qemu::ExtraDevice::Device { driver, .. } => {
            driver.starts_with("virtio-") && driver.ends_with("-device")
        }
        qemu::ExtraDevice::VirtioMem { .. } => false,
    });
    if mmio_device {
        return None;
    }
    let mut machine = cfg.clone();
    machine.kernel = None;
    machine.initrd = None;
    machine.cmdline.clear();
    machine.console_socket = None;
    machine.qmp_socket = None;
    machine.shell_fd = None;
    machine.ssh_forward_port = None;
    machine.name = None;
    machine.paused = false;
    machine.incoming_defer = false;
    machine.dtb = None;
    let mut argv = qemu::argv(&machine);
    let mut words = argv.iter_mut().peekable();
    while let Some(w) = words.next() {
        let Some(value) = words.peek_mut() else { break };
        // The console chardev without a socket is stdio: QEMU must not touch rig's terminal.
        if w == "-chardev" && value.starts_with("stdio,id=con0") {
            **value = value.replacen("stdio,", "null,", 1);
        }
    }
    Some(argv)
}

/// `argv` (from [`dump_argv`]) told to write the tree to `out` and exit: QEMU merges a second
/// `-machine` into the first.
pub fn with_dump_target(mut argv: Vec<String>, out: &Path) -> Vec<String> {
    argv.push("-machine".into());
    argv.push(format!("dumpdtb={}", out.display()));
    argv
}

/// The QEMU binary's identity for the cache key: its resolved path, size and modification time.
fn binary_identity(name: &str) -> String {
    let Some(path) = crate::host::path::on_path(name) else {
        return name.to_string();
    };
    let meta = std::fs::metadata(&path).ok();
    let mtime = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{} {} {mtime}",
        path.display(),
        meta.map(|m| m.len()).unwrap_or_default()
    )
}

/// The trimmed device tree for the machine `cfg` describes, dumped and trimmed on first use
/// and kept in the user's private runtime directory; `None` where [`dump_argv`] says so.
pub fn board_dtb(cfg: &QemuConfig) -> Result<Option<PathBuf>, DtbError> {
    let Some(machine) = dump_argv(cfg) else {
        return Ok(None);
    };
    let mut key = CacheKey::new("dtb");
    // What rig does to the dump: a change here must not reuse trees the old code made.
    key.str("recipe", "trim virtio_mmio, packed")
        .str("argv", &machine.join("\0"))
        .str("qemu", &binary_identity(&machine[0]));
    let key = key.hex();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DtbError::Io { path, source }
    };
    let dir = crate::host::userdir::private_subdir("dtb")?;
    let path = dir.join(format!("{}.dtb", &key[..32]));
    if path.is_file() {
        return Ok(Some(path));
    }
    let tmp = tempfile::Builder::new()
        .prefix("dump-")
        .tempdir_in(&dir)
        .map_err(io(&dir))?;
    let raw = tmp.path().join("qemu.dtb");
    let argv = with_dump_target(machine, &raw);
    let fail = |why: String| DtbError::Dump {
        argv: crate::host::shell::shell_line(&argv),
        why,
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let log = tmp.path().join("qemu.stderr");
    let mut qemu = Supervised::spawn(cmd, Some(&log)).map_err(|e| fail(e.to_string()))?;
    match qemu.wait_timeout(Duration::from_secs(30)) {
        Ok(Some(st)) if st.success() => {}
        Ok(Some(st)) => {
            return Err(fail(format!(
                "QEMU {}: {}",
                crate::host::process::describe_status(&st),
                qemu.stderr_tail(5)
            )))
        }
        Ok(None) => {
            qemu.terminate();
            return Err(fail("QEMU did not exit within 30 s".into()));
        }
        Err(e) => return Err(fail(e.to_string())),
    }
    let fdt = std::fs::read(&raw).map_err(io(&raw))?;
    let trimmed = packed(&without_top_level_nodes(&fdt, DROPPED_NODES)?)?;
    let staged = tmp.path().join("trimmed.dtb");
    std::fs::write(&staged, trimmed).map_err(io(&staged))?;
    // Atomic: a concurrent rig either sees no file or a whole one.
    std::fs::rename(&staged, &path).map_err(io(&path))?;
    Ok(Some(path))
}

/// [`board_dtb`] for a boot: when the tree cannot be had, the boot goes on with QEMU's own
/// (a warning says why; QEMU itself then reports whatever stopped the dump).
pub fn for_boot(cfg: &QemuConfig, events: &crate::host::events::Events) -> Option<PathBuf> {
    board_dtb(cfg).unwrap_or_else(|e| {
        events.emit(crate::host::events::Event::Warning {
            message: format!("booting with QEMU's own device tree: {e}"),
        });
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::qemu::ExtraDevice;

    /// A minimal FDT writer: nodes as (depth change, name) and props, for the walker's tests.
    struct Builder {
        strct: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Builder {
        fn new() -> Self {
            Builder {
                strct: Vec::new(),
                strings: Vec::new(),
            }
        }
        fn word(&mut self, w: u32) -> &mut Self {
            self.strct.extend_from_slice(&w.to_be_bytes());
            self
        }
        fn begin(&mut self, name: &str) -> &mut Self {
            self.word(FDT_BEGIN_NODE);
            self.strct.extend_from_slice(name.as_bytes());
            self.strct.push(0);
            while !self.strct.len().is_multiple_of(4) {
                self.strct.push(0);
            }
            self
        }
        fn end(&mut self) -> &mut Self {
            self.word(FDT_END_NODE)
        }
        fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            self.word(FDT_PROP).word(value.len() as u32).word(off);
            self.strct.extend_from_slice(value);
            while !self.strct.len().is_multiple_of(4) {
                self.strct.push(0);
            }
            self
        }
        fn finish(&mut self) -> Vec<u8> {
            self.word(FDT_END);
            let header = 40u32;
            let rsv = header;
            let st = rsv + 16;
            let strs = st + self.strct.len() as u32;
            let total = strs + self.strings.len() as u32;
            let mut b = Vec::new();
            for w in [
                FDT_MAGIC,
                total,
                st,
                strs,
                rsv,
                17,
                16,
                0,
                self.strings.len() as u32,
                self.strct.len() as u32,
            ] {
                b.extend_from_slice(&w.to_be_bytes());
            }
            b.extend_from_slice(&[0; 16]);
            b.extend_from_slice(&self.strct);
            b.extend_from_slice(&self.strings);
            b
        }
    }

    /// Node paths left in `fdt`, NOPs skipped.
    fn node_paths(fdt: &[u8]) -> Vec<String> {
        let start = be32(fdt, 8).unwrap() as usize;
        let mut at = start;
        let mut path: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        loop {
            let t = be32(fdt, at).unwrap();
            at += 4;
            match t {
                FDT_BEGIN_NODE => {
                    let n = fdt[at..].iter().position(|&c| c == 0).unwrap();
                    path.push(String::from_utf8_lossy(&fdt[at..at + n]).into());
                    at = align4(at + n + 1);
                    seen.push(path.join("/"));
                }
                FDT_END_NODE => {
                    path.pop();
                }
                FDT_PROP => at = align4(at + 8 + be32(fdt, at).unwrap() as usize),
                FDT_NOP => {}
                _ => return seen,
            }
        }
    }

    fn sample() -> Vec<u8> {
        Builder::new()
            .begin("")
            .prop("compatible", b"linux,dummy-virt\0")
            .begin("pl011@9000000")
            .prop("reg", &[0; 8])
            .end()
            .begin("virtio_mmio@a000000")
            .prop("compatible", b"virtio,mmio\0")
            .begin("child")
            .prop("x", b"1")
            .end()
            .end()
            .begin("virtio_mmio@a000200")
            .end()
            .begin("pcie@10000000")
            .begin("virtio_mmio@1")
            .end()
            .end()
            .end()
            .finish()
    }

    #[test]
    fn top_level_virtio_mmio_nodes_become_nops_and_the_rest_stays() {
        let fdt = sample();
        let out = without_top_level_nodes(&fdt, DROPPED_NODES).unwrap();
        assert_eq!(out.len(), fdt.len());
        assert_eq!(
            node_paths(&fdt).len(),
            7,
            "sample has root, pl011, 2 mmio + child, pcie + nested"
        );
        assert_eq!(
            node_paths(&out),
            vec![
                "".to_string(),
                "/pl011@9000000".into(),
                "/pcie@10000000".into(),
                "/pcie@10000000/virtio_mmio@1".into(),
            ],
            "only the root's virtio_mmio children (and below) go"
        );
        // Nothing to drop: the blob comes back unchanged.
        assert_eq!(without_top_level_nodes(&fdt, &["nothing"]).unwrap(), fdt);
    }

    #[test]
    fn malformed_blobs_are_errors_not_panics() {
        let fdt = sample();
        assert!(without_top_level_nodes(&fdt[..3], DROPPED_NODES).is_err());
        let mut bad = fdt.clone();
        bad[0] = 0;
        assert!(matches!(
            without_top_level_nodes(&bad, DROPPED_NODES),
            Err(DtbError::Malformed("bad magic"))
        ));
        // Structure block cut short: no FDT_END.
        let mut short = fdt.clone();
        let st_size = be32(&fdt, 36).unwrap();
        short[36..40].copy_from_slice(&(st_size - 8).to_be_bytes());
        assert!(without_top_level_nodes(&short, DROPPED_NODES).is_err());
        let mut huge = fdt;
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(without_top_level_nodes(&huge, DROPPED_NODES).is_err());
    }

    #[test]
    fn packing_drops_the_free_space_and_sets_totalsize() {
        let fdt = sample();
        let mut roomy = fdt.clone();
        roomy.resize(1 << 20, 0);
        roomy[4..8].copy_from_slice(&(1u32 << 20).to_be_bytes());
        let out = packed(&roomy).unwrap();
        assert_eq!(out, fdt, "the blob back as the builder wrote it");
        assert_eq!(be32(&out, 4).unwrap() as usize, out.len());
        assert_eq!(node_paths(&out), node_paths(&fdt));
        let mut bad = roomy.clone();
        bad[32..36].copy_from_slice(&(2u32 << 20).to_be_bytes());
        assert!(packed(&bad).is_err(), "strings block past the end");
        assert!(packed(&roomy[..20]).is_err());
    }

    fn arm64() -> QemuConfig {
        let mut c = crate::machine::qemu::tests::cfg(Board::Arm64Virt);
        c.shell_fd = Some(7);
        c.dtb = Some("/old.dtb".into());
        c
    }

    #[test]
    fn the_dump_is_the_same_machine_without_kernel_sockets_or_descriptors() {
        let a = dump_argv(&arm64()).unwrap();
        let line = with_dump_target(a.clone(), Path::new("/d/out.dtb")).join(" ");
        assert!(
            line.contains("-machine virt") && line.ends_with(" -machine dumpdtb=/d/out.dtb"),
            "{line}"
        );
        for gone in [
            "-kernel",
            "-initrd",
            "-append",
            "/t/con.sock",
            "/t/qmp.sock",
            "fd=7",
            "-dtb",
            "-name",
        ] {
            assert!(!line.contains(gone), "{gone} in {line}");
        }
        assert!(line.contains("-chardev null,id=con0"), "{line}");
        assert!(line.contains("-chardev null,id=shell0"), "{line}");
        assert!(
            line.contains("-smp 2") && line.contains("-cpu cortex-a57"),
            "{line}"
        );
        // Same machine, same key: the run's own sockets and kernel do not change it.
        let mut other = arm64();
        other.kernel = Some("/other/Image".into());
        other.console_socket = Some("/elsewhere/con".into());
        assert_eq!(dump_argv(&other).unwrap(), a);
        other.smp = 4;
        assert_ne!(dump_argv(&other).unwrap(), a);
    }

    #[test]
    fn x86_and_virtio_mmio_devices_keep_qemus_own_tree() {
        let mut x86 = arm64();
        x86.board = Board::X86_64Q35;
        assert!(dump_argv(&x86).is_none());
        let mut mmio = arm64();
        mmio.devices.push(ExtraDevice::Device {
            driver: "virtio-net-device".into(),
            id: None,
            props: Vec::new(),
        });
        assert!(dump_argv(&mmio).is_none());
        let mut pci = arm64();
        pci.devices.push(ExtraDevice::Device {
            driver: "pci-testdev".into(),
            id: None,
            props: Vec::new(),
        });
        pci.devices.push(ExtraDevice::VirtioMem {
            id: "vm0".into(),
            size_mib: 512,
        });
        assert!(dump_argv(&pci).is_some());
    }
}
