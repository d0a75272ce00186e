//! The demo's Slack channel: what a person does goes to the bridge as the signed HTTP requests
//! Slack would send (slash commands, button clicks, modal submissions), and what the bridge
//! posts (to the Slack emulator's Web API and response URLs) is rendered on the terminal, with
//! buttons as numbered choices.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::http;
use super::plain::{self, Button};
use super::screen::Screen;
use super::world::{CHANNEL, OWNER, REPO, TEAM, World, person};
use crate::slack::signature::sign;

/// A button on the screen, by its number.
#[derive(Debug, Clone)]
pub struct Choice {
    pub button: Button,
    /// The message it is on (None for ephemeral and response_url messages).
    pub message_ts: Option<String>,
}

/// What has been shown so far.
#[derive(Debug, Default)]
struct Shown {
    /// Channel messages by ts: their label (`m3`) and last rendering.
    messages: HashMap<String, (String, Vec<String>)>,
    next_label: u32,
    ephemerals: usize,
    responses: usize,
    views: usize,
    choices: BTreeMap<usize, Choice>,
    next_choice: usize,
    /// Response URL sink id → the Slack user whose action it answers.
    sinks: HashMap<String, String>,
    authorized_codes: HashSet<String>,
}

pub struct Channel {
    world: Arc<World>,
    screen: Arc<Screen>,
    seq: AtomicU64,
    shown: Mutex<Shown>,
    /// One poll at a time, so nothing is shown twice.
    polling: Mutex<()>,
    /// While set, activity is tracked but not printed (the interactive demo's set-up).
    muted: std::sync::atomic::AtomicBool,
}

/// What a modal submission came back with.
#[derive(Debug)]
pub enum Submitted {
    Closed,
    /// Per-input errors to show and answer again.
    Errors(BTreeMap<String, String>),
}

