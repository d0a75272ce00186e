//! SCIM filters and PATCH paths (RFC 7644 §3.4.2.2, §3.5.2), parsed by hand: the one Rust
//! crate for filters (`scim-filter`) brings nom and rust_decimal for what fits in this file, and
//! covers neither PATCH paths nor a depth limit.
//!
//! ```text
//! FILTER    = orExp
//! orExp     = andExp *("or" andExp)
//! andExp    = unary *("and" unary)
//! unary     = "not" "(" FILTER ")" / "(" FILTER ")" / attrPath "[" FILTER "]"
//!           / attrPath "pr" / attrPath compareOp compValue
//! compareOp = eq / ne / co / sw / ew / gt / lt / ge / le      (any case)
//! compValue = false / null / true / number / JSON string
//! attrPath  = [URN ":"] ATTRNAME ["." subAttr]
//! PATH      = attrPath / attrPath "[" FILTER "]" ["." subAttr]  (PATCH)
//! ```
//!
//! Input is capped in length and nesting, so no filter can exhaust the stack.

use serde_json::Value;

use super::error::ScimError;

/// The longest filter or path accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// The deepest nesting of parentheses, `not` and `[…]`.
const MAX_DEPTH: usize = 16;

/// `[urn:…:]attr[.sub]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN before the attribute, as written.
    pub uri: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, Op, Value),
    /// `attr[filter]`: some element of `attr` matches `filter` (its paths name sub-attributes).
    Within(AttrPath, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// A PATCH target: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// After `[…]`: the sub-attribute of the matching elements.
    pub sub: Option<String>,
}

/// Parse a `filter` query parameter.
pub fn parse_filter(text: &str) -> Result<Filter, ScimError> {
    let mut p = Parser::new(text, ScimError::InvalidFilter)?;
    let f = p.or(0)?;
    p.end()?;
    Ok(f)
}

/// Parse a PATCH operation's `path`.
pub fn parse_path(text: &str) -> Result<PatchPath, ScimError> {
    let mut p = Parser::new(text, ScimError::InvalidPath)?;
    let attr = p.attr_path()?;
    let mut path = PatchPath {
        attr,
        filter: None,
        sub: None,
    };
    if p.eat('[') {
        if path.attr.sub.is_some() {
            return Err(p.fail("a filter `[…]` follows an attribute, not a sub-attribute"));
        }
        path.filter = Some(p.or(1)?);
        p.expect(']')?;
        if p.eat('.') {
            path.sub = Some(p.name()?);
        }
    }
    p.end()?;
    Ok(path)
}

