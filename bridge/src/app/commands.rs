//! `POST /slack/commands`: the ack path. Verify (extractor), parse, resolve identity, evaluate,
//! audit, enqueue, and answer with an ephemeral message, all without waiting on any backend.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use slipway_core::audit::{Actor, AuditRecord, CommandInfo, EventKind};
use slipway_core::command::kubectl::KindScopes;
use slipway_core::command::{Command, ParsedCommand, parse};
use slipway_core::policy::{Decision, Identity, Outcome, SlackUser, decide_as};

use super::AppState;
use super::ingress::Signed;
use crate::exec::queue::{Enqueued, Job, WireJob};
use crate::identity::Resolved;
use crate::shared::{Refused, Ticket};
use crate::slack::client::Message;
use crate::slack::events::{CommandBody, SlashCommand, parse_command};

/// An ephemeral reply (only the requester sees it).
pub fn ephemeral(text: impl Into<String>) -> Json<serde_json::Value> {
    Json(json!({ "response_type": "ephemeral", "text": text.into() }))
}

pub async fn slash_command(State(state): State<AppState>, signed: Signed) -> Response {
    let started = Instant::now();
    if signed.ssl_check {
        state.metrics.request("commands", "ssl_check");
        return StatusCode::OK.into_response();
    }
    if !signed.fresh {
        // The same trigger delivered again (to this or another replica): handled once.
        state.metrics.request("commands", "duplicate");
        return ephemeral(crate::shared::ALREADY_RECEIVED).into_response();
    }
    let cmd = match parse_command(&signed.body) {
        Ok(CommandBody::Command(c)) => *c,
        Ok(CommandBody::SslCheck) => return StatusCode::OK.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "malformed slash command body");
            state.metrics.request("commands", "malformed");
            return (StatusCode::BAD_REQUEST, "malformed slash command").into_response();
        }
    };
    let reply = match handle(&state, cmd, signed.ticket).await {
        Ok(reply) => reply.into_response(),
        Err(Refused::Replayed) => StatusCode::UNAUTHORIZED.into_response(),
        Err(Refused::Duplicate) => ephemeral(crate::shared::ALREADY_RECEIVED).into_response(),
        Err(Refused::Unavailable) => super::ingress::unavailable_response("commands"),
    };
    state
        .metrics
        .ack_latency
        .observe(started.elapsed().as_secs_f64());
    reply
}

/// Decide and answer one slash command (shared by HTTP and Socket Mode). `ticket` is the
/// gate's deferred check (shared state only): a command that queues work settles it in the
/// queue's own script, any other settles it before it is audited, so the ack makes one Redis
/// round trip either way.
pub async fn handle(
    state: &AppState,
    cmd: SlashCommand,
    ticket: Option<Ticket>,
) -> Result<Json<serde_json::Value>, Refused> {
    // One policy for the whole request, even if a reload lands meanwhile.
    let policy = state.policy();
    let parsed = parse(&cmd.command, &cmd.text);
    let who = state.who(&cmd.user).await;
    let scopes = kind_scopes(state, &cmd.user, who.identity(), &parsed);
    let decision = judged(
        decide_as(&policy, &cmd.user, who.identity(), &parsed, &scopes),
        &who,
        policy.support(),
    );
    let decision = scoped(&policy, decision, &parsed, &cmd.channel_id);
    let (decision, overridden) =
        crate::change::freeze::at_ack(&policy, decision, &parsed, state.clock.now());
    let decision = match &parsed {
        Ok(p) => crate::change::rollback::lowered(&policy, p, decision),
        Err(_) => decision,
    };
    if !queues_work(state, &parsed, &decision) {
        super::ingress::settle(state, "commands", ticket.as_ref()).await?;
    }
    let record = decision_record(state, &cmd, &parsed, &decision, overridden);
    // Fail closed: if the audit trail can't be written, nothing runs.
    let Ok(record) = state.record(record, "the command, so it is refused").await else {
        state.metrics.request("commands", "audit_unavailable");
        return Ok(ephemeral(format!(
            "Slipway can't write its audit trail right now, so nothing was run. Please tell {}.",
            policy.support()
        )));
    };
    let Ok(parsed) = &parsed else {
        state.metrics.request("commands", "denied");
        state.metrics.refused(&decision.rule);
        return Ok(refusal(&cmd, format!(":no_entry: {}", decision.reason)));
    };
    if let Command::Slipway(meta) = &parsed.command {
        state.metrics.request("commands", "meta");
        return Ok(ephemeral(super::meta::reply(
            state, &cmd, meta, &decision, &who,
        )));
    }
    let gate = ticket.as_ref();
    match decision.outcome {
        Outcome::Deny => {
            state.metrics.request("commands", "denied");
            state.metrics.refused(&decision.rule);
            Ok(refusal(&cmd, format!(":no_entry: {}", decision.reason)))
        }
        Outcome::Approval => {
            state.metrics.request("commands", "change");
            let Some(svc) = &state.change else {
                return Ok(no_gitops(parsed, &decision, policy.support()));
            };
            let begun = svc.begin(state, &cmd, parsed, &decision, &record.event_id, gate);
            match begun.await {
                Ok(reply) => Ok(ephemeral(reply)),
                Err(r) => Err(refused_after_audit(state, &cmd, r, &record.event_id).await),
            }
        }
        Outcome::Allow => enqueue(state, &cmd, parsed, &decision, &record.event_id, gate).await,
    }
}

