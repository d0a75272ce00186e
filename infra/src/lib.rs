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

/// `err` followed by each of its causes, `: `-separated (SDK errors keep the useful part in
/// their sources).
pub fn with_causes(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
