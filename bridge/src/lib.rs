//! The Slipway bridge: the Slack app, the GitHub side, command execution, and the `slipway` CLI.

pub mod app;
pub mod base;
pub mod change;
pub mod cli;
pub mod clock;
pub mod config;
pub mod ctx;
#[cfg(feature = "demo")]
pub mod demo;
pub mod docs;
pub mod error;
pub mod exec;
pub mod fifo;
pub mod github;
pub mod https;
pub mod identity;
pub mod metrics;
pub mod reads;
pub mod recent;
pub mod reload;
pub mod secrets;
pub mod shared;
pub mod shares;
pub mod slack;
pub mod store;
pub mod templates;

/// The allocator the `slipway` binary installs (`#[global_allocator]` in `main.rs`). glibc's
/// malloc spent about a sixth of the ack path's CPU consolidating its free lists whenever hyper
/// allocated a fresh read buffer; mimalloc keeps per-thread free lists (`docs/benchmarks.md`).
pub use mimalloc::MiMalloc as Allocator;
