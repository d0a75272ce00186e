//! gcloud's output expressions: `--format`, `--filter`, `--flatten` and `--sort-by`, allowed only
//! to select, filter and label fields.
//!
//! gcloud's transforms (`.encode(base64)`, `.decode()`, `.basename()`, `.join()`, …) compute new
//! values, so a secret could leave in a shape the redactor can't recognise, like a JMESPath
//! function for `/aws`. The grammar accepted here has no way to write one:
//!
//! ```text
//! format := "json" | "yaml" | ("table" | "value") "(" field { "," field } ")"
//! field  := key { "." key | "[" [digits] "]" } { ":" attr }
//! attr   := "label=" word | "sort=" digits | "reverse"
//! key    := letter-or-"_" { letter | digit | "_" | "-" }
//! word   := 1*( letter | digit | "_" | "-" )
//! ```
//!
//! Spaces are allowed around commas. A filter is gcloud's own language, checked rather than
//! parsed: a `(` right after a key or a value, or after a word other than `AND`, `OR` or `NOT`,
//! is a transform call and refused (write `AND (…)` to group terms).

use crate::command::parse::{ParseError, truncate};

/// Longest expression accepted. Real ones are far shorter.
pub const MAX_EXPR_LEN: usize = 512;

fn too_long(flag: &str, value: &str) -> Option<ParseError> {
    (value.len() > MAX_EXPR_LEN).then(|| {
        ParseError::refused(format!(
            "`--{flag}` is {} characters long; Slipway accepts up to {MAX_EXPR_LEN}.",
            value.len()
        ))
    })
}

fn transform_refused(flag: &str, value: &str) -> ParseError {
    ParseError::refused(format!(
        "`--{flag}={}` calls a gcloud transform. Transforms (`.encode()`, `.decode()`, \
         `.basename()`, …) are refused because they can reshape a secret so that redaction no \
         longer recognises it; name the fields themselves.",
        truncate(value, 60)
    ))
}

/// Check a `--format` value.
pub fn check_format(value: &str) -> Result<(), ParseError> {
    if let Some(e) = too_long("format", value) {
        return Err(e);
    }
    if matches!(value, "json" | "yaml") {
        return Ok(());
    }
    let fields = ["table(", "value("]
        .iter()
        .find_map(|p| value.strip_prefix(p))
        .and_then(|rest| rest.strip_suffix(')'));
    let Some(fields) = fields else {
        let dotted_call = value.find('.').is_some_and(|i| value[i..].contains('('));
        return Err(if dotted_call {
            transform_refused("format", value)
        } else {
            ParseError::refused(format!(
                "`--format={}` is not a format Slipway passes on. Use `json`, `yaml`, \
                 `table(field, …)` or `value(field, …)`, for example \
                 `--format=\"table(name, zone, status)\"`.",
                truncate(value, 60)
            ))
        });
    };
    for field in fields.split(',') {
        if !is_field(field.trim(), true) {
            return Err(field_refused("format", value, field.trim()));
        }
    }
    Ok(())
}

fn field_refused(flag: &str, value: &str, field: &str) -> ParseError {
    if field.contains('(') {
        return transform_refused(flag, value);
    }
    ParseError::refused(format!(
        "`--{flag}`: `{}` is not a plain field. Fields are keys joined by `.`, with `[N]` or \
         `[]` for lists{}.",
        truncate(field, 40),
        if flag == "format" {
            " and optionally `:label=NAME`, `:sort=N` or `:reverse`"
        } else {
            ""
        }
    ))
}

/// Check `--flatten` (keys) or `--sort-by` (keys, each optionally `~`).
pub fn check_keys(flag: &str, value: &str, descending_allowed: bool) -> Result<(), ParseError> {
    if let Some(e) = too_long(flag, value) {
        return Err(e);
    }
    for key in value.split(',') {
        let key = key.trim();
        let key = if descending_allowed {
            key.strip_prefix('~').unwrap_or(key)
        } else {
            key
        };
        if !is_field(key, false) {
            return Err(field_refused(flag, value, key));
        }
    }
    Ok(())
}

