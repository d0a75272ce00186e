//! Protocol-faithful emulators for tests and the demo. Production code never depends on this
//! crate's behaviour: the real clients (slack-morphism, octocrab, kubectl, gcloud) talk to these
//! servers over HTTP on loopback exactly as they would talk to the real services.
//!
//! Every server binds `127.0.0.1:0` and stops when its handle (the last clone) is dropped.

// Emulators are test fixtures mirroring wire protocols; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

pub mod actions;
pub mod discovery;
pub mod gcp;
pub mod github;
pub mod google;
pub mod jira;
pub mod kube;
pub mod loki;
mod server;
pub mod servicenow;
pub mod slack;
