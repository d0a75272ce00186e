//! Loading a policy: parse, validate every cross-reference with its position, and compile the
//! pattern indexes evaluation uses.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use super::identity::{Identity, StaticProvider};
use super::model::{ApprovalRule, Name, OperateMode, PolicyFile};
use super::patterns::{AllNamespaces, PatternIndex, check_pattern};
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
                        "unknown command family `{}`; use kubectl, tf, aws, deploy, silence or `*`",
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

fn patterns(names: &[Name]) -> Result<(), PolicyError> {
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

    fn compile(file: PolicyFile) -> Result<Policy, PolicyError> {
        if file.version != 1 {
            return Err(PolicyError {
                line: 1,
                column: 1,
                message: format!(
                    "unsupported policy version {}; this Slipway reads version 1",
                    file.version
                ),
            });
        }
        let t = &file.targets;
        let clusters: HashSet<&str> = t.clusters.iter().map(|c| c.value.as_str()).collect();
        let known = |set: &HashSet<&str>, n: &Name, what: &str| -> Result<(), PolicyError> {
            if set.contains(n.value.as_str()) {
                Ok(())
            } else {
                let mut names: Vec<&&str> = set.iter().collect();
                names.sort();
                Err(PolicyError::at(
                    n,
                    format!(
                        "unknown {what} `{}`; known: {}",
                        n.value,
                        names.iter().map(|s| **s).collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        };
        for list in [&t.clusters, &t.aws_profiles, &t.stacks, &t.services] {
            let mut seen = HashSet::new();
            for n in list {
                if !crate::command::is_target_name(&n.value) {
                    return Err(PolicyError::at(
                        n,
                        format!(
                            "`{}` is not a valid target name (lowercase letters, digits, `-`)",
                            n.value
                        ),
                    ));
                }
                if !seen.insert(&n.value) {
                    return Err(PolicyError::at(n, format!("`{}` is listed twice", n.value)));
                }
            }
        }
        for env in t.envs.values() {
            known(&clusters, &env.cluster, "cluster")?;
        }
        known(&clusters, &file.defaults.cluster, "cluster")?;
        let envs: HashSet<&str> = t.envs.keys().map(String::as_str).collect();
        known(&envs, &file.defaults.alert_env, "environment")?;

        let provider = StaticProvider::from_users(&file.identities.users, &|c: &Name| {
            known(&clusters, c, "cluster")
        })?;

        let mut ids = Ids(HashSet::new());
        let mut roles: Vec<CompiledRole> = Vec::new();
        let mut role_index = HashMap::new();
        // (role, own rules as (id, families, tiers, patterns)) for inheritance.
        let mut role_rules: Vec<Vec<RawRule>> = Vec::new();
        for role in &file.roles {
            if role_index.contains_key(&role.name.value) {
                return Err(PolicyError::at(
                    &role.name,
                    format!("role `{}` is defined twice", role.name.value),
                ));
            }
            let mut own: Vec<RawRule> = Vec::new();
            for rule in &role.rules {
                ids.claim(&rule.id)?;
                let fam = families_mask(&rule.commands).map_err(|e| {
                    if e.line == 0 {
                        PolicyError::at(&rule.id, e.message)
                    } else {
                        e
                    }
                })?;
                if rule.tiers.is_empty() {
                    return Err(PolicyError::at(&rule.id, "a rule needs at least one tier"));
                }
                patterns(&rule.resources)?;
                if rule.resources.is_empty() {
                    return Err(PolicyError::at(
                        &rule.id,
                        "a rule needs at least one resource pattern",
                    ));
                }
                let tiers = rule.tiers.iter().fold(0u8, |m, t| m | t.bit());
                own.push((
                    rule.id.value.clone(),
                    fam,
                    tiers,
                    rule.resources.iter().map(|r| r.value.clone()).collect(),
                ));
            }
            let mut all: Vec<RawRule> = own;
            for parent in &role.extends {
                let Some(&p) = role_index.get(&parent.value) else {
                    return Err(PolicyError::at(
                        parent,
                        format!(
                            "role `{}` must be defined above `{}` to be extended",
                            parent.value, role.name.value
                        ),
                    ));
                };
                let inherited: &Vec<RawRule> = &role_rules[p];
                for r in inherited {
                    if !all.iter().any(|x| x.0 == r.0) {
                        all.push(r.clone());
                    }
                }
            }
            if let Some(c) = &role.default_cluster {
                known(&clusters, c, "cluster")?;
            }
            let mut slots = Vec::with_capacity(SLOTS);
            for family in Family::ALL {
                for tier in Tier::ALL {
                    let items = all
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.1 & family.bit() != 0 && r.2 & tier.bit() != 0)
                        .flat_map(|(i, r)| {
                            r.3.iter()
                                .map(move |p| (u32::try_from(i).unwrap_or(u32::MAX), p.as_str()))
                        });
                    slots.push(
                        PatternIndex::build(items, AllNamespaces::NeedsStar)
                            .map_err(|e| index_err(&e))?,
                    );
                }
            }
            role_index.insert(role.name.value.clone(), roles.len());
            roles.push(CompiledRole {
                name: role.name.value.clone(),
                max_silence: role.max_silence.0,
                default_cluster: role.default_cluster.as_ref().map(|c| c.value.clone()),
                rules: all
                    .iter()
                    .map(|r| CompiledRule { id: r.0.clone() })
                    .collect(),
                slots,
            });
            role_rules.push(all);
        }

        let mut group_roles: HashMap<String, Vec<usize>> = HashMap::new();
        for b in &file.bindings {
            let Some(&r) = role_index.get(&b.role.value) else {
                return Err(PolicyError::at(
                    &b.role,
                    format!(
                        "unknown role `{}`; roles: {}",
                        b.role.value,
                        file.roles
                            .iter()
                            .map(|r| r.name.value.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            let v = group_roles.entry(b.group.value.clone()).or_default();
            if !v.contains(&r) {
                v.push(r);
                v.sort_unstable();
            }
        }

        let mut approval_rules = HashMap::new();
        for rule in &file.approvals.rules {
            ids.claim(&rule.id)?;
            if rule.approvers == 0 {
                return Err(PolicyError::at(
                    &rule.id,
                    "an approval rule needs at least one approver",
                ));
            }
            if rule.groups.is_empty() {
                return Err(PolicyError::at(
                    &rule.id,
                    "an approval rule needs at least one approver group",
                ));
            }
            approval_rules.insert(rule.id.value.clone(), rule.clone());
        }
        let known_rule = |n: &Name| -> Result<(), PolicyError> {
            if approval_rules.contains_key(&n.value) {
                Ok(())
            } else {
                Err(PolicyError::at(
                    n,
                    format!("unknown approval rule `{}`", n.value),
                ))
            }
        };

        let mut acls = Vec::new();
        let mut acl_items = Vec::new();
        for acl in &file.acls {
            ids.claim(&acl.id)?;
            patterns(&acl.resources)?;
            let families = families_mask(&acl.commands).map_err(|e| {
                if e.line == 0 {
                    PolicyError::at(&acl.id, e.message)
                } else {
                    e
                }
            })?;
            let idx = u32::try_from(acls.len()).unwrap_or(u32::MAX);
            acl_items.extend(acl.resources.iter().map(|r| (idx, r.value.clone())));
            acls.push(CompiledAcl {
                id: acl.id.value.clone(),
                families,
                groups: acl.groups.iter().map(|g| g.value.clone()).collect(),
                reason: acl.reason.clone(),
            });
        }
        let acl_index = PatternIndex::build(
            acl_items.iter().map(|(i, p)| (*i, p.as_str())),
            AllNamespaces::AnyNamespace,
        )
        .map_err(|e| index_err(&e))?;

        let mut protected = Vec::new();
        let mut prot_items = Vec::new();
        for p in &file.protected {
            ids.claim(&p.id)?;
            patterns(&p.resources)?;
            known_rule(&p.approval)?;
            let mut read_roles = Vec::new();
            for r in &p.read_roles {
                let Some(&i) = role_index.get(&r.value) else {
                    return Err(PolicyError::at(r, format!("unknown role `{}`", r.value)));
                };
                read_roles.push(i);
            }
            let idx = u32::try_from(protected.len()).unwrap_or(u32::MAX);
            prot_items.extend(p.resources.iter().map(|r| (idx, r.value.clone())));
            protected.push(CompiledProtected {
                id: p.id.value.clone(),
                read_roles,
                operate: p.operate,
                approval: p.approval.value.clone(),
            });
        }
        let protected_index = PatternIndex::build(
            prot_items.iter().map(|(i, p)| (*i, p.as_str())),
            AllNamespaces::AnyNamespace,
        )
        .map_err(|e| index_err(&e))?;

        for c in &file.channels {
            ids.claim(&c.id)?;
        }
        let mut routes = Vec::new();
        let mut route_items = Vec::new();
        for route in &file.approvals.routes {
            known_rule(&route.rule)?;
            patterns(&route.resources)?;
            let idx = u32::try_from(routes.len()).unwrap_or(u32::MAX);
            route_items.extend(route.resources.iter().map(|r| (idx, r.value.clone())));
            routes.push(route.rule.value.clone());
        }
        let route_index = PatternIndex::build(
            route_items.iter().map(|(i, p)| (*i, p.as_str())),
            AllNamespaces::AnyNamespace,
        )
        .map_err(|e| index_err(&e))?;

        for tier in Tier::ALL {
            if file.limits.timeouts.for_tier(tier).is_zero() {
                return Err(PolicyError {
                    line: 0,
                    column: 0,
                    message: format!("limits.timeouts.{tier} must be more than zero"),
                });
            }
        }

        let channels = super::channels::Channels::compile(&file.channels, families_mask, patterns)?;
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
        })
    }

    /// The identities listed in the policy.
    pub fn identities(&self) -> &StaticProvider {
        &self.provider
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
    /// combined from says so.
    pub fn auto_merge(&self, req: &crate::change::ApprovalRequirement) -> bool {
        req.rule_ids()
            .iter()
            .all(|id| self.approval_rule(id).is_some_and(|r| r.auto_merge))
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
