//! `evaluate`: the one pure function that decides. Deny by default; every decision names the
//! rule that made it and a reason written for the person reading it in Slack.

use std::time::Duration;

use serde::Serialize;

use super::compile::{Policy, slot};
use super::identity::{Identity, SlackUser};
use super::model::{OperateMode, Visibility};
use super::patterns::ResourceKey;
use crate::change::ApprovalRequirement;
use crate::command::kubectl::KindScopes;
use crate::command::silence::Silence;
use crate::command::{Command, Namespace, ParsedCommand, Target, Tier};

/// The outcome of a decision.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allow,
    Deny,
    /// Allowed only through a reviewed change request under the named approval rule.
    Approval,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Approval => "approval",
        }
    }
}

/// What is being decided.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub user: &'a SlackUser,
    /// Resolved by an [`super::IdentityProvider`]; `None` when the user is unknown.
    pub identity: Option<&'a Identity>,
    pub command: &'a ParsedCommand,
    /// Which kubectl kinds are namespaced (built-ins, plus what discovery found).
    pub scopes: &'a KindScopes,
}

/// A decision, borrowing from the policy and the request.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    pub outcome: Outcome,
    /// The id of the rule that decided (a permission, ACL, protected entry, or a built-in such as
    /// `rbac.default-deny`).
    pub rule: String,
    pub reason: String,
    pub identity: Option<&'a Identity>,
    pub role: Option<&'a str>,
    pub tier: Option<Tier>,
    /// The target with defaults filled in (for example the default cluster).
    pub target: Target,
    /// Set when the outcome is [`Outcome::Approval`]: every rule that applies, combined (the
    /// strictest wins; see [`ApprovalRequirement::and`]).
    pub approval: Option<ApprovalRequirement>,
    /// How long the command may run.
    pub timeout: Option<Duration>,
    /// Who sees the output (for allowed reads and direct operations).
    pub visibility: Visibility,
    /// A protected entry covers the resource: its output never goes to a channel shared with
    /// another organisation.
    pub protected: bool,
}

impl Decision<'_> {
    pub fn is_allowed(&self) -> bool {
        self.outcome != Outcome::Deny
    }

    /// The canonical resource string, when there is one.
    pub fn resource(&self) -> Option<String> {
        self.target.resource()
    }
}

fn plural(role: &str) -> String {
    if role.ends_with('s') {
        role.to_string()
    } else {
        format!("{role}s")
    }
}

fn action(tier: Tier, command: &ParsedCommand) -> &'static str {
    match (tier, &command.command) {
        (Tier::Read, _) => "run read commands",
        (Tier::Operate, Command::Silence(_)) => "manage silences",
        (Tier::Operate, _) => "make direct changes",
        (Tier::Change, Command::Deploy(_)) => "deploy",
        (Tier::Change, _) => "request changes",
        (Tier::Destructive, _) => "request destructive changes",
    }
}

fn where_(target: &Target) -> String {
    match target {
        Target::Cluster { cluster, namespace } => {
            let c = cluster.as_deref().unwrap_or("?");
            match namespace {
                Namespace::Default => format!("in the default namespace of cluster {c}"),
                Namespace::Named(n) => format!("in namespace {n} on cluster {c}"),
                Namespace::All => format!("across all namespaces of cluster {c}"),
                Namespace::ClusterScoped => {
                    format!("on cluster-scoped objects of cluster {c}")
                }
            }
        }
        Target::AwsProfile { profile } => format!("with AWS profile {profile}"),
        Target::Stack { stack } => format!("on stack {stack}"),
        Target::Service { service, env } => format!("{service} to {env}"),
        Target::Alerts { env, .. } => format!("in {}", env.as_deref().unwrap_or("?")),
        Target::None => String::new(),
    }
}

