//! The guest memory blocks a virtio-mem device's region spans, and the guest shell commands
//! over them: what [`super::virtio_mem`]'s steps and the step executor's state share.

/// The guest memory blocks a virtio-mem device's region spans (whether plugged or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BlockRange {
    pub(super) first: u64,
    /// Exclusive.
    pub(super) end: u64,
    pub(super) block_bytes: u64,
}

impl BlockRange {
    /// The whole blocks inside `[addr, addr + size)`.
    pub(super) fn new(addr: u64, size: u64, block_bytes: u64) -> BlockRange {
        BlockRange {
            first: addr.div_ceil(block_bytes),
            end: (addr + size) / block_bytes,
            block_bytes,
        }
    }

    /// A shell loop over the blocks present in the guest, running `body` with `$f` set to the
    /// block's `state` file; the whole command fails when any `body` failed.
    fn each_present(&self, body: &str) -> String {
        format!(
            "s=0; for b in $(seq {} {}); do f=/sys/devices/system/memory/memory$b/state; \
             [ -e $f ] || continue; {body}; done; [ $s -eq 0 ]",
            self.first,
            self.end.saturating_sub(1)
        )
    }

    /// Onlines every present block that is offline (blocks come and go while the device
    /// resizes: missing ones are skipped).
    pub(super) fn online_cmd(&self, state: &str) -> String {
        self.each_present(&format!(
            "[ \"$(cat $f 2>/dev/null)\" = offline ] || continue; echo {state} > $f || s=1"
        ))
    }

    /// Offlines every present block that is online.
    pub(super) fn offline_cmd(&self) -> String {
        self.each_present(
            "[ \"$(cat $f 2>/dev/null)\" = online ] || continue; echo offline > $f || s=1",
        )
    }

    /// Holds when exactly `blocks` of the range are present in the guest.
    pub(super) fn present_cond(&self, blocks: u64) -> String {
        format!(
            "[ $(for b in $(seq {} {}); do [ -e /sys/devices/system/memory/memory$b ] && echo; \
             done | wc -l) -eq {blocks} ]",
            self.first,
            self.end.saturating_sub(1)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn block_range_covers_whole_blocks_only() {
        let r = BlockRange::new(0x1_4000_0000, 1024 * MIB, 128 * MIB);
        assert_eq!((r.first, r.end), (40, 48));
        // An unaligned start loses the partial first block.
        let r = BlockRange::new(0x1_4000_0000 + MIB, 1024 * MIB, 128 * MIB);
        assert_eq!((r.first, r.end), (41, 48));
    }

    fn run(script: &str, root: &std::path::Path) -> (i32, String) {
        // The commands address /sys/devices/system/memory: point them at a fake tree.
        let script = script.replace("/sys/devices/system/memory", &root.display().to_string());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn state_commands_skip_missing_blocks_and_blocks_already_there() {
        let d = tempfile::tempdir().unwrap();
        for (b, st) in [(40, "offline"), (41, "online"), (43, "offline")] {
            let dir = d.path().join(format!("memory{b}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("state"), st).unwrap();
        }
        let r = BlockRange::new(40 * 128 * MIB, 8 * 128 * MIB, 128 * MIB);
        assert_eq!(run(&r.present_cond(3), d.path()).0, 0);
        assert_eq!(run(&r.present_cond(2), d.path()).0, 1);
        assert_eq!(run(&r.online_cmd("online_movable"), d.path()).0, 0);
        let state = |b: u32| {
            std::fs::read_to_string(d.path().join(format!("memory{b}/state")))
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(state(40), "online_movable");
        assert_eq!(state(41), "online");
        assert_eq!(state(43), "online_movable");
        // offline only touches blocks that read back `online`.
        std::fs::write(d.path().join("memory40/state"), "online").unwrap();
        assert_eq!(run(&r.offline_cmd(), d.path()).0, 0);
        assert_eq!(state(40), "offline");
        assert_eq!(state(43), "online_movable");
    }
}
