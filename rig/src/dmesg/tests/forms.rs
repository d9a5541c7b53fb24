//! Report forms the held-out check found no report in (issue #30, second pass), each
//! written from the kernel code that prints it, in syzbot's console shape, with the title
//! syzkaller's rules (google/syzkaller `pkg/report/linux.go`) give it.

/// Console lines as syzbot's console shows them: a printk timestamp (`[%5lu.%06lu]`,
/// kernel/printk/printk.c print_time()) 1 µs apart from `t0` and the caller tag `ctx`
/// (`[%6s]`, printk_caller_id()) on each line; a line starting with `|` is user output (the
/// fuzzer's), printed as it is.
pub(super) fn console(t0: f64, ctx: &str, lines: &str) -> String {
    let mut s = String::new();
    for (i, l) in lines.lines().enumerate() {
        if let Some(user) = l.strip_prefix('|') {
            s.push_str(user);
        } else {
            let t = t0 + i as f64 * 0.000_001;
            s.push_str(&format!("[{t:>12.6}][{ctx:>6}] {l}"));
        }
        s.push('\n');
    }
    s
}
