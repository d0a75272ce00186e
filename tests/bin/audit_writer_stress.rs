//! Test-only: appends records through `AuditWriter` from many tasks at once and prints
//! `acked <seq> <event id>` for each one the writer acknowledged (stdout is line-buffered, so a
//! printed line means the ack happened). A test SIGKILLs it mid-batch, restarts it, and checks
//! that every acknowledged record is in the spool exactly once.
//!
//! Usage: audit-writer-stress DIR WRITER COUNT TAG [--concurrency N]
//!        [--s3 ENDPOINT BUCKET PREFIX]  (also mirror to S3; exits once everything is mirrored)

// Test-only helper binary; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use slipway_core::audit::{AuditRecord, EventKind};
use slipway_infra::audit_writer::AuditWriter;
use slipway_infra::s3::{self, S3Mirror, S3Settings, StaticCredentials};
use slipway_infra::sinks::{self, Backoff, NoMetrics, Pacing};
use slipway_infra::spool::MIRROR_CURSOR;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

struct Args {
    dir: String,
    writer: String,
    count: u64,
    tag: String,
    concurrency: usize,
    s3: Option<(String, String, String)>,
}

fn parse() -> Result<Args, String> {
    let usage = "usage: audit-writer-stress DIR WRITER COUNT TAG [--concurrency N] [--s3 ENDPOINT BUCKET PREFIX]";
    let mut it = std::env::args().skip(1);
    let mut next = |what: &str| it.next().ok_or_else(|| format!("missing {what}; {usage}"));
    let dir = next("DIR")?;
    let writer = next("WRITER")?;
    let count = next("COUNT")?
        .parse()
        .map_err(|_| format!("COUNT must be a number; {usage}"))?;
    let tag = next("TAG")?;
    let mut args = Args {
        dir,
        writer,
        count,
        tag,
        concurrency: 64,
        s3: None,
    };
    while let Ok(flag) = next("flag") {
        match flag.as_str() {
            "--concurrency" => {
                args.concurrency = next("N")?
                    .parse()
                    .map_err(|_| format!("--concurrency takes a number; {usage}"))?;
            }
            "--s3" => args.s3 = Some((next("ENDPOINT")?, next("BUCKET")?, next("PREFIX")?)),
            other => return Err(format!("unknown argument {other}; {usage}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let signing = slipway_tests::harness::audit_signing(&args.writer);
    let writer = AuditWriter::start(std::path::Path::new(&args.dir), &args.writer, &signing)
        .map_err(|e| e.to_string())?;
    let stop = CancellationToken::new();
    if let Some((endpoint, bucket, prefix)) = &args.s3 {
        let mut settings = S3Settings::new(bucket.as_str(), prefix.as_str(), 1);
        settings.endpoint_url = Some(endpoint.clone());
        settings.credentials = Some(StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
        });
        let mirror = S3Mirror::new(s3::client(&settings).await, settings);
        let pacing = Pacing {
            backoff: Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(500),
            },
            idle_poll: Duration::from_millis(100),
            ..Pacing::default()
        };
        sinks::spawn(
            mirror,
            writer.log(),
            Arc::new(NoMetrics),
            pacing,
            stop.clone(),
        );
    }

    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = Vec::new();
    for i in 0..args.count {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let (w, tag) = (writer.clone(), args.tag.clone());
        tasks.push(tokio::spawn(async move {
            let event = format!("{tag}-{i}");
            let rec = AuditRecord::new(EventKind::Command, event.clone(), chrono::Utc::now())
                .with_details(serde_json::json!({ "i": i, "padding": "x".repeat(200) }));
            let result = w.record(rec).await;
            drop(permit);
            match result {
                Ok(sealed) => {
                    println!("acked {} {event}", sealed.seq);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }

    if args.s3.is_some() {
        let log = writer.log();
        while log.depth(MIRROR_CURSOR).map_err(|e| e.to_string())? > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("mirrored {}", log.last_seq());
    }
    stop.cancel();
    Ok(())
}
