//! The Slipway bridge: the Slack app, the GitHub side, command execution, and the `slipway` CLI.

pub mod app;
pub mod change;
pub mod cli;
pub mod clock;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod docs;
pub mod https;
pub mod metrics;
pub mod slack;
pub mod store;
pub mod templates;
