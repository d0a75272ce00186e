//! The Slipway bridge: the Slack app, the GitHub side, command execution, and the `slipway` CLI.

pub mod cli;
pub mod docs;
