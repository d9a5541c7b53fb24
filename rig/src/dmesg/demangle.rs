//! Rust symbol demangling, so that a frame of kernel Rust code reads
//! `<rust_binder::thread::Thread>::translate_object` in a title, as syzbot writes it, and
//! not `_RNvMs5_NtCs..._11rust_binder6threadNtB5_6Thread16translate_object`.
//!
//! kallsyms prints the symbol the compiler emitted; the kernel builds Rust with
//! `-Csymbol-mangling-version=v0` (rust/Makefile), whose grammar is RFC 2603 ("Rust Symbol
//! Name Mangling v0"); older toolchains' legacy mangling (`_ZN...17h<16 hex>E`) is read too.
//! The output follows the demangler syzbot uses (github.com/ianlancetaylor/demangle, with
//! parameters left out): paths joined by `::`, `<Type>` for inherent impls, `<Type as
//! Trait>` for trait impls, generic arguments in `<...>`, disambiguators and the
//! instantiating crate left out. Input is untrusted: depth, output size and work are
//! bounded, and anything malformed is left mangled.

/// Longest demangled name kept (titles are cut at 120 characters anyway).
const MAX_OUT: usize = 512;
/// Deepest nesting of paths and types followed.
const MAX_DEPTH: usize = 48;
/// Most backreferences followed in one symbol.
const MAX_BACKREFS: usize = 256;

/// The demangled form of a Rust symbol, or `None` when `sym` is no (valid) Rust symbol.
/// A `.suffix` (`.llvm.1234`, `.cold`) is dropped.
pub(crate) fn demangle(sym: &str) -> Option<String> {
    if let Some(v0) = sym.strip_prefix("_R") {
        return demangle_v0(v0.split('.').next().unwrap_or(v0));
    }
    if let Some(legacy) = sym.strip_prefix("_ZN") {
        // Legacy names hold `.` themselves (`..` is `::`); a suffix follows the hash.
        let b = legacy.as_bytes();
        let end = (0..b.len()).find(|&i| {
            b[i] == b'E'
                && i >= 19
                && &b[i - 19..i - 16] == b"17h"
                && b[i - 16..i].iter().all(u8::is_ascii_hexdigit)
        })?;
        return super::demangle_legacy::demangle_legacy(&legacy[..=end]);
    }
    None
}

struct V0<'a> {
    /// The symbol after `_R` (backreferences are offsets into it).
    orig: &'a [u8],
    pos: usize,
    out: String,
    skip: bool,
    depth: usize,
    backrefs: usize,
}

type R = Result<(), ()>;

fn demangle_v0(s: &str) -> Option<String> {
    let mut d = V0 {
        orig: s.as_bytes(),
        pos: 0,
        out: String::new(),
        skip: false,
        depth: 0,
        backrefs: 0,
    };
    if d.peek().is_some_and(|c| c.is_ascii_digit()) {
        return None; // an encoding version other than the first
    }
    d.path(true).ok()?;
    if d.pos < d.orig.len() {
        // The instantiating crate is not shown.
        d.skip = true;
        d.path(false).ok()?;
    }
    (d.pos == d.orig.len() && !d.out.is_empty()).then_some(d.out)
}