impl Channel {
    pub fn new(world: Arc<World>, screen: Arc<Screen>) -> Channel {
        Channel {
            world,
            screen,
            seq: AtomicU64::new(0),
            shown: Mutex::new(Shown {
                next_choice: 1,
                next_label: 1,
                ..Shown::default()
            }),
            polling: Mutex::new(()),
            muted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    fn print(&self, lines: &[String]) {
        if !self.muted.load(Ordering::Relaxed) {
            self.screen.print(lines);
        }
    }

    fn shown(&self) -> std::sync::MutexGuard<'_, Shown> {
        slipway_infra::sync::lock(&self.shown)
    }

    fn response_url(&self, user: &str) -> String {
        let url = self.world.slack.new_response_url();
        if let Some(id) = url.rsplit('/').next() {
            self.shown().sinks.insert(id.to_string(), user.to_string());
        }
        url
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<(u16, String), String> {
        let ts = chrono::Utc::now().timestamp().to_string();
        let signature = sign(self.world.signing_secret.as_bytes(), &ts, &body);
        http::request(
            "POST",
            &format!("{}{path}", self.world.bridge_url),
            body,
            &[
                (
                    "content-type",
                    "application/x-www-form-urlencoded".to_string(),
                ),
                ("x-slack-request-timestamp", ts),
                ("x-slack-signature", signature),
            ],
        )
        .await
    }

    /// A message shortcut (`message_action`, callback `callback_id`) as `user` on a channel
    /// message showing `text`, as Slack sends it: with a trigger id the emulator issued (it
    /// opens one view within 3 s) and a `response_url`.
    pub async fn message_shortcut(
        &self,
        user: &str,
        callback_id: &str,
        text: &str,
    ) -> Result<(), String> {
        let payload = json!({
            "type": "message_action", "callback_id": callback_id,
            "trigger_id": self.world.slack.trigger_id(),
            "user": {"id": user, "team_id": TEAM}, "team": {"id": TEAM},
            "channel": {"id": CHANNEL, "name": "ops"}, "message_ts": "1700000000.000100",
            "response_url": self.response_url(user),
            "message": {"type": "message", "user": user, "ts": "1700000000.000100", "text": text},
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())])
            .map_err(|e| e.to_string())?
            .into_bytes();
        match self.post("/slack/interactivity", body).await? {
            (200, _) => Ok(()),
            (status, text) => Err(format!("the bridge answered HTTP {status}: {text}")),
        }
    }

    /// An Events API callback (`event`), signed and posted as Slack does.
    pub async fn event(&self, event: Value) -> Result<(), String> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "type": "event_callback", "event_id": format!("Ev0DEMO{n}"), "team_id": TEAM,
            "api_app_id": "A0SLIPWAY", "event_time": chrono::Utc::now().timestamp(), "event": event,
        });
        match self
            .post("/slack/events", body.to_string().into_bytes())
            .await?
        {
            (200, _) => Ok(()),
            (status, text) => Err(format!("the bridge answered HTTP {status}: {text}")),
        }
    }

    /// Type `line` (`/command text…`) as `user`; prints and returns the ack's text.
    pub async fn command(&self, user: &str, line: &str) -> Result<String, String> {
        let line = line.trim();
        let (command, text) = line.split_once(' ').unwrap_or((line, ""));
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = person(user).map_or(user.to_lowercase(), |p| p.github.to_string());
        let body = serde_urlencoded::to_string([
            ("token", "unused-verification-token"),
            ("team_id", TEAM),
            ("team_domain", "demo"),
            ("channel_id", CHANNEL),
            ("channel_name", "ops"),
            ("user_id", user),
            ("user_name", &name),
            ("command", command),
            ("text", text.trim()),
            ("api_app_id", "A0SLIPWAY"),
            ("response_url", &self.response_url(user)),
            ("trigger_id", &format!("demo.trigger.{n}")),
        ])
        .map_err(|e| e.to_string())?
        .into_bytes();
        let (status, text) = self.post("/slack/commands", body).await?;
        if status != 200 {
            return Err(format!("the bridge answered HTTP {status}: {text}"));
        }
        let ack: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        let ack_text = ack
            .get("text")
            .and_then(Value::as_str)
            .map_or_else(|| text.clone(), str::to_string);
        if !text.trim().is_empty() {
            let blocks = ack.get("blocks").cloned().unwrap_or(Value::Null);
            self.show(
                &format!("slipway · only visible to {user}"),
                &ack_text,
                &blocks,
                None,
            );
        }
        Ok(ack_text)
    }

    pub fn choice(&self, n: usize) -> Option<Choice> {
        self.shown().choices.get(&n).cloned()
    }

    /// The newest choice matching `f`, by number.
    pub fn find_choice(&self, f: impl Fn(&Choice) -> bool) -> Option<usize> {
        self.shown()
            .choices
            .iter()
            .rev()
            .find(|(_, c)| f(c))
            .map(|(n, _)| *n)
    }

    /// Click choice `n` as `user`.
    pub async fn click(&self, user: &str, n: usize) -> Result<(), String> {
        let choice = self
            .choice(n)
            .ok_or_else(|| format!("there is no button [{n}] on screen (any more)"))?;
        let b = &choice.button;
        let mut container = json!({"type": "message", "channel_id": CHANNEL});
        match &choice.message_ts {
            Some(ts) => container["message_ts"] = json!(ts),
            None => container["is_ephemeral"] = json!(true),
        }
        let k = self.seq.fetch_add(1, Ordering::Relaxed);
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user, "team_id": TEAM},
            "team": {"id": TEAM},
            "api_app_id": "A0SLIPWAY",
            "trigger_id": format!("demo.trigger.click.{k}"),
            "container": container,
            "channel": {"id": CHANNEL},
            "response_url": self.response_url(user),
            "actions": [{
                "type": "button",
                "action_id": b.action_id,
                "block_id": b.block_id,
                "value": b.value,
                "action_ts": chrono::Utc::now().timestamp().to_string(),
            }],
        });
        self.screen
            .line(format!("» {user} clicks [{n}] {}", b.label));
        let body = serde_urlencoded::to_string([("payload", payload.to_string())])
            .map_err(|e| e.to_string())?
            .into_bytes();
        let (status, text) = self.post("/slack/interactivity", body).await?;
        if status == 200 {
            Ok(())
        } else {
            Err(format!("the bridge answered HTTP {status}: {text}"))
        }
    }

    /// Draw a modal the bridge opened, as a box, with `footer` on its last line.
    pub fn show_modal(
        &self,
        view: &Value,
        footer: impl FnOnce(&plain::Modal) -> String,
    ) -> plain::Modal {
        let m = plain::modal(view);
        let mut out = vec![format!("┌─ {} (a dialog)", m.title)];
        out.extend(m.lines.iter().map(|l| format!("│ {l}")));
        out.push(format!("└─ {}", footer(&m)));
        self.screen.print(&out);
        m
    }

    /// Submit `view` as `user` with these input values (`plain::submission_values`).
    pub async fn submit(
        &self,
        user: &str,
        view: &Value,
        values: Value,
    ) -> Result<Submitted, String> {
        let payload = json!({
            "type": "view_submission",
            "user": {"id": user, "team_id": TEAM},
            "team": {"id": TEAM},
            "api_app_id": "A0SLIPWAY",
            "trigger_id": format!("demo.trigger.submit.{}", self.seq.fetch_add(1, Ordering::Relaxed)),
            "view": {
                "id": view["id"],
                "callback_id": view["callback_id"],
                "private_metadata": view["private_metadata"],
                "state": {"values": values},
            },
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())])
            .map_err(|e| e.to_string())?
            .into_bytes();
        let (status, text) = self.post("/slack/interactivity", body).await?;
        if status != 200 {
            return Err(format!("the bridge answered HTTP {status}: {text}"));
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if answer["response_action"] == "errors" {
            let errors = answer["errors"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            return Ok(Submitted::Errors(errors));
        }
        Ok(Submitted::Closed)
    }

    /// Render `text`/`blocks` under `header`; `ts`: the channel message it is (its buttons then
    /// carry the ts, and a new rendering replaces its old choices).
    fn show(&self, header: &str, text: &str, blocks: &Value, ts: Option<&str>) -> Vec<String> {
        let mut guard = self.shown();
        let shown = &mut *guard;
        // An edited message's buttons keep their numbers; the rest of its old ones go.
        let mut kept: HashMap<(String, Option<String>), usize> = HashMap::new();
        if let Some(ts) = ts {
            shown.choices.retain(|n, c| {
                if c.message_ts.as_deref() != Some(ts) {
                    return true;
                }
                kept.insert((c.button.action_id.clone(), c.button.value.clone()), *n);
                false
            });
        }
        let next = &mut shown.next_choice;
        // The renderer numbers buttons in order, once each.
        let mut assigned = Vec::new();
        let r = plain::message_numbered(text, blocks, &mut |b| {
            let n = kept
                .remove(&(b.action_id.clone(), b.value.clone()))
                .unwrap_or_else(|| {
                    let n = *next;
                    *next += 1;
                    n
                });
            assigned.push(n);
            n
        });
        for (n, button) in assigned.into_iter().zip(&r.buttons) {
            shown.choices.insert(
                n,
                Choice {
                    button: button.clone(),
                    message_ts: ts.map(str::to_string),
                },
            );
        }
        drop(guard);
        let mut lines = vec![format!("┌─ {header}")];
        lines.extend(r.lines.iter().map(|l| format!("│ {l}")));
        lines.push("└─".to_string());
        self.print(&lines);
        r.lines
    }

    /// Show whatever the bridge posted since the last call; returns modals it opened.
    pub fn poll(&self) -> Vec<Value> {
        let _one = slipway_infra::sync::lock(&self.polling);
        self.poll_messages();
        self.poll_ephemerals();
        self.poll_responses();
        let views = self.world.slack.views();
        let seen = std::mem::replace(&mut self.shown().views, views.len());
        views.into_iter().skip(seen).collect()
    }

    /// Channel messages, new or edited since last shown (an unchanged one is skipped), each
    /// under a stable label so replies and edits can point at it.
    fn poll_messages(&self) {
        for m in self
            .world
            .slack
            .messages()
            .iter()
            .filter(|m| m.channel == CHANNEL)
        {
            let previous = self.shown().messages.get(&m.ts).cloned();
            let preview = plain::message(&m.text, &m.blocks, 0).lines;
            if previous
                .as_ref()
                .is_some_and(|(_, lines)| *lines == preview)
            {
                continue;
            }
            let label = if let Some((label, _)) = &previous {
                label.clone()
            } else {
                let mut shown = self.shown();
                let l = format!("m{}", shown.next_label);
                shown.next_label += 1;
                l
            };
            let parent = m.thread_ts.as_ref().filter(|t| **t != m.ts).map(|t| {
                self.shown()
                    .messages
                    .get(t)
                    .map_or_else(|| t.clone(), |(l, _)| l.clone())
            });
            let header = match (&parent, previous.is_some()) {
                (Some(p), _) => format!("#ops · slipway · {label}, a reply in the thread of {p}"),
                (None, true) => format!("#ops · slipway · {label} (edited)"),
                (None, false) => format!("#ops · slipway · {label}"),
            };
            self.show(&header, &m.text, &m.blocks, Some(&m.ts));
            self.shown().messages.insert(m.ts.clone(), (label, preview));
        }
    }

    /// Ephemeral messages posted since the last poll (they are never edited).
    fn poll_ephemerals(&self) {
        let ephemerals = self.world.slack.ephemerals();
        let seen = std::mem::replace(&mut self.shown().ephemerals, ephemerals.len());
        for e in ephemerals.iter().skip(seen) {
            self.show(
                &format!("slipway · only visible to {}", e.user),
                &e.text,
                &e.blocks,
                None,
            );
        }
    }

    /// Answers posted to response URLs since the last poll, shown to the user whose action
    /// they answer; a device-flow code among them is entered on the emulated github.com.
    fn poll_responses(&self) {
        let responses = self.world.slack.responses();
        let seen = std::mem::replace(&mut self.shown().responses, responses.len());
        for r in responses.iter().skip(seen) {
            let user = self.shown().sinks.get(&r.id).cloned().unwrap_or_default();
            let text = r.body["text"].as_str().unwrap_or_default();
            let public = r.body["response_type"] == "in_channel";
            let header = if public {
                "#ops · slipway".to_string()
            } else {
                format!("slipway · only visible to {user}")
            };
            self.show(&header, text, &r.body["blocks"], None);
            self.authorize_device_code(&user, text);
        }
    }

    /// The GitHub side of `/slipway link github`: the person opens the emulated github.com,
    /// signs in as their account, and enters the code the bridge showed them.
    fn authorize_device_code(&self, user: &str, text: &str) {
        let Some(code) = text
            .split("enter the code *")
            .nth(1)
            .and_then(|rest| rest.split('*').next())
        else {
            return;
        };
        if !self.shown().authorized_codes.insert(code.to_string()) {
            return;
        }
        let Some(p) = person(user) else {
            return;
        };
        if self.world.github.authorize_device(code, p.github) {
            self.print(&[format!(
                "» (on the emulated github.com, {} signs in and enters {code})",
                p.github
            )]);
        }
    }

    /// Poll until nothing new has appeared for `quiet`, at most `max`.
    pub async fn settle(&self, quiet: Duration, max: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + max;
        let mut views = Vec::new();
        let mut last_change = tokio::time::Instant::now();
        let mut fingerprint = self.fingerprint();
        loop {
            views.extend(self.poll());
            let now = self.fingerprint();
            if now != fingerprint {
                fingerprint = now;
                last_change = tokio::time::Instant::now();
            }
            let t = tokio::time::Instant::now();
            if t >= deadline || t.duration_since(last_change) >= quiet {
                return views;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn fingerprint(&self) -> (usize, u32, usize, usize) {
        let s = &self.world.slack;
        let msgs = s.messages();
        (
            msgs.len(),
            msgs.iter().map(|m| m.updates).sum(),
            s.responses().len() + s.ephemerals().len(),
            s.views().len(),
        )
    }

    /// Poll until `f` holds (true) or `max` passes (false).
    pub async fn wait_for(&self, max: Duration, f: impl Fn(&World) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            self.poll();
            if f(&self.world) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The open and recent PRs, for `:prs`.
    pub fn pull_lines(&self) -> Vec<String> {
        let gh = &self.world.github;
        let pulls = gh.pulls(OWNER, REPO);
        if pulls.is_empty() {
            return vec![
                "No pull requests in acme/gitops yet. Try /deploy api staging --apply".into(),
            ];
        }
        let mut lines = vec![format!("Pull requests in {OWNER}/{REPO}:")];
        for p in pulls {
            let number = p["number"].as_u64().unwrap_or(0);
            let state = if p["merged"] == true {
                "merged"
            } else {
                p["state"].as_str().unwrap_or("?")
            };
            let sha = p["head"]["sha"].as_str().unwrap_or_default();
            let approval = gh.status(OWNER, REPO, sha, "slipway/approval").map_or_else(
                || "slipway/approval: (none)".to_string(),
                |s| {
                    format!(
                        "slipway/approval: {} ({})",
                        s["state"].as_str().unwrap_or("?"),
                        s["description"].as_str().unwrap_or_default()
                    )
                },
            );
            let reviews: Vec<String> = gh
                .reviews(OWNER, REPO, number)
                .iter()
                .map(|r| {
                    format!(
                        "{} {}",
                        r["user"]["login"].as_str().unwrap_or("?"),
                        r["state"].as_str().unwrap_or("?").to_lowercase()
                    )
                })
                .collect();
            lines.push(format!(
                "  #{number} [{state}] {}",
                p["title"].as_str().unwrap_or_default()
            ));
            lines.push(format!("      {approval}"));
            if !reviews.is_empty() {
                lines.push(format!("      reviews: {}", reviews.join(", ")));
            }
        }
        lines
    }
}
