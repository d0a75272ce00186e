//! `slipway audit verify` and `show` on a local spool, and the `--git` cross-check against a
//! repository built with the git CLI.

use slipway_tests::harness::{audit_signing, audit_writer_args};
use std::path::Path;
use std::process::{Command, Output};

use slipway_core::audit::EventKind;
use slipway_infra::spool::Spool;

use super::record;

/// Runs `slipway`; `audit verify` gets the test writers' keys (`--writer`).
fn slipway(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway-under-test"));
    cmd.args(args);
    if args.get(1) == Some(&"verify") {
        cmd.args(audit_writer_args());
    }
    cmd.output().expect("slipway runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("git runs (install it with apt-get install git)");
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
}

#[test]
fn verify_catches_a_record_deleted_from_a_local_copy() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let mut spool = Spool::open(&spool_dir, "bridge:cli", &audit_signing("bridge:cli")).unwrap();
    for i in 1..=5 {
        spool
            .append(record(EventKind::Command, &format!("cli-{i}"), None))
            .unwrap();
    }
    drop(spool);
    let spool_arg = spool_dir.to_str().unwrap();

    let out = slipway(&["audit", "verify", "--spool", spool_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("OK: 5 record(s) from 1 writer(s)"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("bridge:cli"), "{}", text(&out));

    let out = slipway(&["audit", "show", "cli-3", "--spool", spool_arg]);
    assert!(out.status.success(), "{}", text(&out));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (shown["seq"].as_u64(), shown["event_id"].as_str()),
        (Some(3), Some("cli-3"))
    );
    let out = slipway(&["audit", "show", "nope", "--spool", spool_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no record with event id \"nope\""),
        "{}",
        text(&out)
    );

    // A copy of the spool with record 3 removed.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let file = "bridge%3Acli.jsonl";
    let original = std::fs::read_to_string(spool_dir.join(file)).unwrap();
    let kept: Vec<&str> = original
        .lines()
        .filter(|l| !l.contains("\"cli-3\""))
        .collect();
    std::fs::write(copy.join(file), kept.join("\n") + "\n").unwrap();
    let out = slipway(&["audit", "verify", "--spool", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("gap"), "{}", text(&out));
    assert!(text(&out).contains("record 3 is missing"), "{}", text(&out));

    // Unreadable sources are exit 2, with what to do.
    let out = slipway(&["audit", "verify", "--spool", "/nonexistent/spool"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = slipway(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--spool DIR"), "{}", text(&out));
}

#[test]
fn git_cross_check_finds_unrecorded_changes_and_orphan_executions() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("gitops");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "gitops\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    // cr-1 lands through a merged branch, cr-2 directly; cr-3 is only on an unmerged branch.
    for (branch, id, merge) in [("cr-1", "cr-1", true), ("cr-3", "cr-3", false)] {
        git(&repo, &["checkout", "-q", "-b", branch, "main"]);
        std::fs::create_dir_all(repo.join("changes")).unwrap();
        std::fs::write(
            repo.join(format!("changes/{id}.yaml")),
            format!("id: {id}\nrequester: alice\ncommand: /kubectl scale deployment/api --replicas=3 -n web\n"),
        )
        .unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", id]);
        git(&repo, &["checkout", "-q", "main"]);
        if merge {
            git(&repo, &["merge", "-q", "--no-ff", "-m", "merge", branch]);
        }
    }
    std::fs::write(repo.join("changes/cr-2.yaml"), "id: cr-2\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "cr-2"]);

    let spool_dir = dir.path().join("spool");
    let mut spool = Spool::open(&spool_dir, "bridge:git", &audit_signing("bridge:git")).unwrap();
    let mut append = |kind, event: &str, change: &str| {
        spool.append(record(kind, event, Some(change))).unwrap();
    };
    for change in ["cr-1", "cr-2"] {
        append(EventKind::ChangeRequest, &format!("{change}-req"), change);
        append(EventKind::Approval, &format!("{change}-ok"), change);
    }
    append(EventKind::Execution, "cr-1-run", "cr-1");
    let verify = |spool: &Path| {
        slipway(&[
            "audit",
            "verify",
            "--spool",
            spool.to_str().unwrap(),
            "--git",
            repo.to_str().unwrap(),
        ])
    };

    // cr-2 was merged but never executed.
    let out = verify(&spool_dir);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("missing_execution") && t.contains("change cr-2 was merged"),
        "{t}"
    );
    assert!(t.contains("2 merged change request(s)"), "{t}");
    assert!(
        !t.contains("cr-3"),
        "an unmerged branch counts as merged: {t}"
    );

    // An execution of an unmerged change is an orphan.
    append(EventKind::Execution, "cr-2-run", "cr-2");
    append(EventKind::Execution, "cr-3-run", "cr-3");
    let out = verify(&spool_dir);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("orphan_execution") && t.contains("execution of change cr-3"),
        "{t}"
    );
    assert!(!t.contains("missing_execution"), "{t}");

    // Once cr-3 is merged and its request and approval are recorded, everything adds up.
    git(
        &repo,
        &["merge", "-q", "--no-ff", "-m", "merge cr-3", "cr-3"],
    );
    append(EventKind::ChangeRequest, "cr-3-req", "cr-3");
    append(EventKind::Approval, "cr-3-ok", "cr-3");
    let out = verify(&spool_dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("3 merged change request(s)"),
        "{}",
        text(&out)
    );
}
