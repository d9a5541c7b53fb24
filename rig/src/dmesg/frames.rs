//! Which stack frames are generic machinery (skipped when picking the guilty frame), and
//! function-name normalization.

use regex::Regex;
use std::sync::LazyLock;

/// Compiler-generated clone suffixes: `foo.isra.0`, `foo.constprop.3`, `foo.cold`, `foo.llvm.123`.
static CLONE_SUFFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\.(?:isra|constprop|part|cold|llvm|lto_priv|localalias|specialized)(?:\.\d+)*")
        .expect("static regex")
});

/// Frames that never are the bug: reporting machinery, refcount/kref/kobject helpers,
/// lock/mutex/scheduler helpers, printk, list helpers, KASAN and allocator hooks,
/// memcpy/string helpers, exception entry. Anchored on the whole (normalized) name.
static SKIP: LazyLock<Regex> = LazyLock::new(|| {
    let pats = [
        // WARN/BUG/oops machinery and exception entry, x86 and arm64
        r"_*warn(_slowpath\w*|_printk|_bogus_irq_restore)?",
        r"_*report_bug",
        r"_*report_\w*",
        r"handle_bug",
        r"exc_\w+",
        r"asm_\w+",
        r"_*die(_addr|_body)?",
        r"oops_\w+",
        r"_*show_regs",
        r"show_\w+",
        r"_*dump_stack(_lvl)?",
        r"dump_backtrace",
        r"show_trace_log_lvl",
        r"arch_stack_walk",
        r"stack_trace_save\w*",
        r"_*panic",
        r"vpanic",
        r"nmi_panic",
        r"check_panic_on_warn",
        r"page_fault_oops",
        r"kernelmode_fixup_or_oops",
        r"_*bad_area\w*",
        r"no_context",
        r"handle_page_fault",
        r"do_user_addr_fault",
        r"do_kern_addr_fault",
        r"fixup_exception",
        r"_*do_kernel_fault",
        r"do_page_fault",
        r"do_translation_fault",
        r"do_mem_abort",
        r"do_debug_exception",
        r"do_el1_\w+",
        r"el1_\w+",
        r"el1h_64_\w+",
        r"arm64_notify_die",
        r"bug_brk_handler",
        r"brk_handler",
        r"call_el1_break_hook",
        r"_*do_trap\w*",
        r"do_error_trap",
        r"do_int3\w*",
        r"fixup_bug",
        r"debug_print_object",
        r"_*debug_object_\w+",
        r"_*debug_check_no_obj_freed",
        r"debug_objects_\w+",
        r"register_lock_class",
        r"lockdep_init_map\w*",
        // printk
        r"_*printk\w*",
        r"vprintk\w*",
        r"_*pr_\w+",
        r"dev_printk\w*",
        r"_*dev_(err|warn|info|emerg|crit|alert|notice)\w*",
        // refcounting helpers
        r"_*refcount_\w+",
        r"_*kref_\w+",
        r"kobject_(put|get|get_unless_zero|release|cleanup|del|add\w*|init\w*|uevent\w*)",
        r"put_device",
        r"get_device",
        r"of_node_(put|get|release)",
        r"_*sysfs_warn_dup",
        r"_*sysfs_create_\w+",
        r"sysfs_do_create_link_sd",
        r"kernfs_\w+",
        r"_*atomic\w*_(dec|inc|sub|add)\w*",
        // locking
        r"_*lock_acquire\w*",
        r"_*lock_release\w*",
        r"lock_(acquired|contended|is_held\w*)",
        r"lockdep_\w+",
        r"_*lockdep_\w+",
        r"check_(noncircular|prev_add|prevs_add|deadlock|irq_usage|usage\w*|flags|wait_context)",
        r"validate_chain",
        r"mark_lock\w*",
        r"mark_usage",
        r"mark_held_locks",
        r"valid_state",
        r"print_(circular_bug|deadlock_bug|usage_bug|bad_irq_dependency|irq_inversion_bug|unlock_imbalance_bug|lock_nested_lock_not_held|held_locks_bug|bad_unlock\w*)",
        r"print_report",
        r"print_address_description\w*",
        r"print_error_description",
        r"debug_check_no_locks_\w+",
        r"_*raw_(spin|read|write)_\w+",
        r"do_raw_(spin|read|write)_\w+",
        r"_*(spin|read|write)_(lock|unlock|trylock)\w*",
        r"queued_(spin|read|write)_lock\w*",
        r"native_queued_spin_lock_slowpath",
        r"_*mutex_(lock|unlock|trylock)\w*",
        r"_*mutex_lock_common",
        r"_*ww_mutex_\w+",
        r"_*rt_mutex_\w+",
        r"rt_spin_\w+",
        r"_*down(_read\w*|_write\w*|_interruptible\w*|_killable\w*|_timeout|_trylock|_common)?",
        r"_*up(_read|_write)?",
        r"_*rwsem_\w+",
        r"_*percpu_(down|up)_\w+",
        r"_*might_(sleep|resched|fault|lock)\w*",
        r"_*cond_resched\w*",
        // scheduler / waiting (hung tasks)
        r"_*schedule\w*",
        r"io_schedule\w*",
        r"context_switch",
        r"_*switch_to\w*",
        r"cpu_switch_to",
        r"_*wait_for_common\w*",
        r"do_wait_for_common",
        r"wait_for_completion\w*",
        r"_*wait_event\w*",
        r"rcuwait_wait_event",
        // list helpers
        r"_*h?list_(add|del|move|replace|splice|cut)\w*",
        r"_*list_del_entry\w*",
        r"_*list_add_valid\w*",
        r"check_data_corruption",
        // KASAN / KFENCE / KMSAN / UBSAN / kmemleak hooks
        r"_*kasan_\w+",
        r"_*asan_\w+",
        r"check_memory_region\w*",
        r"_*kfence_\w+",
        r"kmsan_\w+",
        r"_*ubsan_\w+",
        r"_*kmemleak_\w+",
        r"_*kmemleak\w*",
        // allocators
        r"_*kmalloc\w*",
        r"kzalloc\w*",
        r"kcalloc\w*",
        r"krealloc\w*",
        r"kvmalloc\w*",
        r"_*kvmalloc\w*",
        r"kvzalloc\w*",
        r"kstrdup\w*",
        r"kstrndup\w*",
        r"kmemdup\w*",
        r"kasprintf\w*",
        r"kvasprintf\w*",
        r"kobject_set_name\w*",
        r"dev_set_name",
        r"_*kmem_cache_alloc\w*",
        r"kmem_cache_zalloc\w*",
        r"_*do_kmalloc\w*",
        r"slab_\w+",
        r"_*slab_alloc\w*",
        r"alloc_debug_processing",
        r"_*vmalloc\w*",
        r"_*vzalloc\w*",
        r"_*alloc_pages\w*",
        r"alloc_slab_page",
        r"new_slab",
        r"allocate_slab",
        r"___slab_alloc",
        r"_*kfree\w*",
        r"kmem_cache_free",
        r"slab_free\w*",
        r"_*slab_free",
        r"do_slab_free",
        r"devm_kmalloc\w*",
        r"devm_kzalloc\w*",
        // memory / string helpers
        r"_*mem(cpy|move|set|cmp|chr|scan|dup)\w*",
        r"_*str(cpy|ncpy|lcpy|scpy|cmp|ncmp|casecmp|len|nlen|chr|rchr|str|cat|ncat|lcat|sep|pbrk|spn|cspn)\w*",
        r"_*copy_(to|from)_user\w*",
        r"raw_copy_\w+",
        r"rep_movs_alternative",
        r"_*copy_\w+_user",
        r"_*get_user\w*",
        r"_*put_user\w*",
        r"sized_strscpy",
        r"fortify_\w+",
        r"_*fortify_\w+",
        r"_*sprintf",
        r"_*snprintf",
        r"_*scnprintf",
        r"vsnprintf",
        r"vscnprintf",
    ];
    Regex::new(&format!("^(?:{})$", pats.join("|"))).expect("static regex")
});

