//! The `slipway` binary.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: slipway_bridge::Allocator = slipway_bridge::Allocator;

fn main() -> ExitCode {
    let cli = slipway_bridge::cli::Cli::parse();
    slipway_bridge::cli::run(cli)
}
