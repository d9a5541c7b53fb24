//! Rust symbol demangling, so that a frame of kernel Rust code reads
//! `<rust_binder::thread::Thread>::translate_object` in a title, as syzbot writes it, and
//! not `_RNvMs5_NtCs..._11rust_binder6threadNtB5_6Thread16translate_object`.
//!
//! kallsyms prints the symbol the compiler emitted; the kernel builds Rust with
//! `-Csymbol-mangling-version=v0` (rust/Makefile, RFC 2603); older toolchains' legacy mangling
//! (`_ZN...17h<16 hex>E`) is read too. The demangler is `rustc-demangle` (the one std's
//! backtraces use, built for untrusted input: bounded depth and output) in its alternate form:
//! no hashes, crate disambiguators or `.llvm.N` suffixes, which is what syzbot's titles show
//! (paths joined by `::`, `<Type>` for inherent impls, `<Type as Trait>` for trait impls).

/// The demangled form of a Rust symbol, or `None` when `sym` is no (valid) Rust symbol.
pub(crate) fn demangle(sym: &str) -> Option<String> {
    if !(sym.starts_with("_R") || sym.starts_with("_ZN")) {
        return None;
    }
    rustc_demangle::try_demangle(sym)
        .ok()
        .map(|d| format!("{d:#}"))
}

#[cfg(test)]
mod tests {
    use super::demangle;

    #[test]
    fn v0_paths_impls_and_generics() {
        assert_eq!(
            demangle("_RNvNtCs1234_4core9panicking9panic_fmt").as_deref(),
            Some("core::panicking::panic_fmt")
        );
        // An inherent impl: `<rust_binder::thread::Thread>::translate_object`.
        assert_eq!(
            demangle("_RNvMs5_NtCsbDqzXfLQacH_11rust_binder6threadNtB5_6Thread16translate_object")
                .as_deref(),
            Some("<rust_binder::thread::Thread>::translate_object")
        );
        // A trait impl with generics, and a closure.
        assert_eq!(
            demangle("_RNvXs_NtCs1_6kernel4listINtB4_4ListpENtNtNtCs2_4core3ops4drop4Drop4drop")
                .as_deref(),
            Some("<kernel::list::List<_> as core::ops::drop::Drop>::drop")
        );
        assert_eq!(
            demangle("_RNCNvCs1_3foo3bar0B3_.llvm.123").as_deref(),
            Some("foo::bar::{closure#0}")
        );
        assert_eq!(
            demangle("_RNvCs1_7___rustc17rust_begin_unwind").as_deref(),
            Some("__rustc::rust_begin_unwind")
        );
    }

    #[test]
    fn legacy() {
        assert_eq!(
            demangle("_ZN4core9panicking9panic_fmt17h2f5a3b6c7d8e9f01E").as_deref(),
            Some("core::panicking::panic_fmt")
        );
        assert_eq!(
            demangle("_ZN73_$LT$kernel..sync..arc..Arc$LT$T$GT$$u20$as$u20$core..ops..drop..Drop$GT$4drop17h0123456789abcdefE").as_deref(),
            Some("<kernel::sync::arc::Arc<T> as core::ops::drop::Drop>::drop")
        );
    }

    #[test]
    fn not_rust_or_malformed_stays_mangled() {
        assert_eq!(demangle("foo_bar"), None);
        assert_eq!(demangle("_RNvC"), None);
        assert_eq!(demangle("_RB_"), None);
        assert_eq!(demangle("_RNvNvNvNvNvNvB0_"), None);
        let deep = format!("_R{}C1a", "N".repeat(5000));
        assert_eq!(demangle(&deep), None);
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // A small LCG over the characters mangled names are made of.
        let alphabet = b"_RNvCsMXYIBEKLpuTSARQPOFDG0123456789abcdefhjlmnotxyz$.";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut s = String::from(if x & 1 == 0 { "_R" } else { "_ZN" });
            for _ in 0..(x % 40) {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push(alphabet[(x >> 33) as usize % alphabet.len()] as char);
            }
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let _ = demangle(&s);
        }
    }
}
