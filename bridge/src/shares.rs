//! Private outputs their requesters may still share into the channel, for as long as the
//! `response_url` that showed them lives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use slipway_infra::sync::lock;

use crate::slack::client::Message;

/// How long a private output can be shared: as long as its `response_url` lives.
const KEEP: Duration = Duration::from_secs(30 * 60);

/// One private output, as it may be shared.
#[derive(Debug, Clone)]
pub struct Shareable {
    pub requester: String,
    pub channel: String,
    pub message: Message,
    pub protected: bool,
    pub text: String,
    kept: Instant,
}

/// Private outputs by run id.
#[derive(Debug, Default)]
pub struct Shares(Mutex<HashMap<String, Shareable>>);

impl Shares {
    pub fn keep(
        &self,
        run_id: &str,
        requester: &str,
        channel: &str,
        text: &str,
        message: Message,
        protected: bool,
    ) {
        let mut map = lock(&self.0);
        map.retain(|_, s| s.kept.elapsed() < KEEP);
        map.insert(
            run_id.to_string(),
            Shareable {
                requester: requester.to_string(),
                channel: channel.to_string(),
                message,
                protected,
                text: text.to_string(),
                kept: Instant::now(),
            },
        );
    }

    pub fn get(&self, run_id: &str) -> Option<Shareable> {
        lock(&self.0)
            .get(run_id)
            .filter(|s| s.kept.elapsed() < KEEP)
            .cloned()
    }

    pub fn forget(&self, run_id: &str) {
        lock(&self.0).remove(run_id);
    }
}
