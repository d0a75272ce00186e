//! The small families: `/tf`, `/deploy`, `/silence` and `/slipway`.

use std::time::Duration;

use super::parse::{ParseError, check_name, truncate};
use super::{Command, Target, Tier};

/// The file name of a saved terraform plan inside the stack directory.
pub const TF_PLAN_FILE: &str = "slipway.tfplan";

/// Flags a person might try on `/tf`: only the stack name is theirs to choose.
const TF_REFUSED: &[&str] = &[
    "-chdir",
    "-plugin-dir",
    "-state",
    "-state-out",
    "-backup",
    "-var-file",
    "-var",
    "-target",
    "-replace",
    "-destroy",
    "-lock",
];

/// `/tf plan <stack>` and `/tf apply <stack>`.
///
/// ```text
/// tf := ("plan" | "apply") stack
/// ```
pub fn parse_tf(words: &[String]) -> Result<Command, ParseError> {
    if let Some(w) = words.iter().find(|w| w.starts_with('-')) {
        let name = w.split('=').next().unwrap_or(w);
        let name = if name.starts_with("--") {
            &name[1..]
        } else {
            name
        };
        if TF_REFUSED.iter().any(|r| name.starts_with(r)) {
            return Err(ParseError::refused(format!(
                "`{}` is not allowed: only the stack name is yours to choose; \
                 directories, state, variables and plugins come from the GitOps repository.",
                truncate(w, 40)
            )));
        }
        return Err(ParseError::unknown(format!(
            "`{}` is not a flag `/tf` accepts; usage: `/tf plan <stack>` or `/tf apply <stack>`.",
            truncate(w, 40)
        )));
    }
    match words {
        [verb, stack] if verb == "plan" || verb == "apply" => {
            check_name("stack", stack)?;
            let stack = stack.clone();
            Ok(if verb == "plan" {
                Command::TfPlan { stack }
            } else {
                Command::TfApply { stack }
            })
        }
        [verb, ..] if verb != "plan" && verb != "apply" => Err(ParseError::unknown(format!(
            "`/tf {}` is not available; use `/tf plan <stack>` or `/tf apply <stack>`.",
            truncate(verb, 40)
        ))),
        _ => Err(ParseError::invalid(
            "usage: `/tf plan <stack>` or `/tf apply <stack>`.",
        )),
    }
}

/// `/deploy <service> <env> [version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    pub service: String,
    pub env: String,
    /// An image tag or `sha256:` digest; `None` means the newest successful CI build.
    pub version: Option<String>,
}

impl Deploy {
    /// The directory of the env's manifests in the GitOps repo, by convention.
    pub fn manifest_dir(&self) -> String {
        format!("apps/{}/{}", self.service, self.env)
    }

    pub fn argv(&self) -> Vec<String> {
        vec![
            "kubectl".into(),
            "apply".into(),
            "-k".into(),
            self.manifest_dir(),
        ]
    }
}