/// Whether the command's ack queues work (a read, a change step), whose admission script then
/// settles the gate's check.
fn queues_work(
    state: &AppState,
    parsed: &Result<ParsedCommand, slipway_core::command::ParseError>,
    decision: &Decision<'_>,
) -> bool {
    let Ok(p) = parsed else { return false };
    !matches!(p.command, Command::Slipway(_))
        && match decision.outcome {
            Outcome::Allow => true,
            Outcome::Approval => state.change.is_some(),
            Outcome::Deny => false,
        }
}

/// The Explain button's action id on denials and errors; its value is the command line.
pub const EXPLAIN_BUTTON: &str = "slipway_explain_decision";
/// Slack's button value limit.
const VALUE_MAX: usize = 2000;
/// Slack's section text limit, less a margin.
pub(super) const SECTION: usize = 2900;

/// The Explain button for a denial of `line`, or `None` if the line can't fit its value.
fn explain_button(line: &str) -> Option<serde_json::Value> {
    let line = line.trim();
    if line.is_empty() || line.len() > VALUE_MAX {
        return None;
    }
    Some(
        json!({"type": "actions", "block_id": "slipway_explain", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Explain"},
             "action_id": EXPLAIN_BUTTON, "value": line}
        ]}),
    )
}

/// A command through the slash-command pipeline (parse, identity, policy, audit, queue) as its
/// `user`; the ack's answer as a message. The request was admitted (signature, replay, dedupe)
/// before its ack, so no gate ticket is left to settle.
pub(super) async fn pipeline(state: &AppState, cmd: SlashCommand) -> Message {
    match handle(state, cmd, None).await {
        Ok(axum::Json(v)) => Message {
            text: v["text"].as_str().unwrap_or_default().to_string(),
            blocks: v["blocks"].as_array().cloned().unwrap_or_default(),
        },
        Err(_) => Message::text(crate::shared::UNAVAILABLE_MESSAGE),
    }
}

/// An ephemeral answer through a `response_url`, if there is one.
pub(super) async fn reply(state: &AppState, url: Option<&str>, msg: Message) {
    if let Some(url) = url.filter(|u| !u.is_empty())
        && let Err(e) = state.slack.respond(url, &msg, false).await
    {
        tracing::warn!(error = %e, "response_url failed");
    }
}

/// A denial or an error, ephemeral, with the Explain button: message shortcuts don't reach
/// ephemeral messages, so the policy's explanation is one click away on the message itself.
fn refusal(cmd: &SlashCommand, text: String) -> Json<serde_json::Value> {
    let line = format!("{} {}", cmd.command, cmd.text);
    let Some(button) = explain_button(&line) else {
        return ephemeral(text);
    };
    let section: String = text.chars().take(SECTION).collect();
    Json(json!({
        "response_type": "ephemeral",
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": section}}, button],
    }))
}

fn no_gitops(
    parsed: &ParsedCommand,
    decision: &Decision<'_>,
    support: &str,
) -> Json<serde_json::Value> {
    ephemeral(format!(
        ":memo: `{}` is a change: it needs a reviewed pull request ({}). \
         This bridge has no GitOps repository configured, so nothing was done; ask {support}.",
        parsed.text, decision.reason,
    ))
}

/// The decision was recorded, then the queue's script refused the request as a replay, a
/// retry or for want of Redis: say so in the trail (at most once per replica for a replay:
/// each refuses a replay it has seen before anything is recorded).
async fn refused_after_audit(
    state: &AppState,
    cmd: &SlashCommand,
    r: Refused,
    audit_id: &str,
) -> Refused {
    let why = match r {
        Refused::Replayed => "not queued: a replay of a request another replica accepted",
        Refused::Duplicate => "not queued: a retry of a request already handled",
        Refused::Unavailable => {
            "not queued: the shared state (Redis) was unreachable; nothing was run"
        }
    };
    not_queued(state, cmd, audit_id, why).await;
    super::ingress::refused(state, "commands", r)
}

