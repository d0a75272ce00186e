//! What a provider sends → what the directory stores: attribute names as the schema spells
//! them (providers may write `USERNAME`), values of the schema's type (Entra writes booleans as
//! "True"/"False"), and nothing the client may not set: read-only attributes (`id`, `meta`,
//! `groups`) are ignored as RFC 7644 §3.3 asks, unknown ones and `password` are dropped, and
//! `null` or `[]` means unassigned.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::schema::{Attr, Kind, Mutability, Schema, Type, find};

/// A whole resource body (POST, PUT), stored form.
pub fn resource(kind: Kind, body: &Value) -> Result<Value, ScimError> {
    let Some(fields) = body.as_object() else {
        return Err(ScimError::InvalidSyntax(
            "the body must be a JSON object".into(),
        ));
    };
    let mut out = Map::new();
    for (key, v) in fields {
        if let Some(ext) = kind.extension(key) {
            if let Some(obj) = extension(ext, v)? {
                out.insert(ext.id.to_string(), obj);
            }
        } else if let Some(attr) = kind.core_attr(key)
            && attr.mutability != Mutability::ReadOnly
            && let Some(v) = value(attr, v)?
        {
            out.insert(attr.name.to_string(), v);
        }
    }
    let out = Value::Object(out);
    required(kind, &out)?;
    Ok(out)
}

/// The attributes the schema requires are there (after a PATCH too).
pub fn required(kind: Kind, resource: &Value) -> Result<(), ScimError> {
    for attr in kind.core().attributes.iter().filter(|a| a.required) {
        match resource.get(attr.name) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            _ => {
                return Err(ScimError::InvalidValue(format!(
                    "{} is required on a {}",
                    attr.name,
                    kind.name()
                )));
            }
        }
    }
    Ok(())
}

/// An extension's object: its attributes normalized (`None` when nothing is left).
pub fn extension(ext: &Schema, v: &Value) -> Result<Option<Value>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(_) => complex(ext.attributes, v, ext.id),
        _ => Err(ScimError::InvalidValue(format!(
            "{} must be an object of its attributes",
            ext.id
        ))),
    }
}

/// A complex value's sub-attributes normalized (`None` when nothing is left).
fn complex(attrs: &[Attr], v: &Value, what: &str) -> Result<Option<Value>, ScimError> {
    let Some(fields) = v.as_object() else {
        return Err(ScimError::InvalidValue(format!("{what} must be an object")));
    };
    let mut out = Map::new();
    for (key, v) in fields {
        if let Some(a) = find(attrs, key)
            && a.mutability != Mutability::ReadOnly
            && let Some(v) = value(a, v)?
        {
            out.insert(a.name.to_string(), v);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// One attribute's value, of its type; a multi-valued attribute given one value gets a list.
pub fn value(attr: &Attr, v: &Value) -> Result<Option<Value>, ScimError> {
    if !attr.multi {
        return single(attr, v);
    }
    let items: &[Value] = match v {
        Value::Null => return Ok(None),
        Value::Array(list) => list,
        one => std::slice::from_ref(one),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.extend(single(attr, item)?);
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// One value of `attr` (an element, for a multi-valued one).
pub fn single(attr: &Attr, v: &Value) -> Result<Option<Value>, ScimError> {
    let wrong = |expected: &str| {
        Err(ScimError::InvalidValue(format!(
            "{} must be {expected}",
            attr.name
        )))
    };
    match (attr.kind, v) {
        (_, Value::Null) => Ok(None),
        (Type::Complex, v) => complex(attr.sub, v, attr.name),
        (Type::Boolean, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" => Ok(Some(Value::Bool(true))),
            "false" => Ok(Some(Value::Bool(false))),
            _ => wrong("true or false"),
        },
        (Type::Boolean, Value::Bool(_))
        | (Type::String | Type::Reference | Type::Binary, Value::String(_)) => Ok(Some(v.clone())),
        (Type::Boolean, _) => wrong("true or false"),
        (_, _) => wrong("a string"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_are_stored_in_the_schemas_spelling_and_types() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "client-chosen", "meta": {"created": "then"}, "groups": [{"value": "g"}],
            "USERNAME": "ada@example.com",
            "active": "False",
            "password": "hunter2",
            "nosuch": 1,
            "name": {"GivenName": "Ada", "bogus": "x"},
            "emails": {"value": "ada@example.com", "primary": "True"},
            "phoneNumbers": [],
            "title": null,
            "urn:ietf:params:scim:schemas:extension:Enterprise:2.0:User": {
                "department": "R&D", "manager": {"value": "m1", "displayName": "ro"}},
            "urn:ietf:params:scim:schemas:extension:slipway:2.0:User": {"githubLogin": "ada-l"},
        });
        let stored = resource(Kind::User, &body).unwrap();
        assert_eq!(
            stored,
            json!({
                "userName": "ada@example.com",
                "active": false,
                "name": {"givenName": "Ada"},
                "emails": [{"value": "ada@example.com", "primary": true}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                    "department": "R&D", "manager": {"value": "m1"}},
                "urn:ietf:params:scim:schemas:extension:slipway:2.0:User": {"githubLogin": "ada-l"},
            })
        );
    }

    #[test]
    fn wrong_types_and_missing_required_attributes_are_invalid_values() {
        for (kind, body) in [
            (Kind::User, json!({"userName": 5})),
            (Kind::User, json!({"userName": "a", "active": "maybe"})),
            (Kind::User, json!({"userName": "a", "emails": ["x@y"]})),
            (Kind::User, json!({"displayName": "no user name"})),
            (Kind::User, json!({"userName": "  "})),
            (Kind::Group, json!({"members": []})),
        ] {
            let e = resource(kind, &body).unwrap_err();
            assert!(matches!(e, ScimError::InvalidValue(_)), "{body}: {e:?}");
        }
        assert!(matches!(
            resource(Kind::User, &json!([1])),
            Err(ScimError::InvalidSyntax(_))
        ));
    }
}
