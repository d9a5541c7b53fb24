//! Stack-frame vocabulary: which lines are frames, how syscall entry wrappers are reduced,
//! and which frames anchor a stall. The generic skip list itself is data in [`super::skip`].

use super::skip::GENERIC;
use regex::{Regex, RegexSet};
use std::sync::LazyLock;

/// Syscall entry wrappers, stripped from a title's function so that `__x64_sys_bpf`,
/// `__arm64_sys_bpf` and `__se_sys_bpf` all read as one function (the shortest result wins).
const SYSCALL_PREFIXES: &[&str] = &[
    "SYSC_",
    "SyS_",
    "sys_",
    "__x64_",
    "__ia32_",
    "__arm64_",
    "____sys_",
    "___sys_",
    "__sys_",
    "__se_",
    "__se_sys_",
    "__do_sys_",
    "compat_SYSC_",
    "compat_SyS_",
    "ksys_",
];

/// Frames where a stall's representative function sits just above: work dispatchers and
/// syscall entry, or the file/socket operation that discriminates a busy syscall.
const STALL_ANCHORS: &[&str] = &[
    "process_one_work",
    "do_syscall_",
    "do_fast_syscall_",
    "sysenter_dispatch",
    "tracesys_phase2",
    "el0_svc_handler",
    "invoke_syscall",
    "ret_fast_syscall",
    "netif_receive_skb",
    "do_softirq",
    "call_timer_fn",
    "_run_timers",
    "run_timer_softirq",
    "hrtimer_run",
    "run_ksoftirqd",
    "smpboot_thread_fn",
    "^kthread$",
    "start_secondary",
    "cpu_startup_entry",
    "ret_from_fork",
    "vfs_write",
    "vfs_read",
    "vfs_iter_read",
    "vfs_iter_write",
    "do_iter_read",
    "do_iter_write",
    "call_read_iter",
    "call_write_iter",
    "new_sync_read",
    "new_sync_write",
    "vfs_ioctl",
    "ksys_ioctl",
    "compat_ioctl",
    "compat_sys_ioctl",
    "blkdev_driver_ioctl",
    "blkdev_ioctl",
    "do_iter_readv_writev",
    "^call_mmap",
    "mmap_region",
    "do_mmap",
    "do_dentry_open",
    "vfs_open",
    "^sock_sendmsg",
    "^sock_recvmsg",
    "^sock_release",
    "^__sock_release",
    "^setsockopt$",
    "kernel_setsockopt",
    "sock_common_setsockopt",
    "^listen$",
    "kernel_listen",
    "sk_common_release",
    "^sock_mmap",
    "^accept$",
    "kernel_accept",
    "^sock_do_ioctl",
    "^sock_ioctl",
    "^compat_sock_ioctl",
    "^nfnetlink_rcv_msg",
    "^rtnetlink_rcv_msg",
    "^netlink_dump",
    "^(sys_)?(socketpair|connect|ioctl)",
    "__do_fault",
    "do_page_fault",
    "^page_fault$",
    "__fput",
    "task_work_run",
    "exit_to_usermode",
    "smp_call_function",
    "tasklet_action",
    "tasklet_hi_action",
];

/// The generic patterns in one set, and for each pattern its group's name.
pub(crate) struct GenericSkip {
    pub set: RegexSet,
    pub group_of: Vec<&'static str>,
    pub pattern: Vec<&'static str>,
}

pub(crate) static GENERIC_SKIP: LazyLock<GenericSkip> = LazyLock::new(|| {
    let mut pattern = Vec::new();
    let mut group_of = Vec::new();
    for (group, pats) in GENERIC {
        for p in *pats {
            pattern.push(*p);
            group_of.push(*group);
        }
    }
    GenericSkip {
        set: RegexSet::new(&pattern).expect("static regex set"),
        group_of,
        pattern,
    }
});

static STALL_ANCHOR_SET: LazyLock<RegexSet> =
    LazyLock::new(|| RegexSet::new(STALL_ANCHORS).expect("static regex set"));

/// Compiler-generated clone suffixes: `foo.isra.0`, `foo.constprop.3`, `foo.cold`, `foo.llvm.123`.
static CLONE_SUFFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\.(?:isra|constprop|part|cold|llvm|lto_priv|localalias|specialized)(?:\.\d+)*")
        .expect("static regex")
});

