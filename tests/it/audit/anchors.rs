//! A tail cut from a spool together with its checkpoints (and the mirror cursor edited to match)
//! leaves a spool that agrees with itself; `slipway audit verify` finds it against what was
//! anchored outside the host: the S3 mirror under Object Lock, and the signed head the bridge
//! writes into the commits it makes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use slipway_core::audit::{AuditRecord, Checkpoint, EventKind};
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::sinks;
use slipway_tests::gitops::{OWNER, REPO};
use slipway_tests::harness::{audit_signing, audit_writer_args};
use tokio_util::sync::CancellationToken;

use super::{
    BUCKET, aws_env, client, create_bucket, eventually, fast_pacing, mirror, moto, record, recorded,
};

fn verify(spool: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .args(["audit", "verify", "--spool"])
        .arg(spool)
        .args(audit_writer_args())
        .args(extra)
        .envs(aws_env())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Cuts the last `n` records of `writer`'s spool and their checkpoints, and sets the mirror
/// cursor (if any) to the new end: what someone who can write the spool can do.
fn cut_tail(spool: &Path, stem: &str, n: usize) {
    let keep = |name: &str| {
        let path = spool.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        (path, lines)
    };
    let (path, lines) = keep(&format!("{stem}.jsonl"));
    let kept = &lines[..lines.len() - n];
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    let last: AuditRecord = serde_json::from_str(kept.last().unwrap()).unwrap();
    let (cp_path, cps) = keep(&format!("{stem}.checkpoints"));
    let cps: Vec<String> = cps
        .into_iter()
        .filter(|l| serde_json::from_str::<Checkpoint>(l).unwrap().seq <= last.seq)
        .collect();
    std::fs::write(&cp_path, cps.join("\n") + "\n").unwrap();
    let cursor = spool.join(format!("{stem}.mirrored"));
    if cursor.exists() {
        let edited = serde_json::json!({"writer": last.writer, "seq": last.seq, "hash": last.hash});
        std::fs::write(&cursor, edited.to_string()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_cut_with_its_checkpoints_and_the_cursor_shows_against_the_s3_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let moto = moto(dir.path(), None).await;
    create_bucket(&client(&moto.url()).await, BUCKET, true).await;
    let spool = dir.path().join("spool");
    let writer = AuditWriter::start(&spool, "bridge:cut", &audit_signing("bridge:cut")).unwrap();
    let stop = CancellationToken::new();
    sinks::spawn(
        mirror(&moto.url(), 1).await,
        writer.log(),
        recorded(),
        fast_pacing(),
        stop.clone(),
    );
    for (kind, event) in [
        (EventKind::ChangeRequest, "request"),
        (EventKind::Approval, "approval-1"),
        (EventKind::Approval, "approval-2"),
        (EventKind::Execution, "executed"),
    ] {
        writer
            .record(record(kind, event, Some("cr-9")))
            .await
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(20), || writer.depth() == 0).await);
    stop.cancel();
    drop(writer);
    let url = moto.url();
    let bucket = super::bucket_args(&url);
    let (code, text) = verify(&spool, &bucket);
    assert_eq!(code, Some(0), "{text}");

    // The second approval and the execution cut, with their checkpoints and the cursor.
    cut_tail(&spool, "bridge%3Acut", 2);
    let (code, text) = verify(&spool, &[]);
    assert_eq!(code, Some(0), "alone, the spool agrees with itself: {text}");
    let (code, text) = verify(&spool, &bucket);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("truncated") && text.contains("S3 holds this writer's records up to seq 4"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_cut_before_mirroring_shows_against_the_head_the_bridge_anchored_in_git() {
    let (app, fx) = crate::changes::start().await;
    app.ack("U0VIEWER", "/slipway whoami").await;
    app.ack("U0OPERATOR", "/kubectl get secret db -n web -o yaml")
        .await;
    app.ack("U0OPERATOR", "/deploy api staging --apply").await;
    let pulls = crate::changes::wait_pulls(&fx, 1).await;
    let branch = pulls[0]["head"]["ref"].as_str().unwrap().to_string();
    let recorded = || {
        app.audit()
            .iter()
            .any(|r| r.kind == EventKind::ChangeRequest)
    };
    assert!(eventually(Duration::from_secs(30), recorded).await);

    // The bridge's commit carries its signed chain head, which verifies.
    let bare = fx.github.repo_dir(OWNER, REPO).unwrap();
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(&bare)
        .args(["log", "-1", "--format=%B", &branch])
        .output()
        .expect("git runs (install it with apt-get install git)");
    let message = String::from_utf8_lossy(&out.stdout).into_owned();
    let anchors = Checkpoint::from_trailers(&message);
    let anchor = match anchors.as_slice() {
        [Ok(cp)] => cp.clone(),
        other => panic!("one checkpoint trailer expected in {message:?}: {other:?}"),
    };
    assert!(
        anchor.seq >= 3,
        "it covers the records before it: {anchor:?}"
    );
    let spool = app.dir.path().join("state/audit");
    let git = ["--git", bare.to_str().unwrap(), "--branch", &branch];
    let (_, text) = verify(&spool, &git);
    assert!(!text.contains("anchors this writer's chain"), "{text}");

    // Nothing was mirrored (no S3 here); the denied `get secret` and what came after are cut,
    // checkpoints included.
    let stem = slipway_infra::spool::file_stem(&anchor.writer).unwrap();
    let records = app.audit();
    let secret = records
        .iter()
        .find(|r| r.kind == EventKind::Decision && r.seq > 1 && r.seq <= anchor.seq)
        .unwrap();
    let n = records.len() - usize::try_from(secret.seq).unwrap() + 1;
    cut_tail(&spool, &stem, n);
    let (code, text) = verify(&spool, &[]);
    assert_eq!(code, Some(0), "alone, the spool agrees with itself: {text}");
    let (code, text) = verify(&spool, &git);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("truncated")
            && text.contains(&format!(
                "anchors this writer's chain at seq {}",
                anchor.seq
            )),
        "{text}"
    );
}
