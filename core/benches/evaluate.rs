//! `evaluate` with a 1,000-rule policy. Criterion measures the mean; the percentile pass after it
//! times single evaluations to report p50/p99 (the target is p99 ≤ 20 µs).

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use slipway_core::command::parse_line;
use slipway_core::policy::{IdentityProvider, Policy, Request, SlackUser};

const RULES: usize = 1000;

/// 1,000 rules over 3 roles, literal and wildcard patterns, every family.
fn big_policy() -> Policy {
    let mut roles = String::new();
    for (r, role) in ["viewer", "operator", "owner"].iter().enumerate() {
        let _ = write!(roles, "  - name: {role}\n    max_silence: 4h\n");
        if r > 0 {
            let _ = writeln!(roles, "    extends: [{}]", ["viewer", "operator"][r - 1]);
        }
        roles.push_str("    rules:\n");
        for i in (r..RULES).step_by(3) {
            let (fam, res, tier) = match i % 5 {
                0 => ("kubectl", format!("kube:c{}/ns{i}", i % 7), "read"),
                1 => ("kubectl", format!("kube:c{}/team{i}-*", i % 7), "change"),
                2 => ("aws", format!("aws:p{i}"), "read"),
                3 => ("deploy", format!("service:s{i}/*"), "change"),
                _ => ("silence", format!("alerts:e{}", i % 4), "operate"),
            };
            let _ = writeln!(
                roles,
                "      - {{ id: r{i}, commands: [{fam}], tiers: [{tier}], resources: [\"{res}\"] }}"
            );
        }
    }
    roles.push_str("      - { id: catch-all, commands: [kubectl], tiers: [read], resources: [\"kube:staging/*\"] }\n");
    let profiles = (0..RULES)
        .map(|i| format!("p{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let services = (0..RULES)
        .map(|i| format!("s{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let yaml = format!(
        "version: 1\ndefaults: {{ cluster: staging, alert_env: e0 }}\n\
         targets:\n  clusters: [staging, c0, c1, c2, c3, c4, c5, c6]\n  aws_profiles: [{profiles}]\n  stacks: []\n  services: [{services}]\n  envs: {{ e0: {{ cluster: c0 }}, e1: {{ cluster: c1 }}, e2: {{ cluster: c2 }}, e3: {{ cluster: c3 }} }}\n\
         identities:\n  provider: static\n  users:\n    - {{ slack: [U1], subject: a, groups: [g1] }}\n    - {{ slack: [U3], subject: c, groups: [g3] }}\n\
         bindings: [{{ group: g1, role: viewer }}, {{ group: g3, role: owner }}]\nroles:\n{roles}\
         protected:\n  - {{ id: prot, resources: [\"kube:*/prod\"], read_roles: [owner], approval: std }}\n\
         acls:\n  - {{ id: acl, commands: [deploy], resources: [\"service:*/e3\"], groups: [g3], reason: no }}\n\
         approvals:\n  rules: [{{ id: std, approvers: 2, groups: [g3], expires_after: 1h }}]\n  routes: [{{ resources: [\"*\"], rule: std }}]\n\
         limits: {{ timeouts: {{ read: 1s, operate: 1s, change: 1s, destructive: 1s }}, output_bytes: 10 }}\n"
    );
    Policy::from_yaml(&yaml).expect("bench policy compiles")
}

const CASES: &[(&str, &str)] = &[
    ("U1", "/kubectl @c0 get pods -n ns0"),
    ("U1", "/kubectl @staging get pods -n web"),
    ("U1", "/kubectl @c3 get pods -n nowhere"),
    ("U3", "/kubectl @c1 scale deploy/x --replicas=2 -n team1-a"),
    ("U3", "/deploy s993 e1"),
    ("U3", "/aws p998 ec2 describe-instances"),
    ("U3", "/silence alertname=x 1h"),
    ("U1", "/kubectl @c2 get pods -A"),
];

fn main() {
    let policy = big_policy();
    let parsed: Vec<_> = CASES
        .iter()
        .map(|(u, c)| (SlackUser::new(*u), parse_line(c).expect("parses")))
        .collect();

    let mut criterion = Criterion::default().configure_from_args();
    criterion.bench_function("evaluate/1000-rules/mixed", |b| {
        b.iter(|| {
            for (user, cmd) in &parsed {
                let identity = policy.identities().resolve(user);
                black_box(policy.evaluate(&Request {
                    user,
                    identity,
                    command: cmd,
                    scopes: slipway_core::command::kubectl::KindScopes::builtin(),
                }));
            }
        });
    });
    criterion.final_summary();

    // Percentiles of single evaluations.
    let mut samples = Vec::with_capacity(200_000);
    for _ in 0..25_000 {
        for (user, cmd) in &parsed {
            let identity = policy.identities().resolve(user);
            let t = Instant::now();
            black_box(policy.evaluate(&Request {
                user,
                identity,
                command: cmd,
                scopes: slipway_core::command::kubectl::KindScopes::builtin(),
            }));
            samples.push(t.elapsed().as_nanos());
        }
    }
    samples.sort_unstable();
    // Percentile in per-mille, printed in µs with two decimals.
    let pct = |per_mille: usize| {
        let ns = samples[(samples.len() * per_mille / 1000).min(samples.len() - 1)];
        format!("{}.{:02}", ns / 1000, (ns % 1000) / 10)
    };
    println!(
        "evaluate, {RULES} rules, {} samples: p50 {} µs, p99 {} µs, p99.9 {} µs",
        samples.len(),
        pct(500),
        pct(990),
        pct(999)
    );
}
