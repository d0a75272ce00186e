//! Resources as served: the stored attributes plus `id`, `schemas`, `meta` (with the weak ETag
//! `W/"<version>"`) and, for users, their groups; then `attributes` / `excludedAttributes`.

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::filter::{AttrPath, parse_attr_path};
use super::schema::{Kind, Schema};
use crate::identity::{DirectoryGroup, DirectoryUser};

pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

fn time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The weak ETag of a version.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

struct Stamp<'a> {
    kind: Kind,
    id: &'a str,
    created: i64,
    updated: i64,
    version: u64,
}

fn served(stamp: &Stamp<'_>, resource: &Value, base: &str) -> Value {
    let mut out = resource.as_object().cloned().unwrap_or_default();
    let mut schemas = vec![json!(stamp.kind.core().id)];
    for ext in stamp.kind.extensions() {
        if out.contains_key(ext.id) {
            schemas.push(json!(ext.id));
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), json!(stamp.id));
    out.insert(
        "meta".into(),
        json!({
            "resourceType": stamp.kind.name(),
            "created": time(stamp.created),
            "lastModified": time(stamp.updated),
            "location": format!("{base}/{}/{}", stamp.kind.endpoint(), stamp.id),
            "version": etag(stamp.version),
        }),
    );
    Value::Object(out)
}

/// A user as served, with the groups that list them.
pub fn user(u: &DirectoryUser, groups: &[DirectoryGroup], base: &str) -> Value {
    let stamp = Stamp {
        kind: Kind::User,
        id: &u.id,
        created: u.created,
        updated: u.updated,
        version: u.version,
    };
    let mut out = served(&stamp, &u.resource, base);
    if !groups.is_empty() {
        out["groups"] = groups
            .iter()
            .map(|g| {
                json!({
                    "value": g.id,
                    "$ref": format!("{base}/Groups/{}", g.id),
                    "display": g.display_name,
                    "type": "direct",
                })
            })
            .collect();
    }
    out
}

pub fn group(g: &DirectoryGroup, base: &str) -> Value {
    let stamp = Stamp {
        kind: Kind::Group,
        id: &g.id,
        created: g.created,
        updated: g.updated,
        version: g.version,
    };
    served(&stamp, &g.resource, base)
}

/// `attributes` or `excludedAttributes` (comma-separated paths), parsed.
#[derive(Debug, Default, Clone)]
pub struct Projection {
    only: Vec<AttrPath>,
    except: Vec<AttrPath>,
}

fn paths(list: Option<&str>) -> Result<Vec<AttrPath>, ScimError> {
    list.into_iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_attr_path)
        .collect()
}

impl Projection {
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Result<Self, ScimError> {
        Ok(Projection {
            only: paths(attributes)?,
            except: paths(excluded)?,
        })
    }

