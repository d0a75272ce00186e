//! Slipway's pure domain.
//!
//! Architecture invariant: this crate does no I/O. It has no tokio, axum, octocrab or filesystem
//! access; it takes text and values and returns values. Everything that touches the world lives in
//! `slipway-bridge` or `slipway-runner` and calls in here.

pub mod approval;
pub mod audit;
pub mod catalog;
pub mod change;
pub mod command;
pub mod policy;
pub mod redact;
pub mod tokenize;
