//! Policy tests, like OPA's: a request and the decision it must get.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Outcome, Policy, SlackUser, decide};
use crate::command::parse_line;

/// A file of policy test cases.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub cases: Vec<Case>,
}

/// One case: `user` runs `command` and must get `expect`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// Slack user ID.
    pub user: String,
    /// The full command line, for example `/kubectl get pods -n web`.
    pub command: String,
    pub expect: Outcome,
    /// The deciding rule id, if the case pins it.
    #[serde(default)]
    pub rule: Option<String>,
    /// The approval rule, for `approval` outcomes.
    #[serde(default)]
    pub approval: Option<String>,
    /// Text the reason must contain.
    #[serde(default)]
    pub reason_contains: Option<String>,
    /// The Slack channel ID it is typed in (`D…` for a direct message), for the `channels`
    /// section's scoping; left out, the case is decided as if no entry scoped it.
    #[serde(default)]
    pub channel: Option<String>,
}

/// The result of running one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseResult {
    Pass,
    Fail(String),
}

/// Run one case against a policy.
pub fn run_case(policy: &Policy, case: &Case) -> CaseResult {
    let user = SlackUser::new(&case.user);
    let parsed = parse_line(&case.command);
    let mut d = decide(policy, &user, &parsed);
    if let (Some(channel), Ok(p)) = (&case.channel, &parsed) {
        d = policy.scoped_to(d, p.family(), channel);
    }
    let mut problems = Vec::new();
    if d.outcome != case.expect {
        problems.push(format!(
            "expected {}, got {} ({}: {})",
            case.expect.as_str(),
            d.outcome.as_str(),
            d.rule,
            d.reason
        ));
    }
    if let Some(rule) = &case.rule
        && &d.rule != rule
    {
        problems.push(format!("expected rule {rule}, got {}", d.rule));
    }
    if let Some(want) = &case.approval {
        let got = d.approval.as_ref().map(|a| a.rule.as_str());
        if got != Some(want.as_str()) {
            problems.push(format!(
                "expected approval rule {want}, got {}",
                got.unwrap_or("none")
            ));
        }
    }
    if let Some(text) = &case.reason_contains
        && !d.reason.contains(text.as_str())
    {
        problems.push(format!("reason {:?} does not contain {text:?}", d.reason));
    }
    if problems.is_empty() {
        CaseResult::Pass
    } else {
        CaseResult::Fail(problems.join("; "))
    }
}
