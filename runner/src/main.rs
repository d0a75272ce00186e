//! The `slipway-runner` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    slipway_runner::main()
}
