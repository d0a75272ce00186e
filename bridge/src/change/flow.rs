//! The three flows: dry-run (diff + Confirm), `--apply`/Confirm (open or advance the PR), and the
//! typed confirmation modal for destructive changes.

use std::sync::Arc;

use serde_json::json;
use slipway_core::audit::{Actor, AuditRecord, CommandInfo, EventKind, PullRequest};
use slipway_core::change::{ChangeCommand, ChangeRequest, SCHEMA_VERSION};
use slipway_core::command::{Family, ParsedCommand};
use slipway_core::policy::Decision;
use slipway_infra::gitops::{Author, FileChange};

use super::ChangeService;
use super::pending::Pending;
use super::render::{Render, pr_body, render, slack_preview};
use crate::app::AppState;
use crate::slack::client::Message;
use crate::slack::events::SlashCommand;

use slipway_infra::sync::lock;

impl ChangeService {
    /// The ack for a `change`/`destructive` command: register it and queue the work on the
    /// worker pool, under the same limits as runs. No I/O here.
    pub fn begin(
        self: &Arc<Self>,
        state: &AppState,
        cmd: &SlashCommand,
        parsed: &ParsedCommand,
        d: &Decision<'_>,
    ) -> String {
        if !cmd.trigger_id.is_empty() && !lock(&self.seen).insert(&cmd.trigger_id) {
            return "This request was already received; see the message above.".into();
        }
        let now = state.clock.now();
        let expires_at = now
            + chrono::Duration::from_std(state.config.execution.pending_ttl)
                .unwrap_or_else(|_| chrono::Duration::minutes(15));
        let Some(p) = Pending::new(state.ids.next(), cmd, parsed, d, expires_at) else {
            return ":warning: This change is missing its approval rule or identity; nothing was done.".into();
        };
        let summary = p.approval_summary();
        let (svc, st) = (self.clone(), state.clone());
        if parsed.apply && p.expected_confirmation.is_some() {
            let (token, trigger) = (p.token.clone(), cmd.trigger_id.clone());
            self.pending.insert(p, now);
            tokio::spawn(async move { svc.open_modal(&st, &token, &trigger).await });
            return format!(
                ":warning: `{}` is destructive: confirm it in the dialog by typing the resource name.",
                parsed.text
            );
        }
        if parsed.apply {
            let user = p.requester.slack_user_id.clone();
            let work = async move { svc.open_and_report(&st, p).await };
            if let Some(busy) = Self::queue(state, user, Box::pin(work)) {
                return busy;
            }
            return format!(
                "Opening a pull request for `{}`; it needs {summary}…",
                parsed.text
            );
        }
        let (user, token) = (p.requester.slack_user_id.clone(), p.token.clone());
        self.pending.insert(p, now);
        let t = token.clone();
        let work = async move { svc.dry_run(&st, &t).await };
        if let Some(busy) = Self::queue(state, user, Box::pin(work)) {
            self.pending.remove(&token, now);
            return busy;
        }
        format!(
            "Dry run of `{}`: preparing the diff. Nothing changes until you confirm.",
            parsed.text
        )
    }

    /// Queue a change step on the worker pool; `Some(message)` when it is refused as busy.
    fn queue(
        state: &AppState,
        user: String,
        work: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) -> Option<String> {
        match state
            .runs
            .enqueue_change(crate::app::ChangeTask { user, work }, &state.metrics)
        {
            crate::app::Enqueued::Ok => None,
            crate::app::Enqueued::UserBusy(n) => Some(format!(
                ":hourglass: You already have {n} command(s) or change(s) in progress; wait for one to finish, then try again."
            )),
            crate::app::Enqueued::Full => Some(
                ":hourglass: Slipway is busy right now; nothing was done. Try again in a minute."
                    .into(),
            ),
        }
    }

    async fn respond(&self, state: &AppState, p: &Pending, msg: Message) {
        if p.response_url.is_empty() {
            return;
        }
        if let Err(e) = state.slack.respond(&p.response_url, &msg, false).await {
            tracing::warn!(error = %e, "response_url failed");
        }
    }

