//! PATCH (RFC 7644 §3.5.2) on a stored resource, in both providers' dialects:
//!
//! - Okta: `{"op":"replace","value":{"active":false}}`, no path, a value object of attributes
//!   (read-only ones such as `id` in it are ignored);
//! - Entra ID: capitalised ops (`Replace`, `Add`, `Remove`), paths such as
//!   `members[value eq "…"]` and `emails[type eq "work"].value` (an element the filter doesn't
//!   find is created from its `eq` terms), booleans as "False", and `Remove` of `members` with
//!   a `value` list naming the members to drop.
//!
//! Removing what isn't there succeeds (providers retry); replacing through a filter that
//! matches nothing is `noTarget`.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{AttrPath, Filter, Op, PatchPath, parse_path};
use super::matcher::{Scope, get_ci, matches, resolve};
use super::normalize;
use super::schema::{Attr, Kind, Mutability, Schema, find};

/// More operations than this in one request is `tooMany`: no provider sends that many.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Add,
    Replace,
    Remove,
}

/// Apply a PatchOp body's operations to `resource` (stored form), all or nothing.
pub fn apply(kind: Kind, resource: &mut Value, body: &Value) -> Result<(), ScimError> {
    let Some(ops) = get_ci(body, "Operations").and_then(Value::as_array) else {
        return Err(ScimError::InvalidSyntax(
            "a PATCH body carries an `Operations` list".into(),
        ));
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::TooMany(format!(
            "{} operations in one PATCH; at most {MAX_OPERATIONS}",
            ops.len()
        )));
    }
    let mut next = resource.clone();
    for op in ops {
        operation(kind, &mut next, op)?;
    }
    prune(&mut next);
    normalize::required(kind, &next)?;
    *resource = next;
    Ok(())
}

fn operation(kind: Kind, resource: &mut Value, op: &Value) -> Result<(), ScimError> {
    let verb = match get_ci(op, "op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
    {
        Some(v) if v == "add" => Verb::Add,
        Some(v) if v == "replace" => Verb::Replace,
        Some(v) if v == "remove" => Verb::Remove,
        _ => {
            return Err(ScimError::InvalidSyntax(
                "each operation's `op` is add, replace or remove".into(),
            ));
        }
    };
    let value = get_ci(op, "value");
    match get_ci(op, "path") {
        Some(Value::String(p)) if !p.trim().is_empty() => {
            at_path(kind, resource, verb, &parse_path(p.trim())?, value)
        }
        None | Some(Value::Null | Value::String(_)) => without_path(kind, resource, verb, value),
        Some(_) => Err(ScimError::InvalidPath("`path` must be a string".into())),
    }
}

/// Okta's form: a value object whose keys are attributes (or paths, or extension URNs).
fn without_path(
    kind: Kind,
    resource: &mut Value,
    verb: Verb,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if verb == Verb::Remove {
        return Err(ScimError::NoTarget(
            "a remove operation needs a path".into(),
        ));
    }
    let Some(Value::Object(fields)) = value else {
        return Err(ScimError::InvalidValue(
            "without a path, the value is an object of attributes".into(),
        ));
    };
    for (key, v) in fields {
        if let Some(ext) = kind.extension(key) {
            whole_extension(resource, ext, verb, Some(v))?;
            continue;
        }
        // Like a POST body: what isn't a writable attribute is ignored.
        let Ok(path) = parse_path(key) else { continue };
        match resolve(&path.attr, Scope::Resource(kind)) {
            Some((a, sub)) if writable(a, sub) => at_path(kind, resource, verb, &path, Some(v))?,
            _ => {}
        }
    }
    Ok(())
}

fn writable(attr: &Attr, sub: Option<&Attr>) -> bool {
    attr.mutability != Mutability::ReadOnly
        && sub.is_none_or(|s| s.mutability != Mutability::ReadOnly)
}

fn at_path(
    kind: Kind,
    resource: &mut Value,
    verb: Verb,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if path.filter.is_none()
        && path.attr.sub.is_none()
        && let Some(uri) = &path.attr.uri
        && let Some(ext) = kind.extension(&format!("{uri}:{}", path.attr.attr))
    {
        return whole_extension(resource, ext, verb, value);
    }
    let Some((attr, sub)) = resolve(&path.attr, Scope::Resource(kind)) else {
        return Err(ScimError::InvalidPath(format!(
            "`{}` is not an attribute of a {}",
            name(&path.attr),
            kind.name()
        )));
    };
    if !writable(attr, sub) {
        return Err(ScimError::Mutability(format!(
            "{} is read-only",
            name(&path.attr)
        )));
    }
    let Some(obj) = container(kind, resource, &path.attr, verb != Verb::Remove) else {
        return Ok(());
    };
    match (&path.filter, sub) {
        (None, None) => {
            if verb == Verb::Remove && attr.required {
                return Err(ScimError::Mutability(format!(
                    "{} is required and can't be removed",
                    attr.name
                )));
            }
            plain(obj, attr, verb, value)
        }
        (None, Some(sub)) => sub_attribute(obj, attr, sub, verb, value),
        (Some(filter), _) => {
            let sub = match &path.sub {
                Some(s) => Some(find(attr.sub, s).ok_or_else(|| {
                    ScimError::InvalidPath(format!("{} has no sub-attribute `{s}`", attr.name))
                })?),
                None => None,
            };
            filtered(obj, attr, filter, sub, verb, value)
        }
    }
}

fn name(p: &AttrPath) -> String {
    let mut s = p.uri.as_ref().map(|u| format!("{u}:")).unwrap_or_default();
    s.push_str(&p.attr);
    if let Some(sub) = &p.sub {
        s.push('.');
        s.push_str(sub);
    }
    s
}

/// The object a path's attribute lives in: the resource or its extension's object (created
/// when `create`; `None` when absent and not created).
fn container<'a>(
    kind: Kind,
    resource: &'a mut Value,
    path: &AttrPath,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    let top = resource.as_object_mut()?;
    let ext = match &path.uri {
        Some(uri) if !uri.eq_ignore_ascii_case(kind.core().id) => kind.extension(uri)?,
        _ => return Some(top),
    };
    if !top.contains_key(ext.id) {
        if !create {
            return None;
        }
        top.insert(ext.id.to_string(), Value::Object(Map::new()));
    }
    top.get_mut(ext.id)?.as_object_mut()
}

