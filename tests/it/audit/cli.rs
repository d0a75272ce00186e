//! `slipway audit verify` and `show` on a local spool, and the `--git` cross-check against a
//! repository built with the git CLI: each merged change request is held to its signed approval
//! rule, the heads and merge commit git says, the order of events, and a finished execution.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Duration, Utc};
use slipway_core::audit::{
    Actor, Approval, ApprovalSource, AuditRecord, EventKind, PullRequest, RunnerInfo,
};
use slipway_core::change::{
    ApprovalRequirement, ChangeCommand, ChangeRequest, PolicyBinding, Rendered, Requester,
    SCHEMA_VERSION,
};
use slipway_core::command::{Family, Namespace, Target, Tier};
use slipway_infra::spool::Spool;
use slipway_tests::harness::{audit_signing, audit_writer_args};

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

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("git runs (install it with apt-get install git)");
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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

    // A copy of the spool (checkpoints included) with record 3 removed.
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(
        spool_dir.join("bridge%3Acli.checkpoints"),
        copy.join("bridge%3Acli.checkpoints"),
    )
    .unwrap();
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

/// A GitOps repository where `cr-1` was merged through a PR, `cr-2` landed directly, and `cr-3`
/// sits on an unmerged branch.
struct Repo {
    path: PathBuf,
    /// `cr-1`'s merge commit and the PR head it merged.
    merge: String,
    head: String,
    merged_at: DateTime<Utc>,
    /// The commit that added `cr-2` directly.
    direct: String,
}

/// `cr-N`, needing two distinct approvers from `approvers`, requested by Omar.
fn change(id: &str, now: DateTime<Utc>) -> ChangeRequest {
    ChangeRequest {
        schema_version: SCHEMA_VERSION,
        id: id.into(),
        requester: Requester {
            slack_user_id: "U0OPERATOR".into(),
            slack_team_id: None,
            slack_enterprise_id: None,
            subject: "omar@example.com".into(),
            email: None,
            github_login: Some("omar-operator".into()),
            role: "operator".into(),
            groups: vec!["operators".into()],
        },
        command: ChangeCommand {
            text: "/kubectl scale deployment/api --replicas=3 -n web".into(),
            family: Family::Kubectl,
            argv: vec!["kubectl".into(), "scale".into()],
        },
        target: Target::Cluster {
            cluster: Some("staging".into()),
            namespace: Namespace::Named("web".into()),
        },
        tier: Tier::Change,
        resource: "kube:staging/web".into(),
        execution: Some(slipway_core::change::Execution {
            cluster: Some("staging".into()),
            namespace: Some("web".into()),
            stack: None,
        }),
        policy: PolicyBinding {
            rule: "operators.change".into(),
            approval: ApprovalRequirement {
                rule: "standard".into(),
                approvers: 2,
                groups: vec!["approvers".into()],
                approve_in: slipway_core::policy::model::ApproveIn::Slack,
                expires_after_secs: 86_400,
                all_of: Vec::new(),
            },
        },
        rendered: Rendered::default(),
        reason: None,
        freeze_override: None,
        supersedes: None,
        created_at: now,
        expires_at: now + Duration::days(1),
        signature: None,
    }
}

fn gitops_repo(dir: &Path, now: DateTime<Utc>) -> Repo {
    let path = dir.join("gitops");
    std::fs::create_dir(&path).unwrap();
    git(&path, &["init", "-q", "-b", "main"]);
    std::fs::write(path.join("README.md"), "gitops\n").unwrap();
    git(&path, &["add", "."]);
    git(&path, &["commit", "-q", "-m", "init"]);
    let write = |id: &str| {
        std::fs::create_dir_all(path.join("changes")).unwrap();
        std::fs::write(
            path.join(format!("changes/{id}.yaml")),
            change(id, now).to_yaml(),
        )
        .unwrap();
        git(&path, &["add", "."]);
    };
    for id in ["cr-1", "cr-3"] {
        git(&path, &["checkout", "-q", "-b", id, "main"]);
        write(id);
        git(&path, &["commit", "-q", "-m", id]);
        git(&path, &["checkout", "-q", "main"]);
    }
    let head = git(&path, &["rev-parse", "cr-1"]);
    git(
        &path,
        &["merge", "-q", "--no-ff", "-m", "merge cr-1", "cr-1"],
    );
    let merge = git(&path, &["rev-parse", "HEAD"]);
    let merged_at = DateTime::from_timestamp(
        git(&path, &["log", "-1", "--format=%ct"]).parse().unwrap(),
        0,
    )
    .unwrap();
    write("cr-2");
    git(&path, &["commit", "-q", "-m", "cr-2"]);
    let direct = git(&path, &["rev-parse", "HEAD"]);
    Repo {
        path,
        merge,
        head,
        merged_at,
        direct,
    }
}

/// How one scenario's records differ from the genuine story.
#[derive(Default, Clone)]
struct Story {
    approvers: Vec<&'static str>,
    approved_head: Option<String>,
    run_merge: Option<String>,
    run_before_merge: bool,
    finished: bool,
}

