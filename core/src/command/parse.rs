//! Dispatch from slash command to the family parsers, and the errors they share.

use std::fmt;

use super::{Command, Family, ParsedCommand, aws, deploy, gcloud, kubectl, meta, silence, tf};
use crate::tokenize::{TokenizeError, tokenize};

/// What kind of parse failure this is; the audit record and `explain` use it as the rule id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// The text could not be split into words.
    Syntax,
    /// A command, verb or flag that is not in the catalog.
    Unknown,
    /// A known thing that Slipway refuses on purpose (exec, `--token`, secret contents, …).
    Refused,
    /// A value that is malformed (bad name, bad duration, …).
    Invalid,
}

impl ParseErrorKind {
    pub fn rule_id(self) -> &'static str {
        match self {
            Self::Syntax => "catalog.syntax",
            Self::Unknown => "catalog.unknown",
            Self::Refused => "catalog.refused",
            Self::Invalid => "catalog.invalid",
        }
    }
}

/// A user-facing parse error: its message says what was wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub message: String,
}

impl ParseError {
    pub(crate) fn unknown(message: impl Into<String>) -> Self {
        Self {
            kind: ParseErrorKind::Unknown,
            message: message.into(),
        }
    }
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self {
            kind: ParseErrorKind::Refused,
            message: message.into(),
        }
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self {
            kind: ParseErrorKind::Invalid,
            message: message.into(),
        }
    }
}

