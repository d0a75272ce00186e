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
        Target::GcpProject { alias } => format!("in GCP project {alias}"),
        Target::Stack { stack } => format!("on stack {stack}"),
        Target::Service { service, env } => format!("{service} to {env}"),
        Target::Alerts { env, .. } => format!("in {}", env.as_deref().unwrap_or("?")),
        Target::None => String::new(),
    }
}

/// `Err` naming what exists when `name` is not one of `names`.
fn known(kind: &str, kinds: &str, name: &str, names: &[super::model::Name]) -> Result<(), String> {
    if names.iter().any(|n| n.value == name) {
        return Ok(());
    }
    let list = names
        .iter()
        .map(|n| n.value.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    Err(format!("there is no {kind} `{name}`; {kinds}: {list}"))
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
        match target {
            Target::Cluster { cluster, namespace } => {
                let cluster = cluster.unwrap_or_else(|| self.default_cluster(identity, roles));
                known("cluster", "clusters", &cluster, &t.clusters)?;
                Ok(Target::Cluster {
                    cluster: Some(cluster),
                    namespace,
                })
            }
            Target::AwsProfile { profile } => {
                known("AWS profile", "profiles", &profile, &t.aws_profiles)?;
                Ok(Target::AwsProfile { profile })
            }
            Target::GcpProject { alias } => {
                known("GCP project", "GCP projects", &alias, &t.gcp_projects)?;
                Ok(Target::GcpProject { alias })
            }
            Target::Stack { stack } => {
                known("stack", "stacks", &stack, &t.stacks)?;
                Ok(Target::Stack { stack })
            }
            Target::Service { service, env } => {
                known("service", "services", &service, &t.services)?;
                self.known_env(&env)?;
                Ok(Target::Service { service, env })
            }
            Target::Alerts { env, matchers } => {
                let env = env.unwrap_or_else(|| self.defaults().alert_env.value.clone());
                self.known_env(&env)?;
                Ok(Target::Alerts {
                    env: Some(env),
                    matchers,
                })
            }
            Target::None => Ok(Target::None),
        }
    }

    /// The identity's default cluster, else its most privileged role's, else the policy's.
    fn default_cluster(&self, identity: &Identity, roles: &[usize]) -> String {
        identity
            .default_cluster
            .clone()
            .or_else(|| {
                roles
                    .iter()
                    .rev()
                    .find_map(|r| self.roles[*r].default_cluster.clone())
            })
            .unwrap_or_else(|| self.defaults().cluster.value.clone())
    }

    fn known_env(&self, env: &str) -> Result<(), String> {
        let envs = &self.targets().envs;
        if envs.contains_key(env) {
            return Ok(());
        }
        Err(format!(
            "there is no environment `{env}`; environments: {}",
            envs.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    }

    /// Decide a request. Pure: no I/O, no clock.
    pub fn evaluate<'a>(&'a self, req: &Request<'a>) -> Decision<'a> {
        self.evaluate_on(req, req.command.target_with(req.scopes))
    }

    /// Decide a request as if it acted on `target` (one object of a manifest, say). In order:
    /// who asks, the target, then [`Self::decide_on`] for what the policy says about it.
    pub fn evaluate_on<'a>(&'a self, req: &Request<'a>, target: Target) -> Decision<'a> {
        let tier = req.command.tier();
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
            return self.no_role(identity).on(base);
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
        let asking = Asking {
            cmd: req.command,
            identity,
            roles,
            primary,
            tier,
            key: ResourceKey::of(full),
            target,
        };
        self.decide_on(base, &asking)
    }

    /// ACLs, then the role permission, the silence cap, protected entries, and for a change
    /// request the approval rule it needs.
    fn decide_on<'a>(&'a self, base: Decision<'a>, a: &Asking<'_>) -> Decision<'a> {
        if let Err(denial) = self.check_acls(a) {
            return denial.on(base);
        }
        // The role permission: search roles from most privileged down; first rule in a role wins.
        let s = slot(a.cmd.family(), a.tier);
        let permitted = a.roles.iter().rev().find_map(|r| {
            let role = &self.roles[*r];
            role.slots[s]
                .first(&a.key)
                .map(|rule| (role, &role.rules[rule as usize].id))
        });
        let Some((role, rule_id)) = permitted else {
            let reason = format!(
                "{} may not {} {}; {}",
                plural(a.primary),
                action(a.tier, a.cmd),
                where_(&a.target),
                self.ask()
            );
            return Self::deny(base, "rbac.default-deny", reason);
        };
        let base = Decision {
            role: Some(role.name.as_str()),
            rule: rule_id.clone(),
            ..base
        };
        if let Err(denial) = self.check_silence_cap(a) {
            return denial.on(base);
        }
        let protected_rules = match self.check_protected(a) {
            Ok(rules) => rules,
            Err(denial) => return denial.on(base),
        };
        let protected = !self.protected_index.all(&a.key).is_empty();
        let base = Decision {
            protected,
            visibility: self.channels.visibility(&a.key, a.cmd.family(), protected),
            ..base
        };
        if !a.tier.is_change_request() {
            let reason = format!(
                "{} may {} {}",
                plural(role.name.as_str()),
                action(a.tier, a.cmd),
                where_(&a.target)
            );
            return Decision {
                outcome: Outcome::Allow,
                reason,
                ..base
            };
        }
        self.approval(base, a, &role.name, protected_rules)
    }

    /// A known user none of whose groups is bound to a role.
    fn no_role(&self, identity: &Identity) -> Denial {
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
        Denial::new("rbac.no-role", reason)
    }

    /// Per-resource ACLs restrict whatever roles allow.
    fn check_acls(&self, a: &Asking<'_>) -> Result<(), Denial> {
        if self.acl_index.is_empty() {
            return Ok(());
        }
        for i in self.acl_index.all(&a.key) {
            let acl = &self.acls[i as usize];
            if acl.families & a.cmd.family().bit() != 0
                && !acl.groups.iter().any(|g| a.identity.in_group(g))
            {
                return Err(Denial::new(
                    &acl.id,
                    format!("{}; {}", acl.reason, self.ask()),
                ));
            }
        }
        Ok(())
    }

    /// Silence durations are capped per role (the largest cap among the user's roles).
    fn check_silence_cap(&self, a: &Asking<'_>) -> Result<(), Denial> {
        let Command::Silence(Silence::Create { duration, .. }) = &a.cmd.command else {
            return Ok(());
        };
        let cap = a
            .roles
            .iter()
            .map(|r| self.roles[*r].max_silence)
            .max()
            .unwrap_or_default();
        if *duration <= cap {
            return Ok(());
        }
        let reason = format!(
            "silences are capped at {} for {}; use a shorter duration, or ask {} for a longer one",
            humantime::format_duration(cap),
            plural(a.primary),
            self.support()
        );
        Err(Denial::new("limits.silence", reason))
    }

    /// Protected resources: a read needs a read role, a direct change may be forbidden, and
    /// every entry that covers the resource adds its approval rule (returned).
    fn check_protected(&self, a: &Asking<'_>) -> Result<Vec<&str>, Denial> {
        let mut protected_rules: Vec<&str> = Vec::new();
        for i in self.protected_index.all(&a.key) {
            let p = &self.protected[i as usize];
            match a.tier {
                Tier::Read if !a.roles.iter().any(|r| p.read_roles.contains(r)) => {
                    let reason = format!(
                        "{} may not run read commands {}: it is protected ({}); {}",
                        plural(a.primary),
                        where_(&a.target),
                        p.id,
                        self.ask()
                    );
                    return Err(Denial::new(&p.id, reason));
                }
                Tier::Operate if p.operate == OperateMode::Forbid => {
                    let reason = format!(
                        "direct changes {} are forbidden: it is protected ({}); {}",
                        where_(&a.target),
                        p.id,
                        self.ask()
                    );
                    return Err(Denial::new(&p.id, reason));
                }
                Tier::Change | Tier::Destructive => protected_rules.push(p.approval.as_str()),
                _ => {}
            }
        }
        Ok(protected_rules)
    }

    /// A change request: the route's rule always applies, and a protected override can only add
    /// to it (the strictest of each wins).
    fn approval<'a>(
        &self,
        base: Decision<'a>,
        a: &Asking<'_>,
        role: &str,
        protected_rules: Vec<&str>,
    ) -> Decision<'a> {
        let route = self
            .route_index
            .first(&a.key)
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
                a.key.full,
                self.ask()
            );
            return Self::deny(base, "approvals.no-route", reason);
        };
        let reason = format!(
            "{} may {} {} with {} approval(s) from {} (rule {})",
            plural(role),
            action(a.tier, a.cmd),
            where_(&a.target),
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

/// A request past identity and target resolution: who asks (roles least to most privileged),
/// the tier, the resolved target and its resource key.
struct Asking<'r> {
    cmd: &'r ParsedCommand,
    identity: &'r Identity,
    roles: Vec<usize>,
    primary: &'r str,
    tier: Tier,
    target: Target,
    key: ResourceKey,
}

/// A denial found by one check, before it becomes a decision.
struct Denial {
    rule: String,
    reason: String,
}

impl Denial {
    fn new(rule: &str, reason: String) -> Denial {
        Denial {
            rule: rule.to_string(),
            reason,
        }
    }

    fn on(self, base: Decision<'_>) -> Decision<'_> {
        Policy::deny(base, &self.rule, self.reason)
    }
}
