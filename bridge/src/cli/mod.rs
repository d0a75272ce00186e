//! Command-line interface. Exit codes are a contract: see each subcommand.

mod audit;
mod identities;
mod policy;
mod serve;
mod state;

pub use crate::config::load_policy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Slipway: a GitOps bridge for Slack ChatOps.
#[derive(Debug, Parser)]
#[command(name = "slipway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Top,
}

#[derive(Debug, Subcommand)]
pub enum Top {
    /// Check, explain and test the RBAC policy.
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// Verify the audit trail (S3 mirror or local spool), or show one record.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Who Slipway knows: static entries and the identity provider's people.
    #[command(subcommand)]
    Identities(identities::IdentitiesCmd),
    /// The bridge's state: move it from the embedded files into the shared Redis.
    #[command(subcommand)]
    State(state::StateCmd),
    /// Run the Slack bridge (HTTP endpoints, or Socket Mode).
    Serve {
        /// YAML config file; every setting also has an environment variable.
        #[arg(long, env = "SLIPWAY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Redact secrets from stdin to stdout (the same redactor every output path uses).
    Redact,
    /// Run the whole flow locally: the real bridge against emulated Slack, GitHub and
    /// Kubernetes, with this terminal as the Slack channel.
    #[cfg(feature = "demo")]
    Demo(crate::demo::DemoArgs),
    /// The runner, embedded so `slipway demo` can run it as a child process without a second
    /// binary (same arguments as `slipway-runner`).
    #[cfg(feature = "demo")]
    #[command(hide = true)]
    Runner {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Generate the docs that are derived from code (catalog, schemas, RBAC table).
    Docs {
        /// Compare instead of writing; exit 1 if any file is out of date.
        #[arg(long)]
        check: bool,
        /// Repository root to write into.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

/// Run a parsed command line and return the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Top::Policy(cmd) => policy::run(cmd),
        Top::Audit(cmd) => audit::run(cmd),
        Top::Identities(cmd) => identities::run(&cmd),
        Top::State(cmd) => state::run(&cmd),
        Top::Serve { config } => serve::run(config.as_deref()),
        Top::Redact => redact(),
        Top::Docs { check, root } => docs(check, &root),
        #[cfg(feature = "demo")]
        Top::Demo(args) => crate::demo::run(&args),
        #[cfg(feature = "demo")]
        Top::Runner { args } => slipway_runner::main_from(
            std::iter::once(std::ffi::OsString::from("slipway-runner")).chain(args),
        ),
    }
}

/// Stream stdin through the redactor in chunks, so large inputs never sit in memory whole.
fn redact() -> ExitCode {
    use std::io::{Read, Write};
    let mut stream = slipway_core::redact::redactor().stream();
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("error: reading stdin: {e}");
                return ExitCode::from(1);
            }
        };
        pending.extend_from_slice(&buf[..n]);
        // Hand over only complete UTF-8; keep a split character for the next read.
        let valid = match std::str::from_utf8(&pending) {
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            _ => pending.len(),
        };
        let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
        pending.drain(..valid);
        if stdout.write_all(stream.push(&text).as_bytes()).is_err() {
            return ExitCode::from(1);
        }
    }
    let mut rest = stream.push(&String::from_utf8_lossy(&pending));
    rest.push_str(&stream.finish());
    if stdout
        .write_all(rest.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn docs(check: bool, root: &std::path::Path) -> ExitCode {
    let files = match crate::docs::generate(root) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stale = 0;
    for (rel, content) in files {
        let path = root.join(&rel);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
                eprintln!("{rel} is out of date; run `slipway docs`");
                stale += 1;
            }
        } else if let Err(e) = std::fs::write(&path, content) {
            eprintln!("error: writing {}: {e}", path.display());
            return ExitCode::from(2);
        } else {
            println!("wrote {rel}");
        }
    }
    if stale > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
