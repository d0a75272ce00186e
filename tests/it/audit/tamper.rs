//! Attacks on a spool by someone who can write it but can't read the signing key, each through
//! the real binaries: `slipway audit verify`, and `slipway serve` restarted on the tampered
//! spool. The trail is written by the real spool, one signed batch per record.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway_core::audit::{
    Approval, ApprovalSource, AuditRecord, ChainState, EventKind, compute_hash, seal,
};
use slipway_infra::audit_signer::{AuditSigning, KeyFileSigner};
use slipway_infra::spool::{Spool, read_all};
use slipway_tests::harness::{audit_signing, audit_writer_args, free_port, write_audit_key};

use super::record;

/// `serve` runs as this writer (`SLIPWAY_AUDIT_WRITER=prod-1`).
const WRITER: &str = "bridge:prod-1";
const FILE: &str = "bridge%3Aprod-1.jsonl";
const CHECKPOINTS: &str = "bridge%3Aprod-1.checkpoints";
const SIGNING_SECRET: &str = "tamper-test-signing-secret";

struct Fx {
    dir: tempfile::TempDir,
    key: PathBuf,
}

impl Fx {
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    fn spool(&self) -> PathBuf {
        self.state().join("audit")
    }
    fn lines(&self, name: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.spool().join(name)).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    }
    fn write_lines(&self, name: &str, lines: &[String]) {
        let text: String = lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect();
        std::fs::write(self.spool().join(name), text).unwrap();
    }
    fn records(&self) -> Vec<AuditRecord> {
        self.lines(FILE)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    fn write_records(&self, records: &[AuditRecord]) {
        let lines: Vec<String> = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        self.write_lines(FILE, &lines);
    }
}

fn approval(event: &str, who: &str) -> AuditRecord {
    record(EventKind::Approval, event, Some("cr-7")).with_approval(Approval {
        who: who.into(),
        when: chrono::Utc::now(),
        source: ApprovalSource::Slack,
        head_sha: Some("a".repeat(40)),
    })
}

/// The genuine trail: a change request, a denied `get secret`, two approvals, an expiry; each
/// record its own signed batch.
fn genuine() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let key = write_audit_key(dir.path());
    let fx = Fx { dir, key };
    let mut spool = Spool::open(&fx.spool(), WRITER, &audit_signing(WRITER)).unwrap();
    for r in [
        record(EventKind::ChangeRequest, "request", Some("cr-7")),
        record(EventKind::Decision, "denied-get-secret", None),
        approval("approval-1", "ada@example.com"),
        approval("approval-2", "bo@example.com"),
        record(EventKind::Expiry, "expiry", None),
    ] {
        spool.append(r).unwrap();
    }
    fx
}

/// Re-links and re-hashes every record from `from` on, as an attacker without the key can.
fn rehash(records: &mut [AuditRecord], from: usize) {
    for i in from..records.len() {
        if i > 0 {
            let prev = records[i - 1].hash.clone();
            records[i].prev_hash = prev;
        }
        records[i].seq = u64::try_from(i).unwrap() + 1;
        records[i].hash = compute_hash(&records[i]);
    }
}