fn whole_extension(
    resource: &mut Value,
    ext: &Schema,
    verb: Verb,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let Some(top) = resource.as_object_mut() else {
        return Ok(());
    };
    if verb == Verb::Remove {
        top.remove(ext.id);
        return Ok(());
    }
    let Some(new) = normalize::extension(ext, value.unwrap_or(&Value::Null))? else {
        return Ok(());
    };
    let obj = top
        .entry(ext.id)
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(obj) = obj.as_object_mut() else {
        return Ok(());
    };
    for (k, v) in new.as_object().into_iter().flatten() {
        if let Some(a) = find(ext.attributes, k) {
            plain(obj, a, verb, Some(v))?;
        }
    }
    Ok(())
}

fn needs_value(value: Option<&Value>) -> Result<&Value, ScimError> {
    value.ok_or_else(|| ScimError::InvalidSyntax("add and replace need a `value`".into()))
}

/// `attr` itself: set, merge (complex), append (multi-valued) or remove.
fn plain(
    obj: &mut Map<String, Value>,
    attr: &Attr,
    verb: Verb,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if verb == Verb::Remove {
        match value {
            // Entra: `Remove` `members` with the members to drop as the value.
            Some(v) if attr.multi && !v.is_null() => remove_listed(obj, attr, v),
            _ => {
                obj.remove(attr.name);
            }
        }
        return Ok(());
    }
    let Some(new) = normalize::value(attr, needs_value(value)?)? else {
        if verb == Verb::Replace {
            obj.remove(attr.name);
        }
        return Ok(());
    };
    match (verb, new) {
        (Verb::Add, Value::Array(items)) => with_list(obj, attr, |list| {
            for item in items {
                if !list.contains(&item) {
                    push(list, item);
                }
            }
        }),
        (_, Value::Object(fields)) if !attr.multi => {
            let current = obj
                .entry(attr.name)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(current) = current.as_object_mut() {
                current.extend(fields);
            } else {
                *current = Value::Object(fields);
            }
        }
        (_, new) => {
            obj.insert(attr.name.to_string(), new);
        }
    }
    Ok(())
}

/// Work on the list under `attr` (an empty one if absent or not a list).
fn with_list<T>(
    obj: &mut Map<String, Value>,
    attr: &Attr,
    f: impl FnOnce(&mut Vec<Value>) -> T,
) -> T {
    let mut list = match obj.remove(attr.name) {
        Some(Value::Array(list)) => list,
        _ => Vec::new(),
    };
    let out = f(&mut list);
    obj.insert(attr.name.to_string(), Value::Array(list));
    out
}

/// Append, keeping one primary: a new primary value demotes the others (RFC 7643 §2.4).
fn push(list: &mut Vec<Value>, item: Value) {
    if item.get("primary") == Some(&Value::Bool(true)) {
        for other in list.iter_mut() {
            if let Some(o) = other.as_object_mut()
                && o.get("primary") == Some(&Value::Bool(true))
            {
                o.insert("primary".into(), Value::Bool(false));
            }
        }
    }
    list.push(item);
}

