//! Shared helpers for the integration tests in `it/`.

// Test harness: scenario setup reads top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

pub mod gitops;
pub mod harness;
pub mod openbao;
pub mod redis_server;
pub mod registry_server;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// The example policy shipped in `policy/`.
pub fn example_policy() -> PathBuf {
    repo_root().join("policy/slipway.yaml")
}
