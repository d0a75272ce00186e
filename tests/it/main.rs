//! The one integration-test binary. Each module is an area of behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Scenario tests read top to bottom as one story; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

mod ack_round_trips;
mod approvals;
mod architecture;
mod audit;
mod aws;
mod aws_roles;
mod change_limits;
mod changes;
mod demo;
mod deploy_registry;
mod docs;
mod envelope;
mod freeze;
mod gcloud;
mod gcp_emulator;
mod gcp_reads;
mod git_relay;
mod gke;
mod golden;
mod google;
mod identity;
mod ingress;
mod kube_manifests;
mod kube_tokens;
mod kubectl_changes;
mod monitoring;
mod policy_cli;
mod redis_tls;
mod reload;
mod replicas;
mod replicas_state;
mod runner;
mod sandbox;
mod scim;
mod secrets;
mod secrets_kubernetes;
mod secrets_rotation;
mod shared_queue;
mod shared_queue_crash;
mod silence;
mod slack_bridge;
mod slack_surface;
mod sso;
mod terraform;
mod visibility;

use std::process::{Command, Output};

/// Run the real `slipway` binary.
pub fn slipway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .args(args)
        .current_dir(slipway_tests::repo_root())
        .env_remove("SLIPWAY_POLICY")
        .output()
        .expect("slipway runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
