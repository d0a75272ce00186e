//! Every way `Policy::compile` refuses a policy, each with the `line:column` it points at. The
//! base is a small valid policy; each case edits it and names the line the error must point to.

use super::Policy;

pub(super) const BASE: &str = r#"version: 1
defaults:
  cluster: c1
  alert_env: e1
targets:
  clusters: [c1, c2]
  aws_profiles: [p1]
  stacks: [s1]
  services: [svc]
  envs:
    e1: { cluster: c1 }
identities:
  provider: static
  users:
    - slack: [U1]
      subject: u1
      github: gh-u1
      groups: [g1]
      default_cluster: c1
    - slack: [U2]
      subject: u2
      github: gh-u2
      groups: [g2]
bindings:
  - { group: g1, role: r1 }
  - { group: g2, role: r2 }
roles:
  - name: r1
    max_silence: 1h
    rules:
      - { id: rule-a, commands: [kubectl], tiers: [read], resources: ["kube:c1/*"] }
  - name: r2
    extends: [r1]
    max_silence: 1h
    rules:
      - { id: rule-b, commands: [deploy], tiers: [change], resources: ["service:*/e1"] }
acls:
  - { id: acl-a, commands: [deploy], resources: ["service:*/e1"], groups: [g2], reason: "only g2" }
protected:
  - { id: prot-a, resources: ["kube:c2/*"], read_roles: [r2], approval: ap1 }
approvals:
  rules:
    - { id: ap1, approvers: 1, groups: [g2], expires_after: 1h }
  routes:
    - { resources: ["*"], rule: ap1 }
limits:
  timeouts: { read: 1s, operate: 1s, change: 1s, destructive: 1s }
  output_bytes: 10
"#;

