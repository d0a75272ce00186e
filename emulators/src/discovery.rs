//! Google's discovery documents, as `google-api-python-client` ships them
//! (`googleapiclient/discovery_cache/documents/<api>.<version>.json`), and a check of a JSON
//! value against one of their schemas. The Google emulators' tests hold every response they
//! serve to these: a field the document doesn't name, or of another JSON type, is a mistake.

use std::collections::BTreeSet;

use serde_json::Value;

/// What to run when the documents can't be found.
pub const INSTALL_HINT: &str = "google-api-python-client is required (it ships Google's discovery documents): \
     `python3 -m pip install 'google-api-python-client>=2.100,<3'` (scripts/install-deps does)";

/// The discovery document `name` (`compute.v1`, `admin.directory_v1`…), located through the
/// installed package; the error says what failed and how to install it.
pub fn document(name: &str) -> Result<Value, String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import googleapiclient, os; print(os.path.dirname(googleapiclient.__file__))",
        ])
        .output()
        .map_err(|e| format!("python3 does not run ({e}); {INSTALL_HINT}"))?;
    if !out.status.success() {
        return Err(format!(
            "{INSTALL_HINT}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = format!("{dir}/discovery_cache/documents/{name}.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{path}: {e} (a newer {INSTALL_HINT})"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

/// The method with this `id`, wherever it sits among the document's (nested) resources.
pub fn find_method<'a>(resources: &'a Value, id: &str) -> Option<&'a Value> {
    for resource in resources.as_object()?.values() {
        if let Some(m) = resource["methods"]
            .as_object()
            .and_then(|ms| ms.values().find(|m| m["id"] == id))
        {
            return Some(m);
        }
        if let Some(m) = find_method(&resource["resources"], id) {
            return Some(m);
        }
    }
    None
}

/// Every field of `v` against `schema` (resolving `$ref`s against `doc`): unknown fields, wrong
/// JSON types and a `kind` other than the schema's default are reported with their path. `seen`
/// collects the named schemas visited.
pub fn check(
    doc: &Value,
    schema: &Value,
    v: &Value,
    path: &str,
    errors: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) {
    if let Some(name) = schema["$ref"].as_str() {
        seen.insert(name.to_string());
        return check(doc, &doc["schemas"][name], v, path, errors, seen);
    }
    let ok = match schema["type"].as_str() {
        Some("string") => v.is_string(),
        Some("boolean") => v.is_boolean(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("array") => v.is_array(),
        Some("object") => v.is_object(),
        Some("any") | None => true,
        Some(other) => {
            errors.push(format!("{path}: unknown schema type {other}"));
            true
        }
    };
    if !ok {
        errors.push(format!("{path}: {v} is not a {}", schema["type"]));
        return;
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, item) in list.iter().enumerate() {
            check(doc, items, item, &format!("{path}[{i}]"), errors, seen);
        }
    }
    let Some(object) = v.as_object() else { return };
    for (k, value) in object {
        let field = format!("{path}.{k}");
        match (
            schema["properties"].get(k),
            schema.get("additionalProperties"),
        ) {
            (Some(p), _) => {
                if let Some(default) = p.get("default").filter(|_| k == "kind")
                    && value != default
                {
                    errors.push(format!("{field}: {value}, the schema says {default}"));
                }
                check(doc, p, value, &field, errors, seen);
            }
            (None, Some(extra)) => check(doc, extra, value, &field, errors, seen),
            (None, None) if schema["type"] == "any" => {}
            (None, None) => errors.push(format!("{field} is not in the schema")),
        }
    }
}