/// `foo.isra.0` → `foo`; a mangled Rust symbol → its demangled path.
pub(crate) fn normalize_func(name: &str) -> String {
    if let Some(d) = super::demangle::demangle(name) {
        return d;
    }
    if name.contains('.') {
        CLONE_SUFFIX.replace_all(name, "").into_owned()
    } else {
        name.to_string()
    }
}

/// True when the frame is generic machinery (a WARN/BUG/panic helper, a lock, allocator,
/// string, refcount or sanitizer helper, ...) that syzbot never names in a title.
pub fn is_generic_frame(name: &str) -> bool {
    GENERIC_SKIP.set.is_match(name)
}

/// Why a generic frame is skipped: its group and the pattern, e.g.
/// `("lock helper or lockdep", "spin_lock")`.
pub(crate) fn generic_reason(name: &str) -> Option<(&'static str, &'static str)> {
    let s = &*GENERIC_SKIP;
    s.set
        .matches(name)
        .iter()
        .next()
        .map(|i| (s.group_of[i], s.pattern[i]))
}

/// `__x64_sys_bpf` → `sys_bpf`, `__se_sys_mount` → `mount`, `__sys_sendmsg` → `sendmsg`.
pub fn strip_syscall_prefix(name: &str) -> &str {
    let mut best = name;
    for p in SYSCALL_PREFIXES {
        if let Some(s) = name.strip_prefix(p) {
            if s.len() < best.len() {
                best = s;
            }
        }
    }
    best
}

pub(crate) fn is_stall_anchor(name: &str) -> bool {
    STALL_ANCHOR_SET.is_match(name)
}

/// arch/arm/kernel/traps.c `dump_backtrace_entry()` (32-bit arm) prints a frame as
/// `[<c0123456>] (func) from [<c0123500>] (caller+0x1c/0x30)`: the function, without
/// offset, and the function it returns to. Returns both names (clone suffixes stripped by
/// the caller).
pub(crate) fn arm_frame(line: &str) -> Option<(&str, &str)> {
    fn pc(s: &str) -> Option<&str> {
        let r = s.strip_prefix("[<")?;
        let end = r.find(">]")?;
        (end > 0 && r[..end].bytes().all(|c| c.is_ascii_hexdigit())).then(|| &r[end + 2..])
    }
    let r = pc(line.trim_start())?.strip_prefix(" (")?;
    let close = r.find(')')?;
    let func = &r[..close];
    if func.is_empty()
        || !func
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.')
    {
        return None;
    }
    let r = pc(r[close + 1..].strip_prefix(" from ")?)?.strip_prefix(" (")?;
    let end = r
        .bytes()
        .position(|c| !(c.is_ascii_alphanumeric() || c == b'_'))?;
    if end == 0 || !matches!(r.as_bytes()[end], b'+' | b'.') {
        return None;
    }
    Some((func, &r[..end]))
}

/// Every function a stack line names (see [`frame_func`] and [`arm_frame`]).
pub(crate) fn frame_funcs(line: &str) -> impl Iterator<Item = &str> {
    let (a, b) = match arm_frame(line) {
        Some((f, from)) => (Some(f.split('.').next().unwrap_or(f)), Some(from)),
        None => (frame_func(line), None),
    };
    a.into_iter().chain(b)
}

