//! The S3 mirror against moto: Object Lock, checksums, conditional puts, an outage, and the
//! bridge starting it (and refusing a bucket without Object Lock).

use slipway_tests::harness::audit_signing;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, ObjectLockMode};
use slipway_bridge::app::AppState;
use slipway_bridge::clock::{SystemClock, UuidIds};
use slipway_bridge::config::Config;
use slipway_core::audit::{EventKind, compute_hash};
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::s3::read::{Content, read_bucket};
use slipway_infra::sinks::{self, Sink, SinkError};
use slipway_infra::spool::{MIRROR_CURSOR, read_all};
use tokio_util::sync::CancellationToken;

use super::{
    BUCKET, PREFIX, aws_env, client, create_bucket, eventually, fast_pacing, mirror, moto, record,
    recorded, s3_error, versions,
};

fn slipway() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_slipway-under-test"));
    cmd.current_dir(slipway_tests::repo_root());
    for (k, v) in aws_env() {
        cmd.env(k, v);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_locked_checksummed_and_cannot_be_deleted_or_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let moto = moto(dir.path(), None).await;
    let s3 = client(&moto.url()).await;
    create_bucket(&s3, BUCKET, true).await;
    create_bucket(&s3, "slipway-unlocked", false).await;

    // A bucket without Object Lock is refused, saying how to fix it.
    let unlocked = {
        let settings = super::settings(&moto.url(), "slipway-unlocked", 30);
        slipway_infra::s3::S3Mirror::new(slipway_infra::s3::client(&settings).await, settings)
    };
    match unlocked.prepare().await {
        Err(SinkError::Config(e)) => assert!(
            e.contains("versioning") && e.contains("--object-lock-enabled-for-bucket"),
            "{e}"
        ),
        other => panic!("an unlocked bucket must be refused: {other:?}"),
    }

    let writer = AuditWriter::start(
        &dir.path().join("spool"),
        "bridge:lock-test",
        &audit_signing("bridge:lock-test"),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let m = mirror(&moto.url(), 30).await;
    sinks::spawn(
        m.clone(),
        writer.log(),
        recorded(),
        fast_pacing(),
        stop.clone(),
    );
    let mut sealed = Vec::new();
    for i in 0..3 {
        let r = record(EventKind::Command, &format!("lock-{i}"), None);
        sealed.push(writer.record(r).await.unwrap());
    }
    assert!(eventually(Duration::from_secs(20), || writer.depth() == 0).await);
    stop.cancel();

    let key = m.key_of(&sealed[0]).unwrap();
    assert_eq!(
        key,
        format!("{PREFIX}/bridge%3Alock-test/00000000000000000001.json")
    );
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(&key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    let until = head.object_lock_retain_until_date().unwrap().secs();
    let in_29_days = chrono::Utc::now().timestamp() + 29 * 86_400;
    assert!(until > in_29_days, "retained until {until}");
    assert!(head.checksum_sha256().is_some(), "no SHA-256 checksum");
    assert_eq!(
        head.metadata().and_then(|m| m.get("slipway-hash")),
        Some(&sealed[0].hash)
    );
    let original = s3
        .list_object_versions()
        .bucket(BUCKET)
        .prefix(&key)
        .send()
        .await
        .unwrap()
        .versions()[0]
        .version_id()
        .unwrap()
        .to_string();

    // Deleting the locked version is refused.
    let deleted = s3
        .delete_object()
        .bucket(BUCKET)
        .key(&key)
        .version_id(&original)
        .send()
        .await;
    let err = deleted.expect_err("deleting a COMPLIANCE-locked version must fail");
    assert!(
        s3_error(&err).contains("AccessDenied"),
        "{}",
        s3_error(&err)
    );

    // A repeated upload of the same record is accepted without a second version; a different
    // record claiming the same place is an alarm and is not written.
    assert_eq!(
        m.upload(&sealed[0]).await.unwrap(),
        slipway_infra::s3::mirror::Uploaded::AlreadyThere
    );
    let mut forged = sealed[0].clone();
    forged.event_id = "forged".into();
    forged.hash = compute_hash(&forged);
    match m.upload(&forged).await {
        Err(SinkError::Conflict(e)) => assert!(e.contains("different record"), "{e}"),
        other => panic!("a different record at a taken key must be a conflict: {other:?}"),
    }
    assert_eq!(versions(&s3, BUCKET).await.get(&key), Some(&1));

    // Someone with write access puts a tampered copy and "deletes" another record: S3 keeps
    // the locked originals, and verify reports both.
    let mut tampered = serde_json::to_vec(&sealed[0]).unwrap();
    let text = String::from_utf8(tampered.clone())
        .unwrap()
        .replace("lock-0", "lock-X");
    tampered = text.into_bytes();
    s3.put_object()
        .bucket(BUCKET)
        .key(&key)
        .body(ByteStream::from(tampered))
        .send()
        .await
        .unwrap();
    let key2 = m.key_of(&sealed[1]).unwrap();
    s3.delete_object()
        .bucket(BUCKET)
        .key(&key2)
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key(&key)
        .version_id(&original)
        .send()
        .await
        .unwrap();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("\"lock-0\""),
        "original changed"
    );

    let stored = read_bucket(&s3, BUCKET, &format!("{PREFIX}/"))
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .any(|v| v.key == key2 && matches!(v.content, Content::DeleteMarker))
    );

    let out = slipway()
        .args(["audit", "verify", "--bucket", BUCKET, "--prefix", PREFIX])
        .args(slipway_tests::harness::audit_writer_args())
        .args(["--endpoint-url", &moto.url(), "--min-retention-days", "29"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for problem in ["hash_mismatch", "overwritten", "deleted"] {
        assert!(stdout.contains(problem), "no {problem} in:\n{stdout}");
    }
    // A stricter retention than the objects have is a break too.
    let out = slipway()
        .args(["audit", "verify", "--bucket", BUCKET, "--prefix", PREFIX])
        .args(slipway_tests::harness::audit_writer_args())
        .args(["--endpoint-url", &moto.url(), "--min-retention-days", "400"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("short_retention"));
    // The locked original is still what `show` finds for its event.
    let out = slipway()
        .args([
            "audit", "show", "lock-2", "--bucket", BUCKET, "--prefix", PREFIX,
        ])
        .args(["--endpoint-url", &moto.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["seq"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_never_blocks_appends_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = moto(dir.path(), None).await;
    let (endpoint, port) = (first.url(), first.port);
    create_bucket(&client(&endpoint).await, BUCKET, true).await;

    let writer = AuditWriter::start(
        &dir.path().join("spool"),
        "bridge:outage",
        &audit_signing("bridge:outage"),
    )
    .unwrap();
    let metrics = recorded();
    let stop = CancellationToken::new();
    let m = mirror(&endpoint, 1).await;
    sinks::spawn(
        m,
        writer.log(),
        metrics.clone(),
        fast_pacing(),
        stop.clone(),
    );
    for i in 0..5 {
        writer
            .record(record(EventKind::Command, &format!("before-{i}"), None))
            .await
            .unwrap();
    }
    assert!(eventually(Duration::from_secs(20), || writer.depth() == 0).await);

    drop(first); // S3 is gone (and moto forgets everything)
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let w = writer.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = w
                .record(record(EventKind::Command, &format!("during-{i}"), None))
                .await;
            (r, t.elapsed())
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (r, took) = t.await.unwrap();
        r.unwrap();
        slowest = slowest.max(took);
    }
    let appended = started.elapsed();
    println!("1000 appends during the outage in {appended:?}; slowest ack {slowest:?}");
    assert!(
        slowest < Duration::from_secs(2),
        "an ack waited {slowest:?} on S3"
    );
    assert_eq!(
        writer.depth(),
        1000,
        "nothing can be mirrored while S3 is down"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            metrics
                .failures
                .lock()
                .unwrap()
                .contains(&("s3", "transient"))
        })
        .await,
        "the outage shows as failures"
    );

    let back = moto(dir.path(), Some(port)).await;
    let s3 = client(&back.url()).await;
    create_bucket(&s3, BUCKET, true).await;
    let recovering = Instant::now();
    assert!(
        eventually(Duration::from_secs(120), || writer.depth() == 0).await,
        "the mirror did not catch up; {} left",
        writer.depth()
    );
    println!(
        "mirror caught up 1000 records in {:?}",
        recovering.elapsed()
    );
    assert!(*metrics.max_lag.lock().unwrap() > 0.0);
    stop.cancel();

    // Every record written during the outage is in the bucket once, as in the spool. (The five
    // from before went with the first moto's memory.)
    let keys = versions(&s3, BUCKET).await;
    assert_eq!(keys.len(), 1000);
    assert!(keys.values().all(|&n| n == 1));
    let stored = read_bucket(&s3, BUCKET, &format!("{PREFIX}/"))
        .await
        .unwrap();
    let spool = read_all(&dir.path().join("spool")).unwrap();
    for v in stored {
        if matches!(v.content, Content::Checkpoint { .. }) {
            continue;
        }
        let Content::Object { record: Ok(r), .. } = v.content else {
            panic!("{} is not a record", v.key);
        };
        let seq = usize::try_from(r.seq).unwrap();
        assert!(seq > 5);
        assert_eq!(*r, spool[seq - 1], "{}", v.key);
    }
    assert!(metrics.delivered.load(Ordering::SeqCst) >= 1005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_mirrors_its_spool_and_refuses_an_unlocked_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let moto = moto(dir.path(), None).await;
    let s3 = client(&moto.url()).await;
    create_bucket(&s3, BUCKET, true).await;
    create_bucket(&s3, "slipway-unlocked", false).await;

    let config_path = dir.path().join("slipway.yaml");
    std::fs::write(
        &config_path,
        format!(
            "policy: {}\nstate_dir: {}\nslack:\n  signing_secret: mirror-signing-secret\naudit:\n  signing:\n    key_file: {}\n  s3:\n    bucket: {BUCKET}\n    \
             prefix: {PREFIX}\n    endpoint_url: {}\n    retention_days: 2\n    access_key_id: testing\n    \
             secret_access_key: testing\n",
            slipway_tests::example_policy().display(),
            dir.path().join("state").display(),
            slipway_tests::harness::write_audit_key(dir.path()).display(),
            moto.url()
        ),
    )
    .unwrap();
    let config = Config::load_with(Some(&config_path), &|_| None).unwrap();
    let state = AppState::new(config, Arc::new(SystemClock), Arc::new(UuidIds)).unwrap();
    assert_eq!(state.audit_sinks.started, ["s3"]);
    let sealed = state
        .audit
        .record(record(EventKind::Command, "via-bridge", None))
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(20), || state.audit.depth() == 0).await);
    let key = format!(
        "{PREFIX}/{}/{:020}.json",
        slipway_infra::spool::file_stem(&sealed.writer).unwrap(),
        sealed.seq
    );
    assert_eq!(versions(&s3, BUCKET).await.get(&key), Some(&1));
    assert_eq!(state.audit.log().cursor(MIRROR_CURSOR).unwrap(), sealed.seq);
    let metrics = state.metrics.encode();
    assert!(
        metrics.contains("slipway_audit_sink_delivered_total{sink=\"s3\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("slipway_audit_sink_lag_seconds{sink=\"s3\"} 0"),
        "{metrics}"
    );

    // `slipway serve` checks the bucket before listening: no Object Lock, no start.
    let mut child = slipway()
        .arg("serve")
        .env("SLIPWAY_SLACK_SIGNING_SECRET", "mirror-signing-secret")
        .env("SLIPWAY_POLICY", slipway_tests::example_policy())
        .env("SLIPWAY_STATE_DIR", dir.path().join("serve-state"))
        .env("SLIPWAY_LISTEN", "127.0.0.1:0")
        .env("SLIPWAY_AUDIT_S3_BUCKET", "slipway-unlocked")
        .env("SLIPWAY_AUDIT_S3_ENDPOINT", moto.url())
        .env("SLIPWAY_AUDIT_RETENTION_DAYS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("slipway serve kept running with an unlocked bucket");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("slipway-unlocked") && stderr.contains("Object Lock"),
        "{stderr}"
    );
}
