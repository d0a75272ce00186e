//! `/silence`: create, list and expire Alertmanager silences through the v2 API.
//!
//! `createdBy` is always the resolved identity's subject, never user text. A new silence's
//! comment links to its Slack run message (posted first, then `chat.getPermalink`). Only the
//! creator or an owner may expire a silence. Durations were already bounded by policy.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use slipway_core::redact::redactor;
use slipway_infra::exec::ExecEnd;
use tokio_util::sync::CancellationToken;

use super::alertmanager::{Alert, Alertmanager, ApiError, Matcher, NewSilence, Silence};
use super::outcome::{self as work, Context, Finished};
use crate::base::Base;

/// The role that may expire anyone's silence (as it may cancel anyone's run).
pub const OWNER_ROLE: &str = "owner";

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create {
        matchers: Vec<Matcher>,
        duration: Duration,
        comment: Option<String>,
    },
    List,
    Expire {
        id: String,
    },
}

/// A `/silence` ready to run against one Alertmanager.
#[derive(Debug, Clone)]
pub struct SilenceWork {
    pub env: String,
    pub url: String,
    pub action: Action,
    /// The requester's identity subject: `createdBy`, and whom expiry compares with.
    pub subject: String,
    pub is_owner: bool,
    pub timeout: Duration,
}

impl SilenceWork {
    /// How the command is shown to people, word by word.
    pub fn shown(&self) -> Vec<String> {
        let mut words = vec!["silence".to_string()];
        match &self.action {
            Action::Create {
                matchers, duration, ..
            } => {
                words.extend(matchers.iter().map(Matcher::to_text));
                words.push("for".into());
                words.push(humantime::format_duration(*duration).to_string());
            }
            Action::List => words.push("list".into()),
            Action::Expire { id } => words.extend(["expire".to_string(), id.clone()]),
        }
        words
    }

    pub async fn run(self, state: &Base, ctx: Context, cancel: CancellationToken) -> Finished {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let am = Alertmanager::new(&self.url);
        let done = work::bounded(&cancel, deadline, self.act(state, &ctx, &am, started)).await;
        let finished = match done {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                tracing::warn!(error = ?e, env = %self.env, "an Alertmanager call failed");
                let hint = match &e {
                    ApiError::Unreachable(_) => format!(
                        " Check that Alertmanager for `{}` is up, or ask {}.",
                        self.env,
                        state.policy().support()
                    ),
                    _ => String::new(),
                };
                let text = format!("{e}.{hint}");
                Finished::api(ExecEnd::SpawnFailed(e.to_string()), &text, started)
                    .with_outcome(format!("failed: {}", redactor().redact(&e.to_string())))
            }
            Err(end) => Finished::api(end, "", started),
        };
        finished.with_detail("env", self.env.as_str())
    }

    async fn act(
        &self,
        state: &Base,
        ctx: &Context,
        am: &Alertmanager,
        started: Instant,
    ) -> Result<Finished, ApiError> {
        match &self.action {
            Action::Create {
                matchers,
                duration,
                comment,
            } => {
                self.create(
                    state,
                    ctx,
                    am,
                    matchers,
                    *duration,
                    comment.as_deref(),
                    started,
                )
                .await
            }
            Action::List => self.list(am, started).await,
            Action::Expire { id } => self.expire(am, id, started).await,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        state: &Base,
        ctx: &Context,
        am: &Alertmanager,
        matchers: &[Matcher],
        duration: Duration,
        comment: Option<&str>,
        started: Instant,
    ) -> Result<Finished, ApiError> {
        let (text, permalink) = comment_with_link(state, ctx, comment).await;
        let starts_at = state.clock.now();
        let ends_at = chrono::Duration::from_std(duration)
            .ok()
            .and_then(|d| starts_at.checked_add_signed(d))
            .ok_or_else(|| ApiError::BadAnswer("the duration is out of range".into()))?;
        let silence = NewSilence {
            matchers: matchers.to_vec(),
            starts_at,
            ends_at,
            created_by: self.subject.clone(),
            comment: text,
        };
        let id = am.create_silence(&silence).await?;
        let (alerts, alerts_note) = match am.alerts().await {
            Ok(alerts) => (alerts, String::new()),
            Err(e) => {
                tracing::warn!(error = ?e, "listing alerts after a silence");
                (Vec::new(), format!(" (could not list alerts: {e})"))
            }
        };
        let suppressed = silenced_by(&alerts, &id);
        let mut out = format!(
            "Silence {id}\nMatchers: {}\nFrom {} until {} ({})\nCreated by: {}\nComment: {}\n",
            matcher_list(&silence.matchers),
            stamp(starts_at),
            stamp(ends_at),
            humantime::format_duration(duration),
            silence.created_by,
            silence.comment
        );
        let _ = write!(
            out,
            "Suppressing now: {}{alerts_note}",
            alert_list(&suppressed)
        );
        let n = suppressed.len();
        Ok(Finished::api(ExecEnd::Exited(0), &out, started)
            .with_outcome(format!(
                "created silence `{id}` until {} ({n} alert{} suppressed now)",
                stamp(ends_at),
                if n == 1 { "" } else { "s" }
            ))
            .with_detail("silence_id", id)
            .with_detail("ends_at", ends_at.to_rfc3339())
            .with_detail("suppressed_alerts", n)
            .with_detail("permalink", permalink))
    }

    async fn list(&self, am: &Alertmanager, started: Instant) -> Result<Finished, ApiError> {
        let mut silences: Vec<Silence> = am
            .silences()
            .await?
            .into_iter()
            .filter(|s| s.status.state != "expired")
            .collect();
        silences.sort_by_key(|s| s.ends_at);
        let alerts = am.alerts().await?;
        let mut entries = Vec::new();
        for s in &silences {
            let hits = silenced_by(&alerts, &s.id);
            let from = if s.status.state == "pending" {
                format!("from {} ", stamp(s.starts_at))
            } else {
                String::new()
            };
            entries.push(format!(
                "{}  {}  {from}until {}  by {}\n  {}\n  suppressing {}\n  comment: {}",
                s.id,
                s.status.state,
                stamp(s.ends_at),
                s.created_by,
                matcher_list(&s.matchers),
                alert_list(&hits),
                s.comment.lines().next().unwrap_or("")
            ));
        }
        let mut out = entries.join("\n\n");
        if silences.is_empty() {
            let _ = write!(out, "No active or pending silences in {}.", self.env);
        }
        let n = silences.len();
        let ids: Vec<&str> = silences.iter().map(|s| s.id.as_str()).collect();
        Ok(Finished::api(ExecEnd::Exited(0), &out, started)
            .with_outcome(format!(
                "listed {n} active or pending silence{}",
                if n == 1 { "" } else { "s" }
            ))
            .with_detail("silence_ids", ids))
    }

    async fn expire(
        &self,
        am: &Alertmanager,
        id: &str,
        started: Instant,
    ) -> Result<Finished, ApiError> {
        let refuse = |outcome: String, text: String| {
            Finished::api(ExecEnd::Exited(1), &text, started)
                .with_outcome(outcome)
                .with_detail("silence_id", id)
        };
        let Some(s) = am.silence(id).await? else {
            return Ok(refuse(
                format!(
                    "failed: there is no silence `{id}` in Alertmanager {}",
                    self.env
                ),
                format!(
                    "Alertmanager {} has no silence {id}. `/silence list` shows the current ones.",
                    self.env
                ),
            ));
        };
        if s.status.state == "expired" {
            return Ok(Finished::api(
                ExecEnd::Exited(0),
                &format!("Silence {id} had already expired at {}.", stamp(s.ends_at)),
                started,
            )
            .with_outcome(format!(
                "found silence `{id}` already expired; nothing to do"
            ))
            .with_detail("silence_id", id));
        }
        if s.created_by != self.subject && !self.is_owner {
            return Ok(refuse(
                format!(
                    "was refused: silence `{id}` was created by {}",
                    s.created_by
                ),
                format!(
                    "Silence {id} was created by {}. Only its creator or an owner can expire it; ask them, or an owner.",
                    s.created_by
                ),
            ));
        }
        am.expire(id).await?;
        Ok(Finished::api(
            ExecEnd::Exited(0),
            &format!(
                "Silence {id} expired.\nMatchers: {}\nCreated by: {}",
                matcher_list(&s.matchers),
                s.created_by
            ),
            started,
        )
        .with_outcome(format!(
            "expired silence `{id}` (created by {})",
            s.created_by
        ))
        .with_detail("silence_id", id)
        .with_detail("created_by", s.created_by))
    }
}

