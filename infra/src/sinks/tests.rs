use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use slipway_core::audit::{Checkpoint, EventKind};

use super::*;
use crate::spool::Spool;

/// Fails its first `fail_first` calls, then takes at most `per_call` records a call.
#[derive(Default)]
struct Flaky {
    fail_first: usize,
    per_call: usize,
    calls: AtomicUsize,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl Sink for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn cursor(&self) -> &'static str {
        "flaky"
    }
    async fn deliver(&self, records: &[AuditRecord]) -> Delivery {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail_first {
            return Delivery {
                delivered: 0,
                error: Some(SinkError::Transient("down".into())),
            };
        }
        let take = records.len().min(self.per_call);
        self.seen
            .lock()
            .unwrap()
            .extend(records[..take].iter().map(|r| r.seq));
        Delivery::from_results((0..records.len()).map(|i| {
            if i < take {
                Ok(())
            } else {
                Err(SinkError::Transient("partial".into()))
            }
        }))
    }
}

#[derive(Debug, Default)]
struct Recorded {
    failures: Mutex<Vec<&'static str>>,
    delivered: AtomicUsize,
    depth: Mutex<Vec<u64>>,
}

impl SinkMetrics for Recorded {
    fn depth(&self, _: &'static str, records: u64) {
        self.depth.lock().unwrap().push(records);
    }
    fn lag(&self, _: &'static str, seconds: f64) {
        assert!(seconds >= 0.0);
    }
    fn delivered(&self, _: &'static str, records: u64) {
        self.delivered
            .fetch_add(usize::try_from(records).unwrap(), Ordering::SeqCst);
    }
    fn failed(&self, _: &'static str, reason: &'static str) {
        self.failures.lock().unwrap().push(reason);
    }
}

#[tokio::test]
async fn a_failing_sink_catches_up_in_order_without_losing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(
        dir.path(),
        "bridge:t",
        &crate::audit_signer::test_signing("bridge:t"),
    )
    .unwrap();
    let log = spool.log();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Flaky {
        fail_first: 3,
        per_call: 7,
        seen: seen.clone(),
        ..Flaky::default()
    };
    let metrics = Arc::new(Recorded::default());
    let pacing = Pacing {
        batch: 10,
        backoff: Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
        idle_poll: Duration::from_millis(50),
    };
    let stop = CancellationToken::new();
    let task = spawn(sink, log.clone(), metrics.clone(), pacing, stop.clone());

    for i in 0..50 {
        let rec = AuditRecord::new(EventKind::Command, format!("e{i}"), Utc::now());
        spool.append(rec).unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while log.cursor("flaky").unwrap() < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sink did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.unwrap();

    assert_eq!(*seen.lock().unwrap(), (1..=50).collect::<Vec<u64>>());
    assert_eq!(metrics.delivered.load(Ordering::SeqCst), 50);
    assert!(metrics.failures.lock().unwrap().len() >= 3);
    assert!(
        metrics
            .failures
            .lock()
            .unwrap()
            .iter()
            .all(|r| *r == "transient")
    );
    assert_eq!(log.depth("flaky").unwrap(), 0);
}

/// Stores every record, and each checkpoint only after its first `fail_anchors` tries fail.
#[derive(Default)]
struct Anchoring {
    fail_anchors: usize,
    tries: AtomicUsize,
    anchored: Arc<Mutex<Vec<u64>>>,
}

impl Sink for Anchoring {
    fn name(&self) -> &'static str {
        "anchoring"
    }
    fn cursor(&self) -> &'static str {
        "anchoring"
    }
    fn anchors(&self) -> bool {
        true
    }
    async fn anchor(&self, checkpoint: &Checkpoint) -> Result<(), SinkError> {
        if self.tries.fetch_add(1, Ordering::SeqCst) < self.fail_anchors {
            return Err(SinkError::Transient("anchor down".into()));
        }
        self.anchored.lock().unwrap().push(checkpoint.seq);
        Ok(())
    }
    async fn deliver(&self, records: &[AuditRecord]) -> Delivery {
        Delivery::from_results(records.iter().map(|_| Ok(())))
    }
}

#[tokio::test]
async fn an_anchoring_sink_moves_its_cursor_only_to_a_stored_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(
        dir.path(),
        "bridge:t",
        &crate::audit_signer::test_signing("bridge:t"),
    )
    .unwrap();
    let log = spool.log();
    for batch in 0..3 {
        let recs = (0..4)
            .map(|i| AuditRecord::new(EventKind::Command, format!("e{batch}-{i}"), Utc::now()))
            .collect();
        spool.append_batch(recs).unwrap();
    }
    let anchored = Arc::new(Mutex::new(Vec::new()));
    let sink = Anchoring {
        fail_anchors: 2,
        anchored: anchored.clone(),
        ..Anchoring::default()
    };
    let pacing = Pacing {
        batch: 5,
        backoff: Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
        idle_poll: Duration::from_millis(20),
    };
    let stop = CancellationToken::new();
    let task = spawn(sink, log.clone(), Arc::new(NoMetrics), pacing, stop.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while log.cursor("anchoring").unwrap() < 12 {
        assert!(tokio::time::Instant::now() < deadline, "never caught up");
        // Whenever the cursor moved, the checkpoint at it was stored first.
        let at = log.cursor("anchoring").unwrap();
        assert!(at == 0 || anchored.lock().unwrap().contains(&at), "{at}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    task.await.unwrap();
    // Whole batches of 4 (each ends with a checkpoint), one or two at a time.
    let stored = anchored.lock().unwrap().clone();
    assert_eq!(stored.last(), Some(&12));
    assert!(stored.iter().all(|s| s % 4 == 0), "{stored:?}");
}
