//! Config fragments: which options a fragment asks for, and whether the final `.config` kept them.
//!
//! `merge_config.sh` + `make olddefconfig` silently drop an option whose dependencies are not met
//! (on a tinyconfig base that happens a lot). [`check`] is the pure function that catches it:
//! every option some fragment asked for must hold in the final `.config`.

use std::collections::BTreeMap;
use std::fmt;

/// One option a fragment asks for. `value: None` means "must not be set"
/// (`# CONFIG_X is not set` or `CONFIG_X=n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub option: String,
    pub value: Option<String>,
    /// The fragment's file name, for error messages.
    pub fragment: String,
}

/// An option a fragment asked for that the final `.config` does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub option: String,
    pub wanted: Option<String>,
    /// The final value (`None`: not set).
    pub got: Option<String>,
    pub fragment: String,
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| match v {
            Some(v) => format!("{}={v}", self.option),
            None => format!("{} not set", self.option),
        };
        write!(
            f,
            "{} asks for {} but the final .config has {}",
            self.fragment,
            show(&self.wanted),
            show(&self.got)
        )
    }
}

/// The options a fragment sets, in file order. Comments other than `# CONFIG_X is not set`
/// and blank lines are ignored.
pub fn parse_fragment(fragment: &str, text: &str) -> Vec<Requirement> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(opt) = rest.strip_suffix(" is not set") {
                if opt.starts_with("CONFIG_") && !opt.contains(' ') {
                    out.push(Requirement {
                        option: opt.to_string(),
                        value: None,
                        fragment: fragment.to_string(),
                    });
                }
            }
            continue;
        }
        if !line.starts_with("CONFIG_") {
            continue;
        }
        if let Some((opt, val)) = line.split_once('=') {
            out.push(Requirement {
                option: opt.trim().to_string(),
                value: (val != "n").then(|| val.to_string()),
                fragment: fragment.to_string(),
            });
        }
    }
    out
}

/// Checks `requirements` (in merge order: a later fragment overrides an earlier one, as in
/// `merge_config.sh`) against the final `.config` text. Returns the dropped options, sorted by
/// option name; empty when everything held.
pub fn check(requirements: &[Requirement], final_config: &str) -> Vec<Dropped> {
    let mut effective: BTreeMap<&str, &Requirement> = BTreeMap::new();
    for r in requirements {
        effective.insert(&r.option, r);
    }
    let have = crate::provision::kernel::parse_kconfig(final_config);
    effective
        .into_values()
        .filter_map(|r| {
            let got = have.get(&r.option).filter(|v| v.as_str() != "n").cloned();
            let ok = match (&r.value, &got) {
                (None, None) => true,
                (Some(w), Some(g)) => w == g,
                _ => false,
            };
            (!ok).then(|| Dropped {
                option: r.option.clone(),
                wanted: r.value.clone(),
                got,
                fragment: r.fragment.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> String {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/kconfig")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn parses_set_unset_and_strings() {
        let r = parse_fragment(
            "f.config",
            "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"-rig\"\nCONFIG_D=n\n\nCONFIG_E=m\n",
        );
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.option.as_str(), r.value.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("CONFIG_A", Some("y")),
                ("CONFIG_B", None),
                ("CONFIG_C", Some("\"-rig\"")),
                ("CONFIG_D", None),
                ("CONFIG_E", Some("m")),
            ]
        );
        assert!(r.iter().all(|r| r.fragment == "f.config"));
    }

    #[test]
    fn a_config_that_kept_everything_passes() {
        let reqs = parse_fragment("debug.config", &fixture("debug.config"));
        assert!(reqs.len() > 5);
        assert_eq!(check(&reqs, &fixture("final-ok.config")), vec![]);
    }

    #[test]
    fn dropped_options_are_named_with_their_fragment() {
        let mut reqs = parse_fragment("debug.config", &fixture("debug.config"));
        reqs.extend(parse_fragment("base.config", &fixture("base.config")));
        let dropped = check(&reqs, &fixture("final-dropped.config"));
        let names: Vec<_> = dropped
            .iter()
            .map(|d| (d.option.as_str(), d.fragment.as_str(), d.got.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![
                // LKDTM's menu (RUNTIME_TESTING_MENU) was not enabled: silently gone.
                ("CONFIG_LKDTM", "debug.config", None),
                // Asked to be unset, came back set.
                ("CONFIG_MODULE_SIG", "base.config", Some("y")),
                // Asked for y, got m.
                ("CONFIG_VIRTIO_NET", "base.config", Some("m")),
            ]
        );
        let msg = dropped[0].to_string();
        assert!(
            msg.contains("CONFIG_LKDTM=y") && msg.contains("debug.config"),
            "{msg}"
        );
    }

    #[test]
    fn a_later_fragment_overrides_an_earlier_one() {
        let mut reqs = parse_fragment("a.config", "CONFIG_X=y\n");
        reqs.extend(parse_fragment("b.config", "# CONFIG_X is not set\n"));
        assert_eq!(check(&reqs, "# CONFIG_X is not set\n"), vec![]);
        let d = check(&reqs, "CONFIG_X=y\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].fragment, "b.config");
    }
}
