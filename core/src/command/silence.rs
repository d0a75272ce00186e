//! `/silence`: Alertmanager silences, created, listed and expired.

use std::time::Duration;

use super::parse::{ParseError, check_name, truncate};
use super::{Target, Tier};

/// One Alertmanager matcher, as the v2 API spells it (and as it travels on the wire).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl Matcher {
    fn op(&self) -> &'static str {
        match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        }
    }

    /// As typed: `alertname=HighLatency`.
    pub fn to_text(&self) -> String {
        format!("{}{}{}", self.name, self.op(), self.value)
    }

    /// As Alertmanager shows it: `alertname="HighLatency"`.
    pub fn quoted(&self) -> String {
        format!("{}{}\"{}\"", self.name, self.op(), self.value)
    }
}

/// `/silence …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Silence {
    Create {
        env: Option<String>,
        matchers: Vec<Matcher>,
        duration: Duration,
        comment: Option<String>,
    },
    List {
        env: Option<String>,
    },
    Expire {
        env: Option<String>,
        id: String,
    },
}

impl Silence {
    pub fn tier(&self) -> Tier {
        match self {
            Silence::List { .. } => Tier::Read,
            Silence::Create { .. } | Silence::Expire { .. } => Tier::Operate,
        }
    }

    pub fn target(&self) -> Target {
        match self {
            Silence::Create { env, matchers, .. } => Target::Alerts {
                env: env.clone(),
                matchers: matchers.iter().map(Matcher::to_text).collect(),
            },
            Silence::List { env } | Silence::Expire { env, .. } => Target::Alerts {
                env: env.clone(),
                matchers: Vec::new(),
            },
        }
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Parse `name=value`, `name!=value`, `name=~regex`, `name!~regex`; `Ok(None)` if it isn't one.
fn parse_matcher(word: &str) -> Result<Option<Matcher>, ParseError> {
    let ops = [
        ("!~", false, true),
        ("=~", true, true),
        ("!=", false, false),
        ("=", true, false),
    ];
    let Some((idx, (op, is_equal, is_regex))) = ops
        .iter()
        .filter_map(|o| word.find(o.0).map(|i| (i, *o)))
        .min_by_key(|(i, o)| (*i, std::cmp::Reverse(o.0.len())))
    else {
        return Ok(None);
    };
    let name = &word[..idx];
    let value = &word[idx + op.len()..];
    if !is_label_name(name) {
        return Err(ParseError::invalid(format!(
            "`{}` is not a valid label name in matcher `{}`: use letters, digits and `_`, \
             not starting with a digit, for example `alertname=HighLatency`.",
            truncate(name, 40),
            truncate(word, 60)
        )));
    }
    if value.is_empty() {
        return Err(ParseError::invalid(format!(
            "matcher `{}` has no value; write `{name}{op}<value>`.",
            truncate(word, 60)
        )));
    }
    if is_regex && let Err(e) = regex_syntax_check(value) {
        return Err(ParseError::invalid(format!(
            "matcher `{}` has an invalid regular expression: {e}",
            truncate(word, 60)
        )));
    }
    Ok(Some(Matcher {
        name: name.to_string(),
        value: value.to_string(),
        is_regex,
        is_equal,
    }))
}

/// Alertmanager compiles matchers as RE2; the `regex` crate's syntax is close enough to catch
/// mistakes here, with a message, before the API would.
fn regex_syntax_check(re: &str) -> Result<(), String> {
    regex_syntax::Parser::new()
        .parse(re)
        .map(|_| ())
        .map_err(|e| {
            e.to_string()
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim()
                .to_string()
        })
}

/// ```text
/// silence := [ "@" env ] matcher { matcher } duration [ comment… ]
///          | [ "@" env ] "list"
///          | [ "@" env ] "expire" id
/// ```
pub fn parse_silence(mut words: Vec<String>) -> Result<Silence, ParseError> {
    let env = match words.first() {
        Some(w) if w.starts_with('@') => {
            let e = w[1..].to_string();
            check_name("environment", &e)?;
            words.remove(0);
            Some(e)
        }
        _ => None,
    };
    match words.first().map(String::as_str) {
        None => Err(ParseError::invalid(USAGE)),
        Some("list") if words.len() == 1 => Ok(Silence::List { env }),
        Some("expire") => match &words[1..] {
            [id] if !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') =>
            {
                Ok(Silence::Expire {
                    env,
                    id: id.clone(),
                })
            }
            _ => Err(ParseError::invalid("usage: `/silence expire <silence id>`")),
        },
        _ => parse_create(env, words),
    }
}

const USAGE: &str = "usage: `/silence alertname=HighLatency service=api 2h [comment]`, \
                     `/silence list` or `/silence expire <id>`";

/// `matcher { matcher } duration [ comment… ]`: at least one exact matcher, so no silence mutes
/// every alert; at least a minute; a comment of at most 500 characters.
fn parse_create(env: Option<String>, words: Vec<String>) -> Result<Silence, ParseError> {
    let mut rest = words.into_iter().peekable();
    let mut matchers = Vec::new();
    while let Some(m) = rest.peek().map(|w| parse_matcher(w)).transpose()?.flatten() {
        matchers.push(m);
        rest.next();
    }
    if matchers.is_empty() {
        return Err(ParseError::invalid(format!(
            "a silence needs at least one matcher; {USAGE}"
        )));
    }
    if !matchers.iter().any(|m| m.is_equal && !m.is_regex) {
        return Err(ParseError::invalid(
            "a silence needs at least one exact matcher (`name=value`), so it can't mute every alert.",
        ));
    }
    let duration = parse_length(rest.next())?;
    let comment: Vec<String> = rest.collect();
    let comment = (!comment.is_empty()).then(|| comment.join(" "));
    if comment.as_ref().is_some_and(|c| c.chars().count() > 500) {
        return Err(ParseError::invalid(
            "the comment is too long (at most 500 characters).",
        ));
    }
    Ok(Silence::Create {
        env,
        matchers,
        duration,
        comment,
    })
}

/// The silence's duration word: present, a duration, and at least a minute.
fn parse_length(word: Option<String>) -> Result<Duration, ParseError> {
    let Some(word) = word else {
        return Err(ParseError::invalid(format!(
            "how long? Add a duration such as `2h`; {USAGE}"
        )));
    };
    let duration = humantime::parse_duration(&word).map_err(|_| {
        ParseError::invalid(format!(
            "`{}` is not a duration; use for example `30m`, `2h` or `1h30m`.",
            truncate(&word, 40)
        ))
    })?;
    if duration < Duration::from_secs(60) {
        return Err(ParseError::invalid(
            "a silence must last at least one minute.",
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse::ParseErrorKind;
    use crate::command::{Command, parse_line};

    #[test]
    fn silence() {
        let p = parse_line("/silence alertname=HighLatency service=~api.* 2h deploy in progress")
            .unwrap();
        assert_eq!(p.tier(), Some(Tier::Operate));
        let Command::Silence(Silence::Create {
            matchers,
            duration,
            comment,
            env,
        }) = p.command
        else {
            panic!()
        };
        assert_eq!(matchers.len(), 2);
        assert!(matchers[1].is_regex);
        assert_eq!(duration, Duration::from_secs(7200));
        assert_eq!(comment.as_deref(), Some("deploy in progress"));
        assert_eq!(env, None);
        assert_eq!(
            parse_line("/silence @production list").unwrap().tier(),
            Some(Tier::Read)
        );
        assert!(matches!(
            parse_line("/silence expire 3f2a-11").unwrap().command,
            Command::Silence(Silence::Expire { .. })
        ));
        for s in [
            "/silence 2h",
            "/silence 1bad=x 2h",
            "/silence alertname=~x 2h",
            "/silence a=b forever",
            "/silence a=b",
            "/silence a=b c=~(x 2h",
            "/silence a= 2h",
            "/silence a=b 10s",
        ] {
            assert_eq!(
                parse_line(s).unwrap_err().kind,
                ParseErrorKind::Invalid,
                "{s}"
            );
        }
        assert_eq!(
            parse_line("/silence a!=b c=d 1h").unwrap().tier(),
            Some(Tier::Operate)
        );
    }
}