/// `from` → `to` in the base, the message it must give, and a text on the line it points at.
const CASES: &[(&str, &str, &str, &str)] = &[
    (
        "version: 1",
        "version: 2",
        "unsupported policy version 2",
        "version: 2",
    ),
    (
        "clusters: [c1, c2]",
        "clusters: [c1, C2]",
        "`C2` is not a valid target name",
        "clusters:",
    ),
    (
        "clusters: [c1, c2]",
        "clusters: [c1, c1]",
        "`c1` is listed twice",
        "clusters:",
    ),
    (
        "stacks: [s1]",
        "stacks: [s1, s1]",
        "`s1` is listed twice",
        "stacks:",
    ),
    (
        "e1: { cluster: c1 }",
        "e1: { cluster: c9 }",
        "unknown cluster `c9`",
        "e1: {",
    ),
    (
        "  cluster: c1\n  alert_env",
        "  cluster: c9\n  alert_env",
        "unknown cluster `c9`",
        "cluster: c9",
    ),
    (
        "alert_env: e1",
        "alert_env: e9",
        "unknown environment `e9`",
        "alert_env: e9",
    ),
    (
        "default_cluster: c1",
        "default_cluster: c9",
        "unknown cluster `c9`",
        "default_cluster",
    ),
    (
        "slack: [U2]",
        "slack: [U1]",
        "U1",
        "slack: [U1]\n      subject: u2",
    ),
    ("github: gh-u2", "github: GH-U1", "GH-U1", "github: GH-U1"),
    (
        "  - name: r2\n    extends",
        "  - name: r1\n    extends",
        "role `r1` is defined twice",
        "- name: r1\n    extends",
    ),
    (
        "{ id: rule-b,",
        "{ id: rule-a,",
        "id `rule-a` is used twice",
        "{ id: rule-a, commands: [deploy]",
    ),
    (
        "{ id: rule-b,",
        "{ id: 'rule b',",
        "ids must be non-empty and contain no spaces",
        "rule b",
    ),
    (
        "commands: [deploy], tiers",
        "commands: [ship], tiers",
        "unknown command family `ship`",
        "ship",
    ),
    (
        "tiers: [change], resources",
        "tiers: [], resources",
        "a rule needs at least one tier",
        "tiers: []",
    ),
    (
        "resources: [\"service:*/e1\"] }\nacls",
        "resources: [] }\nacls",
        "a rule needs at least one resource pattern",
        "rule-b",
    ),
    (
        "resources: [\"kube:c1/*\"] }",
        "resources: [\"pods\"] }",
        "resource pattern `pods` must be",
        "pods",
    ),
    (
        "resources: [\"kube:c1/*\"] }",
        "resources: [\"kube:a/b/c\"] }",
        "must have the form",
        "kube:a/b/c",
    ),
    (
        "extends: [r1]",
        "extends: [r9]",
        "role `r9` must be defined above",
        "extends: [r9]",
    ),
    (
        "{ group: g2, role: r2 }",
        "{ group: g2, role: r9 }",
        "r9",
        "role: r9",
    ),
    (
        "approvers: 1,",
        "approvers: 0,",
        "protected entry `prot-a` uses `ap1`, a self-service rule",
        "approval: ap1",
    ),
    (
        "approvers: 1,",
        "approvers: 1, rollback_approvers: 0,",
        "protected resources need at least one approver, for a roll back too",
        "approval: ap1",
    ),
    (
        "  routes:\n    - { resources: [\"*\"], rule: ap1 }",
        "    - { id: ap0, approvers: 0, groups: [], expires_after: 1h }\n  routes:\n    - { resources: [\"stack:*\", \"kube:c*\"], rule: ap0 }",
        "route `kube:c*` → self-service rule `ap0` could reach `kube:c2/*`",
        "kube:c*",
    ),
    (
        "groups: [g2], expires_after",
        "groups: [], expires_after",
        "at least one approver group",
        "expires_after: 1h }",
    ),
    (
        "read_roles: [r2], approval: ap1",
        "read_roles: [r2], approval: ap9",
        "unknown approval rule `ap9`",
        "ap9",
    ),
    (
        "rule: ap1 }",
        "rule: ap9 }",
        "unknown approval rule `ap9`",
        "rule: ap9",
    ),
    (
        "read_roles: [r2]",
        "read_roles: [r9]",
        "unknown role `r9`",
        "read_roles: [r9]",
    ),
    (
        "{ id: acl-a, commands: [deploy]",
        "{ id: acl-a, commands: [ship]",
        "unknown command family `ship`",
        "acl-a",
    ),
    (
        "{ id: acl-a,",
        "{ id: prot-a,",
        "id `prot-a` is used twice",
        "{ id: prot-a, resources",
    ),
    (
        "read: 1s,",
        "read: 0s,",
        "limits.timeouts.read must be more than zero",
        "",
    ),
    (
        "expires_after: 1h }",
        "expires_after: soon }",
        "not a duration",
        "soon",
    ),
    (
        "output_bytes: 10",
        "output_bytes: 10\n  bogus: 1",
        "bogus",
        "bogus",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: fri, reason: r, protected: true, weekly: { days: [fri, frii], from: "16:00", to: "24:00" } }"#,
        r"unknown day `frii`",
        r"frii",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: fri, reason: r, protected: true, weekly: { days: [fri], from: "16:00", to: "16:00" } }"#,
        r"`to` must be later than `from`",
        r"fri, reason",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: fri, reason: r, protected: true, weekly: { days: [fri], from: "16:00", to: "25:00" } }"#,
        r"is not a time of day",
        r"fri, reason",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: fri, reason: r, protected: true, weekly: { days: [fri], from: "16:00", to: "24:00", timezone: Europe/Berlinn } }"#,
        r"unknown time zone `Europe/Berlinn`",
        r"fri, reason",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: ev, reason: r, protected: true, from: "2026-12-24T00:00:00Z", to: "2026-12-23T00:00:00Z" }"#,
        r"`to` must be later than `from`",
        r"ev, reason",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: ev, reason: r, protected: true, from: "2026-12-24", to: "2026-12-25T00:00:00Z" }"#,
        r"is not an RFC 3339 time",
        r"ev, reason",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: ev, reason: r, protected: true, from: "2026-12-24T00:00:00Z" }"#,
        r"needs either `weekly` or both `from` and `to`",
        r"ev, reason",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: ev, reason: r, from: "2026-12-24T00:00:00Z", to: "2026-12-25T00:00:00Z" }"#,
        r"covers nothing",
        r"ev, reason",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: ev, reason: r, resources: ["pods"], from: "2026-12-24T00:00:00Z", to: "2026-12-25T00:00:00Z" }"#,
        r"resource pattern `pods`",
        r"pods",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: ev, reason: r, protected: true, from: "2026-12-24T00:00:00Z", to: "2026-12-25T00:00:00Z", overriders: { roles: [r9] } }"#,
        r"unknown role `r9`",
        r"r9",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
