//! The objects inside a manifest that `kubectl apply -f` / `delete -f` acts on, so that policy
//! can authorise each one (a file may hold a cluster role binding beside a deployment).

use serde_json::Value;

/// Most objects one change's files may hold: more is refused rather than half-checked.
pub const MAX_OBJECTS: usize = 500;

/// One object of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestObject {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// `metadata.namespace`, when the file sets one.
    pub namespace: Option<String>,
}

impl ManifestObject {
    /// `Deployment/api`, for messages.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn collect(doc: &Value, out: &mut Vec<ManifestObject>) -> Result<(), String> {
    let kind = text(doc, "kind").ok_or("an object without `kind`")?;
    let api_version =
        text(doc, "apiVersion").ok_or_else(|| format!("a {kind} without `apiVersion`"))?;
    if kind.ends_with("List") && doc.get("items").is_some() {
        let items = doc["items"]
            .as_array()
            .ok_or_else(|| format!("`items` of a {kind} is not a list"))?;
        for item in items {
            collect(item, out)?;
        }
        return Ok(());
    }
    let meta = doc.get("metadata").unwrap_or(&Value::Null);
    let name = text(meta, "name")
        .or_else(|| text(meta, "generateName"))
        .ok_or_else(|| format!("a {kind} without `metadata.name`"))?;
    out.push(ManifestObject {
        api_version,
        kind,
        name,
        namespace: text(meta, "namespace").filter(|n| !n.is_empty()),
    });
    if out.len() > MAX_OBJECTS {
        return Err(format!("more than {MAX_OBJECTS} objects"));
    }
    Ok(())
}

/// Whether `kubectl -f <dir>` reads `path` (a file under `dir`): manifests (`.yaml`, `.yml`,
/// `.json`) directly in it, or anywhere below it with `--recursive`.
pub fn dir_reads(dir: &str, path: &str, recursive: bool) -> bool {
    let Some(rest) = path
        .strip_prefix(dir.trim_end_matches('/'))
        .and_then(|r| r.strip_prefix('/'))
    else {
        return false;
    };
    let manifest = [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| rest.ends_with(ext));
    manifest && (recursive || !rest.contains('/'))
}

/// Every object in a YAML (or JSON) manifest, `List` kinds unfolded. `Err` says what is wrong;
/// a manifest Slipway can't read is refused, never skipped.
pub fn objects(manifest: &str) -> Result<Vec<ManifestObject>, String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(manifest).map_err(|e| {
        e.without_snippet()
            .to_string()
            .lines()
            .next()
            .unwrap_or("not YAML")
            .to_string()
    })?;
    let mut out = Vec::new();
    for doc in docs.iter().filter(|d| !d.is_null()) {
        collect(doc, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_lists_unfold_into_objects() {
        let m = "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: api, namespace: web }\n---\n\
                 apiVersion: v1\nkind: List\nitems:\n  - { apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRoleBinding, metadata: { name: admin } }\n---\n";
        let o = objects(m).unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].namespace.as_deref(), Some("web"));
        assert_eq!(o[1].describe(), "ClusterRoleBinding/admin");
        assert!(objects("kind: Pod\nmetadata: { name: x }\n").is_err());
        assert!(objects("apiVersion: v1\nkind: Pod\n").is_err());
        assert!(objects("{{{").is_err());
    }
}
