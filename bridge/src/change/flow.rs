//! The three flows: dry-run (diff + Confirm), `--apply`/Confirm (open or advance the PR), and the
//! typed confirmation modal for destructive changes.

use std::sync::Arc;

use serde_json::json;
use slipway_core::command::ParsedCommand;
use slipway_core::policy::Decision;

use super::ChangeService;
use super::Render;
use super::compose::{render, slack_preview};
use super::pending::Pending;
use crate::ctx::Ctx;
use crate::error::Failure;
use crate::shared::{Refused, Ticket, UNAVAILABLE_MESSAGE as UNAVAILABLE};
use crate::slack::client::Message;
use crate::slack::events::SlashCommand;

use slipway_infra::sync::lock;

impl ChangeService {
    /// The ack for a `change`/`destructive` command: register it and queue the work on the
    /// worker pool, under the same limits as runs. No I/O here, apart from the shared queue's
    /// one round trip when replicas share state.
    pub async fn begin(
        self: &Arc<Self>,
        state: &Ctx,
        cmd: &SlashCommand,
        parsed: &ParsedCommand,
        d: &Decision<'_>,
        decision_audit_id: &str,
        gate: Option<&Ticket>,
    ) -> Result<String, Refused> {
        let now = state.clock.now();
        let expires_at = now
            + chrono::Duration::from_std(state.config.execution.pending_ttl)
                .unwrap_or_else(|_| chrono::Duration::minutes(15));
        let Some(p) = Pending::new(
            state.ids.next(),
            decision_audit_id,
            cmd,
            parsed,
            d,
            expires_at,
        ) else {
            state.gate.check(gate).await?;
            return Ok(
                ":warning: This change is missing its approval rule or identity; nothing was done."
                    .into(),
            );
        };
        let summary = p.approval_summary();
        let (svc, st) = (self.clone(), state.clone());
        if parsed.apply && p.expected_confirmation.is_some() {
            // Nothing is queued before the dialog: the gate's check is the ack's round trip.
            state.gate.check(gate).await?;
            let (token, trigger) = (p.token.clone(), cmd.trigger_id.clone());
            self.pending.insert(p, now);
            tokio::spawn(async move { svc.open_modal(&st, &token, &trigger).await });
            return Ok(format!(
                ":warning: `{}` is destructive: confirm it in the dialog by typing the resource name.",
                parsed.text
            ));
        }
        if parsed.apply {
            let user = p.requester.slack_user_id.clone();
            let work = async move { svc.open_and_report(&st, p).await };
            let report_to = cmd.response_url.clone();
            if let Some(busy) = Self::queue(state, report_to, user, Box::pin(work), gate).await? {
                return Ok(busy);
            }
            return Ok(format!(
                "Opening a pull request for `{}`; it needs {summary}…",
                parsed.text
            ));
        }
        let (user, token) = (p.requester.slack_user_id.clone(), p.token.clone());
        self.pending.insert(p, now);
        let t = token.clone();
        let work = async move { svc.dry_run(&st, &t).await };
        let report_to = cmd.response_url.clone();
        let queued = Self::queue(state, report_to, user, Box::pin(work), gate).await;
        if !matches!(queued, Ok(None)) {
            self.pending.remove(&token, now);
        }
        if let Some(busy) = queued? {
            return Ok(busy);
        }
        Ok(format!(
            "Dry run of `{}`: preparing the diff. Nothing changes until you confirm.",
            parsed.text
        ))
    }

    /// Queue a change step on the worker pool, settling the gate's deferred check in the same
    /// round trip; `Ok(Some(message))` when it is refused as busy.
    async fn queue(
        state: &Ctx,
        report_to: String,
        user: String,
        work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        gate: Option<&Ticket>,
    ) -> Result<Option<String>, Refused> {
        let task = crate::exec::queue::ChangeTask {
            id: state.ids.next(),
            user,
            report_to,
            work,
        };
        busy(state.runs.enqueue_change(task, gate, &state.metrics).await)
    }

