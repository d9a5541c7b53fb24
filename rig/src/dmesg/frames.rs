//! Stack-frame vocabulary: which lines are frames, which frames are generic machinery that
//! never names a bug, how syscall entry wrappers are reduced, and which frames anchor a stall.
//!
//! The lists are data. They follow the frames syzbot skips when it picks the function of a
//! title (its titles are the ones kernel developers search for), grouped by why a frame says
//! nothing about the bug. A pattern is a regex searched anywhere in the function name (so
//! `spin_lock` also skips `_raw_spin_lock_irqsave`); `^`/`$` anchor where a substring would
//! catch real code. `rig/tests/fixtures/logs/real/` holds the reports that need each group.

use regex::{Regex, RegexSet};
use std::sync::LazyLock;

/// Frames skipped in every report kind, by group (group name, patterns).
pub(crate) const GENERIC: &[(&str, &[&str])] = &[
    (
        "sanitizer runtime",
        &[
            "__sanitizer",
            "__asan",
            "kasan",
            "hwasan",
            "__msan",
            "kmsan",
            "kcsan_setup_watchpoint",
            "check_memory_region",
            "check_heap_object",
            "check_object",
            "read_word_at_a_time",
            "(read|write)_once_.*nocheck",
            "print_address_description",
        ],
    ),
    (
        "WARN/BUG/panic and stack-dump machinery",
        &[
            "panic",
            "invalid_op",
            "report_bug",
            "fixup_bug",
            "print_report",
            "print_usage_bug",
            "do_error",
            "_trap$|do_trap",
            "show_stack",
            "dump_stack",
            "walk_stack",
            "dump_backtrace",
            "warn_slowpath",
            "warn_alloc",
            "warn_bogus",
            "__warn",
            "print_tainted",
            "^get_taint$",
            "stack_trace_consume_entry",
            "arch_stack_walk",
            "stack_trace_save",
            "__fortify_report",
            "assertfail",
            "hex_dump_to_buffer",
            "print_hex_dump",
            "program_check_exception",
            "program_check_common",
        ],
    ),
    (
        "allocator",
        &[
            "alloc_page",
            "k?v?(?:m|z|c)alloc",
            "krealloc",
            "kmem_cache",
            "allocate_slab",
            "__alloc_frozen_pages_noprof",
            "folio_(?:alloc|unlock)",
            "filemap_alloc_folio",
            "__filemap_get_folio",
            "find_or_create_page",
            "do_read_cache_folio",
            "read_cache_page",
            "pagecache_get_page",
            "grab_cache_page_write_begin",
            "slab_",
            "^kv?free$",
            "kfree_skb",
            "memdup",
            "strdup",
            "strndup",
            "kasprintf",
            "kvasprintf",
        ],
    ),
    (
        "debugobjects",
        &[
            "debug_object",
            "timer_is_static_object",
            "work_is_static_object",
        ],
    ),
    (
        "lock helper or lockdep",
        &[
            "__might_fault",
            "print_unlock",
            "imbalance_bug",
            "lockdep",
            "bh_enable",
            "bh_disable",
            "perf_trace",
            "lock_acquire",
            "lock_release",
            "lock_class",
            "mark_lock",
            "(reacquire|mark)_held_locks",
            "raw_spin_rq",
            "spin_lock",
            "spin_trylock",
            "spin_unlock",
            "read_lock",
            "read_trylock",
            "write_lock",
            "write_trylock",
            "read_unlock",
            "write_unlock",
            "^down$",
            "down_read",
            "down_write",
            "down_trylock",
            "up_read",
            "up_write",
            "^mutex_",
            "^__mutex_",
            "^rt_mutex_",
            "owner_on_cpu",
            "osq_lock",
            "osq_unlock",
            "(trace|lockdep)_(hard|soft)irq",
            "^(un)?lock_page",
            "lock_timer_base",
        ],
    ),
    (
        "atomic, bit or refcount helper",
        &[
            "atomic(64)?_(dec|inc|read|set|or|xor|and|add|sub|fetch|xchg|cmpxchg|try)",
            "(set|clear|change|test)_bit",
            "__wake_up",
            "^refcount_",
            "^kref_",
            "ref_tracker",
            "seqprop_assert",
        ],
    ),
    (
        "string, memory or printk helper",
        &[
            "memcpy",
            "memcmp",
            "memset",
            "memchr",
            "memmove",
            "strcmp",
            "strncmp",
            "strcpy",
            "strlcpy",
            "strncpy",
            "strscpy",
            "strlen",
            "strstr",
            "strnstr",
            "strnlen",
            "strchr",
            "string",
            "pointer",
            "snprintf",
            "scnprintf",
            "printk",
            "va_format",
            "dev_info",
            "dev_notice",
            "dev_warn",
            "dev_err",
            "dev_alert",
            "dev_crit",
            "dev_emerg",
            "^crc\\d+",
            "crc_itu_t",
            "__phys_addr",
        ],
    ),
    (
        "user-copy or might_sleep check",
        &[
            "copy_to_user",
            "copy_from_user",
            "copy_to_iter",
            "copy_from_iter",
            "copy_page_to_iter",
            "copy_page_from_iter",
            "copy_folio_to_iter",
            "^copyin$",
            "^copyout$",
            "put_user",
            "get_user",
            "might_fault",
            "might_sleep",
            "__might_resched",
        ],
    ),
    (
        "list or tree helper",
        &[
            "list_add",
            "list_del",
            "list_replace",
            "list_move",
            "list_splice",
            "^rb_",
            "^__rb_",
            "^klist_",
            "xas_(?:start|load|find)",
            "rhashtable_lookup",
            "_indirect_thunk_",
        ],
    ),
    (
        "workqueue, timer or completion helper",
        &[
            "del_timer",
            "flush_work",
            "__cancel_work_timer",
            "cancel_work_sync",
            "try_to_grab_pending",
            "flush_workqueue",
            "drain_workqueue",
            "destroy_workqueue",
            "queue_work",
            "finish_wait",
            "kthread_stop",
            "^complete$",
            "wait_for_completion",
            "insert_work",
            "__queue_delayed_work",
            "queue_delayed_work_on",
            "__timer_delete_sync",
            "sk_stop_timer_sync",
            "__mod_timer",
            "cleanup_srcu_struct",
        ],
    ),
    (
        "device-model or USB core helper",
        &[
            "kobject_",
            "add_uevent_var",
            "get_device_parent",
            "device_add",
            "device_del",
            "device_unregister",
            "device_destroy",
            "device_release",
            "devres_release_all",
            "hwrng_unregister",
            "i2c_del_adapter",
            "__unregister_client",
            "device_for_each_child",
            "rollback_registered",
            "unregister_netdev",
            "sysfs_remove",
            "device_remove_file",
            "tty_unregister_device",
            "^put_device$",
            "ida_free",
            "dummy_urb_enqueue",
            "usb_kill_urb",
            "usb_kill_anchored_urbs",
            "usb_control_msg",
            "usb_hcd_submit_urb",
            "usb_submit_urb",
        ],
    ),
    (
        "MMIO accessor",
        &[
            "readb$",
            "readw$",
            "readl$",
            "readq$",
            "writeb$",
            "writew$",
            "writel$",
            "writeq$",
            "logic_in",
            "logic_out",
        ],
    ),
    (
        "VFS reference helper",
        &[
            "^iput$",
            "^iput_final$",
            "^ihold$",
            "drop_nlink",
            "fast_dput",
            "dput",
            "find_lock_entries",
            "truncate_inode_pages_range",
            "extract_(user|iter)_to_sg",
        ],
    ),
    (
        "arm64 fault entry",
        &[
            "do_(kernel|translation)_fault",
            "do_mem_abort",
            "el1_abort",
            "el1h_64_sync(?:_handler)?",
        ],
    ),
];

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

/// `foo.isra.0` → `foo`.
pub(crate) fn normalize_func(name: &str) -> String {
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
    fn strips_clone_suffixes() {
        assert_eq!(normalize_func("foo.isra.0"), "foo");
        assert_eq!(normalize_func("bar.constprop.0.cold"), "bar");
        assert_eq!(normalize_func("plain"), "plain");
    }
}