/// The function of a stack line the way syzbot reads one: optional spaces, up to two
/// `[<address>] ` words, then a name directly followed by `+` (an offset) or `.` (a clone
/// suffix). ` ? func+0x1/0x2` (unreliable), `func include/x.h:12 [inline]` (inlined) and
/// prose are not frames. Returns the name without clone suffix.
pub(crate) fn frame_func(line: &str) -> Option<&str> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    for _ in 0..2 {
        if i < b.len() && b[i] == b'[' {
            let mut j = i + 1;
            if b.get(j) == Some(&b'<') {
                j += 1;
            }
            if b.get(j..j + 2) == Some(b"0x".as_slice()) {
                j += 2;
            }
            let hs = j;
            while j < b.len() && b[j].is_ascii_hexdigit() {
                j += 1;
            }
            if j == hs {
                return None;
            }
            if j < b.len() && b[j] == b'>' {
                j += 1;
            }
            if j + 1 >= b.len() || b[j] != b']' || b[j + 1] != b' ' {
                return None;
            }
            i = j + 2;
        }
    }
    let s = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    if i == s || i >= b.len() || (b[i] != b'+' && b[i] != b'.') {
        return None;
    }
    Some(&line[s..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_frames() {
        for f in [
            "refcount_warn_saturate",
            "kobject_put",
            "dump_stack_lvl",
            "__mutex_lock",
            "mutex_lock_nested",
            "_raw_spin_lock_irqsave",
            "lock_acquire",
            "__might_resched",
            "__list_del_entry_valid_or_report",
            "kasan_report",
            "__asan_load8",
            "memcpy",
            "__kmalloc_cache_noprof",
            "kmem_cache_alloc_noprof",
            "_printk",
            "el1h_64_sync_handler",
            "check_panic_on_warn",
            "do_error_trap",
            "ref_tracker_free",
            "crc64_be",
        ] {
            assert!(is_generic_frame(f), "{f} should be generic");
        }
        for f in [
            "foo_remove",
            "of_overlay_remove",
            "kthread",
            "synchronize_rcu",
            "rtnl_lock",
            "console_lock",
            "lock_sock_nested",
            "__schedule",
            "valid_state",
            "__alloc_skb",
        ] {
            assert!(!is_generic_frame(f), "{f} should not be generic");
        }
        assert_eq!(
            generic_reason("_raw_spin_lock"),
            Some(("lock helper or lockdep", "spin_lock"))
        );
    }

    #[test]
    fn syscall_wrappers_reduced() {
        assert_eq!(strip_syscall_prefix("__x64_sys_bpf"), "sys_bpf");
        assert_eq!(strip_syscall_prefix("__arm64_sys_bpf"), "sys_bpf");
        assert_eq!(strip_syscall_prefix("__se_sys_mount"), "mount");
        assert_eq!(strip_syscall_prefix("__do_sys_mount"), "mount");
        assert_eq!(strip_syscall_prefix("____sys_sendmsg"), "sendmsg");
        assert_eq!(strip_syscall_prefix("ksys_read"), "read");
        assert_eq!(strip_syscall_prefix("tcp_sendmsg"), "tcp_sendmsg");
    }

    #[test]
    fn frame_lines() {
        assert_eq!(frame_func(" foo+0x1/0x2"), Some("foo"));
        assert_eq!(frame_func(" foo.isra.0+0x1/0x2 [mod]"), Some("foo"));
        assert_eq!(
            frame_func("[<ffffffff81234>] bar+0x1/0x2 x.c:1"),
            Some("bar")
        );
        assert_eq!(frame_func("    [<ffffffff81234>] baz+0x1/0x2"), Some("baz"));
        assert_eq!(frame_func(" ? foo+0x1/0x2"), None);
        assert_eq!(frame_func(" foo include/x.h:1 [inline]"), None);
        assert_eq!(frame_func("Call Trace:"), None);
        assert_eq!(frame_func("RIP: 0010:foo+0x1/0x2"), None);
        assert_eq!(frame_func("[<ffffffff81234>] ? foo+0x1/0x2"), None);
    }

    #[test]
    fn arm32_frames() {
        let l = "[<8030c8f4>] (rose_find_socket.constprop.0) from [<80310000>] (rose_connect+0x1c/0x30 net/rose/af_rose.c:12)";
        assert_eq!(
            arm_frame(l),
            Some(("rose_find_socket.constprop.0", "rose_connect"))
        );
        assert_eq!(
            frame_funcs(l).collect::<Vec<_>>(),
            ["rose_find_socket", "rose_connect"]
        );
        assert_eq!(arm_frame(" foo+0x1/0x2"), None);
        assert_eq!(frame_funcs(" foo+0x1/0x2").collect::<Vec<_>>(), ["foo"]);
    }

    #[test]
    fn strips_clone_suffixes() {
        assert_eq!(normalize_func("foo.isra.0"), "foo");
        assert_eq!(normalize_func("bar.constprop.0.cold"), "bar");
        assert_eq!(normalize_func("plain"), "plain");
    }
}