    pub(super) async fn respond(&self, state: &Ctx, p: &Pending, msg: Message) {
        if p.response_url.is_empty() {
            return;
        }
        if let Err(e) = state.slack.respond(&p.response_url, &msg, false).await {
            tracing::warn!(error = %e, "response_url failed");
        }
    }

    /// Fetch and render against the default branch head. Rendering refuses with sentences
    /// written for the requester; fetching fails upstream.
    pub(super) async fn prepare(
        &self,
        state: &Ctx,
        p: &Pending,
    ) -> Result<(git2::Oid, Render), Failure> {
        let creds = self
            .git_credentials()
            .await
            .map_err(|e| Failure::upstream("Getting a GitHub token", e))?;
        let mirror = self.mirror.clone();
        let head = tokio::task::spawn_blocking(move || lock(&mirror).fetch(Some(&creds)))
            .await
            .map_err(|e| Failure::upstream_error("Fetching the GitOps repository", &e))?
            .map_err(|e| Failure::upstream_error("Fetching the GitOps repository", &e))?;
        self.vouch(p).await?;
        let render = render(self, state, p, head).await?;
        Ok((head, render))
    }

    async fn dry_run(&self, state: &Ctx, token: &str) {
        let Some(p) = self.pending.get(token, state.clock.now()) else {
            return;
        };
        let msg = match self.prepare(state, &p).await {
            Err(e) => {
                e.log(&p.decision_audit_id, "dry run");
                Message::text(format!(
                    ":x: Dry run of `{}`: {}",
                    p.text,
                    e.shown(&p.decision_audit_id)
                ))
            }
            Ok((_, r)) => {
                if r.pinned_image.is_some() {
                    // Confirm deploys what this dry run showed, even if the tag moves meanwhile.
                    let pinned = Pending {
                        pinned_image: r.pinned_image.clone(),
                        ..p.clone()
                    };
                    self.pending.insert(pinned, state.clock.now());
                }
                let (preview, cut) = slack_preview(&r.preview);
                let headline = format!(":mag: *Dry run* of `{}`: {}", p.text, r.title);
                let context = format!(
                    "Needs {} once opened · nothing changes until you confirm",
                    super::pending::summary(&p.binding(r.approval.as_ref()).approval)
                );
                let note = if cut {
                    "Diff truncated; the PR shows all of it."
                } else {
                    ""
                };
                let buttons = vec![
                    json!({"action_id": "slipway_confirm", "text": "Confirm: open the PR", "style": "primary", "value": p.token}),
                ];
                change_message(
                    &headline,
                    &context,
                    &preview,
                    note,
                    &buttons,
                    format!("Dry run of {}", p.text),
                )
            }
        };
        self.respond(state, &p, msg).await;
    }

    /// The Confirm button: only the requester may press it. It uses the dry run up: a second
    /// click finds nothing.
    pub async fn confirm(
        self: &Arc<Self>,
        state: &Ctx,
        token: &str,
        clicker: &str,
        trigger_id: &str,
        response_url: Option<&str>,
    ) {
        let now = state.clock.now();
        let refusal = match self.pending.get(token, now) {
            None => {
                Some("That dry run has expired or was already confirmed; run the command again.")
            }
            Some(p) if p.requester.slack_user_id != clicker => {
                Some("Only the person who asked for this change can confirm it.")
            }
            Some(p) if p.expected_confirmation.is_some() => {
                self.open_modal(state, token, trigger_id).await;
                None
            }
            Some(_) => {
                let Some(p) = self.pending.remove(token, now) else {
                    return;
                };
                let (svc, st) = (self.clone(), state.clone());
                let user = p.requester.slack_user_id.clone();
                let (back, report_to) = (p.clone(), p.response_url.clone());
                let work = async move { svc.open_and_report(&st, p).await };
                let queued = Self::queue(state, report_to, user, Box::pin(work), None).await;
                if let Some(busy) = queued.unwrap_or_else(|_| Some(UNAVAILABLE.into())) {
                    self.pending.insert(back, now);
                    reply(state, response_url, &busy).await;
                }
                None
            }
        };
        if let Some(why) = refusal {
            reply(state, response_url, why).await;
        }
    }