    /// Fetch and render against the default branch head.
    async fn prepare(&self, state: &AppState, p: &Pending) -> Result<(git2::Oid, Render), String> {
        let creds = self.git_credentials().await?;
        let mirror = self.mirror.clone();
        let head = tokio::task::spawn_blocking(move || {
            lock(&mirror)
                .fetch(Some(&creds))
                .map_err(|e| format!("fetching the GitOps repo: {e}"))
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok((head, render(self, state, p, head).await?))
    }

    async fn dry_run(&self, state: &AppState, token: &str) {
        let Some(p) = self.pending.get(token, state.clock.now()) else {
            return;
        };
        let msg = match self.prepare(state, &p).await {
            Err(e) => Message::text(format!(":x: Dry run of `{}` failed: {e}", p.text)),
            Ok((_, r)) => {
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
        state: &AppState,
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
                let back = p.clone();
                let work = async move { svc.open_and_report(&st, p).await };
                if let Some(busy) = Self::queue(state, user, Box::pin(work)) {
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

    async fn open_modal(&self, state: &AppState, token: &str, trigger_id: &str) {
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
                Message::text(format!(
                    ":x: Couldn't open the confirmation dialog ({e}); run the command again."
                )),
            )
            .await;
        }
    }

    /// The modal's submission. `Err(message)` is shown on the input field.
    pub fn submit_confirmation(
        self: &Arc<Self>,
        state: &AppState,
        token: &str,
        clicker: &str,
        typed: &str,
    ) -> Result<(), String> {
        let now = state.clock.now();
        let p = self
            .pending
            .get(token, now)
            .ok_or("This confirmation has expired; run the command again.")?;
        if p.requester.slack_user_id != clicker {
            return Err("Only the person who asked for this change can confirm it.".into());
        }
        let expected = p.expected_confirmation.clone().unwrap_or_default();
        if typed.trim() != expected {
            return Err(format!("Type `{expected}` exactly to confirm."));
        }
        let mut p = self
            .pending
            .remove(token, now)
            .ok_or("This confirmation was already submitted.")?;
        p.confirmation = Some(typed.trim().to_string());
        let (svc, st) = (self.clone(), state.clone());
        let (user, back) = (p.requester.slack_user_id.clone(), p.clone());
        let work = async move { svc.open_and_report(&st, p).await };
        if let Some(busy) = Self::queue(state, user, Box::pin(work)) {
            self.pending.insert(back, now);
            return Err(busy);
        }
        Ok(())
    }

    async fn open_and_report(&self, state: &AppState, p: Pending) {
        if let Err(e) = self.open_pr(state, &p).await {
            tracing::warn!(error = %e, change = %p.text, "opening the change request failed");
            self.respond(
                state,
                &p,
                Message::text(format!(
                    ":x: Couldn't open a pull request for `{}`: {e}",
                    p.text
                )),
            )
            .await;
        }
    }

    /// Write the signed change request, push it, and open or advance the PR; then tell Slack.
    pub async fn open_pr(&self, state: &AppState, p: &Pending) -> Result<u64, String> {
        let (head, render) = self.prepare(state, p).await?;
        if render.files.is_empty() && p.family == Family::Deploy {
            return Err("nothing would change".into());
        }
        let repo = &self.cfg.repo;
        let lock_ref = Self::lock_ref(&p.resource);
        let fresh_lock = self
            .gh
            .create_ref(repo, &lock_ref, &head.to_string())
            .await
            .map_err(|e| {
                format!("can't check the change lock, so nothing was done (fails closed): {e}")
            })?;
        let slug = slipway_core::change::lock_slug(&p.resource);
        let existing = if fresh_lock {
            None
        } else {
            let open = self
                .gh
                .open_prs(repo)
                .await
                .map_err(|e| format!("can't list open PRs: {e}"))?;
            let same_target = |pr: &slipway_infra::github::Pr| {
                pr.head_ref
                    .strip_prefix("slipway/")
                    .and_then(slipway_core::change::slug_of_id)
                    == Some(slug.as_str())
            };
            Some(open.into_iter().find(same_target).ok_or_else(|| {
                format!("another change for `{}` holds the lock `{lock_ref}` but has no open PR; an owner must release it", p.resource)
            })?)
        };
        let short: String = state
            .ids
            .next()
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(8)
            .collect();
        let id = format!("cr-{slug}-{short}");
        let now = state.clock.now();
        let binding = p.binding(render.approval.as_ref());
        let ttl = i64::try_from(binding.approval.expires_after_secs).unwrap_or(86_400);
        // The change files the open PR carries now (those not on the default branch): the newest
        // request supersedes them all, so a merge always adds exactly one change file.
        let replaced_files: Vec<String> = match &existing {
            None => Vec::new(),
            Some(pr) => {
                let mirror = self.mirror.clone();
                let pr_head = git2::Oid::from_str(&pr.head_sha).map_err(|e| e.to_string())?;
                tokio::task::spawn_blocking(move || {
                    let m = lock(&mirror);
                    let on_base: std::collections::HashSet<String> = m
                        .list_files(head, slipway_core::change::CHANGES_DIR)
                        .unwrap_or_default()
                        .into_iter()
                        .collect();
                    m.list_files(pr_head, slipway_core::change::CHANGES_DIR)
                        .map(|files| {
                            files
                                .into_iter()
                                .filter(|f| !on_base.contains(f))
                                .collect::<Vec<_>>()
                        })
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
            }
        };
        let supersedes = replaced_files
            .iter()
            .filter_map(|f| {
                f.strip_prefix("changes/")
                    .and_then(|n| n.strip_suffix(".yaml"))
            })
            .map(String::from)
            .next()
            .or_else(|| {
                existing
                    .as_ref()
                    .map(|pr| pr.head_ref.trim_start_matches("slipway/").to_string())
            });
        let cr = self.sign(ChangeRequest {
            schema_version: SCHEMA_VERSION,
            id: id.clone(),
            requester: p.requester.clone(),
            command: ChangeCommand {
                text: p.text.clone(),
                family: p.family,
                argv: p.argv.clone(),
            },
            target: p.target.clone(),
            tier: p.tier,
            resource: p.resource.clone(),
            policy: binding.clone(),
            rendered: render.rendered.clone(),
            reason: None,
            supersedes: supersedes.clone(),
            execution: Some(slipway_core::change::Execution::of(&p.target, |env| {
                state.policy.env_cluster(env).map(String::from)
            })),
            created_at: now,
            expires_at: now + chrono::Duration::seconds(ttl),
            signature: None,
        });
        let mut files = render.files.clone();
        files.push(FileChange::Upsert {
            path: cr.file_path(),
            content: cr.to_yaml().into_bytes(),
        });
        for old in &replaced_files {
            files.push(FileChange::Delete { path: old.clone() });
        }
        let (parent, branch) = match &existing {
            Some(pr) => (
                git2::Oid::from_str(&pr.head_sha).map_err(|e| e.to_string())?,
                pr.head_ref.clone(),
            ),
            None => (head, cr.branch()),
        };
        let mut message = format!(
            "{}\n\nSlipway-Change: {id}\nRequested-By: {} <{}>",
            render.title, p.requester.subject, p.requester.slack_user_id
        );
        if let Some(trailer) = super::audit_trailer(state) {
            message.push('\n');
            message.push_str(&trailer);
        }
        let author = Author {
            name: "Slipway".into(),
            email: "slipway@users.noreply.github.com".into(),
            unix_time: now.timestamp(),
        };
        let creds = self.git_credentials().await?;
        let mirror = self.mirror.clone();
        let b2 = branch.clone();
        let pushed = tokio::task::spawn_blocking(move || {
            let m = lock(&mirror);
            let commit = m.commit(parent, &files, &message, &author)?;
            m.push(commit, &b2, false, Some(&creds))?;
            Ok::<_, slipway_infra::gitops::GitError>(commit)
        })
        .await
        .map_err(|e| e.to_string())?;
        let commit = match pushed {
            Ok(c) => c,
            Err(e) => {
                if fresh_lock {
                    let _ = self.gh.delete_ref(repo, &lock_ref).await;
                }
                return Err(format!("pushing {branch} failed: {e}"));
            }
        };
        if let Err(e) = self.store.add_bridge_commit(&commit.to_string()) {
            tracing::error!(error = %e, "recording the bridge's own commit");
        }
        let _ = self
            .gh
            .update_ref(repo, &lock_ref, &commit.to_string(), true)
            .await;
        let body = pr_body(&cr, &render.title, &render.details);
        let pr = match &existing {
            None => {
                let pr = self
                    .gh
                    .open_pr(
                        repo,
                        &format!("[slipway] {}", render.title),
                        &body,
                        &branch,
                        self.default_branch(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let tier_label = format!("tier:{}", p.tier);
                let _ = self
                    .gh
                    .add_labels(repo, pr.number, &["slipway", &tier_label])
                    .await;
                pr
            }
            Some(pr) => {
                let _ = self
                    .gh
                    .update_pr(repo, pr.number, json!({"body": body}))
                    .await;
                let _ = self.gh.comment(repo, pr.number, &format!("Advanced by {} with change request `{id}` (supersedes `{}`). Approvals given before this commit are stale.", p.requester.subject, supersedes.clone().unwrap_or_default())).await;
                self.gh
                    .get_pr(repo, pr.number)
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        let a = &binding.approval;
        let _ = self
            .gh
            .set_status(
                repo,
                &commit.to_string(),
                "pending",
                "slipway/approval",
                &format!("0 of {} approvals ({})", a.approvers, a.rule),
                Some(&pr.html_url),
            )
            .await;

        let record = AuditRecord::new(EventKind::ChangeRequest, state.ids.next(), now)
            .with_actor(Actor { slack_user_id: Some(p.requester.slack_user_id.clone()), subject: Some(p.requester.subject.clone()), role: Some(p.requester.role.clone()), github_login: p.requester.github_login.clone(), groups: p.requester.groups.clone(), ..Actor::default() })
            .with_command(CommandInfo { text: p.text.clone(), family: Some(p.family), argv: Some(p.argv.clone()) })
            .with_target(p.target.clone())
            .with_tier(p.tier)
            .with_change_id(id.clone())
            .with_pr(PullRequest { repo: repo.to_string(), number: pr.number, head_sha: Some(commit.to_string()), merge_sha: None })
            .with_details(json!({"approval_rule": a.rule, "supersedes": supersedes, "advanced": existing.is_some()}));
        let _ = state.record(record, "the change request").await;

        let (preview, cut) = slack_preview(&render.preview);
        let verb = if existing.is_some() {
            "advanced"
        } else {
            "opened"
        };
        let headline = format!(
            ":memo: *Change request* `{id}` {verb}: <{}|#{}> {}",
            pr.html_url, pr.number, render.title
        );
        let context = format!(
            "Requested by <@{}> · needs {} · expires {}",
            p.requester.slack_user_id,
            super::pending::summary(&binding.approval),
            cr.expires_at.format("%Y-%m-%d %H:%M UTC")
        );
        let note = match (cut, existing.is_some()) {
            (_, true) => "A new commit: approvals given before it are stale.",
            (true, false) => "Diff truncated; the PR shows all of it.",
            _ => "",
        };
        let buttons = vec![
            json!({"action_id": "slipway_approve", "text": "Approve", "style": "primary", "value": super::approve_value(pr.number, &commit.to_string())}),
            json!({"action_id": "slipway_reject", "text": "Reject", "style": "danger", "value": pr.number.to_string()}),
            json!({"action_id": "slipway_open_pr", "text": "View PR", "url": pr.html_url, "value": pr.number.to_string()}),
        ];
        let msg = change_message(
            &headline,
            &context,
            &preview,
            note,
            &buttons,
            format!("Change request {id} {verb}: {}", pr.html_url),
        );
        match state.slack.post(&p.channel, None, &msg).await {
            Ok(ts) => {
                self.remember_thread(pr.number, &p.channel, &ts);
            }
            Err(e) => {
                tracing::warn!(error = %e, "posting the change summary failed; using response_url");
                self.respond(state, p, msg).await;
            }
        }
        Ok(pr.number)
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

async fn reply(state: &AppState, url: Option<&str>, text: &str) {
    if let Some(u) = url.filter(|u| !u.is_empty())
        && let Err(e) = state.slack.respond(u, &Message::text(text), false).await
    {
        tracing::warn!(error = %e, "response_url failed");
    }
}
