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

/// The allocator the `slipway` binary installs (`#[global_allocator]` in `main.rs`). glibc's
/// malloc spent about a sixth of the ack path's CPU consolidating its free lists whenever hyper
/// allocated a fresh read buffer; mimalloc keeps per-thread free lists (`docs/benchmarks.md`).
pub use mimalloc::MiMalloc as Allocator;
