//! Loading a policy: parse, validate every cross-reference with its position, and compile the
//! pattern indexes evaluation uses.

mod phases;
mod self_service;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use super::identity::{Identity, StaticProvider};
use super::model::{ApprovalRule, Name, OperateMode, PolicyFile};
use super::patterns::{PatternIndex, check_pattern};
use crate::command::{Family, Tier};

/// A policy error with its position in the file (1-based; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl PolicyError {
    pub(crate) fn at(name: &Name, message: impl Into<String>) -> Self {
        Self {
            line: name.referenced.line(),
            column: name.referenced.column(),
            message: message.into(),
        }
    }

    /// `PATH:LINE:COL: message`, the form editors and CI annotate.
    pub fn display_with_path(&self, path: &str) -> String {
        format!(
            "{path}:{}:{}: {}",
            self.line.max(1),
            self.column.max(1),
            self.message
        )
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}",
            self.line.max(1),
            self.column.max(1),
            self.message
        )
    }
}

impl std::error::Error for PolicyError {}

/// Number of (family, tier) slots in a role's index.
const SLOTS: usize = Family::ALL.len() * Tier::ALL.len();

pub(crate) fn slot(family: Family, tier: Tier) -> usize {
    family as usize * Tier::ALL.len() + tier as usize
}

/// A permission rule after compilation.
#[derive(Debug)]
pub(crate) struct CompiledRule {
    pub id: String,
}

/// A role with its own and inherited rules, indexed by (family, tier).
#[derive(Debug)]
pub(crate) struct CompiledRole {
    pub name: String,
    pub max_silence: Duration,
    pub default_cluster: Option<String>,
    /// Rule ids in priority order (own rules first, then inherited).
    pub rules: Vec<CompiledRule>,
    pub slots: Vec<PatternIndex>,
}

#[derive(Debug)]
pub(crate) struct CompiledAcl {
    pub id: String,
    pub families: u8,
    pub groups: Vec<String>,
    pub reason: String,
}

#[derive(Debug)]
pub(crate) struct CompiledProtected {
    pub id: String,
    pub read_roles: Vec<usize>,
    pub operate: OperateMode,
    pub approval: String,
}

/// A loaded, validated and compiled policy. Cheap to evaluate; immutable once built.
#[derive(Debug)]
pub struct Policy {
    pub(crate) file: PolicyFile,
    pub(crate) provider: StaticProvider,
    pub(crate) roles: Vec<CompiledRole>,
    /// group → role indexes.
    pub(crate) group_roles: HashMap<String, Vec<usize>>,
    pub(crate) acls: Vec<CompiledAcl>,
    pub(crate) acl_index: PatternIndex,
    pub(crate) protected: Vec<CompiledProtected>,
    pub(crate) protected_index: PatternIndex,
    pub(crate) approval_rules: HashMap<String, ApprovalRule>,
    pub(crate) routes: Vec<String>,
    pub(crate) route_index: PatternIndex,
    pub(crate) channels: super::channels::Channels,
    pub(crate) freezes: super::freeze::Windows,
}

fn families_mask(names: &[Name]) -> Result<u8, PolicyError> {
    let mut mask = 0u8;
    for n in names {
        if n.value == "*" {
            mask |= Family::ALL
                .iter()
                .filter(|f| **f != Family::Slipway)
                .fold(0, |m, f| m | f.bit());
            continue;
        }
        match Family::from_slash(&n.value) {
            Some(Family::Slipway) | None => {
                return Err(PolicyError::at(
                    n,
                    format!(
                        "unknown command family `{}`; use kubectl, tf, aws, gcloud, deploy, silence or `*`",
                        n.value
                    ),
                ));
            }
            Some(f) => mask |= f.bit(),
        }
    }
    if names.is_empty() {
        return Err(PolicyError {
            line: 0,
            column: 0,
            message: "a rule needs at least one command family".into(),
        });
    }
    Ok(mask)
}

pub(crate) fn patterns(names: &[Name]) -> Result<(), PolicyError> {
    for n in names {
        check_pattern(&n.value).map_err(|m| PolicyError::at(n, m))?;
    }
    Ok(())
}

fn index_err(e: &globset::Error) -> PolicyError {
    PolicyError {
        line: 0,
        column: 0,
        message: format!("invalid pattern: {e}"),
    }
}

