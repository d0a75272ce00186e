//! The phases of [`super::Policy::compile`], one per section of the file. Each checks its
//! section's cross-references (with the position of the offending name) and builds its part of
//! the compiled policy; the first error wins.

use std::collections::{HashMap, HashSet};

use super::{
    CompiledAcl, CompiledProtected, CompiledRole, CompiledRule, Ids, PolicyError, RawRule, SLOTS,
    families_mask, index_err, patterns,
};
use crate::command::{Family, Tier};
use crate::policy::model::{ApprovalRule, Name, PolicyFile, Role};
use crate::policy::patterns::{AllNamespaces, PatternIndex};

pub(super) fn check_version(file: &PolicyFile) -> Result<(), PolicyError> {
    if file.version == 1 {
        return Ok(());
    }
    Err(PolicyError {
        line: 1,
        column: 1,
        message: format!(
            "unsupported policy version {}; this Slipway reads version 1",
            file.version
        ),
    })
}

/// `n` is one of `set`, or an error that lists them.
pub(super) fn known(set: &HashSet<&str>, n: &Name, what: &str) -> Result<(), PolicyError> {
    if set.contains(n.value.as_str()) {
        return Ok(());
    }
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

/// Target names are valid and unique, and every cluster and environment named is defined.
/// Returns the cluster names.
pub(super) fn check_targets(file: &PolicyFile) -> Result<HashSet<&str>, PolicyError> {
    let t = &file.targets;
    let clusters: HashSet<&str> = t.clusters.iter().map(|c| c.value.as_str()).collect();
    for list in [
        &t.clusters,
        &t.aws_profiles,
        &t.gcp_projects,
        &t.stacks,
        &t.services,
    ] {
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
    Ok(clusters)
}

/// Each role with its own and inherited rules (a parent must come first), indexed by
/// (family, tier); and the roles by name.
pub(super) fn compile_roles(
    file: &PolicyFile,
    clusters: &HashSet<&str>,
    ids: &mut Ids,
) -> Result<(Vec<CompiledRole>, HashMap<String, usize>), PolicyError> {
    let mut roles: Vec<CompiledRole> = Vec::new();
    let mut role_index = HashMap::new();
    // Each role's rules (own, then inherited), for the roles that extend it.
    let mut role_rules: Vec<Vec<RawRule>> = Vec::new();
    for role in &file.roles {
        if role_index.contains_key(&role.name.value) {
            return Err(PolicyError::at(
                &role.name,
                format!("role `{}` is defined twice", role.name.value),
            ));
        }
        let mut all = own_rules(role, ids)?;
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
            known(clusters, c, "cluster")?;
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
            slots: role_slots(&all)?,
        });
        role_rules.push(all);
    }
    Ok((roles, role_index))
}

/// A role's own rules: unique ids, known command families, at least one tier and one valid
/// resource pattern each.
fn own_rules(role: &Role, ids: &mut Ids) -> Result<Vec<RawRule>, PolicyError> {
    let mut own: Vec<RawRule> = Vec::new();
    for rule in &role.rules {
        ids.claim(&rule.id)?;
        let fam = families_at(&rule.commands, &rule.id)?;
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
    Ok(own)
}

/// The families mask of `commands`; an error without a position is placed at `id`.
fn families_at(commands: &[Name], id: &Name) -> Result<u8, PolicyError> {
    families_mask(commands).map_err(|e| {
        if e.line == 0 {
            PolicyError::at(id, e.message)
        } else {
            e
        }
    })
}

/// One pattern index per (family, tier) over a role's rules, in priority order.
fn role_slots(all: &[RawRule]) -> Result<Vec<PatternIndex>, PolicyError> {
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
                PatternIndex::build(items, AllNamespaces::NeedsStar).map_err(|e| index_err(&e))?,
            );
        }
    }
    Ok(slots)
}

/// Each group's roles (by index, sorted), from bindings that name known roles.
pub(super) fn bind_groups(
    file: &PolicyFile,
    role_index: &HashMap<String, usize>,
) -> Result<HashMap<String, Vec<usize>>, PolicyError> {
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
    Ok(group_roles)
}

