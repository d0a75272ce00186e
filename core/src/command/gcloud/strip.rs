//! Structural stripping of secret-bearing fields from gcloud's JSON output.
//!
//! Instance metadata, Cloud Run and Cloud Functions environments and the like hold secrets in
//! free-form values no redaction rule can recognise, so the fields go before output is shown.
//! A path is keys joined by `.`; `[]` after a key marks a list and is optional (a list met on
//! the way is walked element by element). A path matches at any depth, so one path covers a
//! list's elements, a single object and wrappers around them.

use serde_json::{Map, Value};

/// Remove every field one of `paths` names, wherever it occurs in `value`. Returns how many
/// fields were removed. Iterative, so no input can exhaust the stack.
pub fn strip_fields(value: &mut Value, paths: &[&str]) -> usize {
    let paths: Vec<Vec<&str>> = paths.iter().map(|p| segments(p)).collect();
    let mut removed = 0;
    let mut stack: Vec<&mut Value> = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for path in &paths {
                    removed += remove_path(map, path);
                }
                stack.extend(map.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    removed
}

/// `containers[].env` → `["containers", "env"]`.
fn segments(path: &str) -> Vec<&str> {
    path.split('.')
        .map(|s| s.strip_suffix("[]").unwrap_or(s))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Remove the field `path` names, starting at `root`; lists on the way are walked.
fn remove_path(root: &mut Map<String, Value>, path: &[&str]) -> usize {
    let Some((last, init)) = path.split_last() else {
        return 0;
    };
    let mut objects: Vec<&mut Map<String, Value>> = vec![root];
    for key in init {
        let mut next = Vec::new();
        for object in objects {
            match object.get_mut(*key) {
                Some(Value::Object(o)) => next.push(o),
                Some(Value::Array(items)) => {
                    next.extend(items.iter_mut().filter_map(Value::as_object_mut));
                }
                _ => {}
            }
        }
        objects = next;
    }
    objects.into_iter().filter_map(|o| o.remove(*last)).count()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::command::gcloud::tables::{FUNCTION_ENV, GROUPS, INSTANCE_METADATA, RUN_ENV};

    #[test]
    fn instance_metadata_goes_from_a_list_and_from_one_instance() {
        let instance = || {
            json!({
                "name": "web-1",
                "metadata": {
                    "fingerprint": "abc",
                    "items": [{"key": "startup-script", "value": "export DB_PASSWORD=hunter2"}]
                },
                "labels": {"items": "kept: not under metadata"}
            })
        };
        let mut list = json!([instance(), instance()]);
        assert_eq!(strip_fields(&mut list, INSTANCE_METADATA), 2);
        assert!(!list.to_string().contains("hunter2"), "{list}");
        assert_eq!(list[0]["metadata"]["fingerprint"], "abc");
        assert_eq!(list[1]["labels"]["items"], "kept: not under metadata");

        let mut one = instance();
        assert_eq!(strip_fields(&mut one, INSTANCE_METADATA), 1);
        assert!(one["metadata"].get("items").is_none());
        // Templates nest it under `properties`: a path matches at any depth.
        let mut template = json!({"properties": {"metadata": instance()["metadata"]}});
        assert_eq!(strip_fields(&mut template, INSTANCE_METADATA), 1);
        assert!(!template.to_string().contains("hunter2"));
    }

    #[test]
    fn run_and_function_environments_go_at_every_depth() {
        let env = json!([{"name": "API_KEY", "value": "sk_live_123"}]);
        let mut service = json!({"spec": {"template": {"spec": {"containers": [
            {"image": "gcr.io/x/api", "env": env.clone()},
            {"image": "gcr.io/x/sidecar", "env": env.clone()},
        ]}}}});
        assert_eq!(strip_fields(&mut service, RUN_ENV), 2);
        assert!(!service.to_string().contains("sk_live"), "{service}");
        assert_eq!(
            service["spec"]["template"]["spec"]["containers"][1]["image"],
            "gcr.io/x/sidecar"
        );
        let mut job = json!({"spec": {"template": {"spec": {"template": {"spec": {"containers": [
            {"env": env}
        ]}}}}}});
        assert_eq!(strip_fields(&mut job, RUN_ENV), 1);

        let mut functions = json!([
            {"name": "gen1", "environmentVariables": {"TOKEN": "t"}, "buildEnvironmentVariables": {"B": "b"}},
            {"name": "gen2", "serviceConfig": {"environmentVariables": {"TOKEN": "t"}},
             "buildConfig": {"environmentVariables": {"B": "b"}}},
        ]);
        assert_eq!(strip_fields(&mut functions, FUNCTION_ENV), 4);
        assert_eq!(
            functions,
            json!([{"name": "gen1"}, {"name": "gen2", "serviceConfig": {}, "buildConfig": {}}])
        );
    }

    #[test]
    fn any_input_is_left_alone_or_stripped_never_a_panic() {
        for mut v in [
            Value::Null,
            json!("metadata.items"),
            json!(42),
            json!([[[[{"metadata": {"items": 1}}]]]]),
            json!({"metadata": "a string, not an object"}),
            json!({"metadata": [{"items": 1}, 2, null, [{"items": 3}]]}),
            json!({"containers": {"env": 1}}),
        ] {
            let _ = strip_fields(&mut v, INSTANCE_METADATA);
            let _ = strip_fields(&mut v, RUN_ENV);
            let _ = strip_fields(&mut v, &["", ".", "[]", "a..b", "x[]."]);
        }
        let mut nested = json!({"metadata": [{"items": 1}, {"items": 2}]});
        assert_eq!(strip_fields(&mut nested, INSTANCE_METADATA), 2);
        // Deeper than any recursion could go.
        let mut deep = Value::Null;
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(strip_fields(&mut deep, INSTANCE_METADATA), 0);
        // Take it apart iteratively too: a recursive drop of 100 000 levels would overflow.
        while let Value::Array(mut items) = deep {
            deep = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn every_strip_path_is_well_formed() {
        for g in GROUPS {
            for p in g.strip {
                let segs = segments(p);
                assert!(!segs.is_empty(), "{}: {p}", g.name());
                assert!(
                    segs.iter()
                        .all(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')),
                    "{}: {p}",
                    g.name()
                );
            }
        }
    }
}
