//! Failures kept apart by who can act on them. A [`Failure::User`] is a sentence written for the
//! person in Slack (what was wrong, how to fix it) and is shown verbatim. A
//! [`Failure::Upstream`] (GitHub, git, Slack, or Slipway itself) is shown as a short sentence and
//! the audit event id of the request, and logged with its whole cause chain under that id: a raw
//! library message never reaches Slack.

use std::fmt;

#[derive(Debug)]
pub enum Failure {
    /// Shown as it is.
    User(String),
    /// `what` failed (a sentence fragment: "opening the pull request"); `cause` is logged only.
    Upstream { what: String, cause: String },
}

impl Failure {
    pub fn user(message: impl Into<String>) -> Failure {
        Failure::User(message.into())
    }

    /// `cause` with its sources (`a: b: c`), for the log.
    pub fn upstream(what: impl Into<String>, cause: impl fmt::Display) -> Failure {
        Failure::Upstream {
            what: what.into(),
            cause: cause.to_string(),
        }
    }

    /// An error whose sources are walked into the logged cause.
    pub fn upstream_error(what: impl Into<String>, err: &dyn std::error::Error) -> Failure {
        let mut cause = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            cause.push_str(": ");
            cause.push_str(&s.to_string());
            source = s.source();
        }
        Failure::upstream(what, cause)
    }

    /// The text for Slack. `reference` is the audit event id of the request, which the log line
    /// carries too, so the platform team can find the cause.
    pub fn shown(&self, reference: &str) -> String {
        match self {
            Failure::User(m) => m.clone(),
            Failure::Upstream { what, .. } => format!(
                "{what} failed on Slipway's side, not because of your request. Try again in a \
                 minute; if it keeps failing, give the platform team the reference `{reference}`."
            ),
        }
    }

    /// Log an upstream failure with its cause under `reference`; user failures are not errors.
    pub fn log(&self, reference: &str, context: &str) {
        match self {
            Failure::User(m) => tracing::info!(reference, context, "{m}"),
            Failure::Upstream { what, cause } => {
                tracing::error!(reference, context, cause = %cause, "{what} failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_causes_stay_out_of_what_slack_sees() {
        let f = Failure::upstream(
            "Opening the pull request",
            "HTTP 502 from api.github.com: <html>Bad gateway</html> token ghs_abc",
        );
        let shown = f.shown("ev-123");
        assert!(
            shown.starts_with("Opening the pull request failed"),
            "{shown}"
        );
        assert!(shown.contains("`ev-123`"), "{shown}");
        assert!(!shown.contains("502") && !shown.contains("ghs_"), "{shown}");
        assert_eq!(
            Failure::user("nothing would change").shown("ev-1"),
            "nothing would change"
        );
    }

    #[test]
    fn the_cause_chain_is_walked() {
        let io = std::io::Error::other("connection reset");
        let f = Failure::upstream_error("Fetching the GitOps repository", &io);
        let Failure::Upstream { cause, .. } = f else {
            panic!("upstream")
        };
        assert_eq!(cause, "connection reset");
    }
}
