//! `/tf plan <stack>` and `/tf apply <stack>`.

use super::Command;
use super::parse::{ParseError, check_name, truncate};

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

#[cfg(test)]
mod tests {
    use crate::command::parse::ParseErrorKind;
    use crate::command::{Command, parse_line};

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
}
