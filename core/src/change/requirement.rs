//! The approval requirement a change request is signed with, and how several rules combine.
//!
//! More than one rule can apply to one change: every protected entry that covers the resource,
//! the route's rule, and (for `kubectl apply -f`) each object of the manifest. The strictest wins
//! on every axis: the most approvers, GitHub over Slack, the shortest expiry. Where the rules name
//! different approver groups, each rule's own quorum must hold as well ([`GroupQuorum`]): "two
//! from approvers" plus "one from security" is not met by two approvers, however many groups the
//! union lists. A rule that is at least as strict as another on every axis simply replaces it, so
//! the common case (a protected rule stricter than the route) keeps its one name.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::model::ApproveIn;

/// One rule's own quorum: `approvers` distinct people from `groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupQuorum {
    pub rule: String,
    pub approvers: u32,
    pub groups: Vec<String>,
}

impl GroupQuorum {
    /// At least as strict as `other`: as many approvers, from the same groups or fewer.
    fn covers(&self, other: &GroupQuorum) -> bool {
        self.approvers >= other.approvers && self.groups.iter().all(|g| other.groups.contains(g))
    }
}

/// The approval rule that applies, copied from policy at request time (the runner judges it
/// again from the default branch's policy and both must hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequirement {
    /// The rule's id, or the ids of the combined rules joined by `+`.
    pub rule: String,
    /// Distinct approvers needed in all.
    pub approvers: u32,
    /// Who may approve: the union of every combined rule's groups.
    pub groups: Vec<String>,
    pub approve_in: ApproveIn,
    pub expires_after_secs: u64,
    /// When rules with different groups were combined: each one's own quorum, all of which must
    /// hold. Empty when one rule applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all_of: Vec<GroupQuorum>,
}

impl ApprovalRequirement {
    /// The requirement a policy approval rule sets.
    pub fn from_rule(rule: &crate::policy::model::ApprovalRule) -> ApprovalRequirement {
        ApprovalRequirement {
            rule: rule.id.value.clone(),
            approvers: rule.approvers,
            groups: rule.groups.iter().map(|g| g.value.clone()).collect(),
            approve_in: rule.approve_in,
            expires_after_secs: rule.expires_after.0.as_secs(),
            all_of: Vec::new(),
        }
    }

    /// Every quorum that must hold: the combined rules' own, or this one's.
    pub fn constraints(&self) -> Vec<GroupQuorum> {
        if self.all_of.is_empty() {
            vec![GroupQuorum {
                rule: self.rule.clone(),
                approvers: self.approvers,
                groups: self.groups.clone(),
            }]
        } else {
            self.all_of.clone()
        }
    }

    /// Every group whose members may approve, across its constraints.
    pub fn all_groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = self
            .constraints()
            .into_iter()
            .flat_map(|c| c.groups)
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// The ids of the policy rules this requirement was made from.
    pub fn rule_ids(&self) -> Vec<&str> {
        self.rule.split('+').collect()
    }

    /// At least as strict as `other` on every axis.
    pub fn covers(&self, other: &ApprovalRequirement) -> bool {
        let mine = self.constraints();
        self.approvers >= other.approvers
            && self.approve_in_rank() >= other.approve_in_rank()
            && self.expires_after_secs <= other.expires_after_secs
            && other
                .constraints()
                .iter()
                .all(|o| mine.iter().any(|m| m.covers(o)))
    }

    fn approve_in_rank(&self) -> u8 {
        match self.approve_in {
            ApproveIn::Slack => 0,
            ApproveIn::Github => 1,
        }
    }

    /// Both requirements together: the strictest of each axis, and every rule's own quorum.
    #[must_use]
    pub fn and(self, other: ApprovalRequirement) -> ApprovalRequirement {
        if self.covers(&other) {
            return self;
        }
        if other.covers(&self) {
            return other;
        }
        let mut all_of: Vec<GroupQuorum> = Vec::new();
        for c in self.constraints().into_iter().chain(other.constraints()) {
            if all_of.iter().any(|kept| kept.covers(&c)) {
                continue;
            }
            all_of.retain(|kept| !c.covers(kept));
            all_of.push(c);
        }
        let mut groups: Vec<String> = Vec::new();
        for g in all_of.iter().flat_map(|c| c.groups.iter()) {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
        let approve_in = if self.approve_in_rank().max(other.approve_in_rank()) > 0 {
            ApproveIn::Github
        } else {
            ApproveIn::Slack
        };
        let mut ids = self.rule_ids();
        for id in other.rule_ids() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ApprovalRequirement {
            rule: ids.join("+"),
            approvers: self
                .approvers
                .max(other.approvers)
                .max(all_of.iter().map(|c| c.approvers).max().unwrap_or(0)),
            groups,
            approve_in,
            expires_after_secs: self.expires_after_secs.min(other.expires_after_secs),
            all_of: if all_of.len() > 1 { all_of } else { Vec::new() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(rule: &str, n: u32, groups: &[&str], github: bool, secs: u64) -> ApprovalRequirement {
        ApprovalRequirement {
            rule: rule.into(),
            approvers: n,
            groups: groups.iter().map(|g| (*g).to_string()).collect(),
            approve_in: if github {
                ApproveIn::Github
            } else {
                ApproveIn::Slack
            },
            expires_after_secs: secs,
            all_of: Vec::new(),
        }
    }

    #[test]
    fn a_stricter_rule_replaces_a_weaker_one_whatever_the_order() {
        let production = req("production", 2, &["approvers"], true, 4 * 3600);
        let standard = req("standard", 2, &["approvers", "owners"], false, 24 * 3600);
        assert_eq!(production.clone().and(standard.clone()), production);
        assert_eq!(standard.and(production.clone()), production);
    }

    #[test]
    fn the_strictest_of_each_axis_wins_and_each_groups_quorum_must_hold() {
        let a = req("a", 2, &["approvers"], false, 3600);
        let b = req("b", 1, &["security"], true, 7200);
        let both = a.and(b);
        assert_eq!(both.rule, "a+b");
        assert_eq!(both.approvers, 2);
        assert_eq!(both.approve_in, ApproveIn::Github);
        assert_eq!(both.expires_after_secs, 3600);
        assert_eq!(both.groups, ["approvers", "security"]);
        assert_eq!(both.rule_ids(), ["a", "b"]);
        let c = req("c", 3, &["approvers"], false, 60);
        let all = both.and(c);
        assert_eq!(all.rule_ids(), ["a", "b", "c"]);
        let quorums: Vec<&str> = all.all_of.iter().map(|c| c.rule.as_str()).collect();
        assert_eq!(quorums, ["b", "c"], "c's quorum covers a's");
        assert_eq!(all.approvers, 3);
        assert_eq!(all.expires_after_secs, 60);
    }
}
