//! `slipway identities list|show`: who Slipway knows, for operators. While `serve` runs it asks
//! the bridge over `<state_dir>/admin.sock` (the state files are locked); otherwise it reads
//! them itself. Exit codes: 0 found, 1 `show` found nobody, 2 an error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::fmt::Write as _;

use clap::{Args, Subcommand};

use crate::identity::listing::{self, Entry};

#[derive(Debug, Subcommand)]
pub enum IdentitiesCmd {
    /// Everyone: static entries, then the directory's people.
    List {
        #[command(flatten)]
        at: Where,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One person, by Slack user ID, subject or email.
    Show {
        who: String,
        #[command(flatten)]
        at: Where,
        #[arg(long)]
        json: bool,
    },
}

/// Where the bridge keeps its state, and its policy (for static entries when it isn't running).
#[derive(Debug, Args)]
pub struct Where {
    #[arg(long, env = "SLIPWAY_STATE_DIR", default_value = ".slipway")]
    state_dir: PathBuf,
    #[arg(long, env = "SLIPWAY_POLICY", default_value = "policy/slipway.yaml")]
    policy: PathBuf,
}

pub fn run(cmd: &IdentitiesCmd) -> ExitCode {
    let (at, json, who) = match cmd {
        IdentitiesCmd::List { at, json } => (at, *json, None),
        IdentitiesCmd::Show { who, at, json } => (at, *json, Some(who.as_str())),
    };
    let entries = match entries(at) {
        Ok(e) => e,
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::from(2);
        }
    };
    let shown: Vec<&Entry> = match who {
        Some(w) => listing::find(&entries, w),
        None => entries.iter().collect(),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&shown).unwrap_or_default()
        );
    } else {
        print!("{}", table(&shown));
    }
    if who.is_some() && shown.is_empty() {
        eprintln!("nobody matches `{}`", who.unwrap_or_default());
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// From the running bridge if there is one, else from the files.
fn entries(at: &Where) -> Result<Vec<Entry>, String> {
    entries_at(&at.state_dir, &at.policy)
}

/// [`entries`] for a state directory and a policy file.
pub(super) fn entries_at(state_dir: &Path, policy: &Path) -> Result<Vec<Entry>, String> {
    let at = &Where {
        state_dir: state_dir.to_path_buf(),
        policy: policy.to_path_buf(),
    };
    let socket = at.state_dir.join(crate::app::admin::SOCKET);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a runtime: {e}"))?;
    if let Some(answer) = rt.block_on(ask(&socket)) {
        return answer;
    }
    from_files(at)
}

/// `GET /identities` over the socket; `None` when no bridge answers there.
async fn ask(socket: &Path) -> Option<Result<Vec<Entry>, String>> {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::UnixStream::connect(socket).await.ok()?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.ok()?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/identities")
        .header("host", "slipway")
        .body(Empty::<bytes::Bytes>::new())
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let ok = resp.status().is_success();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(if ok {
        serde_json::from_slice(&body).map_err(|e| format!("the bridge's answer: {e}"))
    } else {
        Err(format!(
            "the running bridge said: {}",
            String::from_utf8_lossy(&body)
        ))
    })
}

fn from_files(at: &Where) -> Result<Vec<Entry>, String> {
    let policy = crate::config::load_policy(&at.policy)?;
    let links =
        crate::identity::links::RedbLinks::open(&at.state_dir).map_err(|e| e.to_string())?;
    let directory = if at.state_dir.join("directory.redb").exists() {
        Some(crate::identity::RedbDirectory::open(&at.state_dir).map_err(|e| e.to_string())?)
    } else {
        None
    };
    listing::list(
        &policy,
        directory
            .as_ref()
            .map(|d| d as &dyn crate::identity::DirectoryStore),
        &links,
    )
    .map_err(|e| e.to_string())
}

fn table(entries: &[&Entry]) -> String {
    let mut out = String::from("SUBJECT\tSOURCE\tACTIVE\tSLACK\tGROUPS\tSYNCED\n");
    for e in entries {
        let synced = e
            .synced_at
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map_or_else(
                || "-".to_string(),
                |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
            );
        let active = if !e.slack_deactivated.is_empty() {
            "slack-deactivated"
        } else if e.active {
            "yes"
        } else {
            "no"
        };
        let _ = writeln!(
            out,
            "{}\t{}\t{active}\t{}\t{}\t{synced}",
            e.subject,
            e.source,
            if e.slack.is_empty() {
                "-".to_string()
            } else {
                e.slack.join(",")
            },
            if e.groups.is_empty() {
                "-".to_string()
            } else {
                e.groups.join(",")
            },
        );
    }
    out
}
