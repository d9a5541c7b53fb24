//! Optional source-line annotation of stack frames with binutils (`nm`, `addr2line`).
//!
//! Frames `func+0xoff/0xsize` of built-in code get `func`'s address from `nm vmlinux`, then
//! `addr2line -afie vmlinux` resolves `address + off` (minus one for return addresses, so the
//! call line is shown, not the next one). Each frame line in the report text gets
//! ` file:line` appended, and inlined callers get ` file:line [inline]` lines of their own,
//! the way syzbot shows them. Module frames (`[mod]`) are left alone. Titles do not change.

use super::line::parse_frame;
use super::Report;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum SymbolizeError {
    #[error("`{tool}` is not installed (binutils{hint})")]
    ToolMissing { tool: String, hint: &'static str },
    #[error("`{command}` failed on {path}: {stderr}")]
    Failed {
        command: String,
        path: PathBuf,
        stderr: String,
    },
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

fn tool(prefix: Option<&str>, name: &str) -> String {
    format!("{}{name}", prefix.unwrap_or(""))
}

fn run(cmd: &mut Command, name: &str, vmlinux: &Path) -> Result<String, SymbolizeError> {
    let out = cmd.output().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SymbolizeError::ToolMissing {
                tool: name.to_string(),
                hint: if name.starts_with("aarch64") {
                    ": binutils-aarch64-linux-gnu"
                } else {
                    ""
                },
            }
        } else {
            SymbolizeError::Spawn {
                command: name.to_string(),
                source,
            }
        }
    })?;
    if !out.status.success() {
        return Err(SymbolizeError::Failed {
            command: name.to_string(),
            path: vmlinux.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses `nm` output into name → address for the names wanted.
fn parse_nm(out: &str, wanted: &BTreeSet<String>) -> HashMap<String, u64> {
    let mut map = HashMap::new();
    for l in out.lines() {
        let mut it = l.split_whitespace();
        let (Some(addr), Some(ty), Some(name)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if !matches!(ty, "t" | "T" | "W" | "w") || !wanted.contains(name) {
            continue;
        }
        if let Ok(a) = u64::from_str_radix(addr, 16) {
            map.entry(name.to_string()).or_insert(a);
        }
    }
    map
}

/// Parses `addr2line -a -f -i` output: per address, `0x...` then (function, file:line) pairs,
/// innermost first.
fn parse_addr2line(out: &str) -> HashMap<u64, Vec<(String, String)>> {
    let mut map: HashMap<u64, Vec<(String, String)>> = HashMap::new();
    let mut cur: Option<u64> = None;
    let mut lines = out.lines().peekable();
    while let Some(l) = lines.next() {
        if let Some(h) = l.strip_prefix("0x") {
            cur = u64::from_str_radix(h.trim(), 16).ok();
            continue;
        }
        let Some(addr) = cur else { continue };
        let func = l.trim().to_string();
        let Some(loc) = lines.next() else { break };
        let loc = loc
            .split(" (discriminator")
            .next()
            .unwrap_or(loc)
            .trim()
            .to_string();
        map.entry(addr).or_default().push((func, loc));
    }
    map
}

/// Appends source locations to the frames in the reports' text. `arch_prefix` is the binutils
/// prefix for a cross target (`Some("aarch64-linux-gnu-")` for arm64). Returns how many frame
/// lines were annotated; an error (tools missing, not an ELF) leaves the reports unchanged.
pub fn symbolize(
    reports: &mut [Report],
    vmlinux: &Path,
    arch_prefix: Option<&str>,
) -> Result<usize, SymbolizeError> {
    let mut wanted = BTreeSet::new();
    for r in reports.iter() {
        for l in r.text.lines() {
            if let Some(f) = parse_frame(l) {
                if f.module.is_none() {
                    wanted.insert(f.func.to_string());
                }
            }
        }
    }
    if wanted.is_empty() {
        return Ok(0);
    }
    let nm = tool(arch_prefix, "nm");
    let nm_out = run(Command::new(&nm).arg(vmlinux), &nm, vmlinux)?;
    let syms = parse_nm(&nm_out, &wanted);

    // Address of every frame line, per report and line index.
    let mut addrs = BTreeSet::new();
    let mut plan: Vec<Vec<Option<u64>>> = Vec::with_capacity(reports.len());
    for r in reports.iter() {
        let mut per = Vec::new();
        let mut first_in_trace = true;
        for l in r.text.lines() {
            let t = l.trim_start();
            if t.starts_with("Call Trace:") || t.starts_with("Call trace:") {
                first_in_trace = true;
            }
            let a = parse_frame(l).and_then(|f| {
                if f.module.is_some() {
                    return None;
                }
                let base = *syms.get(f.func)?;
                let off = u64::from_str_radix(f.offset, 16).ok()?;
                // Return addresses point after the call; the faulting frame does not.
                let adj = if first_in_trace || t.starts_with("RIP:") || t.starts_with("pc :") {
                    0
                } else {
                    1
                };
                Some((base + off).saturating_sub(adj))
            });
            if a.is_some() {
                first_in_trace = false;
            }
            if let Some(a) = a {
                addrs.insert(a);
            }
            per.push(a);
        }
        plan.push(per);
    }
    if addrs.is_empty() {
        return Ok(0);
    }
    let a2l = tool(arch_prefix, "addr2line");
    let mut cmd = Command::new(&a2l);
    cmd.arg("-a").arg("-f").arg("-i").arg("-e").arg(vmlinux);
    for a in &addrs {
        cmd.arg(format!("{a:#x}"));
    }
    let resolved = parse_addr2line(&run(&mut cmd, &a2l, vmlinux)?);

    let mut count = 0;
    for (r, per) in reports.iter_mut().zip(plan) {
        let mut text = String::with_capacity(r.text.len() * 2);
        for (l, a) in r.text.lines().zip(per) {
            let locs = a
                .and_then(|a| resolved.get(&a))
                .filter(|v| v.first().is_some_and(|(_, loc)| !loc.starts_with("??")));
            match locs {
                Some(v) => {
                    count += 1;
                    let indent: String = l.chars().take_while(|c| *c == ' ').collect();
                    // addr2line lists the innermost inlined function first.
                    for (func, loc) in v.iter().take(v.len() - 1) {
                        text.push_str(&format!("{indent}{func} {loc} [inline]\n"));
                    }
                    let (_, loc) = &v[v.len() - 1];
                    text.push_str(&format!("{l} {loc}\n"));
                }
                None => {
                    text.push_str(l);
                    text.push('\n');
                }
            }
        }
        text.pop();
        r.text = text;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tool_output() {
        let wanted: BTreeSet<String> = ["foo".to_string(), "bar".to_string()].into();
        let nm = "ffffffff81000000 T foo\nffffffff81000100 t bar\nffffffff81000200 T baz\n";
        let m = parse_nm(nm, &wanted);
        assert_eq!(m.get("foo"), Some(&0xffffffff81000000));
        assert_eq!(m.len(), 2);
        let a2l = "0xffffffff81000010\ninl\ninclude/x.h:3\nfoo\ndrivers/foo.c:12 (discriminator 1)\n0xffffffff81000110\nbar\n??:0\n";
        let r = parse_addr2line(a2l);
        assert_eq!(
            r[&0xffffffff81000010],
            vec![
                ("inl".to_string(), "include/x.h:3".to_string()),
                ("foo".to_string(), "drivers/foo.c:12".to_string())
            ]
        );
        assert_eq!(r[&0xffffffff81000110][0].1, "??:0");
    }

    #[test]
    fn missing_tool_is_an_error_not_a_panic() {
        let mut reports = super::super::analyze(
            "WARNING: CPU: 0 PID: 1 at drivers/foo.c:1 foo+0x1/0x2\nCall Trace:\n foo+0x1/0x2\n bar+0x3/0x4\n---[ end trace 0000000000000000 ]---\n",
        );
        assert_eq!(reports.len(), 1);
        let before = reports.clone();
        let r = symbolize(
            &mut reports,
            Path::new("/nonexistent/vmlinux"),
            Some("no-such-prefix-"),
        );
        assert!(matches!(r, Err(SymbolizeError::ToolMissing { .. })));
        assert_eq!(reports, before);
    }

    #[test]
    fn resolves_frames_of_a_real_elf() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("rig_sym.c");
        std::fs::write(
            &src,
            "static int __attribute__((noinline)) rig_leaf(int x)\n{\n\treturn x * 3;\n}\n\
             int rig_caller(int x)\n{\n\treturn rig_leaf(x) + 1;\n}\n\
             int main(void)\n{\n\treturn rig_caller(2);\n}\n",
        )
        .unwrap();
        let elf = dir.path().join("vmlinux");
        let built = Command::new("gcc")
            .args(["-g", "-O0", "-o"])
            .arg(&elf)
            .arg(&src)
            .status();
        assert!(
            built.is_ok_and(|s| s.success()),
            "gcc could not build the test ELF: install gcc (apt-get install gcc)"
        );
        assert!(
            Command::new("addr2line").arg("-v").output().is_ok(),
            "addr2line is missing: install binutils (apt-get install binutils)"
        );
        let mut reports = super::super::analyze(
            "WARNING: CPU: 0 PID: 1 at rig_sym.c:3 rig_leaf+0x4/0x10\n\
             Call trace:\n rig_leaf+0x4/0x10\n rig_caller+0x8/0x1c\n main+0x9/0x14\n\
             ---[ end trace 0000000000000000 ]---\n",
        );
        let n = symbolize(&mut reports, &elf, None).unwrap();
        assert_eq!(n, 3, "{}", reports[0].text);
        let lines: Vec<_> = reports[0].text.lines().collect();
        assert!(lines[2].starts_with(" rig_leaf+0x4/0x10 "), "{}", lines[2]);
        assert!(lines[2].contains("rig_sym.c:"), "{}", lines[2]);
        assert!(lines[3].contains("rig_sym.c:"), "{}", reports[0].text);
        assert!(lines[4].contains("rig_sym.c:"), "{}", reports[0].text);
        assert_eq!(reports[0].title, "WARNING in rig_leaf");
    }
}
