//! `kill -9` of a writer in the middle of a batch: everything it acknowledged is on disk, the
//! restart continues the chain with no duplicates and no gaps, and the mirror's replay after the
//! crash puts every record in the bucket exactly once.

use slipway_tests::harness::audit_signing;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slipway_core::audit::verify_chain;
use slipway_infra::spool::{MIRROR_CURSOR, Spool, read_all};

use super::{BUCKET, PREFIX, aws_env, client, create_bucket, moto, versions};

const WRITER: &str = "bridge:crash-test";

fn stress(dir: &std::path::Path, count: u64, tag: &str, endpoint: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_audit-writer-stress"));
    cmd.arg(dir)
        .args([WRITER, &count.to_string(), tag, "--concurrency", "128"])
        .args(["--s3", endpoint, BUCKET, PREFIX])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// `acked <seq> <event>` lines.
fn parse_acks(lines: &[String]) -> BTreeMap<String, u64> {
    lines
        .iter()
        .filter_map(|l| {
            let mut parts = l.strip_prefix("acked ")?.split(' ');
            let seq = parts.next()?.parse().ok()?;
            Some((parts.next()?.to_string(), seq))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_keeps_every_acknowledged_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let moto = moto(dir.path(), None).await;
    let s3 = client(&moto.url()).await;
    create_bucket(&s3, BUCKET, true).await;
    let spool = dir.path().join("spool");

    // Run 1: killed with SIGKILL while batches are in flight.
    let mut child = stress(&spool, 50_000, "run1", &moto.url()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let log_file = spool.join("bridge%3Acrash-test.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&log_file).map_or(0, |m| m.len()) < 600_000 {
        assert!(
            Instant::now() < deadline,
            "the stress writer did not get going"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no destructors, no flush, mid-batch
    let status = child.wait().unwrap();
    assert!(!status.success());
    let run1 = parse_acks(&reader.join().unwrap());
    assert!(run1.len() > 100, "only {} acks before the kill", run1.len());
    assert!(
        run1.len() < 50_000,
        "the writer finished before it was killed"
    );

    // Everything acknowledged is there, once, and the chain is whole.
    let records = read_all(&spool).unwrap();
    let report = verify_chain(&records);
    assert!(report.is_ok(), "{report}");
    let mut by_event: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in &records {
        by_event.entry(r.event_id.as_str()).or_default().push(r.seq);
    }
    for (event, seq) in &run1 {
        assert_eq!(by_event.get(event.as_str()), Some(&vec![*seq]), "{event}");
    }
    let after_kill = {
        let opened = Spool::open(&spool, WRITER, &audit_signing(WRITER)).unwrap(); // recovers a torn tail, if any
        println!(
            "killed after {} acks; {} records durable ({} more written but not yet acked); {} mirrored",
            run1.len(),
            opened.chain_state().seq,
            opened.chain_state().seq - u64::try_from(run1.len()).unwrap(),
            opened.log().cursor(MIRROR_CURSOR).unwrap()
        );
        opened.chain_state().seq
    };

    // Run 2: a restart appends after the recovered tail, and its mirror replays the backlog,
    // including uploads that run 1 made but never recorded in its cursor.
    let mut child = stress(&spool, 500, "run2", &moto.url()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("the restarted writer did not finish mirroring within 180 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let lines = reader.join().unwrap();
    let run2 = parse_acks(&lines);
    assert_eq!(run2.len(), 500);
    assert!(run2.values().all(|&s| s > after_kill));
    let total = after_kill + 500;
    assert_eq!(
        lines.last().map(String::as_str),
        Some(format!("mirrored {total}").as_str())
    );

    let records = read_all(&spool).unwrap();
    let report = verify_chain(&records);
    assert!(report.is_ok(), "{report}");
    assert_eq!(records.len(), usize::try_from(total).unwrap());
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );

    // The bucket: one object per record, one version each, and `audit verify` agrees.
    let keys = versions(&s3, BUCKET).await;
    assert_eq!(keys.len(), usize::try_from(total).unwrap());
    assert!(
        keys.values().all(|&n| n == 1),
        "a record was uploaded twice"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway-under-test"));
    for (k, v) in aws_env() {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["audit", "verify", "--bucket", BUCKET, "--prefix", PREFIX])
        .args(slipway_tests::harness::audit_writer_args())
        .args(["--endpoint-url", &moto.url(), "--min-retention-days", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("OK: {total} record(s) from 1 writer(s)")),
        "{text}"
    );
}
