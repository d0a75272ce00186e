//! A stateful emulator of the Slack Web API (the methods Slipway uses), response_url sinks,
//! Block Kit validation and Socket Mode, for tests and the local demo.
//!
//! ```no_run
//! # async fn demo() {
//! use slipway_emulators::slack::SlackEmulator;
//! let slack = SlackEmulator::start("xoxb-test").await;
//! // point slack-morphism at it: SlackClientHyperConnector::…​.with_slack_api_url(&slack.api_url())
//! assert!(slack.messages().is_empty());
//! # }
//! ```

mod api;
mod blockkit;
mod socket;
pub use socket::Delivery;
mod state;
mod views;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{any, get};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use blockkit::{Surface, validate_blocks, validate_view};

use crate::server::Server;
use state::{Shared, Sink, State, User, lock};

/// A channel message as it stands now (after every `chat.update`).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    /// The blocks array (an empty array when the message has none).
    pub blocks: Value,
    /// How many `chat.update` calls changed this message.
    pub updates: u32,
    /// `(text, blocks)` of every version, the original first.
    pub history: Vec<(String, Value)>,
}

/// An ephemeral message (`chat.postEphemeral`).
#[derive(Debug, Clone, PartialEq)]
pub struct Ephemeral {
    pub channel: String,
    pub user: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    pub blocks: Value,
}

/// One accepted POST to a response_url sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The sink's id (the last path segment of its URL).
    pub id: String,
    /// The JSON body as posted: text, blocks, response_type, replace_original, thread_ts, …
    pub body: Value,
}

/// One Web API call, as answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug)]
struct Inner {
    server: Server,
    state: Shared,
}

/// A running Slack emulator. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SlackEmulator {
    inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct App {
    pub(crate) state: Shared,
    pub(crate) shutdown: CancellationToken,
}

impl SlackEmulator {
    /// Starts the emulator on `127.0.0.1:0`, accepting `bot_token` as the bot's bearer token.
    pub async fn start(bot_token: &str) -> SlackEmulator {
        let state: Shared = Arc::new(Mutex::new(State {
            bot_token: bot_token.to_string(),
            ..State::default()
        }));
        let shutdown = CancellationToken::new();
        let app = App {
            state: state.clone(),
            shutdown: shutdown.clone(),
        };
        let router = Router::new()
            .route("/socket", get(socket::upgrade))
            .fallback(any(api::handle))
            .with_state(app);
        let server = Server::start(router, shutdown, None).await;
        lock(&state).base_url = format!("http://{}", server.addr());
        SlackEmulator {
            inner: Arc::new(Inner { server, state }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.server.addr())
    }

    /// `http://127.0.0.1:PORT/api/` — the Web API root. Method paths may be joined with or
    /// without a slash (`/api/chat.postMessage` and `/api//chat.postMessage` both work), so this
    /// can be handed to slack-morphism's `with_slack_api_url` as is or trimmed.
    pub fn api_url(&self) -> String {
        format!("{}/api/", self.base_url())
    }

    /// Registers a fresh response_url sink and returns its URL
    /// (`http://127.0.0.1:PORT/response/<id>`). Each accepts 5 posts within 30 minutes.
    pub fn new_response_url(&self) -> String {
        let mut st = self.state();
        let id = format!("R{:06}", st.next());
        st.sinks.insert(
            id.clone(),
            Sink {
                created: Instant::now(),
                posts: 0,
            },
        );
        format!("{}/response/{id}", st.base_url)
    }

    /// Adds (or replaces) a user for `users.info` and `users.lookupByEmail`.
    pub fn add_user(&self, id: &str, name: &str, email: Option<&str>) {
        self.state().users.insert(
            id.to_string(),
            User {
                name: name.to_string(),
                email: email.map(str::to_string),
                deleted: false,
            },
        );
    }

    /// Deactivates (or reactivates) a user, as a workspace admin would.
    pub fn set_user_deleted(&self, id: &str, deleted: bool) {
        if let Some(u) = self.state().users.get_mut(id) {
            u.deleted = deleted;
        }
    }

    /// Mark `channel` as shared with another organisation (Slack Connect), or not.
    pub fn set_channel_external(&self, channel: &str, external: bool) {
        let mut st = self.state();
        if external {
            st.external_channels.insert(channel.to_string());
        } else {
            st.external_channels.remove(channel);
        }
    }

    /// Sets the app-level (`xapp-…`) token accepted by `apps.connections.open`.
    pub fn set_app_token(&self, token: &str) {
        self.state().app_token = Some(token.to_string());
    }

    /// Every channel message in its current state, in post order (thread replies included).
    pub fn messages(&self) -> Vec<Message> {
        self.state().messages.clone()
    }

    /// The replies in thread `ts` of `channel` (messages whose `thread_ts == ts`, not the parent).
    pub fn thread(&self, channel: &str, ts: &str) -> Vec<Message> {
        self.state()
            .messages
            .iter()
            .filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(ts) && m.ts != ts)
            .cloned()
            .collect()
    }

