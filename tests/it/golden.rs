//! Golden tests of what outsiders see: the Slack messages (text and Block Kit), the change file,
//! the PR title and body, and the audit records, for a read, a denied command and a deploy.
//! They pin the bytes so that moving code around can't change them unnoticed.
//!
//! Volatile parts (ids, times, hashes, ports, Slack timestamps, signatures) are replaced by
//! placeholders first. After an intended change, regenerate with `SLIPWAY_BLESS=1` and review
//! the diff of `tests/golden/`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;
use slipway_tests::gitops::{OWNER, REPO};
use slipway_tests::harness::TestApp;

use crate::changes::{start, wait_pulls};

const LONG: Duration = Duration::from_secs(30);

/// `(pattern, placeholder)`, applied in order: longer and more specific shapes first.
const VOLATILE: &[(&str, &str)] = &[
    (r"(?m)^(\s+)[A-Za-z0-9+/]{86}==$", "$1<signature>"),
    (
        r#""signature": "[A-Za-z0-9+/=_-]{40,}""#,
        r#""signature": "<signature>""#,
    ),
    (r"\b(cr-[a-z0-9-]+-[0-9a-f]{16})-[0-9a-f]{8}\b", "$1-<n>"),
    (r#""duration_ms": \d+"#, r#""duration_ms": <n>"#),
    (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", "<time>"),
    (
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "<uuid>",
    ),
    (r"\b[0-9a-f]{64}\b", "<sha256>"),
    (r"\b[0-9a-f]{40}\b", "<sha>"),
    (r"\bsha-[0-9a-f]{7}\b", "sha-<short>"),
    (r"@[0-9a-f]{7}\b", "@<short>"),
    (r"built \d+[mhd] ago", "built <age> ago"),
    (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2}| UTC)?",
        "<time>",
    ),
    (r"\b\d{10}\.\d{6}\b", "<slack-ts>"),
    (r"\b1\d{9}\b", "<epoch>"),
    (r"127\.0\.0\.1:\d+", "<addr>"),
    (r#"/tmp/[^\s"'`]+"#, "<tmp>"),
    (r"\b\d+(\.\d+)? ?(ms|s)\b", "<duration>"),
];

fn normalize(text: &str) -> String {
    VOLATILE.iter().fold(text.to_string(), |acc, (pat, rep)| {
        Regex::new(pat)
            .expect("volatile pattern")
            .replace_all(&acc, *rep)
            .into_owned()
    })
}

/// Compares with `tests/golden/<name>.txt`, or writes it under `SLIPWAY_BLESS=1`.
fn check(name: &str, actual: &str) {
    let actual = normalize(actual);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("golden/{name}.txt"));
    if std::env::var_os("SLIPWAY_BLESS").is_some() {
        std::fs::write(&path, &actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with SLIPWAY_BLESS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, &actual)
            .unified_diff()
            .header("expected", "actual")
            .to_string();
        panic!(
            "{name} differs from {} (SLIPWAY_BLESS=1 regenerates it after an intended change):\n{diff}",
            path.display()
        );
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("json")
}

/// Everything the Slack emulator saw, in order: channel messages with their threads,
/// ephemerals and response_url posts.
fn slack_transcript(app: &TestApp) -> String {
    let mut out = String::new();
    // The channel's messages: the approvers' DMs go out after the announcement, on their own
    // time (tests/it/approvals/notices.rs covers them).
    for m in app
        .slack
        .messages()
        .into_iter()
        .filter(|m| m.channel == slipway_tests::harness::CHANNEL)
    {
        let _ = writeln!(
            out,
            "## message in {} (thread: {})\n{}\n{}",
            m.channel,
            m.thread_ts.is_some(),
            m.text,
            pretty(&m.blocks)
        );
    }
    for e in app.slack.ephemerals() {
        let _ = writeln!(
            out,
            "## ephemeral to {}\n{}\n{}",
            e.user,
            e.text,
            pretty(&e.blocks)
        );
    }
    for r in app.slack.responses() {
        let _ = writeln!(out, "## response_url\n{}", pretty(&r.body));
    }
    out
}

/// The audit records as written, one pretty JSON object each, in sequence order.
fn audit_transcript(app: &TestApp) -> String {
    app.audit()
        .iter()
        .map(|r| pretty(&serde_json::to_value(r).expect("audit json")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_read_its_messages_and_audit() {
    let app = TestApp::start().await;
    let ack = app.ack("U0VIEWER", "/kubectl get pods -n web").await;
    let msg = app
        .wait_message("kubectl get pods --namespace=web", LONG)
        .await
        .expect("run message posted");
    app.wait_finished(&msg.ts, LONG).await;
    check(
        "read",
        &format!(
            "# ack\n{ack}\n# slack\n{}# audit\n{}\n",
            slack_transcript(&app),
            audit_transcript(&app)
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_denied_command_its_answer_and_audit() {
    let app = TestApp::start().await;
    let ack = app
        .ack("U0VIEWER", "/kubectl delete pod api-0 -n web --apply")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    check(
        "denied",
        &format!(
            "# ack\n{ack}\n# slack\n{}# audit\n{}\n",
            slack_transcript(&app),
            audit_transcript(&app)
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_deploy_change_file_pr_messages_and_audit() {
    let (app, fx) = start().await;
    let dry = app.ack("U0OPERATOR", "/deploy api staging").await;
    // The dry run's answer first, so that the records and messages have one order.
    assert!(
        app.slack
            .wait_until(LONG, |s| !s.responses().is_empty())
            .await
    );
    let ack = app.ack("U0OPERATOR", "/deploy api staging --apply").await;
    let pulls = wait_pulls(&fx, 1).await;
    let pr = &pulls[0];
    let branch = pr["head"]["ref"].as_str().expect("head ref");
    let id = branch.trim_start_matches("slipway/");
    let change = fx
        .github
        .file_at(OWNER, REPO, branch, &format!("changes/{id}.yaml"))
        .expect("change file on the branch");
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .messages()
                .iter()
                .any(|m| m.blocks.to_string().contains("slipway_approve")))
            .await
    );
    check(
        "deploy",
        &format!(
            "# dry run ack\n{dry}\n# apply ack\n{ack}\n# change file\n{change}\n# PR title\n{}\n# PR body\n{}\n# slack\n{}# audit\n{}\n",
            pr["title"].as_str().unwrap_or_default(),
            pr["body"].as_str().unwrap_or_default(),
            slack_transcript(&app),
            audit_transcript(&app)
        ),
    );
}
