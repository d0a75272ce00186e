//! I/O shared by the `slipway` bridge and `slipway-runner`, so each piece has one home.
pub mod spool;

pub mod audit_writer;
pub mod exec;
pub mod git_relay;
pub mod github;
pub mod gitops;
pub mod oidc;
pub mod s3;
pub mod sinks;
pub mod sts;