    async fn open_modal(&self, state: &Ctx, token: &str, trigger_id: &str) {
        let Some(p) = self.pending.get(token, state.clock.now()) else {
            return;
        };
        let expected = p.expected_confirmation.clone().unwrap_or_default();
        let view = crate::templates::render_json(
            "blocks/confirm_destructive.json.j2",
            minijinja::context! {
                token,
                summary => format!(":warning: `{}` deletes or evicts `{expected}` {}.", p.text, p.target.describe()),
                hint => format!("Type {expected} exactly"),
            },
        );
        let result = match view {
            Ok(v) => state
                .slack
                .open_view(trigger_id, v)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "views.open failed");
            self.respond(
                state,
                &p,
                Message::text(
                    ":x: Couldn't open the confirmation dialog (Slack refused it); run the command again."
                        .to_string(),
                ),
            )
            .await;
        }
    }

    /// The modal's submission, answered inline (an `Invalid` message shows on the input
    /// field). Shared, the gate's deferred check, the change step's slot and taking the change
    /// (`GETDEL`) are one round trip; a refused submission puts the change back after the ack.
    pub async fn submit_confirmation(
        self: &Arc<Self>,
        state: &Ctx,
        token: &str,
        clicker: &str,
        typed: &str,
        gate: Option<&Ticket>,
    ) -> Submitted {
        let (now, id) = (state.clock.now(), state.ids.next());
        let shared = self.pending.shared_take(token);
        let reserved = shared.is_some();
        let found = match shared {
            None => self.pending.remove(token, now),
            Some((key, staged)) => match self.reserve(state, &id, clicker, gate, key, staged).await
            {
                Ok(p) => p,
                Err(refused) => return refused,
            },
        };
        let checked = match found {
            None => Err(
                "This confirmation has expired or was already submitted; run the command again."
                    .to_string(),
            ),
            Some(mut p) => match confirm_as(&mut p, clicker, typed) {
                Ok(()) => Ok(p),
                Err(why) => {
                    self.pending.insert(p, now);
                    Err(why)
                }
            },
        };
        let p = match checked {
            Ok(p) => p,
            Err(why) => {
                if reserved {
                    give_back(state, &id, clicker);
                }
                return Submitted::Invalid(why);
            }
        };
        let (svc, st) = (self.clone(), state.clone());
        let (user, back, report_to) = (clicker.to_string(), p.clone(), p.response_url.clone());
        let work = Box::pin(async move { svc.open_and_report(&st, p).await });
        let busy = if reserved {
            state.runs.report_change_to(&id, &user, &report_to);
            let task = crate::exec::queue::ChangeTask {
                id,
                user,
                report_to,
                work,
            };
            let started = state.runs.start_change(task, &state.metrics).await;
            busy(started).unwrap_or_else(|_| Some(UNAVAILABLE.into()))
        } else {
            Self::queue(state, report_to, user, work, None)
                .await
                .unwrap_or_else(|_| Some(UNAVAILABLE.into()))
        };
        match busy {
            None => Submitted::Done,
            Some(why) => {
                self.pending.insert(back, now);
                Submitted::Invalid(why)
            }
        }
    }

    /// Shared only: the gate's check, the step's slot and the change itself (from this
    /// replica's unwritten ones, or taken from Redis), in the ack's one round trip.
    async fn reserve(
        &self,
        state: &Ctx,
        id: &str,
        clicker: &str,
        gate: Option<&Ticket>,
        key: String,
        staged: Option<Pending>,
    ) -> Result<Option<Pending>, Submitted> {
        let now = state.clock.now();
        let take = staged.is_none().then_some(key.as_str());
        match state.runs.reserve_change(id, clicker, "", gate, take).await {
            Ok(raw) => Ok(staged
                .filter(|p| p.expires_at > now)
                .or_else(|| raw.and_then(|r| self.pending.taken(r, now)))),
            Err(refused) => {
                if let Some(p) = staged {
                    self.pending.insert(p, now);
                }
                match busy(refused) {
                    Ok(None) => Ok(None),
                    Ok(Some(why)) => Err(Submitted::Invalid(why)),
                    Err(r) => Err(Submitted::Refused(r)),
                }
            }
        }
    }

    async fn open_and_report(self: Arc<Self>, state: &Ctx, p: Pending) {
        let opened = self.open_pr(state, &p).await;
        if let Ok((pr, cr)) = opened {
            // The approvers' DMs after the request's own work: it doesn't wait for them.
            let st = state.clone();
            tokio::spawn(async move { self.tell_approvers(&st, &pr, &cr).await });
            return;
        }
        if let Err(e) = opened {
            e.log(&p.decision_audit_id, "opening a change request");
            self.respond(
                state,
                &p,
                Message::text(format!(
                    ":x: Couldn't open a pull request for `{}`: {}",
                    p.text,
                    e.shown(&p.decision_audit_id)
                )),
            )
            .await;
        }
    }
}

