//! The execution backends: how a decided read turns into argv, environment and a process (or an
//! API call), and the queue that bounds them. Each backend is one file (`targets` for kubectl,
//! `aws`, `terraform`, `silence` with its `alertmanager` client); the next one (GCP) is one more.
//! They take only [`crate::base::Base`]: no audit spool, no change service, no ingress state.

pub mod alertmanager;
pub mod aws;
pub mod aws_role;
pub mod creds;
pub mod discovery;
pub mod env;
pub mod gcloud;
pub mod gke;
pub mod kube_token;
pub mod minted;
pub mod outcome;
pub mod queue;
pub mod reply;
pub mod sandbox;
pub mod silence;
pub mod targets;
pub mod terraform;
pub mod work;