/// A rule before indexing: id, family mask, tier mask, patterns.
type RawRule = (String, u8, u8, Vec<String>);

/// Tracks rule ids across the whole file: each must be unique.
struct Ids(HashSet<String>);

impl Ids {
    fn claim(&mut self, id: &Name) -> Result<(), PolicyError> {
        if id.value.is_empty() || id.value.contains(char::is_whitespace) {
            return Err(PolicyError::at(
                id,
                "ids must be non-empty and contain no spaces",
            ));
        }
        if !self.0.insert(id.value.clone()) {
            return Err(PolicyError::at(
                id,
                format!("id `{}` is used twice; ids must be unique", id.value),
            ));
        }
        Ok(())
    }
}

impl Policy {
    /// Parse and validate a policy from YAML text.
    pub fn from_yaml(text: &str) -> Result<Policy, PolicyError> {
        let options = serde_saphyr::options! { with_snippet: false };
        let file: PolicyFile = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let loc = e.location();
            PolicyError {
                line: loc.map_or(0, |l| l.line()),
                column: loc.map_or(0, |l| l.column()),
                message: strip_location(&e.without_snippet().to_string()),
            }
        })?;
        Self::compile(file)
    }

    /// Every check and index, in the file's order of dependence: targets, identities, roles,
    /// bindings, approval rules, then what refers to them (ACLs, protected entries, routes).
    fn compile(file: PolicyFile) -> Result<Policy, PolicyError> {
        phases::check_version(&file)?;
        let clusters = phases::check_targets(&file)?;
        let provider = StaticProvider::from_users(&file.identities.users, &|c: &Name| {
            phases::known(&clusters, c, "cluster")
        })?;
        let mut ids = Ids(HashSet::new());
        let (roles, role_index) = phases::compile_roles(&file, &clusters, &mut ids)?;
        let group_roles = phases::bind_groups(&file, &role_index)?;
        let approval_rules = phases::approval_rules(&file, &mut ids)?;
        let (acls, acl_index) = phases::compile_acls(&file, &mut ids)?;
        let (protected, protected_index) =
            phases::compile_protected(&file, &mut ids, &role_index, &approval_rules)?;
        for c in &file.channels {
            ids.claim(&c.id)?;
        }
        let (routes, route_index) = phases::compile_routes(&file, &approval_rules)?;
        self_service::check(&file, &approval_rules)?;
        phases::check_timeouts(&file)?;
        let channels = super::channels::Channels::compile(&file.channels, families_mask, patterns)?;
        let freezes = super::freeze::Windows::compile(&file.freezes, &role_index)?;
        Ok(Policy {
            file,
            provider,
            roles,
            group_roles,
            acls,
            acl_index,
            protected,
            protected_index,
            approval_rules,
            routes,
            route_index,
            channels,
            freezes,
        })
    }

    /// The identities listed in the policy.
    pub fn identities(&self) -> &StaticProvider {
        &self.provider
    }

    /// The directory beside the static users (`identities.provider`).
    pub fn provider(&self) -> super::model::ProviderKind {
        self.file.identities.provider
    }

    /// How Slack users are tied to directory users (`identities.slack_match`).
    pub fn slack_match(&self) -> super::model::SlackMatch {
        self.file.identities.slack_match
    }

    pub fn support(&self) -> &str {
        &self.file.support
    }

    /// The cluster aliases the policy names.
    pub fn cluster_names(&self) -> Vec<String> {
        self.targets()
            .clusters
            .iter()
            .map(|c| c.value.clone())
            .collect()
    }

    /// Whether a change under `req` merges by itself once approved: only if every rule it was
    /// combined from says so, or is self-service (`approvers: 0`: nobody else would merge it).
    pub fn auto_merge(&self, req: &crate::change::ApprovalRequirement) -> bool {
        req.rule_ids().iter().all(|id| {
            self.approval_rule(id)
                .is_some_and(|r| r.auto_merge || r.approvers == 0)
        })
    }

    /// `req` for a roll back: each combined rule's own quorum lowered to its
    /// `rollback_approvers` (never raised), the total to the largest of those.
    pub fn rollback_requirement(
        &self,
        req: &crate::change::ApprovalRequirement,
    ) -> crate::change::ApprovalRequirement {
        let lowered = |rule: &str, approvers: u32| {
            self.approval_rule(rule)
                .and_then(|r| r.rollback_approvers)
                .map_or(approvers, |n| n.min(approvers))
        };
        let mut out = req.clone();
        if out.all_of.is_empty() {
            out.approvers = lowered(&req.rule, req.approvers);
        } else {
            for q in &mut out.all_of {
                q.approvers = lowered(&q.rule, q.approvers);
            }
            out.approvers = out.all_of.iter().map(|q| q.approvers).max().unwrap_or(0);
        }
        out
    }

    pub fn approval_rule(&self, id: &str) -> Option<&ApprovalRule> {
        self.approval_rules.get(id)
    }

    pub fn timeout(&self, tier: Tier) -> Duration {
        self.file.limits.timeouts.for_tier(tier)
    }

    pub fn output_bytes(&self) -> u64 {
        self.file.limits.output_bytes
    }

    /// The cluster a deployment environment runs on.
    pub fn env_cluster(&self, env: &str) -> Option<&str> {
        self.file
            .targets
            .envs
            .get(env)
            .map(|e| e.cluster.value.as_str())
    }

    /// Role names in policy order (least to most privileged).
    pub fn role_names(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(|r| r.name.as_str())
    }

    /// Role indexes an identity holds, ascending (most privileged last).
    pub(crate) fn roles_of(&self, identity: &Identity) -> Vec<usize> {
        let mut v: Vec<usize> = identity
            .groups
            .iter()
            .filter_map(|g| self.group_roles.get(g))
            .flatten()
            .copied()
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The primary (most privileged) role of an identity, if any.
    pub fn primary_role(&self, identity: &Identity) -> Option<&str> {
        self.roles_of(identity)
            .last()
            .map(|i| self.roles[*i].name.as_str())
    }

    /// What an identity's roles grant, for people to read (the App Home): one line per rule, own
    /// and inherited, most privileged role first, each once: `rule: families · tiers · resources`.
    pub fn grants(&self, identity: &Identity) -> Vec<String> {
        let by_id: HashMap<&str, &super::model::Rule> = self
            .file
            .roles
            .iter()
            .flat_map(|r| r.rules.iter())
            .map(|r| (r.id.value.as_str(), r))
            .collect();
        let join = |names: &[Name]| {
            names
                .iter()
                .map(|n| n.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for role in self.roles_of(identity).into_iter().rev() {
            for rule in &self.roles[role].rules {
                let Some(r) = by_id
                    .get(rule.id.as_str())
                    .filter(|_| seen.insert(&rule.id))
                else {
                    continue;
                };
                let tiers: Vec<&str> = r.tiers.iter().map(|t| t.as_str()).collect();
                out.push(format!(
                    "{}: {} · {} · {}",
                    rule.id,
                    join(&r.commands),
                    tiers.join(", "),
                    join(&r.resources)
                ));
            }
        }
        out
    }

    pub(crate) fn targets(&self) -> &super::model::Targets {
        &self.file.targets
    }

    pub(crate) fn defaults(&self) -> &super::model::Defaults {
        &self.file.defaults
    }
}

/// serde-saphyr appends ` at line X column Y`; the caller prints the position itself.
fn strip_location(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg).trim();
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::Policy;
    use crate::policy::{IdentityProvider, SlackUser};

    const EXAMPLE: &str = include_str!("../../../../policy/slipway.yaml");

    /// What a role grants, own rules and inherited ones, each once; nothing for no role.
    #[test]
    fn grants_list_own_and_inherited_rules_once() {
        let policy = Policy::from_yaml(EXAMPLE).unwrap();
        let of = |id: &str| {
            let i = policy.identities().resolve(&SlackUser::new(id)).unwrap();
            policy.grants(i)
        };
        let viewer = of("U0VIEWER");
        assert_eq!(viewer.len(), 1, "{viewer:?}");
        assert!(viewer[0].starts_with("viewer-read: kubectl"), "{viewer:?}");
        assert!(viewer[0].contains(" · read · kube:staging/*"), "{viewer:?}");
        let operator = of("U0OPERATOR");
        assert!(operator.len() > 1, "{operator:?}");
        assert_eq!(
            operator
                .iter()
                .filter(|g| g.starts_with("viewer-read:"))
                .count(),
            1,
            "{operator:?}"
        );
    }
}
