//! The `slipway` binary.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = slipway_bridge::cli::Cli::parse();
    slipway_bridge::cli::run(cli)
}