    /// `resource` trimmed to what was asked for; `id` and `schemas` always stay.
    pub fn apply(&self, kind: Kind, resource: Value) -> Value {
        let Value::Object(full) = resource else {
            return resource;
        };
        let mut out = if self.only.is_empty() {
            full.clone()
        } else {
            let mut out = Map::new();
            for p in &self.only {
                copy(kind, &full, &mut out, p);
            }
            out
        };
        for p in &self.except {
            remove(kind, &mut out, p);
        }
        for key in ["id", "schemas"] {
            if let Some(v) = full.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        Value::Object(out)
    }
}

/// Where a path points: the extension it names whole, or (container key, attribute, sub).
enum Target<'a> {
    Schema(&'static Schema),
    Attr(Option<&'static str>, &'a str, Option<&'a str>),
}

fn target(kind: Kind, p: &AttrPath) -> Option<Target<'_>> {
    let Some(uri) = &p.uri else {
        return Some(Target::Attr(None, &p.attr, p.sub.as_deref()));
    };
    if p.sub.is_none()
        && let Some(ext) = kind.extension(&format!("{uri}:{}", p.attr))
    {
        return Some(Target::Schema(ext));
    }
    if uri.eq_ignore_ascii_case(kind.core().id) {
        return Some(Target::Attr(None, &p.attr, p.sub.as_deref()));
    }
    let ext = kind.extension(uri)?;
    Some(Target::Attr(Some(ext.id), &p.attr, p.sub.as_deref()))
}

/// The stored key spelled like `name` in `obj`, if any.
fn key_of(obj: &Map<String, Value>, name: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Only `sub` of a complex value or of each element.
fn only_sub(v: &Value, sub: &str) -> Option<Value> {
    match v {
        Value::Array(list) => {
            let kept: Vec<Value> = list.iter().filter_map(|e| only_sub(e, sub)).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        Value::Object(o) => {
            let k = key_of(o, sub)?;
            Some(json!({ k.clone(): o[&k].clone() }))
        }
        _ => None,
    }
}

fn copy(kind: Kind, full: &Map<String, Value>, out: &mut Map<String, Value>, path: &AttrPath) {
    let Some(target) = target(kind, path) else {
        return;
    };
    let (container, attr, sub) = match target {
        Target::Schema(ext) => {
            if let Some(v) = full.get(ext.id) {
                out.insert(ext.id.into(), v.clone());
            }
            return;
        }
        Target::Attr(container, attr, sub) => (container, attr, sub),
    };
    let source = match container {
        Some(ext) => full.get(ext).and_then(Value::as_object),
        None => Some(full),
    };
    let Some(source) = source else { return };
    let Some(key) = key_of(source, attr) else {
        return;
    };
    let picked = match sub {
        Some(sub) => only_sub(&source[&key], sub),
        None => Some(source[&key].clone()),
    };
    let Some(picked) = picked else { return };
    if let Some(ext) = container {
        if let Some(dest) = out.entry(ext).or_insert_with(|| json!({})).as_object_mut() {
            merge(dest, key, picked);
        }
    } else {
        merge(out, key, picked);
    }
}

/// Insert, merging with what an earlier path (another sub-attribute) already copied.
fn merge(into: &mut Map<String, Value>, key: String, v: Value) {
    match (into.get_mut(&key), v) {
        (Some(Value::Object(have)), Value::Object(more)) => have.extend(more),
        (Some(Value::Array(have)), Value::Array(more)) if have.len() == more.len() => {
            for (h, m) in have.iter_mut().zip(more) {
                if let (Some(h), Value::Object(m)) = (h.as_object_mut(), m) {
                    h.extend(m);
                }
            }
        }
        (_, v) => {
            into.insert(key, v);
        }
    }
}

fn remove(kind: Kind, out: &mut Map<String, Value>, path: &AttrPath) {
    let Some(target) = target(kind, path) else {
        return;
    };
    let (container, attr, sub) = match target {
        Target::Schema(ext) => {
            out.remove(ext.id);
            return;
        }
        Target::Attr(container, attr, sub) => (container, attr, sub),
    };
    let obj = match container {
        Some(ext) => out.get_mut(ext).and_then(Value::as_object_mut),
        None => Some(out),
    };
    let Some(obj) = obj else { return };
    let Some(key) = key_of(obj, attr) else { return };
    if matches!(key.as_str(), "id" | "schemas") {
        return;
    }
    match sub {
        None => {
            obj.remove(&key);
        }
        Some(sub) => {
            let strip = |e: &mut Value| {
                if let Some(o) = e.as_object_mut()
                    && let Some(k) = key_of(o, sub)
                {
                    o.remove(&k);
                }
            };
            match obj.get_mut(&key) {
                Some(Value::Array(list)) => list.iter_mut().for_each(strip),
                Some(v) => strip(v),
                None => {}
            }
        }
    }
}

/// A ListResponse page.
pub fn list(total: usize, start: usize, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": Value::Array(resources),
    })
}

/// Whether an `If-Match` / `If-None-Match` value names `version` (or is `*`). Weak and strong
/// forms of one version match: a version names the whole resource.
pub fn etag_matches(header: &str, version: u64) -> bool {
    let want = version.to_string();
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == want)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::identity::{DirectoryUser, Source};

    fn served_user() -> Value {
        let u = DirectoryUser::from_resource(
            "u1".into(),
            Source::Scim,
            json!({
                "userName": "ada", "title": "Countess",
                "name": {"givenName": "Ada", "familyName": "L"},
                "emails": [{"value": "a@x", "type": "work"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "costCenter": "9"},
            }),
            1_700_000_000,
        );
        user(&u, &[], "https://h/scim/v2")
    }

    #[test]
    fn served_resources_carry_id_schemas_and_meta() {
        let u = served_user();
        assert_eq!(u["id"], "u1");
        assert_eq!(
            u["schemas"],
            json!([
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ])
        );
        assert_eq!(u["meta"]["location"], "https://h/scim/v2/Users/u1");
        assert_eq!(u["meta"]["created"], "2023-11-14T22:13:20Z");
        assert_eq!(u["meta"]["version"], "W/\"1\"");
        assert!(etag_matches("W/\"1\"", 1) && etag_matches("\"2\", \"1\"", 1));
        assert!(etag_matches("*", 7) && !etag_matches("W/\"2\"", 1));
    }

    #[test]
    fn attributes_and_excluded_attributes_trim_the_resource() {
        let only = Projection::parse(
            Some("userName, name.givenName,emails.value,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
            None,
        )
        .unwrap()
        .apply(Kind::User, served_user());
        assert_eq!(
            only,
            json!({
                "id": "u1",
                "schemas": served_user()["schemas"],
                "userName": "ada",
                "name": {"givenName": "Ada"},
                "emails": [{"value": "a@x"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"},
            })
        );
        let except = Projection::parse(
            None,
            Some("title,name.familyName,id,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
        )
        .unwrap()
        .apply(Kind::User, served_user());
        assert!(except.get("title").is_none());
        assert_eq!(except["name"], json!({"givenName": "Ada"}));
        assert_eq!(except["id"], "u1");
        assert!(
            except
                .get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
                .is_none()
        );
        assert!(Projection::parse(Some("a b"), None).is_err());
    }
}