/// The `Decision` audit record of a command, parsed or not, with the freeze override it carries.
fn decision_record(
    state: &AppState,
    cmd: &SlashCommand,
    parsed: &Result<ParsedCommand, slipway_core::command::ParseError>,
    decision: &Decision<'_>,
    overridden: Option<slipway_core::change::FreezeOverride>,
) -> AuditRecord {
    let record = AuditRecord::new(EventKind::Decision, state.ids.next(), state.clock.now())
        .with_actor(Actor::slack(&cmd.user, decision.identity, decision.role))
        .with_command(match parsed {
            Ok(p) => CommandInfo::from_parsed(p),
            Err(_) => CommandInfo {
                text: format!("{} {}", cmd.command, cmd.text).trim().to_string(),
                family: None,
                argv: None,
            },
        })
        .with_policy_decision(decision);
    match overridden {
        Some(o) => record.with_details(json!({ "freeze_override": o })),
        None => record,
    }
}

/// A person the IdP or Slack switched off is denied whatever their groups say, with who did it;
/// an unknown one hears how to become someone.
fn judged<'a>(mut d: Decision<'a>, who: &Resolved, support: &str) -> Decision<'a> {
    match who {
        Resolved::Refused(reason) => {
            d.outcome = Outcome::Deny;
            d.rule = "identity.refused".to_string();
            d.reason = format!("{reason}. If that is wrong, ask {support}.");
            d.approval = None;
        }
        Resolved::Unknown(Some(hint)) if d.outcome == Outcome::Deny => {
            d.reason = format!("{} To be recognised, {hint}.", d.reason);
        }
        _ => {}
    }
    d
}

/// The policy's `channels` scoping for where the command was typed.
fn scoped<'a>(
    policy: &slipway_core::policy::Policy,
    d: Decision<'a>,
    parsed: &Result<ParsedCommand, slipway_core::command::ParseError>,
    channel: &str,
) -> Decision<'a> {
    match parsed {
        Ok(p) => policy.scoped_to(d, p.family(), channel),
        Err(_) => d,
    }
}

/// What discovery knows of the kinds on the cluster a kubectl command goes to (in memory: the ack
/// does no I/O).
fn kind_scopes(
    state: &AppState,
    user: &SlackUser,
    identity: Option<&Identity>,
    parsed: &Result<ParsedCommand, slipway_core::command::ParseError>,
) -> std::sync::Arc<KindScopes> {
    let builtin = || std::sync::Arc::new(KindScopes::builtin().clone());
    let Ok(p) = parsed else { return builtin() };
    if !matches!(p.command, Command::Kubectl(_)) {
        return builtin();
    }
    match decide_as(
        &state.policy(),
        user,
        identity,
        parsed,
        KindScopes::builtin(),
    )
    .target
    {
        slipway_core::command::Target::Cluster {
            cluster: Some(c), ..
        } => state.discovery.scopes(&c),
        _ => builtin(),
    }
}

/// Turn a queued command back into a job on the replica that took it from the shared queue:
/// judge it again under this replica's policy (whoever can write to Redis can't make it run
/// what policy wouldn't) and build its work here. The run id and the audited decision it
/// carries are kept.
pub async fn rebuild(state: &AppState, wire: WireJob) -> Result<Job, String> {
    let cmd = SlashCommand {
        command: wire.command,
        text: wire.text,
        user: SlackUser {
            user_id: wire.user_id,
            team_id: wire.team_id,
            enterprise_id: wire.enterprise_id,
        },
        user_name: wire.user_name,
        channel_id: wire.channel,
        response_url: wire.response_url,
        trigger_id: String::new(),
        thread_ts: wire.thread_ts,
    };
    let policy = state.policy();
    let parsed = parse(&cmd.command, &cmd.text);
    let who = state.who(&cmd.user).await;
    let scopes = kind_scopes(state, &cmd.user, who.identity(), &parsed);
    let decision = judged(
        decide_as(&policy, &cmd.user, who.identity(), &parsed, &scopes),
        &who,
        policy.support(),
    );
    let decision = scoped(&policy, decision, &parsed, &cmd.channel_id);
    let Ok(parsed) = &parsed else {
        return Err("The queued command no longer parses.".into());
    };
    if decision.outcome != Outcome::Allow || matches!(parsed.command, Command::Slipway(_)) {
        return Err(format!(
            "`{}` was queued but policy no longer lets it run: {}.",
            parsed.text, decision.reason
        ));
    }
    let mut job = build_job(state, &cmd, parsed, &decision, &wire.decision_audit_id)?;
    job.id = wire.id;
    Ok(job)
}

