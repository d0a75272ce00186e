//! `slipway policy check|explain|test`.
//!
//! Contract: `check` exits 0 when valid, else 2 with `PATH:LINE:COL: message` on stderr.
//! `explain` prints one JSON object and exits 0 for every decision; 2 only when the policy can't
//! be loaded. `test` prints `N passed, M failed` and exits 1 when any case failed.

use crate::config::load_policy as load;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use slipway_core::policy::{
    CaseResult, Identity, IdentityProvider, Policy, SlackUser, explain_json_as, parse_cases,
    run_case,
};

/// Where the policy lives unless `--policy` says otherwise.
pub const DEFAULT_POLICY: &str = "policy/slipway.yaml";

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Validate the policy file.
    Check {
        #[arg(long, env = "SLIPWAY_POLICY", default_value = DEFAULT_POLICY)]
        policy: PathBuf,
    },
    /// Decide one command for one Slack user and print the decision as JSON.
    Explain {
        #[arg(long, env = "SLIPWAY_POLICY", default_value = DEFAULT_POLICY)]
        policy: PathBuf,
        /// Slack user ID, for example U0VIEWER.
        #[arg(long)]
        user: String,
        /// The command as typed, for example '/kubectl get pods -n web'.
        #[arg(long)]
        command: String,
        /// The bridge's state directory: a user the policy doesn't list is looked up among the
        /// identity provider's people there (the running bridge is asked over its admin socket).
        #[arg(long, env = "SLIPWAY_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// The Slack channel ID it is typed in (`D…` for a direct message): the `channels`
        /// section's scoping applies. Left out, no entry scopes it.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Run the YAML policy test cases.
    Test {
        #[arg(long, env = "SLIPWAY_POLICY", default_value = DEFAULT_POLICY)]
        policy: PathBuf,
        /// Directory of test files; defaults to `tests/` beside the policy.
        dir: Option<PathBuf>,
    },
}

pub fn run(cmd: PolicyCmd) -> ExitCode {
    match cmd {
        PolicyCmd::Check { policy } => match load(&policy) {
            Ok(_) => {
                println!("{}: ok", policy.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        PolicyCmd::Explain {
            policy,
            user,
            command,
            state_dir,
            channel,
        } => match load(&policy) {
            Ok(p) => {
                let asked = Asked {
                    user: &user,
                    command: &command,
                    channel: channel.as_deref(),
                };
                println!("{}", explain(&p, &policy, &asked, state_dir));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        PolicyCmd::Test { policy, dir } => test(&policy, dir),
    }
}

/// Who asks for what, and where.
struct Asked<'a> {
    user: &'a str,
    command: &'a str,
    channel: Option<&'a str>,
}

/// The decision, plus where the identity's groups came from (`groups_from`: `static`, `scim`,
/// `google`) and when the directory last changed them (`synced_at`).
fn explain(
    policy: &Policy,
    policy_path: &Path,
    asked: &Asked<'_>,
    state_dir: Option<PathBuf>,
) -> serde_json::Value {
    let (user, command, channel) = (asked.user, asked.command, asked.channel);
    let slack_user = SlackUser::new(user);
    let listed = policy.identities().resolve(&slack_user);
    if listed.is_some() {
        let mut v = explain_json_as(policy, &slack_user, listed, command, channel);
        v["groups_from"] = "static".into();
        return v;
    }
    let entry = state_dir.and_then(|dir| {
        let entries = super::identities::entries_at(&dir, policy_path).ok()?;
        entries
            .into_iter()
            .find(|e| e.source != "static" && e.slack.iter().any(|s| s == user))
    });
    let Some(e) = entry else {
        return explain_json_as(policy, &slack_user, None, command, channel);
    };
    let usable = e.active && e.slack_deactivated.is_empty();
    let identity = Identity {
        subject: e.subject.clone(),
        email: e.email.clone(),
        name: None,
        github: e.github.clone(),
        groups: e.groups.clone(),
        default_cluster: None,
    };
    let mut v = explain_json_as(
        policy,
        &slack_user,
        usable.then_some(&identity),
        command,
        channel,
    );
    if !usable {
        v["reason"] = format!("`{}` is deactivated ({})", e.subject, e.source).into();
    }
    v["groups_from"] = e.source.clone().into();
    v["synced_at"] = e
        .synced_at
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(|t| t.to_rfc3339())
        .into();
    v
}

fn test(policy_path: &Path, dir: Option<PathBuf>) -> ExitCode {
    let policy = match load(policy_path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let dir = dir.unwrap_or_else(|| policy_path.parent().unwrap_or(Path::new(".")).join("tests"));
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect(),
        Err(e) => {
            eprintln!("{}: can't read the test directory: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    files.sort();
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in files {
        let cases = match std::fs::read_to_string(&file)
            .map_err(|e| format!("1:1: {e}"))
            .and_then(|t| parse_cases(&t).map_err(|e| e.to_string()))
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{}:{e}", file.display());
                failed += 1;
                continue;
            }
        };
        for case in &cases.cases {
            match run_case(&policy, case) {
                CaseResult::Pass => passed += 1,
                CaseResult::Fail(why) => {
                    failed += 1;
                    println!("FAIL {}: {}: {why}", file.display(), case.name);
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
