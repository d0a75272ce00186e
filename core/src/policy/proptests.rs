//! Property tests of evaluation: nothing is allowed that no rule names.

use proptest::prelude::*;

use super::{Outcome, Policy, SlackUser, decide};
use crate::command::parse_line;

const CLUSTERS: [&str; 3] = ["c0", "c1", "c2"];
const NAMESPACES: [&str; 4] = ["n0", "n1", "n2", "n3"];

/// A policy whose only permissions name specific `kube:<cluster>/<namespace>` resources.
fn policy_naming(named: &[(usize, usize)]) -> Policy {
    let resources = named
        .iter()
        .map(|(c, n)| format!("\"kube:{}/{}\"", CLUSTERS[*c], NAMESPACES[*n]))
        .collect::<Vec<_>>()
        .join(", ");
    let rules = if named.is_empty() {
        String::new()
    } else {
        format!(
            "    rules:\n      - {{ id: r, commands: [kubectl], tiers: [read], resources: [{resources}] }}\n"
        )
    };
    let yaml = format!(
        "version: 1\ndefaults: {{ cluster: c0, alert_env: e }}\n\
         targets: {{ clusters: [c0, c1, c2], aws_profiles: [], stacks: [], services: [], envs: {{ e: {{ cluster: c0 }} }} }}\n\
         identities:\n  provider: static\n  users:\n    - {{ slack: [U1], subject: u1, groups: [g] }}\n\
         bindings: [{{ group: g, role: r }}]\n\
         roles:\n  - name: r\n    max_silence: 1h\n{rules}\
         approvals: {{ rules: [{{ id: a, approvers: 1, groups: [g], expires_after: 1h }}], routes: [] }}\n\
         limits: {{ timeouts: {{ read: 1s, operate: 1s, change: 1s, destructive: 1s }}, output_bytes: 10 }}\n"
    );
    Policy::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

proptest! {
    #[test]
    fn nothing_allowed_that_no_rule_names(
        named in proptest::collection::vec((0..3usize, 0..4usize), 0..4),
        cluster in 0..3usize,
        ns in 0..4usize,
        all_ns in any::<bool>(),
    ) {
        let policy = policy_naming(&named);
        let user = SlackUser::new("U1");
        let scope = if all_ns { "-A".to_string() } else { format!("-n {}", NAMESPACES[ns]) };
        let parsed = parse_line(&format!("/kubectl @{} get pods {scope}", CLUSTERS[cluster]));
        let d = decide(&policy, &user, &parsed);
        let is_named = !all_ns && named.contains(&(cluster, ns));
        prop_assert_eq!(d.outcome == Outcome::Allow, is_named, "{:?} {} {}", named, d.rule, d.reason);
        // Strangers are never allowed anything.
        let stranger = SlackUser::new("U2");
        prop_assert_eq!(decide(&policy, &stranger, &parsed).outcome, Outcome::Deny);
    }
}
