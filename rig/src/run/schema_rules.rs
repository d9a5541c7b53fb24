//! How the report's schema is made from its types (`schemars` attributes share these).

/// Adds `names` to an object schema's `required`: the fields every version-1 `report.json` has,
/// which readers still default (`#[serde(default)]`) to read the reports of older rigs.
pub(super) fn require(schema: &mut schemars::Schema, names: &[&str]) {
    let required = schema
        .ensure_object()
        .entry("required")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let Some(list) = required.as_array_mut() {
        for n in names {
            if !list.iter().any(|v| v == n) {
                list.push((*n).into());
            }
        }
    }
}