fn is_version(v: &str) -> bool {
    if let Some(hex) = v.strip_prefix("sha256:") {
        return hex.len() == 64
            && hex
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    }
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// ```text
/// deploy := service env [ tag | "sha256:" hex64 ]
/// ```
pub fn parse_deploy(words: &[String]) -> Result<Deploy, ParseError> {
    if let Some(w) = words.iter().find(|w| w.starts_with('-')) {
        return Err(ParseError::unknown(format!(
            "`{}` is not a flag `/deploy` accepts; usage: `/deploy <service> <env> [version] [--apply]`.",
            truncate(w, 40)
        )));
    }
    match words {
        [service, env, rest @ ..] if rest.len() <= 1 => {
            check_name("service", service)?;
            check_name("environment", env)?;
            let version = rest.first().cloned();
            if let Some(v) = &version
                && !is_version(v)
            {
                return Err(ParseError::invalid(format!(
                    "`{}` is not an image tag or `sha256:` digest.",
                    truncate(v, 80)
                )));
            }
            Ok(Deploy {
                service: service.clone(),
                env: env.clone(),
                version,
            })
        }
        _ => Err(ParseError::invalid(
            "usage: `/deploy <service> <env> [version] [--apply]`, for example `/deploy api staging --apply`.",
        )),
    }
}

/// One Alertmanager matcher, as the v2 API spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

impl Matcher {
    pub fn to_text(&self) -> String {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        format!("{}{op}{}", self.name, self.value)
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
    let usage = "usage: `/silence alertname=HighLatency service=api 2h [comment]`, `/silence list` \
                 or `/silence expire <id>`";
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
        None => return Err(ParseError::invalid(usage)),
        Some("list") if words.len() == 1 => return Ok(Silence::List { env }),
        Some("expire") => {
            return match &words[1..] {
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
            };
        }
        _ => {}
    }
    let mut matchers = Vec::new();
    let mut rest = words.into_iter().peekable();
    while let Some(word) = rest.peek() {
        match parse_matcher(word)? {
            Some(m) => {
                matchers.push(m);
                rest.next();
            }
            None => break,
        }
    }
    if matchers.is_empty() {
        return Err(ParseError::invalid(format!(
            "a silence needs at least one matcher; {usage}"
        )));
    }
    if !matchers.iter().any(|m| m.is_equal && !m.is_regex) {
        return Err(ParseError::invalid(
            "a silence needs at least one exact matcher (`name=value`), so it can't mute every alert.",
        ));
    }
    let Some(duration_word) = rest.next() else {
        return Err(ParseError::invalid(format!(
            "how long? Add a duration such as `2h`; {usage}"
        )));
    };
    let duration = humantime::parse_duration(&duration_word).map_err(|_| {
        ParseError::invalid(format!(
            "`{}` is not a duration; use for example `30m`, `2h` or `1h30m`.",
            truncate(&duration_word, 40)
        ))
    })?;
    if duration < Duration::from_secs(60) {
        return Err(ParseError::invalid(
            "a silence must last at least one minute.",
        ));
    }
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

/// `/slipway …`: Slipway's own commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meta {
    Help {
        topic: Option<String>,
    },
    Whoami,
    /// Explain the decision for another command's text, for example `/slipway explain /kubectl get pods`.
    Explain {
        text: String,
    },
    LinkGithub,
}

/// ```text
/// slipway := "help" [topic] | "whoami" | "explain" command-text | "link" "github"
/// ```
pub fn parse_meta(words: &[String], raw: &str) -> Result<Meta, ParseError> {
    match words {
        [] => Ok(Meta::Help { topic: None }),
        [h] if h == "help" => Ok(Meta::Help { topic: None }),
        [h, topic] if h == "help" => Ok(Meta::Help {
            topic: Some(topic.trim_start_matches('/').to_string()),
        }),
        [w] if w == "whoami" => Ok(Meta::Whoami),
        [l, g] if l == "link" && g == "github" => Ok(Meta::LinkGithub),
        [e, _, ..] if e == "explain" => {
            let text = raw
                .trim_start()
                .strip_prefix("explain")
                .unwrap_or("")
                .trim()
                .to_string();
            Ok(Meta::Explain { text })
        }
        [e] if e == "explain" => Err(ParseError::invalid(
            "usage: `/slipway explain /kubectl get pods -n web`",
        )),
        [w, ..] => Err(ParseError::unknown(format!(
            "`/slipway {}` is not a Slipway command; try `help`, `whoami`, `explain <command>` or `link github`.",
            truncate(w, 40)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse::ParseErrorKind;
    use crate::command::parse_line;

    #[test]
    fn tf() {
        assert!(matches!(
            parse_line("/tf plan network").unwrap().command,
            Command::TfPlan { .. }
        ));
        assert!(matches!(
            parse_line("/tf apply app --apply").unwrap().command,
            Command::TfApply { .. }
        ));
        for s in [
            "/tf plan network -chdir=/",
            "/tf plan -var-file=x network",
            "/tf apply app -state=x",
            "/tf plan app --plugin-dir=/tmp",
        ] {
            assert_eq!(
                parse_line(s).unwrap_err().kind,
                ParseErrorKind::Refused,
                "{s}"
            );
        }
        assert_eq!(
            parse_line("/tf destroy app").unwrap_err().kind,
            ParseErrorKind::Unknown
        );
        assert_eq!(
            parse_line("/tf plan ../etc").unwrap_err().kind,
            ParseErrorKind::Invalid
        );
        assert_eq!(
            parse_line("/tf plan").unwrap_err().kind,
            ParseErrorKind::Invalid
        );
    }

    #[test]
    fn deploy() {
        let p = parse_line("/deploy api staging v1.2.3 --apply").unwrap();
        assert!(p.apply);
        assert_eq!(
            p.argv().unwrap(),
            ["kubectl", "apply", "-k", "apps/api/staging"]
        );
        parse_line(&format!("/deploy api staging sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(
            parse_line("/deploy api staging 'v1;x'").unwrap_err().kind,
            ParseErrorKind::Invalid
        );
        assert_eq!(
            parse_line("/deploy api").unwrap_err().kind,
            ParseErrorKind::Invalid
        );
        assert_eq!(
            parse_line("/deploy api staging --force").unwrap_err().kind,
            ParseErrorKind::Unknown
        );
    }

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

    #[test]
    fn meta() {
        assert_eq!(
            parse_line("/slipway").unwrap().command,
            Command::Slipway(Meta::Help { topic: None })
        );
        assert_eq!(
            parse_line("/slipway explain /kubectl get pods -n web")
                .unwrap()
                .command,
            Command::Slipway(Meta::Explain {
                text: "/kubectl get pods -n web".into()
            })
        );
        assert_eq!(
            parse_line("/slipway link github").unwrap().command,
            Command::Slipway(Meta::LinkGithub)
        );
        assert_eq!(
            parse_line("/slipway sudo").unwrap_err().kind,
            ParseErrorKind::Unknown
        );
    }
}