/// The records of `cr-1` and `cr-2`, by the bridge and one runner job per change.
fn trail(dir: &Path, repo: &Repo, story: &Story) -> PathBuf {
    let spool = dir.join(format!(
        "spool-{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap()
    ));
    let mut bridge = Spool::open(&spool, "bridge:git", &audit_signing("bridge:git")).unwrap();
    let at = |minutes: i64| repo.merged_at + Duration::minutes(minutes);
    let pr = |number, head: &str, merge: Option<&str>| PullRequest {
        repo: "acme/gitops".into(),
        number,
        head_sha: Some(head.to_string()),
        merge_sha: merge.map(str::to_string),
    };
    let unmerged_head = "f".repeat(40);
    for (number, id) in [(1, "cr-1"), (2, "cr-2")] {
        let (head, merged) = if id == "cr-1" {
            (repo.head.as_str(), &repo.merge)
        } else {
            (unmerged_head.as_str(), &repo.direct)
        };
        let request = AuditRecord::new(EventKind::ChangeRequest, format!("{id}-req"), at(-30))
            .with_change_id(id)
            .with_pr(pr(number, head, None));
        bridge.append(request).unwrap();
        for (i, who) in story.approvers.iter().enumerate() {
            let on = story
                .approved_head
                .clone()
                .unwrap_or_else(|| head.to_string());
            let when = at(-20 + i64::try_from(i).unwrap());
            let approval = AuditRecord::new(EventKind::Approval, format!("{id}-ok-{i}"), when)
                .with_actor(Actor {
                    subject: Some((*who).to_string()),
                    groups: vec!["approvers".into()],
                    ..Actor::default()
                })
                .with_change_id(id)
                .with_pr(pr(number, &on, None))
                .with_approval(Approval {
                    who: (*who).to_string(),
                    when,
                    source: ApprovalSource::Slack,
                    head_sha: Some(on.clone()),
                });
            bridge.append(approval).unwrap();
        }
        let writer = format!("runner:{number}-1");
        let mut runner = Spool::open(&spool, &writer, &audit_signing(&writer)).unwrap();
        let merge = story.run_merge.clone().unwrap_or_else(|| merged.clone());
        let start = if story.run_before_merge {
            at(-60)
        } else {
            at(1)
        };
        let outcomes: &[(&str, i64)] = if story.finished {
            &[("started", 0), ("executed", 1)]
        } else {
            &[("started", 0)]
        };
        for (outcome, later) in outcomes {
            let r = AuditRecord::new(
                EventKind::Execution,
                format!("{id}-{outcome}"),
                start + Duration::minutes(*later),
            )
            .with_change_id(id)
            .with_pr(pr(number, head, Some(&merge)))
            .with_runner(RunnerInfo {
                run_id: number.to_string(),
                oidc_subject: None,
            })
            .with_details(serde_json::json!({ "outcome": outcome }));
            runner.append(r).unwrap();
        }
    }
    spool
}

#[test]
fn git_cross_check_holds_each_merged_change_to_its_signed_rule_heads_order_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let repo = gitops_repo(dir.path(), Utc::now() - Duration::hours(1));
    let genuine = Story {
        approvers: vec!["ada@example.com", "bo@example.com"],
        finished: true,
        ..Story::default()
    };
    let verify = |story: &Story| {
        let spool = trail(dir.path(), &repo, story);
        let out = slipway(&[
            "audit",
            "verify",
            "--spool",
            spool.to_str().unwrap(),
            "--git",
            repo.path.to_str().unwrap(),
        ]);
        (out.status.code(), text(&out))
    };

    let (code, t) = verify(&genuine);
    // cr-2 landed without a PR merge, so its head can't be checked against git; cr-3 is on an
    // unmerged branch and must not count.
    assert_eq!(code, Some(0), "{t}");
    assert!(
        t.contains("2 merged change request(s)") && !t.contains("cr-3"),
        "{t}"
    );
    assert!(t.contains("outcomes: executed 2"), "{t}");

    // The second approval deleted: one approver is not the signed rule's two.
    let (code, t) = verify(&Story {
        approvers: vec!["ada@example.com"],
        ..genuine.clone()
    });
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("short_quorum") && t.contains("needs 2 distinct approver(s)"),
        "{t}"
    );

    // The same person twice, and the requester approving their own change.
    let (code, t) = verify(&Story {
        approvers: vec!["ada@example.com", "ada@example.com", "omar@example.com"],
        ..genuine.clone()
    });
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("short_quorum") && t.contains("has 1 (ada@example.com)"),
        "{t}"
    );
    assert!(t.contains("self_approval"), "{t}");

    // Approvals of another head than the one merged don't count.
    let (code, t) = verify(&Story {
        approved_head: Some("0".repeat(40)),
        ..genuine.clone()
    });
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("short_quorum") && t.contains("has 0 (none)"),
        "{t}"
    );

    // The runner names another merge commit, or ran before the merge.
    let (code, t) = verify(&Story {
        run_merge: Some("e".repeat(40)),
        ..genuine.clone()
    });
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("merge_mismatch") && t.contains(&repo.merge[..12]),
        "{t}"
    );
    let (code, t) = verify(&Story {
        run_before_merge: true,
        ..genuine.clone()
    });
    assert_eq!(code, Some(1), "{t}");
    assert!(
        t.contains("out_of_order") && t.contains("precedes the merge"),
        "{t}"
    );

    // The outcome record cut: the run started and never finished.
    let (code, t) = verify(&Story {
        finished: false,
        ..genuine.clone()
    });
    assert_eq!(code, Some(1), "{t}");
    assert!(t.contains("unfinished") && t.contains("no outcome"), "{t}");
}
