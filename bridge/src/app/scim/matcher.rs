//! Evaluating a parsed filter against a resource as it is served (so `meta.lastModified` and
//! `id` filter too). Attribute names match in any case; string values compare in any case
//! unless the schema marks the attribute `caseExact` (`id`, `externalId`).

use serde_json::Value;

use super::filter::{AttrPath, Filter, Op};
use super::schema::{Attr, Kind, find};

/// Where a filter's paths are resolved: a whole resource, or one element of a multi-valued
/// attribute (inside `emails[…]`), whose sub-attributes are `attrs`.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Resource(Kind),
    Element(&'static [Attr]),
}

/// The member of `obj` named `key` in any case.
pub fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The schema attribute a path names in `scope`, with its sub-attribute if it has one.
pub fn resolve(path: &AttrPath, scope: Scope) -> Option<(&'static Attr, Option<&'static Attr>)> {
    let attr = match (scope, &path.uri) {
        (Scope::Element(attrs), None) => find(attrs, &path.attr)?,
        (Scope::Element(_), Some(_)) => return None,
        (Scope::Resource(kind), None) => kind.core_attr(&path.attr)?,
        (Scope::Resource(kind), Some(uri)) if uri.eq_ignore_ascii_case(kind.core().id) => {
            kind.core_attr(&path.attr)?
        }
        (Scope::Resource(kind), Some(uri)) => find(kind.extension(uri)?.attributes, &path.attr)?,
    };
    match &path.sub {
        None => Some((attr, None)),
        Some(sub) => Some((attr, Some(find(attr.sub, sub)?))),
    }
}

/// The object holding a path's attribute: the resource, or its extension's object.
fn container<'a>(node: &'a Value, path: &AttrPath, scope: Scope) -> Option<&'a Value> {
    match (scope, &path.uri) {
        (_, None) => Some(node),
        (Scope::Resource(kind), Some(uri)) if uri.eq_ignore_ascii_case(kind.core().id) => {
            Some(node)
        }
        (Scope::Resource(kind), Some(uri)) => get_ci(node, kind.extension(uri)?.id),
        (Scope::Element(_), Some(_)) => None,
    }
}

/// The values a path names, arrays flattened; an element with a `value` stands for it.
fn leaves<'a>(node: &'a Value, path: &AttrPath, scope: Scope) -> Vec<&'a Value> {
    let Some(top) = container(node, path, scope).and_then(|c| get_ci(c, &path.attr)) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match top {
        Value::Array(list) => list.iter().collect(),
        v => vec![v],
    };
    items
        .into_iter()
        .filter_map(|v| match &path.sub {
            Some(sub) => get_ci(v, sub),
            None if v.is_object() => get_ci(v, "value"),
            None => Some(v),
        })
        .flat_map(|v| match v {
            Value::Array(list) => list.iter().collect(),
            v => vec![v],
        })
        .collect()
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare(have: &Value, op: Op, want: &Value, exact: bool) -> bool {
    use std::cmp::Ordering;
    let ordering = match (have, want) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = if exact {
                (a.clone(), b.clone())
            } else {
                (a.to_lowercase(), b.to_lowercase())
            };
            match op {
                Op::Co => return a.contains(&b),
                Op::Sw => return a.starts_with(&b),
                Op::Ew => return a.ends_with(&b),
                _ => a.cmp(&b),
            }
        }
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Less),
            _ => return false,
        },
        (Value::Bool(a), Value::Bool(b)) => return op == Op::Eq && a == b,
        _ => return false,
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Ne | Op::Co | Op::Sw | Op::Ew => false,
    }
}

/// Whether `node` matches `filter`.
pub fn matches(filter: &Filter, node: &Value, scope: Scope) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, node, scope) && matches(b, node, scope),
        Filter::Or(a, b) => matches(a, node, scope) || matches(b, node, scope),
        Filter::Not(a) => !matches(a, node, scope),
        Filter::Present(p) => leaves(node, p, scope).into_iter().any(present),
        Filter::Compare(p, op, want) => {
            let exact = resolve(p, scope).is_some_and(|(a, sub)| sub.unwrap_or(a).case_exact)
                || p.attr.eq_ignore_ascii_case("meta");
            let values = leaves(node, p, scope);
            match op {
                Op::Ne => !values.iter().any(|v| compare(v, Op::Eq, want, exact)),
                op => values.iter().any(|v| compare(v, *op, want, exact)),
            }
        }
        Filter::Within(p, inner) => {
            let sub = resolve(p, scope).map_or(&[][..], |(a, _)| a.sub);
            let Some(top) = container(node, p, scope).and_then(|c| get_ci(c, &p.attr)) else {
                return false;
            };
            let elements: Vec<&Value> = match top {
                Value::Array(list) => list.iter().collect(),
                v => vec![v],
            };
            elements
                .into_iter()
                .any(|e| matches(inner, e, Scope::Element(sub)))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::app::scim::filter::parse_filter;

    fn user_matches(filter: &str) -> bool {
        let user = json!({
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Okta-ABC",
            "userName": "BJensen@example.com",
            "active": true,
            "name": {"givenName": "Barbara"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                       {"value": "babs@jensen.org", "type": "home"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"},
            "meta": {"lastModified": "2024-05-13T04:42:34Z"},
        });
        matches(
            &parse_filter(filter).unwrap(),
            &user,
            Scope::Resource(Kind::User),
        )
    }

    #[test]
    fn filters_match_the_way_providers_query() {
        assert!(user_matches(r#"userName eq "bjensen@EXAMPLE.com""#));
        assert!(user_matches(r#"USERNAME sw "bjensen""#));
        assert!(user_matches(r#"externalId eq "Okta-ABC""#));
        assert!(
            !user_matches(r#"externalId eq "okta-abc""#),
            "externalId is case-exact"
        );
        assert!(user_matches(r#"emails.value eq "babs@jensen.org""#));
        assert!(user_matches(r#"emails co "jensen.org""#));
        assert!(user_matches(
            r#"emails[type eq "work" and value ew "@example.com"]"#
        ));
        assert!(!user_matches(
            r#"emails[type eq "home" and primary eq true]"#
        ));
        assert!(user_matches(
            r#"active eq true and not (name.givenName eq "Bob")"#
        ));
        assert!(user_matches("title pr or name.givenName pr"));
        assert!(!user_matches("title pr"));
        assert!(user_matches(r#"userName ne "someone""#));
        assert!(user_matches(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
        ));
        assert!(user_matches(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "bj""#
        ));
        assert!(user_matches(
            r#"meta.lastModified gt "2024-01-01T00:00:00Z""#
        ));
        assert!(!user_matches(
            r#"meta.lastModified lt "2024-01-01T00:00:00Z""#
        ));
        assert!(!user_matches("active gt false"));
        assert!(!user_matches(r#"nosuch eq "x""#));
    }
}