/// The job for an allowed read, or why its work can't be built here.
fn build_job(
    state: &AppState,
    cmd: &SlashCommand,
    parsed: &ParsedCommand,
    decision: &Decision<'_>,
    audit_id: &str,
) -> Result<Job, String> {
    let mut spec =
        crate::exec::targets::exec_spec(state, parsed, decision, super::stack_source(state))?;
    let subject = decision
        .identity
        .map(|i| i.subject.clone())
        .unwrap_or_default();
    spec.exec.set_requester(&crate::exec::creds::Requester {
        subject: subject.clone(),
        slack_user: cmd.user.user_id.clone(),
        decision: audit_id.to_string(),
    });
    Ok(Job {
        id: state.ids.next(),
        requester: cmd.user.clone(),
        subject,
        role: decision.role.unwrap_or("unknown role").to_string(),
        channel: cmd.channel_id.clone(),
        response_url: cmd.response_url.clone(),
        text: parsed.text.clone(),
        shown: crate::exec::reply::shown_command(&spec.argv_shown),
        target: decision.target.describe(),
        tier: decision.tier,
        decision_audit_id: audit_id.to_string(),
        spec: spec.exec,
        visibility: decision.visibility,
        protected: decision.protected,
        retried: false,
        thread_ts: cmd.thread_ts.clone(),
    })
}

/// What goes into the shared queue for `job`: the command as Slack sent it.
fn wire(cmd: &SlashCommand, job: &Job) -> WireJob {
    WireJob {
        id: job.id.clone(),
        command: cmd.command.clone(),
        text: cmd.text.clone(),
        user_id: cmd.user.user_id.clone(),
        team_id: cmd.user.team_id.clone(),
        enterprise_id: cmd.user.enterprise_id.clone(),
        user_name: cmd.user_name.clone(),
        channel: cmd.channel_id.clone(),
        response_url: cmd.response_url.clone(),
        decision_audit_id: job.decision_audit_id.clone(),
        thread_ts: cmd.thread_ts.clone(),
    }
}

async fn enqueue(
    state: &AppState,
    cmd: &SlashCommand,
    parsed: &ParsedCommand,
    decision: &Decision<'_>,
    audit_id: &str,
    gate: Option<&Ticket>,
) -> Result<Json<serde_json::Value>, Refused> {
    let job = match build_job(state, cmd, parsed, decision, audit_id) {
        Ok(j) => j,
        Err(why) => {
            super::ingress::settle(state, "commands", gate).await?;
            state.metrics.request("commands", "unavailable");
            return Ok(refusal(cmd, format!(":warning: {why}")));
        }
    };
    let (shown, where_, role) = (job.shown.clone(), job.target.clone(), job.role.clone());
    let wire = wire(cmd, &job);
    let refused = match state.runs.enqueue(job, &wire, gate, &state.metrics).await {
        Enqueued::Ok => {
            state.metrics.request("commands", "enqueued");
            return Ok(ephemeral(format!(
                "Running `{shown}` on {where_} as {role}…"
            )));
        }
        Enqueued::UserBusy(n) => {
            state.metrics.request("commands", "busy");
            return Ok(ephemeral(format!(
                ":hourglass: You already have {n} command(s) running; wait for one to finish (or cancel it), then try again."
            )));
        }
        Enqueued::Full | Enqueued::Gone => {
            state.metrics.request("commands", "busy");
            return Ok(ephemeral(
                ":hourglass: Slipway is busy right now; nothing was run. Try again in a minute.",
            ));
        }
        Enqueued::Replayed => Refused::Replayed,
        Enqueued::Duplicate => Refused::Duplicate,
        Enqueued::Unavailable => Refused::Unavailable,
    };
    Err(refused_after_audit(state, cmd, refused, audit_id).await)
}

/// The decision was recorded, but the shared queue refused the work: say so in the trail, so
/// no reader takes the decision for a run.
async fn not_queued(state: &AppState, cmd: &SlashCommand, audit_id: &str, why: &str) {
    let record = AuditRecord::new(EventKind::Execution, state.ids.next(), state.clock.now())
        .with_actor(Actor {
            slack_user_id: Some(cmd.user.user_id.clone()),
            ..Actor::default()
        })
        .with_details(json!({
            "decision_event_id": audit_id,
            "end": why,
        }));
    let _ = state
        .record(record, "a command that could not be queued")
        .await;
}