impl Policy {
    fn deny<'a>(base: Decision<'a>, rule: &str, reason: String) -> Decision<'a> {
        Decision {
            outcome: Outcome::Deny,
            rule: rule.to_string(),
            reason,
            approval: None,
            ..base
        }
    }

    fn ask(&self) -> String {
        format!("ask {} or see `/slipway explain`", self.support())
    }

    /// Fill in defaults and check the target names exist. `Err` is the denial reason.
    fn resolve_target(
        &self,
        target: Target,
        identity: &Identity,
        roles: &[usize],
    ) -> Result<Target, String> {
        let t = self.targets();
        let list = |v: &[super::model::Name]| {
            v.iter()
                .map(|n| n.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let has = |v: &[super::model::Name], x: &str| v.iter().any(|n| n.value == x);
        match target {
            Target::Cluster { cluster, namespace } => {
                let cluster = cluster
                    .or_else(|| identity.default_cluster.clone())
                    .or_else(|| {
                        roles
                            .iter()
                            .rev()
                            .find_map(|r| self.roles[*r].default_cluster.clone())
                    })
                    .unwrap_or_else(|| self.defaults().cluster.value.clone());
                if !has(&t.clusters, &cluster) {
                    return Err(format!(
                        "there is no cluster `{cluster}`; clusters: {}",
                        list(&t.clusters)
                    ));
                }
                Ok(Target::Cluster {
                    cluster: Some(cluster),
                    namespace,
                })
            }
            Target::AwsProfile { profile } => {
                if has(&t.aws_profiles, &profile) {
                    Ok(Target::AwsProfile { profile })
                } else {
                    Err(format!(
                        "there is no AWS profile `{profile}`; profiles: {}",
                        list(&t.aws_profiles)
                    ))
                }
            }
            Target::Stack { stack } => {
                if has(&t.stacks, &stack) {
                    Ok(Target::Stack { stack })
                } else {
                    Err(format!(
                        "there is no stack `{stack}`; stacks: {}",
                        list(&t.stacks)
                    ))
                }
            }
            Target::Service { service, env } => {
                if !has(&t.services, &service) {
                    return Err(format!(
                        "there is no service `{service}`; services: {}",
                        list(&t.services)
                    ));
                }
                if !t.envs.contains_key(&env) {
                    return Err(format!(
                        "there is no environment `{env}`; environments: {}",
                        t.envs.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                Ok(Target::Service { service, env })
            }
            Target::Alerts { env, matchers } => {
                let env = env.unwrap_or_else(|| self.defaults().alert_env.value.clone());
                if !t.envs.contains_key(&env) {
                    return Err(format!(
                        "there is no environment `{env}`; environments: {}",
                        t.envs.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
                Ok(Target::Alerts {
                    env: Some(env),
                    matchers,
                })
            }
            Target::None => Ok(Target::None),
        }
    }

    /// Decide a request. Pure: no I/O, no clock.
    pub fn evaluate<'a>(&'a self, req: &Request<'a>) -> Decision<'a> {
        self.evaluate_on(req, req.command.target_with(req.scopes))
    }

    /// Decide a request as if it acted on `target` (one object of a manifest, say).
    pub fn evaluate_on<'a>(&'a self, req: &Request<'a>, target: Target) -> Decision<'a> {
        let cmd = req.command;
        let tier = cmd.tier();
        let family = cmd.family();
        let base = Decision {
            outcome: Outcome::Deny,
            rule: String::new(),
            reason: String::new(),
            identity: req.identity,
            role: None,
            tier,
            target: target.clone(),
            approval: None,
            timeout: tier.map(|t| self.timeout(t)),
            visibility: Visibility::Channel,
            protected: false,
        };
        let Some(identity) = req.identity else {
            let reason = format!(
                "Slipway doesn't know Slack user {}. Ask {} to add you to the policy's identities.",
                req.user.user_id,
                self.support()
            );
            return Self::deny(base, "identity.unknown", reason);
        };
        let roles = self.roles_of(identity);
        let primary = roles.last().map(|r| self.roles[*r].name.as_str());
        let base = Decision {
            role: primary,
            ..base
        };

        let Some(tier) = tier else {
            // Slipway's own commands: help, whoami, explain, link.
            return Decision {
                outcome: Outcome::Allow,
                rule: "builtin.meta".into(),
                reason: "Slipway's own commands are open to every known user".into(),
                ..base
            };
        };
        let Some(primary) = primary else {
            let reason = format!(
                "{} has no role: none of your groups ({}) is bound to one; {}",
                identity.subject,
                if identity.groups.is_empty() {
                    "none".to_string()
                } else {
                    identity.groups.join(", ")
                },
                self.ask()
            );
            return Self::deny(base, "rbac.no-role", reason);
        };

        let target = match self.resolve_target(target, identity, &roles) {
            Ok(t) => t,
            Err(reason) => return Self::deny(base, "targets.unknown", reason),
        };
        let base = Decision {
            target: target.clone(),
            ..base
        };
        let Some(full) = target.resource() else {
            return Self::deny(base, "targets.unknown", "this command has no target".into());
        };
        let key = ResourceKey::of(full);

        // Per-resource ACLs restrict whatever roles allow.
        if !self.acl_index.is_empty() {
            for i in self.acl_index.all(&key) {
                let acl = &self.acls[i as usize];
                if acl.families & family.bit() != 0
                    && !acl.groups.iter().any(|g| identity.in_group(g))
                {
                    let reason = format!("{}; {}", acl.reason, self.ask());
                    return Self::deny(base, &acl.id, reason);
                }
            }
        }

        // The role permission: search roles from most privileged down; first rule in a role wins.
        let s = slot(family, tier);
        let permitted = roles.iter().rev().find_map(|r| {
            let role = &self.roles[*r];
            role.slots[s]
                .first(&key)
                .map(|rule| (role, &role.rules[rule as usize].id))
        });
        let Some((role, rule_id)) = permitted else {
            let reason = format!(
                "{} may not {} {}; {}",
                plural(primary),
                action(tier, cmd),
                where_(&target),
                self.ask()
            );
            return Self::deny(base, "rbac.default-deny", reason);
        };
        let base = Decision {
            role: Some(role.name.as_str()),
            rule: rule_id.clone(),
            ..base
        };

        // Silence durations are capped per role (the largest cap among the user's roles).
        if let Command::Silence(Silence::Create { duration, .. }) = &cmd.command {
            let cap = roles
                .iter()
                .map(|r| self.roles[*r].max_silence)
                .max()
                .unwrap_or_default();
            if *duration > cap {
                let reason = format!(
                    "silences are capped at {} for {}; use a shorter duration, or ask {} for a longer one",
                    humantime::format_duration(cap),
                    plural(primary),
                    self.support()
                );
                return Self::deny(base, "limits.silence", reason);
            }
        }

        // Protected resources. Every entry that covers the resource adds its approval rule.
        let mut protected_rules: Vec<&str> = Vec::new();
        for i in self.protected_index.all(&key) {
            let p = &self.protected[i as usize];
            match tier {
                Tier::Read if !roles.iter().any(|r| p.read_roles.contains(r)) => {
                    let reason = format!(
                        "{} may not run read commands {}: it is protected ({}); {}",
                        plural(primary),
                        where_(&target),
                        p.id,
                        self.ask()
                    );
                    return Self::deny(base, &p.id, reason);
                }
                Tier::Operate if p.operate == OperateMode::Forbid => {
                    let reason = format!(
                        "direct changes {} are forbidden: it is protected ({}); {}",
                        where_(&target),
                        p.id,
                        self.ask()
                    );
                    return Self::deny(base, &p.id, reason);
                }
                Tier::Change | Tier::Destructive => protected_rules.push(p.approval.as_str()),
                _ => {}
            }
        }

        let protected = !self.protected_index.all(&key).is_empty();
        let base = Decision {
            protected,
            visibility: self.channels.visibility(&key, family, protected),
            ..base
        };
        if !tier.is_change_request() {
            let reason = format!(
                "{} may {} {}",
                plural(role.name.as_str()),
                action(tier, cmd),
                where_(&target)
            );
            return Decision {
                outcome: Outcome::Allow,
                reason,
                ..base
            };
        }

        // The route's rule always applies too: a protected override can only add to it.
        let route = self
            .route_index
            .first(&key)
            .map(|i| self.routes[i as usize].as_str());
        let approval = protected_rules
            .into_iter()
            .chain(route)
            .filter_map(|r| self.approval_rules.get(r))
            .map(ApprovalRequirement::from_rule)
            .reduce(ApprovalRequirement::and);
        let Some(approval) = approval else {
            let reason = format!(
                "no approval rule covers {}, so changes there are not possible; {}",
                key.full,
                self.ask()
            );
            return Self::deny(base, "approvals.no-route", reason);
        };
        let reason = format!(
            "{} may {} {} with {} approval(s) from {} (rule {})",
            plural(role.name.as_str()),
            action(tier, cmd),
            where_(&target),
            approval.approvers,
            approval.groups.join(" or "),
            approval.rule
        );
        Decision {
            outcome: Outcome::Approval,
            reason,
            approval: Some(approval),
            ..base
        }
    }
}
