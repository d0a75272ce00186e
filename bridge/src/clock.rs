//! Injected time and ids, so tests control them without hooks in production code.

use std::fmt::Debug;

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
    fn unix(&self) -> i64 {
        self.now().timestamp()
    }
}

/// The real clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

pub trait Ids: Send + Sync + Debug {
    /// A new unique id.
    fn next(&self) -> String;
}

/// Random v4 UUIDs.
#[derive(Debug, Default)]
pub struct UuidIds;

impl Ids for UuidIds {
    fn next(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

/// A stable name for this bridge instance, used as the audit writer id. `SLIPWAY_AUDIT_WRITER`
/// overrides it (set it to the pod name in a StatefulSet).
pub fn host_name() -> String {
    std::env::var("SLIPWAY_AUDIT_WRITER")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "local".to_string())
}
