//! The Slack emulator's shared state. Everything sits behind one mutex; handlers hold it only
//! for short, synchronous sections (never across an await).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{Call, Ephemeral, Message, Response};

pub(crate) const TEAM_ID: &str = "T0SLIPWAY";
pub(crate) const TEAM_NAME: &str = "Slipway Emulator";
pub(crate) const BOT_USER_ID: &str = "U0SLIPBOT";
pub(crate) const BOT_ID: &str = "B0SLIPBOT";
pub(crate) const APP_ID: &str = "A0SLIPWAY";

/// A user known to `users.info` and `users.lookupByEmail`.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) email: Option<String>,
    /// Deactivated: Slack still answers for them, with `deleted: true`.
    pub(crate) deleted: bool,
}

/// One response_url sink.
#[derive(Debug)]
pub(crate) struct Sink {
    pub(crate) created: Instant,
    pub(crate) posts: u32,
}

/// A live Socket Mode connection.
#[derive(Debug)]
pub(crate) struct SocketConn {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::UnboundedSender<String>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) bot_token: String,
    pub(crate) app_token: Option<String>,
    pub(crate) base_url: String,
    pub(crate) counter: u64,
    pub(crate) messages: Vec<Message>,
    pub(crate) ephemerals: Vec<Ephemeral>,
    pub(crate) responses: Vec<Response>,
    pub(crate) sinks: HashMap<String, Sink>,
    pub(crate) views: Vec<Value>,
    pub(crate) calls: Vec<Call>,
    pub(crate) validation_errors: Vec<String>,
    /// method → (calls still to reject, Retry-After seconds)
    pub(crate) rate_limits: HashMap<String, (u32, u64)>,
    pub(crate) users: HashMap<String, User>,
    pub(crate) sockets: Vec<SocketConn>,
    pub(crate) pending_acks: HashMap<String, oneshot::Sender<Value>>,
    pub(crate) socket_acks: Vec<Value>,
    /// Every `views.publish`: (user, the home view as stored), in order.
    pub(crate) homes: Vec<(String, Value)>,
    /// Trigger ids handed out by `SlackEmulator::trigger_id`, with when: each opens one view
    /// within 3 s.
    pub(crate) triggers: HashMap<String, (Instant, bool)>,
    /// Channels shared with another organisation (Slack Connect).
    pub(crate) external_channels: std::collections::BTreeSet<String>,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    pub(crate) fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// A unique, strictly increasing message timestamp like `1700000000.000100`.
    pub(crate) fn next_ts(&mut self) -> String {
        let micros = self.next() * 100;
        format!(
            "{}.{:06}",
            1_700_000_000 + micros / 1_000_000,
            micros % 1_000_000
        )
    }

    pub(crate) fn find_message(&mut self, channel: &str, ts: &str) -> Option<&mut Message> {
        self.messages
            .iter_mut()
            .find(|m| m.channel == channel && m.ts == ts)
    }

    pub(crate) fn record_call(&mut self, method: &str, error: Option<&str>) {
        self.calls.push(Call {
            method: method.to_string(),
            ok: error.is_none(),
            error: error.map(str::to_string),
        });
    }

    /// Consumes one queued rate-limit rejection for `method`, returning its Retry-After.
    pub(crate) fn take_rate_limit(&mut self, method: &str) -> Option<u64> {
        let entry = self.rate_limits.get_mut(method)?;
        if entry.0 == 0 {
            return None;
        }
        entry.0 -= 1;
        let retry = entry.1;
        if entry.0 == 0 {
            self.rate_limits.remove(method);
        }
        Some(retry)
    }
}
