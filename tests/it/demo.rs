//! `slipway demo`: the scripted walkthrough as outside checks run it, and the interactive channel
//! driven through a real pseudo-terminal (type a command, pick a button, read the screen).

use std::process::Command;
use std::time::Duration;

use slipway_tests::harness::require_tool;

fn demo_command(args: &[&str]) -> Command {
    require_tool(
        "kubectl",
        "this machine image ships kubectl 1.32 at /usr/bin/kubectl",
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway-under-test"));
    cmd.arg("demo").args(args);
    // The demo must not depend on the caller's directory or Slipway variables.
    cmd.current_dir(std::env::temp_dir());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SLIPWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn the_scripted_walkthrough_passes_every_step_and_prints_a_transcript() {
    require_tool(
        "gcloud",
        "the google-cloud-cli package (gcloud) is on the machine image",
    );
    // With moto (installed by scripts/install-deps) the audit mirror is checked too.
    require_tool(
        "moto_server",
        "install moto's server: `pip install 'moto[server]'` (scripts/install-deps does this)",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = demo_command(&["--scripted", "--dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let transcript = crate::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{transcript}\n--- stderr\n{}\n--- bridge log\n{}",
        crate::stderr(&out),
        std::fs::read_to_string(dir.path().join("bridge.log")).unwrap_or_default()
    );
    for n in 1..=16 {
        assert!(
            transcript.contains(&format!("✓ Step {n}:")),
            "step {n}: {transcript}"
        );
    }
    for shown in [
        "hello-5c7d9-x2x8k",
        "Secret contents are never shown",
        "you requested this change",
        "Approvals: *2 of 2*",
        "Runner report",
        // The first rollout fails (its pods crash-loop), and the thread offers Roll back.
        "CrashLoopBackOff",
        "] Roll back",
        "successfully rolled out",
        // The sinks, each with both changes: ServiceNow's change requests, closed as they ended.
        "closed unsuccessful",
        "closed successful",
        "Object Lock mirror both verify",
        "All 16 steps worked.",
        // A message shortcut's dialog, and an approver's App Home, as text.
        "Slipway explains (a dialog)",
        "Slipway's App Home, as U0APPROVER1 sees it",
        "Waiting for your approval* (1)",
        // Real gcloud against the GCP emulator, as gcp-staging's read-only account.
        "web-staging-1",
    ] {
        assert!(transcript.contains(shown), "{shown}: {transcript}");
    }
    assert!(!transcript.contains("hunter2"), "the secret never shows");
    assert_eq!(
        transcript.matches("    Jira OPS-").count(),
        2,
        "a Jira issue for each change: {transcript}"
    );
    // The runner flushed its own records to the Object Lock bucket before its job ended.
    let s3_part = transcript
        .split("audit trail: s3://slipway-audit")
        .nth(1)
        .expect("the S3 verification");
    assert!(s3_part.contains("runner:9000001-1-"), "{s3_part}");
    // The runner's execution record sits in the same spool as the bridge's decisions.
    let records = slipway_infra::spool::read_all(&dir.path().join("state/audit")).unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.kind == slipway_core::audit::EventKind::Execution
                && r.writer.starts_with("runner:")),
        "{records:?}"
    );
    // Both jobs' records are in that spool: the failed rollout's and the roll back's.
    let outcomes: Vec<&str> = records
        .iter()
        .filter(|r| r.writer.starts_with("runner:"))
        .filter_map(|r| r.details.as_ref()?["outcome"].as_str())
        .filter(|o| *o != "started")
        .collect();
    assert_eq!(outcomes, ["failed", "executed"], "{records:?}");
    // --dir keeps the emulated GitHub's repository, merge included, for a look afterwards.
    let log = std::process::Command::new("git")
        .args(["log", "--oneline", "main"])
        .current_dir(dir.path().join("github/acme/gitops.git"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("Merge pull request #1")
            && String::from_utf8_lossy(&log.stdout).contains("Merge pull request #2"),
        "{}",
        String::from_utf8_lossy(&log.stdout)
    );
    // A second run refuses the same directory: it would hold another world's audit trail.
    let again = demo_command(&["--scripted", "--dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        crate::stderr(&again).contains("is not empty"),
        "{}",
        crate::stderr(&again)
    );
}

#[test]
fn a_broken_setup_exits_2_and_says_what_is_missing() {
    let out = demo_command(&["--scripted", "--as", "U0NOBODY"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::stderr(&out).contains("not one of the example people"),
        "{}",
        crate::stderr(&out)
    );
    // Without kubectl on PATH the demo can't run the real one, and says so.
    let out = demo_command(&["--scripted", "--no-s3"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", crate::stdout(&out));
    assert!(
        crate::stderr(&out).contains("needs `git`"),
        "{}",
        crate::stderr(&out)
    );
}

#[test]
fn the_interactive_channel_runs_commands_and_clicks_buttons_in_a_terminal() {
    let mut cmd = demo_command(&["--no-s3"]);
    cmd.env("TERM", "dumb");
    let timeout = Duration::from_secs(60);
    let mut term =
        rexpect::session::spawn_command(cmd, Some(u64::try_from(timeout.as_millis()).unwrap()))
            .unwrap();
    // rexpect reads bytes as Latin-1, so only ASCII is matched.
    term.exp_string("U0OPERATOR (omar-operator) #ops")
        .expect("the prompt, as the operator");

    // A dry run: the diff, and a Confirm button as a numbered choice.
    term.send_line("/deploy api staging").unwrap();
    let (_, confirm) = term
        .exp_regex(r"\[\d+\] Confirm: open the PR")
        .expect("a Confirm button");
    let n = confirm
        .trim_start_matches('[')
        .split(']')
        .next()
        .unwrap()
        .to_string();
    // Pick it: the PR opens, and the change message shows Approve/Reject as choices.
    term.send_line(&n).unwrap();
    term.exp_string(&format!("U0OPERATOR clicks [{n}] Confirm"))
        .unwrap();
    term.exp_string("Change request")
        .expect("the change message");
    let (_, buttons) = term
        .exp_regex(r"\[\d+\] Approve  \[\d+\] Reject")
        .expect("numbered review buttons");
    let reject = buttons
        .rsplit('[')
        .next()
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .to_string();

    // GitHub's side: the PR is listed, and merging is refused without the quorum.
    term.send_line(":prs").unwrap();
    term.exp_string("#1 [open]").unwrap();
    term.send_line(":merge 1").unwrap();
    term.exp_string("Required status check \"slipway/approval\"")
        .expect("branch protection");

    // An approver rejects: the reason modal prompts inline, and the review lands in GitHub.
    term.send_line(":as U0APPROVER1").unwrap();
    term.exp_string("you are now U0APPROVER1").unwrap();
    term.send_line(&reject).unwrap();
    term.exp_string("Request changes (a dialog)")
        .expect("the modal");
    term.exp_string("Reason (optional): ")
        .expect("an inline prompt");
    term.send_line("needs a canary first").unwrap();
    term.exp_string("(demo) submitted").unwrap();
    term.send_line(":prs").unwrap();
    term.exp_string("ada-approver changes_requested").unwrap();
    // A review made in GitHub itself is mirrored into the change's thread.
    term.send_line(":as U0APPROVER2").unwrap();
    term.exp_string("you are now U0APPROVER2").unwrap();
    term.send_line(":review 1 approve looks fine").unwrap();
    term.exp_string("bo-approver approved in GitHub")
        .expect("the mirrored review");

    // Another person: a viewer's read runs at once and its output lands in the thread.
    term.send_line(":as U0VIEWER").unwrap();
    term.exp_string("you are now U0VIEWER").unwrap();
    term.send_line("/kubectl get pods -n web").unwrap();
    term.exp_string("web-7d9f-abcde").expect("the pods");
    // Their App Home, as text.
    term.send_line(":home").unwrap();
    term.exp_string("Slipway's App Home, as U0VIEWER sees it")
        .expect("the App Home");
    term.exp_string("viewer-read")
        .expect("what the viewer's role grants");

    term.send_line(":quit").unwrap();
    term.exp_eof().expect("the demo ends");
}

/// A caller with production audit settings and AWS keys in their environment runs the demo: the
/// demo's bridge must use its own settings only, so nothing reaches the "production" endpoint.
#[test]
fn the_demo_never_hands_the_callers_environment_to_its_bridge() {
    let prod = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", prod.local_addr().unwrap());
    prod.set_nonblocking(true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = demo_command(&[
        "--scripted",
        "--no-s3",
        "--dir",
        dir.path().to_str().unwrap(),
    ])
    .env("SLIPWAY_AUDIT_S3_BUCKET", "acme-production-audit")
    .env("SLIPWAY_AUDIT_S3_ENDPOINT", &endpoint)
    .env("SLIPWAY_AUDIT_RETENTION_DAYS", "400")
    .env("AWS_ACCESS_KEY_ID", "AKIAPRODUCTIONKEY001")
    .env("AWS_SECRET_ACCESS_KEY", "production-secret")
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n--- stderr\n{}\n--- bridge log\n{}",
        crate::stdout(&out),
        crate::stderr(&out),
        std::fs::read_to_string(dir.path().join("bridge.log")).unwrap_or_default()
    );
    assert!(
        prod.accept().is_err(),
        "the demo's bridge reached the production audit endpoint"
    );
    let log = std::fs::read_to_string(dir.path().join("bridge.log")).unwrap_or_default();
    assert!(!log.contains("acme-production-audit"), "{log}");
}
