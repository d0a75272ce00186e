//! The policy loader (and the policy-test file reader). A policy that loads must answer
//! `evaluate` for every identity it declares on a few commands of each family without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slipway_core::command::parse_line;
use slipway_core::policy::{self, Policy, SlackUser};

const LINES: &[&str] = &[
    "/kubectl get pods -n web",
    "/kubectl @staging delete pod api-1 -n web --apply",
    "/kubectl apply -f apps/api/staging/ -n web",
    "/aws @prod s3api list-buckets",
    "/gcloud gcp-prod compute instances list",
    "/tf apply network",
    "/deploy api staging v1.2.3 --apply",
    "/silence add alertname=Foo 1h reason",
    "/slipway whoami",
];

fuzz_target!(|text: &str| {
    let _ = policy::parse_cases(text);
    let Ok(p) = Policy::from_yaml(text) else {
        return;
    };
    let parsed: Vec<_> = LINES.iter().map(|l| parse_line(l)).collect();
    let mut users: Vec<SlackUser> = p
        .identities()
        .slack_ids()
        .into_iter()
        .map(SlackUser::new)
        .collect();
    users.push(SlackUser::new("U0NOBODY"));
    for user in &users {
        for cmd in &parsed {
            let d = policy::decide(&p, user, cmd);
            let _ = (d.is_allowed(), d.resource());
        }
    }
    let _ = (p.cluster_names(), p.support(), p.output_bytes());
});