fn remove_listed(obj: &mut Map<String, Value>, attr: &Attr, value: &Value) {
    let listed: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let ids: Vec<&Value> = listed.iter().filter_map(|v| v.get("value")).collect();
    if let Some(Value::Array(list)) = obj.get_mut(attr.name) {
        list.retain(|e| match e.get("value") {
            Some(v) => !ids.contains(&v),
            None => true,
        });
    }
}

/// `attr.sub` without a filter: the one complex value, or every element of a list.
fn sub_attribute(
    obj: &mut Map<String, Value>,
    attr: &Attr,
    sub: &Attr,
    verb: Verb,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let new = match verb {
        Verb::Remove => None,
        _ => normalize::value(sub, needs_value(value)?)?,
    };
    if attr.multi {
        if let Some(Value::Array(list)) = obj.get_mut(attr.name) {
            for element in list.iter_mut() {
                set_sub(element, sub, new.clone());
            }
        } else if verb != Verb::Remove {
            return Err(ScimError::NoTarget(format!("{} has no values", attr.name)));
        }
        return Ok(());
    }
    if verb == Verb::Remove && !obj.contains_key(attr.name) {
        return Ok(());
    }
    let slot = obj
        .entry(attr.name)
        .or_insert_with(|| Value::Object(Map::new()));
    set_sub(slot, sub, new);
    Ok(())
}

/// Set (or, with `None`, remove) one sub-attribute of a complex value.
fn set_sub(element: &mut Value, sub: &Attr, new: Option<Value>) {
    if !element.is_object() {
        *element = Value::Object(Map::new());
    }
    if let Some(o) = element.as_object_mut() {
        match new {
            Some(v) => o.insert(sub.name.to_string(), v),
            None => o.remove(sub.name),
        };
    }
}

/// `attr[filter]` and `attr[filter].sub`.
fn filtered(
    obj: &mut Map<String, Value>,
    attr: &'static Attr,
    filter: &Filter,
    sub: Option<&Attr>,
    verb: Verb,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if !attr.multi {
        return Err(ScimError::InvalidPath(format!(
            "a filter selects values of a multi-valued attribute, and {} is single-valued",
            attr.name
        )));
    }
    if verb == Verb::Add && sub.is_none() {
        return plain(obj, attr, verb, value);
    }
    let scope = Scope::Element(attr.sub);
    let hits: Vec<usize> = match obj.get(attr.name) {
        Some(Value::Array(list)) => (0..list.len())
            .filter(|&i| matches(filter, &list[i], scope))
            .collect(),
        _ => Vec::new(),
    };
    let new = match (verb, sub) {
        (Verb::Remove, _) => None,
        (_, Some(sub)) => normalize::value(sub, needs_value(value)?)?,
        (_, None) => normalize::single(attr, needs_value(value)?)?,
    };
    if hits.is_empty() && verb != Verb::Remove {
        let (Some(sub), Some(element)) = (sub, element_from(filter, attr.sub)) else {
            return Err(ScimError::NoTarget(format!(
                "no value of {} matches the filter",
                attr.name
            )));
        };
        let mut element = Value::Object(element);
        set_sub(&mut element, sub, new);
        with_list(obj, attr, |list| push(list, element));
        return Ok(());
    }
    with_list(obj, attr, |list| {
        for (i, element) in list.iter_mut().enumerate() {
            if !hits.contains(&i) {
                continue;
            }
            match (verb, sub) {
                (Verb::Remove, None) => *element = Value::Null,
                (_, Some(sub)) => set_sub(element, sub, new.clone()),
                (_, None) => *element = new.clone().unwrap_or(Value::Null),
            }
        }
        list.retain(|v| !v.is_null());
    });
    Ok(())
}

/// The element a filter of `eq` terms describes (`type eq "work"` → `{"type":"work"}`), for
/// Entra's add of `emails[type eq "work"].value` when there is no work email yet.
fn element_from(filter: &Filter, attrs: &[Attr]) -> Option<Map<String, Value>> {
    match filter {
        Filter::Compare(p, Op::Eq, v) if p.uri.is_none() && p.sub.is_none() => {
            let a = find(attrs, &p.attr)?;
            let v = normalize::single(a, v).ok()??;
            Some(Map::from_iter([(a.name.to_string(), v)]))
        }
        Filter::And(l, r) => {
            let mut m = element_from(l, attrs)?;
            m.extend(element_from(r, attrs)?);
            Some(m)
        }
        _ => None,
    }
}

/// Unassigned is absent: drop `null`, `[]` and `{}` left at the top and in extensions.
fn prune(resource: &mut Value) {
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        }
    }
    if let Some(top) = resource.as_object_mut() {
        for v in top.values_mut() {
            if let Some(inner) = v.as_object_mut() {
                inner.retain(|_, v| !empty(v));
            }
        }
        top.retain(|_, v| !empty(v));
    }
}

#[cfg(test)]
mod tests;