/// The approval rules by id: each that needs approvers needs an approver group. A rule with
/// `approvers: 0` is self-service (see `self_service`).
pub(super) fn approval_rules(
    file: &PolicyFile,
    ids: &mut Ids,
) -> Result<HashMap<String, ApprovalRule>, PolicyError> {
    let mut approval_rules = HashMap::new();
    for rule in &file.approvals.rules {
        ids.claim(&rule.id)?;
        if rule.groups.is_empty() && rule.approvers > 0 {
            return Err(PolicyError::at(
                &rule.id,
                "an approval rule needs at least one approver group",
            ));
        }
        approval_rules.insert(rule.id.value.clone(), rule.clone());
    }
    Ok(approval_rules)
}

fn known_rule(rules: &HashMap<String, ApprovalRule>, n: &Name) -> Result<(), PolicyError> {
    if rules.contains_key(&n.value) {
        return Ok(());
    }
    Err(PolicyError::at(
        n,
        format!("unknown approval rule `{}`", n.value),
    ))
}

/// A pattern index over `items` (entry index, pattern) where a namespace pattern covers `-A`.
fn entry_index(items: &[(u32, String)]) -> Result<PatternIndex, PolicyError> {
    PatternIndex::build(
        items.iter().map(|(i, p)| (*i, p.as_str())),
        AllNamespaces::AnyNamespace,
    )
    .map_err(|e| index_err(&e))
}

/// The ACLs and their index.
pub(super) fn compile_acls(
    file: &PolicyFile,
    ids: &mut Ids,
) -> Result<(Vec<CompiledAcl>, PatternIndex), PolicyError> {
    let mut acls = Vec::new();
    let mut acl_items = Vec::new();
    for acl in &file.acls {
        ids.claim(&acl.id)?;
        patterns(&acl.resources)?;
        let families = families_at(&acl.commands, &acl.id)?;
        let idx = u32::try_from(acls.len()).unwrap_or(u32::MAX);
        acl_items.extend(acl.resources.iter().map(|r| (idx, r.value.clone())));
        acls.push(CompiledAcl {
            id: acl.id.value.clone(),
            families,
            groups: acl.groups.iter().map(|g| g.value.clone()).collect(),
            reason: acl.reason.clone(),
        });
    }
    Ok((acls, entry_index(&acl_items)?))
}

/// The protected entries and their index: known approval rules and read roles.
pub(super) fn compile_protected(
    file: &PolicyFile,
    ids: &mut Ids,
    role_index: &HashMap<String, usize>,
    approval_rules: &HashMap<String, ApprovalRule>,
) -> Result<(Vec<CompiledProtected>, PatternIndex), PolicyError> {
    let mut protected = Vec::new();
    let mut prot_items = Vec::new();
    for p in &file.protected {
        ids.claim(&p.id)?;
        patterns(&p.resources)?;
        known_rule(approval_rules, &p.approval)?;
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
    Ok((protected, entry_index(&prot_items)?))
}

/// The approval routes (each a known rule) and their index.
pub(super) fn compile_routes(
    file: &PolicyFile,
    approval_rules: &HashMap<String, ApprovalRule>,
) -> Result<(Vec<String>, PatternIndex), PolicyError> {
    let mut routes = Vec::new();
    let mut route_items = Vec::new();
    for route in &file.approvals.routes {
        known_rule(approval_rules, &route.rule)?;
        patterns(&route.resources)?;
        let idx = u32::try_from(routes.len()).unwrap_or(u32::MAX);
        route_items.extend(route.resources.iter().map(|r| (idx, r.value.clone())));
        routes.push(route.rule.value.clone());
    }
    Ok((routes, entry_index(&route_items)?))
}

/// Every tier has a timeout above zero.
pub(super) fn check_timeouts(file: &PolicyFile) -> Result<(), PolicyError> {
    for tier in Tier::ALL {
        if file.limits.timeouts.for_tier(tier).is_zero() {
            return Err(PolicyError {
                line: 0,
                column: 0,
                message: format!("limits.timeouts.{tier} must be more than zero"),
            });
        }
    }
    Ok(())
}
