//! Finding host programs: one PATH search for every stage.

use std::path::{Path, PathBuf};

/// Where `name` is on PATH: the first directory holding a file of that name.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|c| c.is_file())
}

/// A host tool that may live in an sbin directory missing from a user's PATH: the PATH entry,
/// else `/usr/sbin` or `/sbin`, else the bare name (for the spawn's own error to name).
pub fn find_tool(name: &str) -> PathBuf {
    if let Some(p) = on_path(name) {
        return p;
    }
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_not_a_made_up_name() {
        let sh = on_path("sh").expect("sh on PATH");
        assert!(sh.is_absolute() || sh.components().count() > 1, "{sh:?}");
        assert!(on_path("rig-no-such-tool-anywhere").is_none());
        assert_eq!(
            find_tool("rig-no-such-tool-anywhere"),
            PathBuf::from("rig-no-such-tool-anywhere")
        );
    }
}