/// The new silence's comment: the person's (redacted) or a default, then the Slipway run and a
/// link to its Slack message, so whoever finds the silence in Alertmanager can trace it back.
/// Returns the comment and the link, if Slack gave one.
async fn comment_with_link(
    state: &Base,
    ctx: &Context,
    comment: Option<&str>,
) -> (String, Option<String>) {
    let mut ctx = ctx.clone();
    let permalink = match ctx.message_ts().await {
        Some(ts) => match state.slack.permalink(&ctx.channel, &ts).await {
            Ok(link) => Some(link),
            Err(e) => {
                tracing::warn!(error = %e, "no permalink for a silence comment");
                None
            }
        },
        None => None,
    };
    let mut text = comment.map_or_else(
        || "Silenced from Slack".to_string(),
        |c| redactor().redact(c),
    );
    let _ = write!(text, " (Slipway run {}", ctx.run_id);
    if let Some(link) = &permalink {
        let _ = write!(text, ": {link}");
    }
    text.push(')');
    (text, permalink)
}

/// Matchers as people type them, space-separated.
fn matcher_list(matchers: &[Matcher]) -> String {
    matchers
        .iter()
        .map(Matcher::quoted)
        .collect::<Vec<_>>()
        .join(" ")
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn silenced_by<'a>(alerts: &'a [Alert], id: &str) -> Vec<&'a Alert> {
    alerts
        .iter()
        .filter(|a| a.status.silenced_by.iter().any(|s| s == id))
        .collect()
}

fn alert_list(alerts: &[&Alert]) -> String {
    match alerts.len() {
        0 => "no alerts".into(),
        n => {
            let mut names: Vec<String> = alerts.iter().take(5).map(|a| a.describe()).collect();
            if n > 5 {
                names.push(format!("and {} more", n - 5));
            }
            format!(
                "{n} alert{}: {}",
                if n == 1 { "" } else { "s" },
                names.join(", ")
            )
        }
    }
}