/// Parse an `attributes` / `excludedAttributes` entry.
pub fn parse_attr_path(text: &str) -> Result<AttrPath, ScimError> {
    let mut p = Parser::new(text, ScimError::InvalidPath)?;
    let a = p.attr_path()?;
    p.end()?;
    Ok(a)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    error: fn(String) -> ScimError,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$')
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, error: fn(String) -> ScimError) -> Result<Self, ScimError> {
        if text.len() > MAX_LEN {
            return Err(error(format!("longer than {MAX_LEN} bytes")));
        }
        Ok(Parser {
            text,
            pos: 0,
            error,
        })
    }

    fn fail(&self, what: &str) -> ScimError {
        (self.error)(format!("{what} (at byte {} of `{}`)", self.pos, self.text))
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start_matches([' ', '\t']);
        self.pos = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ScimError> {
        self.skip_ws();
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.fail(&format!("expected `{c}`")))
        }
    }

    fn end(&mut self) -> Result<(), ScimError> {
        self.skip_ws();
        if self.rest().is_empty() {
            Ok(())
        } else {
            Err(self.fail("unexpected text"))
        }
    }

    /// The next word (letters only), without consuming it.
    fn peek_word(&self) -> &'a str {
        let rest = self.rest().trim_start_matches([' ', '\t']);
        let end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        &rest[..end]
    }

    /// Consume `word` (any case) when it is the next whole word.
    fn eat_word(&mut self, word: &str) -> bool {
        let next = self.peek_word();
        if !next.eq_ignore_ascii_case(word) {
            return false;
        }
        let start = self.text.len() - self.rest().trim_start_matches([' ', '\t']).len();
        let after = &self.text[start + next.len()..];
        if after.starts_with(is_name_char) {
            return false;
        }
        self.pos = start + next.len();
        true
    }

    fn name(&mut self) -> Result<String, ScimError> {
        let rest = self.rest();
        let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        if end == 0 {
            return Err(self.fail("expected an attribute name"));
        }
        self.pos += end;
        Ok(rest[..end].to_string())
    }

    fn attr_path(&mut self) -> Result<AttrPath, ScimError> {
        self.skip_ws();
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(is_name_char(c) || c == ':' || c == '.'))
            .unwrap_or(rest.len());
        let word = &rest[..end];
        let (uri, local) = match word.rfind(':') {
            Some(i) if word.len() >= 4 && word[..4].eq_ignore_ascii_case("urn:") => {
                (Some(word[..i].to_string()), &word[i + 1..])
            }
            Some(_) => return Err(self.fail("a `:` belongs to a schema URN (`urn:…`)")),
            None => (None, word),
        };
        let (attr, sub) = match local.split_once('.') {
            Some((a, s)) => (a, Some(s)),
            None => (local, None),
        };
        let valid = |s: &str| !s.is_empty() && s.chars().all(is_name_char);
        if !valid(attr) || !sub.is_none_or(valid) {
            return Err(self.fail("expected an attribute path"));
        }
        self.pos += end;
        Ok(AttrPath {
            uri,
            attr: attr.to_string(),
            sub: sub.map(str::to_string),
        })
    }

    fn or(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut left = self.and(depth)?;
        while self.eat_word("or") {
            let right = self.and(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut left = self.unary(depth)?;
        while self.eat_word("and") {
            let right = self.unary(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn nested(&mut self, depth: usize, close: char) -> Result<Filter, ScimError> {
        if depth >= MAX_DEPTH {
            return Err(self.fail("nested too deeply"));
        }
        let inner = self.or(depth + 1)?;
        self.expect(close)?;
        Ok(inner)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, ScimError> {
        self.skip_ws();
        if self.eat('(') {
            return self.nested(depth, ')');
        }
        if self.eat_word("not") {
            self.expect('(')?;
            return Ok(Filter::Not(Box::new(self.nested(depth, ')')?)));
        }
        let path = self.attr_path()?;
        if self.eat('[') {
            if path.sub.is_some() {
                return Err(self.fail("a filter `[…]` follows an attribute, not a sub-attribute"));
            }
            return Ok(Filter::Within(path, Box::new(self.nested(depth, ']')?)));
        }
        if self.eat_word("pr") {
            return Ok(Filter::Present(path));
        }
        let op = self.op()?;
        let value = self.comp_value()?;
        Ok(Filter::Compare(path, op, value))
    }

    fn op(&mut self) -> Result<Op, ScimError> {
        let ops = [
            ("eq", Op::Eq),
            ("ne", Op::Ne),
            ("co", Op::Co),
            ("sw", Op::Sw),
            ("ew", Op::Ew),
            ("gt", Op::Gt),
            ("ge", Op::Ge),
            ("lt", Op::Lt),
            ("le", Op::Le),
        ];
        for (word, op) in ops {
            if self.eat_word(word) {
                return Ok(op);
            }
        }
        Err(self.fail("expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr)"))
    }

    fn comp_value(&mut self) -> Result<Value, ScimError> {
        self.skip_ws();
        for (word, v) in [
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
            ("null", Value::Null),
        ] {
            if self.eat_word(word) {
                return Ok(v);
            }
        }
        let rest = self.rest();
        let end = if rest.starts_with('"') {
            string_end(rest).ok_or_else(|| self.fail("an unterminated string"))?
        } else {
            rest.find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
                .unwrap_or(rest.len())
        };
        let value = serde_json::from_str::<Value>(&rest[..end])
            .ok()
            .filter(|v| v.is_string() || v.is_number())
            .ok_or_else(|| {
                self.fail("expected a value: a \"string\", a number, true, false or null")
            })?;
        self.pos += end;
        Ok(value)
    }
}

/// The byte after the closing quote of the JSON string `s` starts with.
fn string_end(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(attr: &str, sub: Option<&str>) -> AttrPath {
        AttrPath {
            uri: None,
            attr: attr.into(),
            sub: sub.map(Into::into),
        }
    }

    #[test]
    fn filters_parse_with_precedence_and_any_case() {
        let f =
            parse_filter(r#"userName Eq "bjensen" OR not (active eq false) and emails.value pr"#)
                .unwrap();
        let expected = Filter::Or(
            Box::new(Filter::Compare(
                path("userName", None),
                Op::Eq,
                json!("bjensen"),
            )),
            Box::new(Filter::And(
                Box::new(Filter::Not(Box::new(Filter::Compare(
                    path("active", None),
                    Op::Eq,
                    json!(false),
                )))),
                Box::new(Filter::Present(path("emails", Some("value")))),
            )),
        );
        assert_eq!(f, expected);
        let f = parse_filter(r#"emails[type eq "work" and value co "@ex\"ample"]"#).unwrap();
        let Filter::Within(p, inner) = f else {
            panic!("{f:?}")
        };
        assert_eq!(p, path("emails", None));
        assert!(matches!(*inner, Filter::And(..)));
        let f = parse_filter(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m1\"",
        )
        .unwrap();
        let Filter::Compare(p, Op::Eq, v) = f else {
            panic!()
        };
        assert_eq!(
            p.uri.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(
            (p.attr.as_str(), p.sub.as_deref(), v),
            ("manager", Some("value"), json!("m1"))
        );
        assert!(parse_filter("meta.lastModified gt \"2011-05-13T04:42:34Z\"").is_ok());
        assert!(parse_filter("count ge -1.5e3").is_ok());
        assert!(
            parse_filter("notes eq \"x\"").is_ok(),
            "`not` inside a name is a name"
        );
    }

    #[test]
    fn malformed_filters_are_invalid_filter_never_a_panic() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName eq bjensen",
            "userName zz \"x\"",
            "userName eq \"unterminated",
            "(userName eq \"x\"",
            "emails[type eq \"work\"",
            "emails.value[type eq \"w\"]",
            "a:b eq 1",
            "userName eq \"x\" and",
            "userName eq \"x\" trailing",
            "ü eq 1",
            "\"x\" eq userName",
            "userName eq {\"a\":1}",
        ] {
            let e = parse_filter(bad).unwrap_err();
            assert!(matches!(e, ScimError::InvalidFilter(_)), "{bad}: {e:?}");
        }
        let deep = format!("{}a pr{}", "(".repeat(40), ")".repeat(40));
        assert!(parse_filter(&deep).is_err());
        assert!(parse_filter(&format!("a eq \"{}\"", "x".repeat(MAX_LEN))).is_err());
    }

    #[test]
    fn patch_paths_have_an_optional_filter_and_sub_attribute() {
        let p = parse_path(r#"members[value eq "2819c223"]"#).unwrap();
        assert_eq!(p.attr, path("members", None));
        assert!(p.filter.is_some() && p.sub.is_none());
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.sub.as_deref(), Some("value"));
        let p = parse_path("name.givenName").unwrap();
        assert_eq!(p.attr, path("name", Some("givenName")));
        let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").unwrap();
        assert_eq!(
            p.attr.uri.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0")
        );
        assert_eq!(p.attr.attr, "User");
        for bad in [
            "",
            "members[",
            "members[value eq \"x\"]x",
            "a b",
            "emails[type eq \"w\"].",
        ] {
            assert!(
                matches!(parse_path(bad), Err(ScimError::InvalidPath(_))),
                "{bad}"
            );
        }
    }

    /// Every short string over the grammar's own pieces parses or is refused, never a panic, and
    /// whatever parses as a filter also evaluates.
    #[test]
    fn no_short_input_panics() {
        use crate::app::scim::matcher::{Scope, matches};
        use crate::app::scim::schema::Kind;
        let pieces = [
            "", " ", "(", ")", "[", "]", "\"", "\\", ".", ":", "urn:", "é", "eq ", "pr", "not ",
            " and ", " or ", "emails", "value", "1", "-", "true",
        ];
        let user = json!({"userName": "a", "emails": [{"value": "a@x", "type": "work"}]});
        let mut parsed = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let text = format!("{a}{b}{c}{d}");
                        if let Ok(f) = parse_filter(&text) {
                            parsed += 1;
                            let _ = matches(&f, &user, Scope::Resource(Kind::User));
                        }
                        let _ = parse_path(&text);
                        let _ = parse_attr_path(&text);
                    }
                }
            }
        }
        assert!(parsed > 100, "{parsed}");
    }
}
