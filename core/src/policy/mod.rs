//! RBAC policy: identities, roles, ACLs, protected resources, approval rules and limits, read
//! from one YAML file and evaluated by a pure function.

mod cases;
mod compile;
mod eval;
pub mod identity;
pub mod model;
mod patterns;
#[cfg(test)]
mod proptests;

pub use cases::{Case, CaseFile, CaseResult, run_case};
pub use compile::{Policy, PolicyError};
pub use eval::{Decision, Outcome, Request};
pub use identity::{Identity, IdentityProvider, SlackUser};
pub use patterns::{KINDS as RESOURCE_KINDS, check_pattern};

use crate::command::kubectl::KindScopes;
use crate::command::{ParseError, ParsedCommand, parse_line};

/// The JSON Schema of the policy file, for editors.
pub fn schema() -> schemars::Schema {
    schemars::schema_for!(model::PolicyFile)
}

/// Parse a command line and decide it for a Slack user, resolving the identity with the
/// policy's own provider. A parse error is a denial whose reason is the parse message.
pub fn decide<'a>(
    policy: &'a Policy,
    user: &'a SlackUser,
    parsed: &'a Result<ParsedCommand, ParseError>,
) -> Decision<'a> {
    decide_with(policy, user, parsed, KindScopes::builtin())
}

/// [`decide`], with kubectl kinds judged by `scopes` (built-ins plus a cluster's discovery).
pub fn decide_with<'a>(
    policy: &'a Policy,
    user: &'a SlackUser,
    parsed: &'a Result<ParsedCommand, ParseError>,
    scopes: &'a KindScopes,
) -> Decision<'a> {
    let identity = policy.identities().resolve(user);
    match parsed {
        Ok(command) => policy.evaluate(&Request {
            user,
            identity,
            command,
            scopes,
        }),
        Err(e) => Decision {
            outcome: Outcome::Deny,
            rule: e.kind.rule_id().to_string(),
            reason: e.message.clone(),
            identity,
            role: identity.and_then(|i| policy.primary_role(i)),
            tier: None,
            target: crate::command::Target::None,
            approval: None,
            timeout: None,
        },
    }
}

/// The `slipway policy explain` object: `decision`, `reason`, `rule`, `identity`, `role`, `tier`,
/// `argv`, plus `groups`, `resource` and `approval` for context.
pub fn explain_json(policy: &Policy, user_id: &str, text: &str) -> serde_json::Value {
    let user = SlackUser::new(user_id);
    let parsed = parse_line(text);
    let d = decide(policy, &user, &parsed);
    serde_json::json!({
        "decision": d.outcome.as_str(),
        "reason": d.reason,
        "rule": d.rule,
        "identity": d.identity.map(|i| i.subject.as_str()),
        "groups": d.identity.map(|i| i.groups.clone()),
        "role": d.role,
        "tier": d.tier.map(crate::command::Tier::as_str),
        "argv": parsed.as_ref().ok().and_then(ParsedCommand::argv),
        "resource": d.resource(),
        "approval": d.approval.as_ref().map(|a| serde_json::json!({
            "rule": a.rule,
            "approvers": a.approvers,
            "groups": a.groups,
            "approve_in": a.approve_in,
            "expires_after": humantime::format_duration(std::time::Duration::from_secs(a.expires_after_secs)).to_string(),
            "all_of": (!a.all_of.is_empty()).then_some(&a.all_of),
        })),
    })
}

/// Parse a policy-test file (`policy/tests/*.yaml`).
pub fn parse_cases(text: &str) -> Result<CaseFile, PolicyError> {
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let loc = e.location();
        PolicyError {
            line: loc.map_or(0, |l| l.line()),
            column: loc.map_or(0, |l| l.column()),
            message: e
                .without_snippet()
                .to_string()
                .lines()
                .next()
                .unwrap_or("invalid")
                .to_string(),
        }
    })
}