freezes:
  - { name: ev, reason: r, protected: true, from: "2026-12-24T00:00:00Z", to: "2026-12-25T00:00:00Z" }
  - { name: ev, reason: r2, protected: true, from: "2026-12-24T00:00:00Z", to: "2026-12-25T00:00:00Z" }"#,
        r"freeze `ev` is defined twice",
        r"ev, reason: r2",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
channels:
  - { id: ch-a, resources: ["kube:c2/*"], only_in: [C0OPSROOM, prod-ops] }"#,
        r"`prod-ops` is not a Slack channel ID",
        r"prod-ops]",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
channels:
  - { id: ch-a, resources: ["kube:c2/*"], only_in: [D0SOMEONE1] }"#,
        r"`D0SOMEONE1` is not a Slack channel ID",
        r"D0SOMEONE1",
    ),
    (
        "output_bytes: 10",
        r#"output_bytes: 10
channels:
  - { id: ch-a, resources: ["kube:c2/*"], direct_messages: true }"#,
        r"channels entry `ch-a` sets nothing",
        r"ch-a, resources",
    ),
];

#[test]
fn the_base_policy_compiles() {
    Policy::from_yaml(BASE).unwrap_or_else(|e| panic!("{e}"));
}

/// Self-service (`approvers: 0`, no groups) compiles where no protected entry reaches.
#[test]
fn a_self_service_rule_away_from_protected_resources_compiles() {
    let text = BASE.replacen(
        "  routes:\n    - { resources: [\"*\"], rule: ap1 }",
        "    - { id: ap0, approvers: 0, groups: [], expires_after: 1h }\n  routes:\n    - { resources: [\"stack:*\", \"kube:c1/*\"], rule: ap0 }\n    - { resources: [\"*\"], rule: ap1 }",
        1,
    );
    assert_ne!(text, BASE);
    Policy::from_yaml(&text).unwrap_or_else(|e| panic!("{e}"));
}

/// A roll back may need fewer approvers, even on a protected resource, but never none there;
/// the requirement is only ever lowered, per combined rule.
#[test]
fn rollback_approvers_lower_the_requirement_and_never_raise_it() {
    let text = BASE.replacen("approvers: 1,", "approvers: 1, rollback_approvers: 3,", 1);
    let policy = Policy::from_yaml(&text).unwrap_or_else(|e| panic!("{e}"));
    let rule = policy.approval_rule("ap1").unwrap();
    let req = crate::change::ApprovalRequirement::from_rule(rule);
    assert_eq!(
        policy.rollback_requirement(&req).approvers,
        1,
        "never raised"
    );
    let text = BASE.replacen(
        "    - { id: ap1, approvers: 1, groups: [g2], expires_after: 1h }",
        "    - { id: ap1, approvers: 1, groups: [g2], expires_after: 1h }\n    - { id: ap3, approvers: 3, groups: [g1], expires_after: 1h, rollback_approvers: 1 }",
        1,
    );
    let policy = Policy::from_yaml(&text).unwrap_or_else(|e| panic!("{e}"));
    let ap3 = crate::change::ApprovalRequirement::from_rule(policy.approval_rule("ap3").unwrap());
    assert_eq!(policy.rollback_requirement(&ap3).approvers, 1);
    let both = ap3.and(crate::change::ApprovalRequirement::from_rule(
        policy.approval_rule("ap1").unwrap(),
    ));
    let lowered = policy.rollback_requirement(&both);
    assert_eq!(lowered.approvers, 1);
    assert!(
        lowered.all_of.iter().all(|q| q.approvers == 1),
        "{lowered:?}"
    );
}

#[test]
fn every_compile_error_says_what_and_where() {
    for (from, to, message, marker) in CASES {
        assert!(
            BASE.contains(from),
            "case `{to}`: `{from}` is not in the base"
        );
        let text = BASE.replacen(from, to, 1);
        let Err(err) = Policy::from_yaml(&text) else {
            panic!("`{to}` should be refused")
        };
        assert!(
            err.message.contains(message),
            "`{to}`: expected {message:?} in {:?}",
            err.message
        );
        if marker.is_empty() {
            continue;
        }
        let at = text
            .find(marker)
            .unwrap_or_else(|| panic!("marker {marker:?}"));
        let line = u64::try_from(text[..at].matches('\n').count()).unwrap() + 1;
        assert_eq!(
            err.line, line,
            "`{to}`: {} points at line {}, expected {line} ({marker:?})",
            err.message, err.line
        );
        assert!(err.column > 0, "`{to}`: a column too");
    }
}