pub(crate) fn change_message(
    headline: &str,
    context: &str,
    diff: &str,
    note: &str,
    buttons: &[serde_json::Value],
    fallback: String,
) -> Message {
    match crate::templates::render_blocks(
        "blocks/change.json.j2",
        minijinja::context! { headline, context, diff, note, buttons => minijinja::value::Serde(buttons) },
    ) {
        Ok(blocks) => Message {
            text: fallback,
            blocks,
        },
        Err(e) => {
            tracing::error!(error = %e, "rendering the change message");
            Message::text(fallback)
        }
    }
}

async fn reply(state: &Ctx, url: Option<&str>, text: &str) {
    if let Some(u) = url.filter(|u| !u.is_empty())
        && let Err(e) = state.slack.respond(u, &Message::text(text), false).await
    {
        tracing::warn!(error = %e, "response_url failed");
    }
}

/// How a confirmation modal's submission went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The change request is being opened.
    Done,
    /// Shown on the input field; nothing was done.
    Invalid(String),
    /// The gate refused the submission (a replay, a retry, no shared state).
    Refused(Refused),
}

/// Mark the change confirmed by `clicker` typing `typed`, or say why not.
fn confirm_as(p: &mut Pending, clicker: &str, typed: &str) -> Result<(), String> {
    if p.requester.slack_user_id != clicker {
        return Err("Only the person who asked for this change can confirm it.".into());
    }
    let expected = p.expected_confirmation.clone().unwrap_or_default();
    if typed.trim() != expected {
        return Err(format!("Type `{expected}` exactly to confirm."));
    }
    p.confirmation = Some(typed.trim().to_string());
    Ok(())
}

/// Free a reserved change step's slot after the ack.
fn give_back(state: &Ctx, id: &str, user: &str) {
    let (st, id, user) = (state.clone(), id.to_string(), user.to_string());
    tokio::spawn(async move { st.runs.change_done(&id, &user).await });
}

/// What a queue answer means for a change step: go on (`None`), a message saying why not, or
/// the gate's refusal. A pending change gone meanwhile is `Ok(None)` for the caller to word.
fn busy(e: crate::exec::queue::Enqueued) -> Result<Option<String>, Refused> {
    use crate::exec::queue::Enqueued;
    match e {
        Enqueued::Ok | Enqueued::Gone => Ok(None),
        Enqueued::UserBusy(n) => Ok(Some(format!(
            ":hourglass: You already have {n} command(s) or change(s) in progress; wait for one to finish, then try again."
        ))),
        Enqueued::Full => Ok(Some(
            ":hourglass: Slipway is busy right now; nothing was done. Try again in a minute."
                .into(),
        )),
        Enqueued::Replayed => Err(Refused::Replayed),
        Enqueued::Duplicate => Err(Refused::Duplicate),
        Enqueued::Unavailable => Err(Refused::Unavailable),
    }
}
