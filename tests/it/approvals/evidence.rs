//! The runner's records reach the bridge-side sinks as they are: its evidence comment is
//! verified against the runner's key in `audit.writers` and queued for Loki (and Jira,
//! ServiceNow, the webhook), never appended to the bridge's chain. A comment anyone else writes,
//! records signed by another key, or an edited record are refused.

use std::sync::Arc;

use slipway_core::audit::{AuditRecord, Checkpoint, EventKind, WriterAllowlist};
use slipway_emulators::loki::LokiEmulator;
use slipway_infra::audit_signer::{AuditSigning, KeyFileSigner};
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::github::{GitHub, Repo};
use slipway_runner::evidence;
use slipway_tests::harness::{audit_public_hex, audit_signing};

use super::*;

/// A runner job's spool with two records, and the evidence comment the runner would post.
async fn job_comment(
    dir: &Path,
    writer: &str,
    signing: &AuditSigning,
) -> (Vec<AuditRecord>, Checkpoint, String) {
    let audit = AuditWriter::start(&dir.join(writer.replace(':', "_")), writer, signing).unwrap();
    for (i, kind) in [EventKind::Execution, EventKind::Execution]
        .into_iter()
        .enumerate()
    {
        let r = AuditRecord::new(kind, format!("{writer}-e{i}"), chrono::Utc::now())
            .with_change_id("cr-service-api-staging-1".to_string());
        audit.record(r).await.unwrap();
    }
    let records = audit.log().read_after(0, 100).unwrap();
    let checkpoint = audit.latest_checkpoint().unwrap();
    let body = evidence::body(&records, &checkpoint).unwrap();
    (records, checkpoint, body)
}

/// Signing as `writer` with a key the bridge doesn't trust.
fn foreign_signing(writer: &str) -> AuditSigning {
    let key = ed25519_dalek::SigningKey::from_bytes(&[0x33; 32]);
    let mut writers = WriterAllowlist::new();
    writers.allow("runner:*", key.verifying_key()).unwrap();
    AuditSigning::new(
        Arc::new(KeyFileSigner::from_key(key)),
        Some(writers),
        writer,
    )
    .unwrap()
}

fn loki_writers(loki: &LokiEmulator) -> Vec<String> {
    loki.lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<AuditRecord>(&l.line).ok())
        .map(|r| format!("{}#{}", r.writer, r.seq))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runners_signed_records_reach_the_bridge_side_sinks_as_they_are_and_forgeries_do_not() {
    let loki = LokiEmulator::start().await;
    let mut fx = gitops::start().await;
    let key = audit_public_hex();
    let url = loki.base_url();
    let audit = format!(
        "audit:\n  writers:\n    \"bridge:*\": \"{key}\"\n    \"runner:*\": \"{key}\"\n  loki:\n    url: {url}\n"
    );
    fx.config_yaml.push_str(&audit);
    let app = start_with(&fx, Options::default()).await;
    let number = open_pr(&app, &fx).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::parse(&format!("{OWNER}/{REPO}")).unwrap();
    let runner = GitHub::user(&fx.github.api_url(), &fx.github.actions_token(OWNER, REPO)).unwrap();

    // Forgeries first: the right records posted by a person; records signed by another key;
    // a record edited after signing.
    let (_, _, by_person) =
        job_comment(dir.path(), "runner:66-1", &audit_signing("runner:66-1")).await;
    GitHub::user(&fx.github.api_url(), "tok-omar")
        .unwrap()
        .comment(&repo, number, &by_person)
        .await
        .unwrap();
    let (_, _, foreign) =
        job_comment(dir.path(), "runner:55-1", &foreign_signing("runner:55-1")).await;
    runner.comment(&repo, number, &foreign).await.unwrap();
    let (mut records, checkpoint, _) =
        job_comment(dir.path(), "runner:44-1", &audit_signing("runner:44-1")).await;
    records[0].event_id = "edited".into();
    let edited = evidence::body(&records, &checkpoint).unwrap();
    runner.comment(&repo, number, &edited).await.unwrap();

    // The genuine report, posted twice (a re-run): its records arrive once each.
    let (genuine, _, body) =
        job_comment(dir.path(), "runner:77-1", &audit_signing("runner:77-1")).await;
    runner.comment(&repo, number, &body).await.unwrap();
    runner.comment(&repo, number, &body).await.unwrap();
    let expected = ["runner:77-1#1".to_string(), "runner:77-1#2".to_string()];
    assert!(
        fx.github_wait(|| expected.iter().all(|e| loki_writers(&loki).contains(e)))
            .await,
        "{:?}",
        loki_writers(&loki)
    );
    assert!(fx.github.wait_for_deliveries(LONG).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = loki_writers(&loki);
    assert!(
        seen.iter()
            .all(|w| !w.starts_with("runner:") || expected.contains(w)),
        "only the genuine records were forwarded: {seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|w| w.starts_with("runner:")).count(),
        2,
        "{seen:?}"
    );
    let line = loki
        .lines()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<AuditRecord>(&l.line).ok())
        .find(|r| r.writer == "runner:77-1" && r.seq == 1)
        .unwrap();
    assert_eq!(line.hash, genuine[0].hash, "as the runner wrote it");
    assert!(
        app.audit().iter().all(|r| !r.writer.starts_with("runner:")),
        "never appended to the bridge's own chain"
    );
}
