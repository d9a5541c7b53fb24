//! `schemas/report.schema.json`, generated from the type `rig run` writes and `rig report`
//! reads ([`crate::run::ScenarioResult`]): doc comments become descriptions, `#[serde(default)]`
//! fields (absent in reports of older rigs) are optional. A test checks the file is current;
//! `RIG_BLESS=1 cargo test -p rig --lib report::schema` rewrites it.

/// The file, relative to the repository.
pub const SCHEMA_FILE: &str = "schemas/report.schema.json";

/// The JSON Schema (draft 2020-12) of `report.json`, as the file holds it (pretty, with a
/// final newline).
pub fn report_schema() -> String {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<crate::run::ScenarioResult>();
    let mut v = schema.to_value();
    tidy(&mut v);
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
    text.push('\n');
    text
}

/// Doc comments' line breaks become spaces; a required property's `default` (what readers put
/// in for reports of older rigs) is left out: a current report always has the field.
fn tidy(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            if let Some(Value::String(d)) = o.get_mut("description") {
                *d = d.split('\n').map(str::trim).collect::<Vec<_>>().join(" ");
            }
            let required: Vec<String> = o
                .get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(Value::Object(props)) = o.get_mut("properties") {
                for name in &required {
                    if let Some(Value::Object(p)) = props.get_mut(name) {
                        p.remove("default");
                    }
                }
            }
            o.values_mut().for_each(tidy);
        }
        Value::Array(a) => a.iter_mut().for_each(tidy),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when the schema file is not what the type generates; with `RIG_BLESS=1` it
    /// writes the file instead.
    #[test]
    fn the_schema_file_is_what_the_report_type_generates() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(SCHEMA_FILE);
        let want = report_schema();
        if std::env::var_os("RIG_BLESS").is_some_and(|v| v == "1") {
            std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is not what rig::run::ScenarioResult generates: regenerate it with \
             `RIG_BLESS=1 cargo test -p rig --lib report::schema` and commit it",
            path.display()
        );
    }

    /// The schema says what matters: the verdicts, the required seed, the version.
    #[test]
    fn the_generated_schema_keeps_its_rules() {
        let v: serde_json::Value = serde_json::from_str(&report_schema()).unwrap();
        assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(v["$id"], "urn:rig:report.schema.json:1");
        let required = v["required"].as_array().unwrap();
        for f in [
            "schema_version",
            "seed",
            "verdict",
            "repetitions",
            "artifacts",
        ] {
            assert!(required.iter().any(|r| r == f), "{f} not required: {v:#}");
        }
        assert!(!required.iter().any(|r| r == "complete"), "{v:#}");
        assert_eq!(v["properties"]["schema_version"]["const"], 1);
        assert_eq!(
            v["$defs"]["Verdict"]["enum"],
            serde_json::json!(["pass", "fail", "infra"])
        );
        assert!(v["properties"]["report_error"].is_null(), "{v:#}");
    }
}