/// `key { "." key | "[" [digits] "]" } { ":" attr }`; attributes only when `attrs`.
fn is_field(field: &str, attrs: bool) -> bool {
    let mut parts = field.split(':');
    let Some(path) = parts.next() else {
        return false;
    };
    if !is_key_path(path) {
        return false;
    }
    let attributes: Vec<&str> = parts.collect();
    if !attrs && !attributes.is_empty() {
        return false;
    }
    attributes.iter().all(|a| {
        *a == "reverse"
            || a.strip_prefix("label=").is_some_and(is_word)
            || a.strip_prefix("sort=")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_key(s: &str) -> bool {
    let b = s.as_bytes();
    b.first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && is_word(s)
}

/// Keys joined by `.`, each optionally followed by `[N]` or `[]` (repeatedly).
fn is_key_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('.').all(|segment| {
            let (key, mut rest) = segment
                .find('[')
                .map_or((segment, ""), |i| segment.split_at(i));
            if !is_key(key) {
                return false;
            }
            while !rest.is_empty() {
                let Some(inner) = rest.strip_prefix('[') else {
                    return false;
                };
                let Some(close) = inner.find(']') else {
                    return false;
                };
                if !inner[..close].bytes().all(|b| b.is_ascii_digit()) {
                    return false;
                }
                rest = &inner[close + 1..];
            }
            true
        })
}

/// Check a `--filter` expression: no transform calls, however spaced.
pub fn check_filter(value: &str) -> Result<(), ParseError> {
    if let Some(e) = too_long("filter", value) {
        return Err(e);
    }
    for (i, c) in value.char_indices() {
        if c == '(' && calls(&value[..i]) {
            return Err(transform_refused("filter", value));
        }
    }
    Ok(())
}

/// Whether a `(` after `before` is a call: it follows a key or value directly, or after spaces
/// a word that is not one of the filter language's operators.
fn calls(before: &str) -> bool {
    let is_word_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ']' | '-');
    // A `-` that opens a term negates it: `a AND -(b:1)`.
    if let Some(b) = before.strip_suffix('-')
        && (b.is_empty() || b.ends_with(|c: char| c.is_whitespace() || c == '('))
    {
        return false;
    }
    if before.ends_with(is_word_char) {
        return true;
    }
    let trimmed = before.trim_end();
    if trimmed.len() == before.len() {
        return false;
    }
    let word_start = trimmed
        .rfind(|c: char| !is_word_char(c))
        .map_or(0, |i| i + 1);
    let word = &trimmed[word_start..];
    !word.is_empty() && !matches!(word, "AND" | "OR" | "NOT")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::ParseErrorKind;

    #[test]
    fn plain_formats_pass() {
        for f in [
            "json",
            "yaml",
            "table(name, zone, status)",
            "table(name,networkInterfaces[0].networkIP:label=IP,status:sort=1:reverse)",
            "value(name)",
            "value(disks[].source)",
            "table(labels.env-name:label=ENV)",
        ] {
            check_format(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn transforms_in_formats_are_refused_however_they_are_written() {
        for f in [
            "value(metadata.items.value.encode(base64))",
            "value(name.decode(base64))",
            "table(zone.basename())",
            "table(name, zone.basename():label=ZONE)",
            "json(name)",
            "table[box](name)",
            "value[separator=','](name)",
            "csv(name)",
            "flattened",
            "config",
            "get(name)",
            "table(name:format='x')",
            "table(name:label=\"A B\")",
            "table()",
            "table(name",
            "value(name).encode(base64)",
            "table(name)extra",
            "table(name[x])",
            "table('name')",
        ] {
            let e = check_format(f).unwrap_err();
            assert_eq!(e.kind, ParseErrorKind::Refused, "{f}: {e}");
        }
        let e = check_format("value(name.encode(base64))").unwrap_err();
        assert!(e.message.contains("transform"), "{e}");
        assert_eq!(
            check_format(&format!("table({})", "a,".repeat(300) + "b"))
                .unwrap_err()
                .kind,
            ParseErrorKind::Refused
        );
    }

    #[test]
    fn filters_without_calls_pass() {
        for f in [
            "status=RUNNING",
            "zone:us-central1-a AND labels.env=prod",
            "NOT (status=TERMINATED)",
            "-(name:test*)",
            "zone:x AND -(name:test*)",
            "(name:a OR name:b) AND NOT (zone:x)",
            "name:(web api)",
            "name=('a' 'b')",
            "labels.team:*",
        ] {
            check_filter(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn transforms_in_filters_are_refused() {
        for f in [
            "metadata.items.value.decode(base64):sk_live*",
            "name.encode(base64)=abc",
            "zone.basename()=us-central1-a",
            "name.decode (base64)=x",
            "name.decode\t(base64)=x",
            "status=RUNNING AND name.len()>3",
            "labels[0](x)",
            "x-(y)",
        ] {
            let e = check_filter(f).unwrap_err();
            assert_eq!(e.kind, ParseErrorKind::Refused, "{f}: {e}");
        }
    }

    #[test]
    fn flatten_and_sort_keys() {
        check_keys("flatten", "bindings[].members", false).unwrap();
        check_keys("sort-by", "~creationTimestamp, name", true).unwrap();
        for (flag, v, desc) in [
            ("flatten", "bindings.members.decode()", false),
            ("sort-by", "name.basename()", true),
            ("sort-by", "name:label=x", true),
            ("flatten", "~name", false),
            ("sort-by", "", true),
        ] {
            assert_eq!(
                check_keys(flag, v, desc).unwrap_err().kind,
                ParseErrorKind::Refused,
                "{v}"
            );
        }
    }
}
