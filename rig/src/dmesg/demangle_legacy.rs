//! Legacy Rust mangling (before `-Csymbol-mangling-version=v0`): `_ZN` {<len><ident>}
//! `17h<16 hex digits>E`, identifiers joined by `::`, `$LT$`-style escapes undone; the same
//! output as the demangler syzbot uses (see [`super::demangle`]).

/// Legacy mangling: `_ZN` {<len><ident>} `17h<16 hex digits>E`, identifiers joined by `::`
/// with `$LT$`-style escapes undone.
pub(crate) fn demangle_legacy(s: &str) -> Option<String> {
    let body = s.strip_suffix('E')?;
    let hash = body.get(body.len().checked_sub(17)?..)?;
    let hex = hash.strip_prefix("h")?;
    // `17h` + 16 hex digits: the hash, an identifier of its own.
    if !hex.bytes().all(|c| c.is_ascii_hexdigit()) || !body.get(..body.len() - 17)?.ends_with("17")
    {
        return None;
    }
    let mut rest = body.get(..body.len().checked_sub(19)?)?;
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: usize = rest.get(..digits)?.parse().ok()?;
        let id = rest.get(digits..digits.checked_add(n)?)?;
        rest = &rest[digits + n..];
        parts.push(unescape_legacy(id));
    }
    (!parts.is_empty()).then(|| parts.join("::"))
}

fn unescape_legacy(id: &str) -> String {
    let id = id.strip_prefix("_$").map_or(id, |_| &id[1..]);
    let mut out = String::new();
    let mut rest = id;
    while let Some(c) = rest.chars().next() {
        if c == '$' {
            if let Some(end) = rest[1..].find('$') {
                let code = &rest[1..1 + end];
                let rep = match code {
                    "SP" => Some("@".to_string()),
                    "BP" => Some("*".to_string()),
                    "RF" => Some("&".to_string()),
                    "LT" => Some("<".to_string()),
                    "GT" => Some(">".to_string()),
                    "LP" => Some("(".to_string()),
                    "RP" => Some(")".to_string()),
                    "C" => Some(",".to_string()),
                    _ => code
                        .strip_prefix('u')
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                        .map(String::from),
                };
                if let Some(rep) = rep {
                    out.push_str(&rep);
                    rest = &rest[end + 2..];
                    continue;
                }
            }
            out.push_str(rest);
            break;
        }
        if let Some(r) = rest.strip_prefix("..") {
            out.push_str("::");
            rest = r;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::demangle::demangle;

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
}
