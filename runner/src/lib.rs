//! `slipway-runner`: the only component that mutates infrastructure. It runs in the GitOps
//! repository's CI (GitHub Actions) on a push to the default branch. `job` opens what the job
//! shares; then `run` takes each change request the pushed merge commit added under `changes/`
//! through three phases, each a module with one entry point:
//!
//! 1. [`verify::verify`]: the bridge's signature and the expiry; that it arrived through a
//!    merged PR (branch `slipway/<id>`) into the default branch; that the policy of the default
//!    branch before the merge still allows the command for its requester; that the reviews on
//!    the PR's final head meet the quorum (under the signed rule and the current one);
//! 2. [`execute::execute`]: the "starting" comment and audit record, then **credentials** (the
//!    job's OIDC token exchanged with STS for the target's role, or credentials already in the
//!    environment with `--aws-credentials-from-env`; kubeconfigs per cluster from its config),
//!    then the command with the policy's timeout: terraform re-plans and applies only the plan
//!    whose digest was approved; kubectl runs the exact signed argv; deploys apply the rendered
//!    manifests (or a configured command);
//! 3. [`report::report`]: a PR comment (outcome, redacted output, duration), the
//!    `slipway/execution` status on the merge commit, an audit record, and the release of the
//!    change's lock ref.
//!
//! A re-run finds its earlier result comment and does nothing again. See the README's "The
//! runner" section for the workflow, flags, variables and configuration.
//!
//! Exit codes: 0 every change executed (or nothing to do, or already done); 1 a change was
//! refused or failed; 2 usage or configuration error.

mod audit;
mod config;
mod credentials;
mod env;
mod execute;
mod job;
mod kubeconfig;
mod outcome;
mod report;
mod run;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use config::{DEFAULT_PATH as DEFAULT_CONFIG_PATH, RunnerConfig};
/// The evidence comment's format, which the bridge reads (and its tests build).
pub use report::evidence;

/// Slipway's runner: executes merged, re-verified change requests in CI.
#[derive(Debug, Parser)]
#[command(name = "slipway-runner", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Verify and execute the change requests the pushed merge commit (GITHUB_SHA) added.
    Execute(ExecuteArgs),
    /// Print the lock targets of the change requests GITHUB_SHA added, as a JSON list (for a
    /// workflow matrix with one concurrency group per target).
    Targets(TargetsArgs),
}

#[derive(Debug, clap::Args)]
struct ExecuteArgs {
    /// The runner's config file [default: .slipway/runner.yaml in the checkout].
    #[arg(long, env = "SLIPWAY_RUNNER_CONFIG")]
    config: Option<PathBuf>,
    /// Use AWS credentials already in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_SESSION_TOKEN, AWS_REGION), e.g. from aws-actions/configure-aws-credentials, instead
    /// of exchanging the job's OIDC token with STS.
    #[arg(long, env = "SLIPWAY_AWS_CREDENTIALS_FROM_ENV")]
    aws_credentials_from_env: bool,
    /// Only the changes whose lock target (as `targets` prints it) is this one.
    #[arg(long, env = "SLIPWAY_TARGET")]
    target: Option<String>,
}

#[derive(Debug, clap::Args)]
struct TargetsArgs {}

/// Exit code 2 with a message: usage or configuration errors.
pub(crate) const USAGE: u8 = 2;

/// Entry point shared by the binary and the integration tests.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// The same entry point with explicit arguments (the first is the program name), so `slipway
/// demo` can run the real runner as a child process of its own binary.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    match cli.command {
        Cmd::Execute(a) => {
            let entry = slipway_infra::runtime::Entry {
                prefix: "slipway-runner",
                workers: Some(2),
                no_runtime: USAGE,
            };
            // Boxed: the run holds the policy and every target's clients across awaits.
            entry.block_on(async {
                ExitCode::from(
                    Box::pin(run::execute(job::Options {
                        config: a.config,
                        aws_from_env: a.aws_credentials_from_env,
                        target: a.target,
                    }))
                    .await,
                )
            })
        }
        Cmd::Targets(_) => ExitCode::from(job::targets()),
    }
}
