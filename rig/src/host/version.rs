//! Asking a host tool for its version: the one probe both `doctor` (what is installed) and `apt`
//! (is `sudo` there) need.

use std::process::Command;

/// The first line a tool prints about its version, or `None` when it is not there.
pub fn tool_version(program: &str) -> Option<String> {
    tool_version_with(program, "--version")
}

/// The first line `program flag` prints, or `None` when the program is not there.
pub(super) fn tool_version_with(program: &str, flag: &str) -> Option<String> {
    let out = Command::new(program).arg(flag).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let text = String::from_utf8_lossy(&text);
    Some(
        text.lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("present")
            .trim()
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_of_a_present_and_a_missing_tool() {
        assert!(tool_version("sh").is_some() || tool_version("ls").is_some());
        assert!(tool_version("definitely-not-a-rig-tool").is_none());
    }
}
