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
    };
    if apply && !parsed.tier().is_some_and(super::Tier::is_change_request) {
        return Err(ParseError::invalid(format!(
            "`{APPLY_FLAG}` only applies to commands that open a pull request; \
             `{}` runs directly, so drop `{APPLY_FLAG}`.",
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
    fn names() {
        assert!(is_name("staging"));
        assert!(is_name("prod-readonly"));
        assert!(!is_name("-x"));
        assert!(!is_name("Prod"));
        assert!(!is_name("a/b"));
        assert!(!is_name(""));
    }
}