    /// Every `chat.postEphemeral` message, in order.
    pub fn ephemerals(&self) -> Vec<Ephemeral> {
        self.state().ephemerals.clone()
    }

    /// Everything accepted by response_url sinks, in order.
    pub fn responses(&self) -> Vec<Response> {
        self.state().responses.clone()
    }

    /// The current state of every view opened or pushed (with its `id`), in order.
    pub fn views(&self) -> Vec<Value> {
        self.state().views.clone()
    }

    /// Every `views.publish`, in order: the user and the home view as stored.
    pub fn published_homes(&self) -> Vec<(String, Value)> {
        self.state().homes.clone()
    }

    /// The App Home `user` sees now: the newest view published for them.
    pub fn home(&self, user: &str) -> Option<Value> {
        self.state()
            .homes
            .iter()
            .rev()
            .find(|(u, _)| u == user)
            .map(|(_, v)| v.clone())
    }

    /// A trigger id as Slack puts in an interaction payload: it opens one view (`views.open`
    /// or `views.push`) within 3 s of now, then `expired_trigger_id`.
    pub fn trigger_id(&self) -> String {
        let mut st = self.state();
        let n = st.next();
        let id = format!(
            "{n}.{}.{:016x}",
            1_700_000_000 + n,
            n.wrapping_mul(0x9e37_79b9)
        );
        st.triggers.insert(id.clone(), (Instant::now(), false));
        id
    }

    /// Whether a trigger id from [`SlackEmulator::trigger_id`] has opened a view.
    pub fn trigger_used(&self, trigger: &str) -> bool {
        self.state()
            .triggers
            .get(trigger)
            .is_some_and(|(_, used)| *used)
    }

    /// Every Web API call, in order, with how it was answered.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Every Block Kit violation seen, as `"<method or response_url>: <message> [json-pointer:…]"`.
    pub fn validation_errors(&self) -> Vec<String> {
        self.state().validation_errors.clone()
    }

    /// The next `n` calls of `method` are answered `429` with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, method: &str, n: u32, retry_after_secs: u64) {
        let mut st = self.state();
        if n == 0 {
            st.rate_limits.remove(method);
        } else {
            st.rate_limits
                .insert(method.to_string(), (n, retry_after_secs));
        }
    }

    /// Polls `f` every 20 ms until it returns true (→ `true`) or `timeout` passes (→ `false`).
    ///
    /// ```no_run
    /// # async fn demo(slack: slipway_emulators::slack::SlackEmulator) {
    /// use std::time::Duration;
    /// assert!(slack.wait_until(Duration::from_secs(5), |s| s.messages().len() == 2).await);
    /// # }
    /// ```
    pub async fn wait_until<F: Fn(&SlackEmulator) -> bool>(&self, timeout: Duration, f: F) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if f(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Number of live Socket Mode connections.
    pub fn socket_connections(&self) -> usize {
        self.state().sockets.len()
    }

    /// Every ack frame received over Socket Mode (`{"envelope_id":…, "payload"?:…}`), in order.
    pub fn socket_acks(&self) -> Vec<Value> {
        self.state().socket_acks.clone()
    }

    /// Pushes an envelope (`"slash_commands"`, `"interactive"` or `"events_api"`) to the most
    /// recent Socket Mode connection (waiting up to 5 s for one), then waits up to 5 s for the
    /// client's ack. Returns the ack's `payload` if it had one; `None` if it had none, or no
    /// ack came (see [`SlackEmulator::socket_acks`] to tell the two apart).
    pub async fn socket_send(&self, envelope_type: &str, payload: Value) -> Option<Value> {
        socket::send(
            &self.inner.state,
            envelope_type,
            payload,
            Delivery::default(),
        )
        .await
    }

    /// Like [`SlackEmulator::socket_send`], to a chosen connection (several bridge replicas
    /// each hold one) and as a chosen delivery: Slack redelivers an envelope nobody acked in
    /// time, possibly to another connection, with `retry_attempt` counting up.
    pub async fn socket_send_to(
        &self,
        delivery: Delivery,
        envelope_type: &str,
        payload: Value,
    ) -> Option<Value> {
        socket::send(&self.inner.state, envelope_type, payload, delivery).await
    }
}
