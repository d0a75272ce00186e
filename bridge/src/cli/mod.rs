//! Command-line interface. Exit codes are a contract: see each subcommand.

mod policy;

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
        Top::Docs { check, root } => docs(check, &root),
    }
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
    if stale > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