impl V0<'_> {
    fn peek(&self) -> Option<u8> {
        self.orig.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<u8, ()> {
        let c = self.peek().ok_or(())?;
        self.pos += 1;
        Ok(c)
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn put(&mut self, s: &str) -> R {
        if !self.skip {
            if self.out.len() + s.len() > MAX_OUT {
                return Err(());
            }
            self.out.push_str(s);
        }
        Ok(())
    }

    fn enter(&mut self) -> R {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(())
        } else {
            Ok(())
        }
    }

    fn base62(&mut self) -> Result<u64, ()> {
        if self.eat(b'_') {
            return Ok(0);
        }
        let mut v: u64 = 0;
        loop {
            let c = self.next()?;
            let d = match c {
                b'_' => return v.checked_add(1).ok_or(()),
                b'0'..=b'9' => c - b'0',
                b'a'..=b'z' => c - b'a' + 10,
                b'A'..=b'Z' => c - b'A' + 36,
                _ => return Err(()),
            };
            v = v
                .checked_mul(62)
                .and_then(|v| v.checked_add(u64::from(d)))
                .ok_or(())?;
        }
    }

    fn decimal(&mut self) -> Result<usize, ()> {
        let start = self.pos;
        let mut v: usize = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(usize::from(c - b'0')))
                .ok_or(())?;
            self.pos += 1;
        }
        if self.pos == start {
            Err(())
        } else {
            Ok(v)
        }
    }

    fn disambiguator(&mut self) -> Result<u64, ()> {
        if self.eat(b's') {
            Ok(self.base62()? + 1)
        } else {
            Ok(0)
        }
    }

    /// `[u] <decimal> [_] <bytes>`; punycode identifiers are kept as written.
    fn ident(&mut self) -> Result<String, ()> {
        let puny = self.eat(b'u');
        let n = self.decimal()?;
        self.eat(b'_');
        let end = self.pos.checked_add(n).ok_or(())?;
        let bytes = self.orig.get(self.pos..end).ok_or(())?;
        if !bytes
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            return Err(());
        }
        self.pos = end;
        let id = String::from_utf8_lossy(bytes).into_owned();
        Ok(if puny {
            format!("{{punycode:{id}}}")
        } else {
            id
        })
    }

    fn backref(&mut self, f: fn(&mut Self) -> R) -> R {
        let at = self.pos;
        if !self.eat(b'B') {
            return Err(());
        }
        let target = usize::try_from(self.base62()?).map_err(|_| ())?;
        if self.skip {
            return Ok(());
        }
        self.backrefs += 1;
        if target >= at || self.backrefs > MAX_BACKREFS {
            return Err(());
        }
        let resume = self.pos;
        self.pos = target;
        let r = f(self);
        self.pos = resume;
        r
    }

    fn path(&mut self, value: bool) -> R {
        self.enter()?;
        let r = self.path_inner(value);
        self.depth -= 1;
        r
    }

    fn path_inner(&mut self, value: bool) -> R {
        match self.peek().ok_or(())? {
            b'C' => {
                self.pos += 1;
                self.disambiguator()?;
                let id = self.ident()?;
                self.put(&id)
            }
            c @ (b'M' | b'X') => {
                self.pos += 1;
                let hold = std::mem::replace(&mut self.skip, true);
                let r = self.disambiguator().and_then(|_| self.path(false));
                self.skip = hold;
                r?;
                self.put("<")?;
                self.ty()?;
                if c == b'X' {
                    self.put(" as ")?;
                    self.path(false)?;
                }
                self.put(">")
            }
            b'Y' => {
                self.pos += 1;
                self.put("<")?;
                self.ty()?;
                self.put(" as ")?;
                self.path(false)?;
                self.put(">")
            }
            b'N' => {
                self.pos += 1;
                let ns = self.next()?;
                if !ns.is_ascii_alphabetic() {
                    return Err(());
                }
                self.path(value)?;
                let dis = self.disambiguator()?;
                let id = self.ident()?;
                if ns.is_ascii_uppercase() {
                    let what = match ns {
                        b'C' => "closure".to_string(),
                        b'S' => "shim".to_string(),
                        other => (other as char).to_string(),
                    };
                    let sep = if id.is_empty() { "" } else { ":" };
                    self.put(&format!("::{{{what}{sep}{id}#{dis}}}"))
                } else {
                    self.put("::")?;
                    self.put(&id)
                }
            }
            b'I' => {
                self.pos += 1;
                self.path(value)?;
                if value {
                    self.put("::")?;
                }
                self.put("<")?;
                self.list(Self::generic_arg)?;
                self.put(">")
            }
            b'B' => self.backref(if value {
                Self::value_path
            } else {
                Self::type_path
            }),
            _ => Err(()),
        }
    }

    fn value_path(&mut self) -> R {
        self.path(true)
    }

    fn type_path(&mut self) -> R {
        self.path(false)
    }

    /// `{item} E`, items separated by `, `.
    fn list(&mut self, item: fn(&mut Self) -> R) -> R {
        let mut first = true;
        while self.peek().ok_or(())? != b'E' {
            if !first {
                self.put(", ")?;
            }
            first = false;
            item(self)?;
        }
        self.pos += 1;
        Ok(())
    }

    fn generic_arg(&mut self) -> R {
        if self.eat(b'L') {
            self.base62()?;
            self.put("'_")
        } else if self.eat(b'K') {
            self.konst()
        } else {
            self.ty()
        }
    }

    fn ty(&mut self) -> R {
        self.enter()?;
        let r = self.ty_inner();
        self.depth -= 1;
        r
    }

    fn ty_inner(&mut self) -> R {
        let c = self.peek().ok_or(())?;
        if c.is_ascii_lowercase() {
            self.pos += 1;
            return self.put(basic(c).ok_or(())?);
        }
        match c {
            b'C' | b'M' | b'X' | b'Y' | b'N' | b'I' => self.path(false),
            b'A' | b'S' => {
                self.pos += 1;
                self.put("[")?;
                self.ty()?;
                if c == b'A' {
                    self.put("; ")?;
                    self.konst()?;
                }
                self.put("]")
            }
            b'T' => {
                self.pos += 1;
                self.put("(")?;
                self.list(Self::ty)?;
                self.put(")")
            }
            b'R' | b'Q' => {
                self.pos += 1;
                self.put("&")?;
                if self.eat(b'L') {
                    self.base62()?;
                }
                if c == b'Q' {
                    self.put("mut ")?;
                }
                self.ty()
            }
            b'P' | b'O' => {
                self.pos += 1;
                self.put(if c == b'P' { "*const " } else { "*mut " })?;
                self.ty()
            }
            b'F' => {
                self.pos += 1;
                if self.eat(b'G') {
                    self.base62()?;
                }
                if self.eat(b'U') {
                    self.put("unsafe ")?;
                }
                if self.eat(b'K') {
                    if self.eat(b'C') {
                        self.put("extern \"C\" ")?;
                    } else {
                        let abi = self.ident()?.replace('_', "-");
                        self.put(&format!("extern \"{abi}\" "))?;
                    }
                }
                self.put("fn(")?;
                self.list(Self::ty)?;
                self.put(")")?;
                if !self.eat(b'u') {
                    self.put(" -> ")?;
                    self.ty()?;
                }
                Ok(())
            }
            b'D' => {
                self.pos += 1;
                self.put("dyn ")?;
                if self.eat(b'G') {
                    self.base62()?;
                }
                let mut first = true;
                while self.peek().ok_or(())? != b'E' {
                    if !first {
                        self.put(" + ")?;
                    }
                    first = false;
                    self.path(false)?;
                    while self.eat(b'p') {
                        let name = self.ident()?;
                        self.put(&format!("<{name} = "))?;
                        self.ty()?;
                        self.put(">")?;
                    }
                }
                self.pos += 1;
                if !self.eat(b'L') {
                    return Err(());
                }
                self.base62()?;
                Ok(())
            }
            b'B' => self.backref(Self::ty),
            _ => Err(()),
        }
    }

    fn konst(&mut self) -> R {
        if self.peek() == Some(b'B') {
            return self.backref(Self::konst);
        }
        if self.eat(b'p') {
            return self.put("_");
        }
        let ty = self.next()?;
        let neg = self.eat(b'n');
        let start = self.pos;
        while self.peek().ok_or(())?.is_ascii_hexdigit() {
            self.pos += 1;
        }
        let digits = std::str::from_utf8(&self.orig[start..self.pos]).map_err(|_| ())?;
        if !self.eat(b'_') {
            return Err(());
        }
        let v = u64::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16);
        let text = match (ty, v) {
            (b'b', Ok(0)) => "false".to_string(),
            (b'b', Ok(1)) => "true".to_string(),
            (b'b', _) => return Err(()),
            (_, Ok(v)) => format!("{}{v}", if neg { "-" } else { "" }),
            (_, Err(_)) => format!("0x{digits}"),
        };
        self.put(&text)
    }
}

fn basic(c: u8) -> Option<&'static str> {
    Some(match c {
        b'a' => "i8",
        b'b' => "bool",
        b'c' => "char",
        b'd' => "f64",
        b'e' => "str",
        b'f' => "f32",
        b'h' => "u8",
        b'i' => "isize",
        b'j' => "usize",
        b'l' => "i32",
        b'm' => "u32",
        b'n' => "i128",
        b'o' => "u128",
        b'p' => "_",
        b's' => "i16",
        b't' => "u16",
        b'u' => "()",
        b'v' => "...",
        b'x' => "i64",
        b'y' => "u64",
        b'z' => "!",
        _ => return None,
    })
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