/// `slipway audit verify --spool` with the test writers' keys, plus `extra`.
fn verify(fx: &Fx, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .args(["audit", "verify", "--spool"])
        .arg(fx.spool())
        .args(audit_writer_args())
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `slipway serve` on the fixture's state, as writer `bridge:prod-1`; stopped by PID on drop.
struct Serve {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts `serve`: `Ok` once it answers `/healthz`, `Err(its output)` if it exits first.
async fn serve(fx: &Fx) -> Result<Serve, String> {
    let port = free_port();
    let log = fx.dir.path().join(format!("serve-{port}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", fx.dir.path())
        .env("SLIPWAY_SLACK_SIGNING_SECRET", SIGNING_SECRET)
        .env("SLIPWAY_SLACK_API_URL", "http://127.0.0.1:9/api")
        .env("SLIPWAY_POLICY", slipway_tests::example_policy())
        .env("SLIPWAY_STATE_DIR", fx.state())
        .env("SLIPWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLIPWAY_AUDIT_SIGNING_KEY_FILE", &fx.key)
        .env("SLIPWAY_AUDIT_WRITER", "prod-1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut serve = Serve { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            return Err(format!("exit {:?}: {}", status.code(), serve.log()));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(serve);
        }
        assert!(
            Instant::now() < deadline,
            "serve never listened: {}",
            serve.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `serve` must refuse the spool, saying `why`, and leave the files as they are.
async fn serve_refuses(fx: &Fx, why: &str) {
    let before = std::fs::read(fx.spool().join(FILE)).unwrap();
    match serve(fx).await {
        Ok(s) => panic!("serve started on a tampered spool: {}", s.log()),
        Err(out) => {
            assert!(
                out.starts_with("exit Some(2)") && out.contains(why),
                "{out}"
            );
        }
    }
    assert_eq!(std::fs::read(fx.spool().join(FILE)).unwrap(), before);
}

/// A signed slash command, so the bridge writes a record before it acks.
async fn command(serve: &Serve) -> u16 {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let body = serde_urlencoded::to_string([
        ("command", "/slipway"),
        ("text", "whoami"),
        ("user_id", "U0OPERATOR"),
        ("team_id", "T0TEST"),
        ("channel_id", "C0OPS"),
        ("response_url", "https://hooks.slack.com/commands/T0/1/x"),
        ("trigger_id", "tamper.1"),
    ])
    .unwrap();
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig =
        slipway_bridge::slack::signature::sign(SIGNING_SECRET.as_bytes(), &ts, body.as_bytes());
    let req = hyper::Request::post(format!("http://127.0.0.1:{}/slack/commands", serve.port))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    client.request(req).await.unwrap().status().as_u16()
}

fn set_aside(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains(".set-aside-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_dropped_from_the_middle_is_refused_by_serve_and_verify() {
    let fx = genuine();
    let mut records = fx.records();
    records.remove(1); // the denied `get secret`
    fx.write_records(&records);
    let (code, text) = verify(&fx, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("refused") && text.contains("record 2 is missing"),
        "{text}"
    );
    serve_refuses(&fx, "expected seq 2, found 3").await;

    // Renumbered and re-hashed so the chain looks whole: the signed checkpoints still differ.
    rehash(&mut records, 1);
    fx.write_records(&records);
    let (code, text) = verify(&fx, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("checkpoint_mismatch") && !text.contains("gap"),
        "{text}"
    );
    serve_refuses(&fx, "the chain was rewritten").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_renamed_with_the_rest_rehashed_is_refused_by_serve_and_verify() {
    let fx = genuine();
    let mut records = fx.records();
    assert_eq!(records[3].approvals[0].who, "bo@example.com");
    records[3].approvals[0].who = "mallory@example.com".into();
    rehash(&mut records, 3);
    fx.write_records(&records);
    assert!(
        slipway_core::audit::verify_chain(&records).is_ok(),
        "the chain alone can't tell"
    );
    let (code, text) = verify(&fx, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("checkpoint_mismatch"), "{text}");
    assert!(text.contains("the writer signed seq 4"), "{text}");
    serve_refuses(&fx, "not the record its writer signed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_cut_below_the_signed_checkpoint_or_the_cursor_is_refused() {
    let fx = genuine();
    // The second approval and the expiry cut; the checkpoints say more was signed.
    let lines = fx.lines(FILE);
    fx.write_lines(FILE, &lines[..3]);
    let (code, text) = verify(&fx, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("truncated") && text.contains("ends at seq 3"),
        "{text}"
    );
    serve_refuses(&fx, "removed from the end").await;

    // Checkpoints cut to match, but the mirror's cursor said seq 5 was delivered.
    let cps = fx.lines(CHECKPOINTS);
    fx.write_lines(CHECKPOINTS, &cps[..3]);
    let records: Vec<AuditRecord> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let cursor = serde_json::json!({"writer": WRITER, "seq": 5, "hash": records[4].hash});
    std::fs::write(
        fx.spool().join("bridge%3Aprod-1.mirrored"),
        cursor.to_string(),
    )
    .unwrap();
    let (code, text) = verify(&fx, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("the `mirrored` cursor says seq 5"), "{text}");
    serve_refuses(&fx, "the spool lost records").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_writer_is_refused_by_verify_and_serve() {
    let fx = genuine();
    // A whole writer made up, signed with the forger's own key: once under a name no entry
    // covers, once under a name `bridge:*` covers.
    let forger = || KeyFileSigner::from_key(ed25519_dalek::SigningKey::from_bytes(&[0x66; 32]));
    for writer in ["approvals:offline", "bridge:prod-2"] {
        let signing = AuditSigning::new(std::sync::Arc::new(forger()), None, writer).unwrap();
        let mut spool = Spool::open(&fx.spool(), writer, &signing).unwrap();
        spool
            .append(approval("forged", "mallory@example.com"))
            .unwrap();
    }
    let (code, text) = verify(&fx, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("unknown_writer") && text.contains("approvals:offline"),
        "{text}"
    );
    assert!(
        text.contains("bad_checkpoint") && text.contains("bridge:prod-2"),
        "{text}"
    );
    assert!(text.contains("unsigned"), "{text}");
    serve_refuses(&fx, "which the allowlist of audit writers does not name").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_byte_tear_never_deletes_an_acknowledged_record() {
    let fx = genuine();
    let path = fx.spool().join(FILE);
    let bytes = std::fs::read(&path).unwrap();

    // One byte torn out of the last record: it was acknowledged, so nothing is cut; both
    // binaries refuse, the same way.
    let mut torn = bytes.clone();
    torn.remove(bytes.len() - 10);
    std::fs::write(&path, &torn).unwrap();
    let (code, text) = verify(&fx, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("refused") && text.contains("acknowledged"),
        "{text}"
    );
    serve_refuses(&fx, "was acknowledged").await;

    // Only the final newline torn off: the record is whole and signed, so it stays.
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let (code, text) = verify(&fx, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("OK: 5 record(s)"), "{text}");
    let running = serve(&fx).await.unwrap();
    assert_eq!(command(&running).await, 200);
    drop(running);
    let records = read_all(&fx.spool()).unwrap();
    assert_eq!(records.len(), 6, "nothing deleted, one record added");
    assert!(set_aside(&fx.spool()).is_empty());
    assert_eq!(verify(&fx, &[]).0, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_never_chains_a_genuine_record_onto_a_forged_tail() {
    let fx = genuine();
    let genuine_records = fx.records();
    let last = genuine_records.last().unwrap().clone();
    // A forged record appended, linked and hashed like a real one, but unsigned.
    let mut state = ChainState::resume(WRITER, last.seq, last.hash.clone());
    let forged = seal(
        &mut state,
        approval("forged-approval", "mallory@example.com"),
    );
    let mut lines = fx.lines(FILE);
    lines.push(serde_json::to_string(&forged).unwrap());
    fx.write_lines(FILE, &lines);

    // `verify` leaves it out of the trail, saying `serve` would set it aside.
    let (code, text) = verify(&fx, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("would set aside 1 line(s) after seq 5"),
        "{text}"
    );

    let running = serve(&fx).await.unwrap();
    assert_eq!(command(&running).await, 200);
    let log = running.log();
    drop(running);
    assert!(
        log.contains("set aside 1 line(s)"),
        "recovery is logged loudly: {log}"
    );
    let records = fx.records();
    assert_eq!(records.len(), 6);
    let next = &records[5];
    assert_eq!((next.seq, next.prev_hash.as_str()), (6, last.hash.as_str()));
    assert!(records.iter().all(|r| r.event_id != "forged-approval"));
    let aside = set_aside(&fx.spool());
    assert_eq!(aside.len(), 1);
    assert!(
        std::fs::read_to_string(&aside[0])
            .unwrap()
            .contains("forged-approval")
    );
    assert_eq!(verify(&fx, &[]).0, Some(0));
}

#[test]
fn an_empty_or_missing_spool_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |spool: &Path| {
        Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
            .args(["audit", "verify", "--spool"])
            .arg(spool)
            .args(audit_writer_args())
            .output()
            .unwrap()
    };
    let out = run(dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("empty") && !text.contains("OK"), "{text}");
    let out = run(&dir.path().join("missing"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    // Without an allowlist every writer would be unknown: refused up front.
    let out = Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .args(["audit", "verify", "--spool"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--writer"));
}