impl From<TokenizeError> for ParseError {
    fn from(e: TokenizeError) -> Self {
        Self {
            kind: ParseErrorKind::Syntax,
            message: e.to_string(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// The flag that lets a change proceed past dry-run. It belongs to Slipway, not to the tool.
pub const APPLY_FLAG: &str = "--apply";

/// The flag by which someone a freeze window names overrides it: `--override-freeze "<reason>"`
/// (or `--override-freeze=<reason>`). Like [`APPLY_FLAG`], it belongs to Slipway.
pub const OVERRIDE_FREEZE_FLAG: &str = "--override-freeze";

/// The flag a roll back carries: `--rollback-of <PR number>`, the merged deploy whose rollout
/// failed. The Roll back button types it; whoever types it is checked the same way (the PR was
/// merged, the runner reported the failure, the version is the one before it), and only then
/// does the policy's `rollback_approvers` apply.
pub const ROLLBACK_FLAG: &str = "--rollback-of";

/// Take `--rollback-of <n>` out of `words`.
fn take_rollback(words: &mut Vec<String>) -> Result<Option<u64>, ParseError> {
    let Some(i) = words.iter().position(|w| w == ROLLBACK_FLAG) else {
        return Ok(None);
    };
    words.remove(i);
    let number = (i < words.len())
        .then(|| words.remove(i))
        .and_then(|n| n.trim_start_matches('#').parse::<u64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ParseError::invalid(format!(
                "`{ROLLBACK_FLAG}` needs the number of the failed deploy's PR: `{ROLLBACK_FLAG} 42`."
            ))
        })?;
    if words.iter().any(|w| w == ROLLBACK_FLAG) {
        return Err(ParseError::invalid(format!(
            "`{ROLLBACK_FLAG}` is given twice; give it once."
        )));
    }
    Ok(Some(number))
}

/// Take `--override-freeze <reason>` out of `words`: the reason, trimmed and redacted, if the
/// flag is there once with a reason of at most [`crate::policy::MAX_OVERRIDE_REASON`]
/// characters.
fn take_override(words: &mut Vec<String>) -> Result<Option<String>, ParseError> {
    let prefix = format!("{OVERRIDE_FREEZE_FLAG}=");
    let mut reason: Option<String> = None;
    let mut i = 0;
    while i < words.len() {
        let value = if words[i] == OVERRIDE_FREEZE_FLAG {
            words.remove(i);
            (i < words.len()).then(|| words.remove(i))
        } else if let Some(v) = words[i].strip_prefix(&prefix) {
            let v = v.to_string();
            words.remove(i);
            Some(v)
        } else {
            i += 1;
            continue;
        };
        let value = value.map(|v| v.trim().to_string()).unwrap_or_default();
        if value.is_empty() || value.starts_with("--") {
            return Err(ParseError::invalid(format!(
                "`{OVERRIDE_FREEZE_FLAG}` needs a reason: `{OVERRIDE_FREEZE_FLAG} \"why this can't wait\"`."
            )));
        }
        if value.chars().count() > crate::policy::MAX_OVERRIDE_REASON {
            return Err(ParseError::invalid(format!(
                "the reason after `{OVERRIDE_FREEZE_FLAG}` is longer than {} characters; say it shorter.",
                crate::policy::MAX_OVERRIDE_REASON
            )));
        }
        if reason.is_some() {
            return Err(ParseError::invalid(format!(
                "`{OVERRIDE_FREEZE_FLAG}` is given twice; give it once, with one reason."
            )));
        }
        reason = Some(crate::redact::redactor().redact(&value));
    }
    Ok(reason)
}

/// Parse a whole line as typed, for example `/kubectl @staging get pods -n web`.
pub fn parse_line(line: &str) -> Result<ParsedCommand, ParseError> {
    let line = line.trim();
    let (slash, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    parse(slash, rest)
}

/// Parse a slash command and its text, as Slack delivers them separately.
pub fn parse(slash: &str, text: &str) -> Result<ParsedCommand, ParseError> {
    let family = Family::from_slash(slash).ok_or_else(|| {
        ParseError::unknown(format!(
            "`{}` is not a Slipway command. Commands: {}. Try `/slipway help`.",
            truncate(slash, 40),
            Family::ALL.map(Family::slash).join(", ")
        ))
    })?;
    let mut words = tokenize(text)?;
    let before = words.len();
    words.retain(|w| w != APPLY_FLAG);
    let apply = words.len() != before;
    let override_freeze = take_override(&mut words)?;
    let rollback_of = take_rollback(&mut words)?;

    let command = match family {
        Family::Kubectl => Command::Kubectl(kubectl::parse(words)?),
        Family::Tf => tf::parse_tf(&words)?,
        Family::Aws => Command::Aws(aws::parse(words)?),
        Family::Gcloud => Command::Gcloud(gcloud::parse(words)?),
        Family::Deploy => Command::Deploy(deploy::parse_deploy(&words)?),
        Family::Silence => Command::Silence(silence::parse_silence(words)?),
        Family::Slipway => Command::Slipway(meta::parse_meta(&words, text)?),
    };
    let parsed = ParsedCommand {
        text: format!("{} {}", family.slash(), text.trim())
            .trim_end()
            .to_string(),
        command,
        apply,
        override_freeze,
        rollback_of,
    };
    if rollback_of.is_some() && !matches!(parsed.command, Command::Deploy(_)) {
        return Err(ParseError::invalid(format!(
            "`{ROLLBACK_FLAG}` only applies to `/deploy`: a roll back redeploys a service's \
             earlier version."
        )));
    }
    if apply && !parsed.tier().is_some_and(super::Tier::is_change_request) {
        return Err(ParseError::invalid(format!(
            "`{APPLY_FLAG}` only applies to commands that open a pull request; \
             `{}` runs directly, so drop `{APPLY_FLAG}`.",
            truncate(&parsed.text, 80)
        )));
    }
    if parsed.override_freeze.is_some()
        && !parsed.tier().is_some_and(super::Tier::is_change_request)
    {
        return Err(ParseError::invalid(format!(
            "`{OVERRIDE_FREEZE_FLAG}` only applies to commands that open a pull request; \
             `{}` is not frozen, so drop it.",
            truncate(&parsed.text, 80)
        )));
    }
    Ok(parsed)
}

/// Shorten user text before quoting it back, so error messages stay readable.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// A DNS-label style name: what clusters, namespaces, services, envs, stacks, profiles and GCP
/// project aliases look like.
pub fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// Check a name, with a message that names what it is.
pub(crate) fn check_name(what: &str, value: &str) -> Result<(), ParseError> {
    if is_name(value) {
        Ok(())
    } else {
        Err(ParseError::invalid(format!(
            "`{}` is not a valid {what} name: use lowercase letters, digits and `-`, at most 63 characters",
            truncate(value, 64)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_slash_command() {
        let e = parse_line("/rm -rf /").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Unknown);
        assert!(e.message.contains("/slipway help"), "{e}");
    }

    #[test]
    fn apply_flag_is_stripped_and_recorded() {
        let p = parse_line("/deploy api staging --apply").unwrap();
        assert!(p.apply);
        let p = parse_line("/deploy api staging").unwrap();
        assert!(!p.apply);
    }

    #[test]
    fn apply_on_read_is_an_error() {
        let e = parse_line("/kubectl get pods --apply").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Invalid);
    }

    #[test]
    fn rollback_of_names_a_pr_and_only_a_deploy_takes_it() {
        let p = parse("/deploy", "api staging v1 --apply --rollback-of 42").unwrap();
        assert_eq!(p.rollback_of, Some(42));
        assert!(p.apply);
        assert_eq!(
            parse("/deploy", "api staging --rollback-of #7")
                .unwrap()
                .rollback_of,
            Some(7)
        );
        for bad in [
            "api staging --rollback-of",
            "api staging --rollback-of x",
            "api staging --rollback-of 0",
            "api staging --rollback-of 1 --rollback-of 2",
        ] {
            assert!(parse("/deploy", bad).is_err(), "{bad}");
        }
        assert!(
            parse(
                "/kubectl",
                "scale deploy/web --replicas=2 -n web --rollback-of 3"
            )
            .is_err()
        );
    }

    #[test]
    fn override_freeze_takes_a_reason_in_either_form_and_refuses_mistakes() {
        let p =
            parse_line(r#"/deploy api production --override-freeze "hotfix for INC-42" --apply"#)
                .unwrap();
        assert_eq!(p.override_freeze.as_deref(), Some("hotfix for INC-42"));
        assert!(p.apply);
        let p = parse_line("/deploy api production --override-freeze=hotfix").unwrap();
        assert_eq!(p.override_freeze.as_deref(), Some("hotfix"));
        assert_eq!(
            parse_line("/deploy api production")
                .unwrap()
                .override_freeze,
            None
        );
        for bad in [
            "/deploy api production --override-freeze",
            r#"/deploy api production --override-freeze "  ""#,
            "/deploy api production --override-freeze --apply",
            "/deploy api production --override-freeze=a --override-freeze=b",
            "/kubectl get pods --override-freeze why",
        ] {
            let e = parse_line(bad).unwrap_err();
            assert_eq!(e.kind, ParseErrorKind::Invalid, "{bad}");
        }
        let long = format!(
            "/deploy api production --override-freeze={}",
            "x".repeat(201)
        );
        assert!(parse_line(&long).unwrap_err().message.contains("200"));
        // Assembled here, so no token-shaped literal is committed.
        let token = format!("ghp_{}", "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789");
        let secret = parse_line(&format!(
            "/deploy api production --override-freeze=token={token}"
        ))
        .unwrap();
        assert!(
            !secret.override_freeze.unwrap().contains(&token[..10]),
            "the reason is redacted"
        );
    }

    #[test]
    fn names() {
        assert!(is_name("staging"));
        assert!(is_name("prod-readonly"));
        assert!(!is_name("-x"));
        assert!(!is_name("Prod"));
        assert!(!is_name("a/b"));
        assert!(!is_name(""));
    }
}