/// `foo.isra.0` → `foo`.
pub(crate) fn normalize_func(name: &str) -> String {
    if name.contains('.') {
        CLONE_SUFFIX.replace_all(name, "").into_owned()
    } else {
        name.to_string()
    }
}

/// True when the frame is generic machinery rather than the code at fault.
pub fn is_generic_frame(name: &str) -> bool {
    SKIP.is_match(name)
}

/// The first non-generic frame among `candidates` (already normalized).
pub(crate) fn guilty<'a>(candidates: impl IntoIterator<Item = &'a String>) -> Option<String> {
    candidates
        .into_iter()
        .find(|f| !is_generic_frame(f))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_machinery_keeps_drivers() {
        for f in [
            "refcount_warn_saturate",
            "__refcount_sub_and_test",
            "kref_put",
            "kobject_put",
            "of_node_put",
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
            "strscpy",
            "__kmalloc_cache_noprof",
            "kmem_cache_alloc_noprof",
            "__schedule",
            "schedule_timeout",
            "wait_for_completion",
            "_printk",
            "asm_exc_invalid_op",
            "el1h_64_sync_handler",
        ] {
            assert!(is_generic_frame(f), "{f} should be generic");
        }
        for f in [
            "foo_remove",
            "of_overlay_remove",
            "device_del",
            "platform_remove",
            "kthread",
            "unittest_probe",
            "synchronize_rcu",
            "rtnl_lock_killable_foo",
            "listen_foo",
            "strange_driver_fn",
            "memory_notify",
            "downstream_port_remove",
        ] {
            assert!(!is_generic_frame(f), "{f} should not be generic");
        }
    }

    #[test]
    fn strips_clone_suffixes() {
        assert_eq!(normalize_func("foo.isra.0"), "foo");
        assert_eq!(normalize_func("bar.constprop.0.cold"), "bar");
        assert_eq!(normalize_func("baz.llvm.1234567"), "baz");
        assert_eq!(normalize_func("plain"), "plain");
    }
}
