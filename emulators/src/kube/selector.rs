//! Label and field selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!` not-exists).

use serde_json::Value;

/// One parsed selector requirement.
#[derive(Debug)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Splits on commas outside parentheses.
fn terms(selector: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&selector[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn set_values(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse(selector: &str) -> Result<Vec<Req>, String> {
    let mut reqs = Vec::new();
    for term in terms(selector) {
        let bad = || {
            format!("unable to parse requirement: found '{term}', expected: identifier or operator")
        };
        let req = if let Some(k) = term.strip_prefix('!') {
            Req::NotExists(k.trim().to_string())
        } else if let Some((k, v)) = term.split_once("!=") {
            Req::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = term.split_once("==") {
            Req::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = term.split_once('=') {
            Req::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = term.split_once(" notin ") {
            Req::NotIn(k.trim().into(), set_values(rest).ok_or_else(bad)?)
        } else if let Some((k, rest)) = term.split_once(" in ") {
            Req::In(k.trim().into(), set_values(rest).ok_or_else(bad)?)
        } else {
            Req::Exists(term.to_string())
        };
        let key = match &req {
            Req::Eq(k, _)
            | Req::Ne(k, _)
            | Req::In(k, _)
            | Req::NotIn(k, _)
            | Req::Exists(k)
            | Req::NotExists(k) => k,
        };
        if !valid_key(key) {
            return Err(bad());
        }
        reqs.push(req);
    }
    Ok(reqs)
}

/// A compiled label or field selector.
#[derive(Debug, Default)]
pub(crate) struct Selector(Vec<Req>);

impl Selector {
    pub(crate) fn parse(selector: Option<&str>) -> Result<Selector, String> {
        Ok(Selector(match selector {
            Some(s) => parse(s)?,
            None => Vec::new(),
        }))
    }

    /// Label selector: matches against `metadata.labels`.
    pub(crate) fn matches_labels(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.matches(|k| {
            labels
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    }

    /// Field selector: keys are dotted paths into the object (`metadata.name`, `status.phase`,
    /// `involvedObject.name`, …).
    pub(crate) fn matches_fields(&self, obj: &Value) -> bool {
        self.matches(|k| {
            let ptr = format!("/{}", k.replace('.', "/"));
            match obj.pointer(&ptr) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => Some(String::new()),
                Some(v) => Some(v.to_string()),
            }
        })
    }

    fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k).as_deref() == Some(v.as_str()),
            Req::Ne(k, v) => get(k).as_deref() != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(&x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"labels": {"app": "api", "tier": "web"}}});
        let ok = |s: &str| Selector::parse(Some(s)).unwrap().matches_labels(&obj);
        assert!(ok("app=api"));
        assert!(ok("app==api,tier=web"));
        assert!(!ok("app=worker"));
        assert!(ok("app!=worker"));
        assert!(ok("app in (api, worker)"));
        assert!(!ok("app notin (api)"));
        assert!(ok("tier"));
        assert!(ok("!missing"));
        assert!(!ok("!tier"));
        assert!(Selector::parse(Some("app in api")).is_err());
        assert!(Selector::parse(Some("=x")).is_err());
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "api-1"}, "status": {"phase": "Running"}});
        let ok = |s: &str| Selector::parse(Some(s)).unwrap().matches_fields(&obj);
        assert!(ok("metadata.name=api-1"));
        assert!(ok("status.phase!=Pending"));
        assert!(!ok("status.phase=Pending"));
    }
}
