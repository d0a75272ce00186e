//! RBAC policy: identities, roles, ACLs, protected resources, approval rules and limits, read
//! from one YAML file and evaluated by a pure function.

mod cases;
mod channels;
mod compile;
#[cfg(test)]
mod compile_errors;
mod eval;
mod freeze;
pub mod identity;
pub mod model;
mod patterns;
#[cfg(test)]
mod proptests;

pub use cases::{Case, CaseFile, CaseResult, run_case};
pub use channels::{ChannelRefusal, is_direct_message};
pub use compile::{Policy, PolicyError};
pub use eval::{Decision, Outcome, Request};
pub use freeze::{FreezeCheck, Frozen, MAX_OVERRIDE_REASON, Window};
pub use identity::{Identity, IdentityProvider, SlackUser};
pub use patterns::{KINDS as RESOURCE_KINDS, check_pattern};

use crate::command::kubectl::{KindScopes, ManifestObject};
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
    decide_as(
        policy,
        user,
        policy.identities().resolve(user),
        parsed,
        scopes,
    )
}

/// [`decide_with`] for an identity the caller resolved (from a directory, say): policy judges
/// whoever it is given, so the static list and an IdP are decided by the same rules.
pub fn decide_as<'a>(
    policy: &'a Policy,
    user: &'a SlackUser,
    identity: Option<&'a Identity>,
    parsed: &'a Result<ParsedCommand, ParseError>,
    scopes: &'a KindScopes,
) -> Decision<'a> {
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
            visibility: model::Visibility::Channel,
            protected: false,
        },
    }
}

/// The `slipway policy explain` object: `decision`, `reason`, `rule`, `identity`, `role`, `tier`,
/// `argv`, plus `groups`, `resource` and `approval` for context.
pub fn explain_json(policy: &Policy, user_id: &str, text: &str) -> serde_json::Value {
    let user = SlackUser::new(user_id);
    explain_json_as(
        policy,
        &user,
        policy.identities().resolve(&user),
        text,
        None,
    )
}

/// [`explain_json`] for an identity the caller resolved (a directory person), typed in
/// `channel` when there is one (the `channels` section's scoping applies).
pub fn explain_json_as(
    policy: &Policy,
    user: &SlackUser,
    identity: Option<&Identity>,
    text: &str,
    channel: Option<&str>,
) -> serde_json::Value {
    let parsed = parse_line(text);
    let mut d = decide_as(policy, user, identity, &parsed, KindScopes::builtin());
    if let (Some(channel), Ok(p)) = (channel, &parsed) {
        d = policy.scoped_to(d, p.family(), channel);
    }
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
        "visibility": d.visibility,
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

/// `kubectl apply|delete -f`: the command decided once per object of its files, each on its own
/// resource (a cluster role binding as cluster scope, an object with `metadata.namespace` there).
/// Any denial denies the whole change, naming the object; the approval is every object's rule
/// combined with the command's own.
pub fn decide_objects<'a>(
    policy: &'a Policy,
    user: &'a SlackUser,
    command: &'a ParsedCommand,
    objects: &[ManifestObject],
    scopes: &'a KindScopes,
) -> Decision<'a> {
    let identity = policy.identities().resolve(user);
    decide_objects_as(policy, user, identity, command, objects, scopes)
}

/// [`decide_objects`] for an identity the caller resolved.
pub fn decide_objects_as<'a>(
    policy: &'a Policy,
    user: &'a SlackUser,
    identity: Option<&'a Identity>,
    command: &'a ParsedCommand,
    objects: &[ManifestObject],
    scopes: &'a KindScopes,
) -> Decision<'a> {
    let req = Request {
        user,
        identity,
        command,
        scopes,
    };
    let whole = policy.evaluate(&req);
    let crate::command::Target::Cluster {
        cluster: Some(cluster),
        namespace,
    } = whole.target.clone()
    else {
        return whole;
    };
    if whole.outcome == Outcome::Deny {
        return whole;
    }
    let mut combined = whole;
    for object in objects {
        let target = crate::command::Target::Cluster {
            cluster: Some(cluster.clone()),
            namespace: object_namespace(object, &namespace, scopes),
        };
        let d = policy.evaluate_on(&req, target);
        match d.outcome {
            Outcome::Deny => {
                return Decision {
                    reason: format!("`{}` in the manifest: {}", object.describe(), d.reason),
                    target: combined.target,
                    ..d
                };
            }
            _ => {
                combined.approval = match (combined.approval.take(), d.approval) {
                    (Some(a), Some(b)) => Some(a.and(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    combined
}

/// The resources the objects of a manifest are authorised as, for a command whose target
/// resolved to `target` (a decision's): what freeze windows judge beside the command's own.
pub fn object_resources(
    target: &crate::command::Target,
    objects: &[ManifestObject],
    scopes: &KindScopes,
) -> Vec<String> {
    let crate::command::Target::Cluster {
        cluster: Some(cluster),
        namespace,
    } = target
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = objects
        .iter()
        .filter_map(|o| {
            crate::command::Target::Cluster {
                cluster: Some(cluster.clone()),
                namespace: object_namespace(o, namespace, scopes),
            }
            .resource()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Where one object of a manifest lives, for policy.
fn object_namespace(
    object: &ManifestObject,
    command_namespace: &crate::command::Namespace,
    scopes: &KindScopes,
) -> crate::command::Namespace {
    use crate::command::Namespace;
    use crate::command::kubectl::Scope;
    if object.kind == "Namespace" && object.api_version == "v1" {
        return Namespace::Named(object.name.clone());
    }
    match scopes.scope_of_object(&object.api_version, &object.kind) {
        Scope::Cluster => Namespace::ClusterScoped,
        Scope::Namespaced => match &object.namespace {
            Some(ns) => Namespace::Named(ns.clone()),
            None => command_namespace.clone(),
        },
    }
}
