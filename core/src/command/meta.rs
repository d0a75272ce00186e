//! `/slipway …`: Slipway's own commands (help, whoami, explain, link).

use super::parse::{ParseError, truncate};

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
    /// Tie this Slack account to the company login (OIDC at the organisation's IdP).
    LinkSso,
}

/// ```text
/// slipway := "help" [topic] | "whoami" | "explain" command-text | "link" ("github" | "sso")
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
        [l, s] if l == "link" && s == "sso" => Ok(Meta::LinkSso),
        [l, ..] if l == "link" => Err(ParseError::invalid(
            "usage: `/slipway link github` or `/slipway link sso`",
        )),
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
            "`/slipway {}` is not a Slipway command; try `help`, `whoami`, `explain <command>`, `link github` or `link sso`.",
            truncate(w, 40)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse::ParseErrorKind;
    use crate::command::{Command, parse_line};

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
            parse_line("/slipway link sso").unwrap().command,
            Command::Slipway(Meta::LinkSso)
        );
        assert_eq!(
            parse_line("/slipway link okta").unwrap_err().kind,
            ParseErrorKind::Invalid
        );
        assert_eq!(
            parse_line("/slipway sudo").unwrap_err().kind,
            ParseErrorKind::Unknown
        );
    }
}
