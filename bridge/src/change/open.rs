//! Opening or advancing a change request's PR, in phases: take the target's lock (or find the
//! open PR that holds it), sign the request, commit and push, open or advance the PR, then set
//! the approval status, record the audit event and post the summary in Slack.

use serde_json::json;
use slipway_core::audit::{Actor, AuditRecord, CommandInfo, EventKind, PullRequest};
use slipway_core::change::{ChangeCommand, ChangeRequest, Execution, SCHEMA_VERSION};
use slipway_core::command::Family;
use slipway_infra::github::Pr;
use slipway_infra::gitops::{Author, FileChange};

use super::compose::{pr_body, slack_preview};
use super::flow::change_message;
use super::pending::Pending;
use super::{ChangeService, Render, lock};
use crate::ctx::Ctx;
use crate::error::Failure;

/// Where a change goes: a fresh lock means a new PR; a held lock, the open PR for the same
/// target, whose own change files the new request replaces.
struct Slot {
    lock_ref: String,
    fresh_lock: bool,
    existing: Option<Pr>,
    replaced: Vec<String>,
}

impl ChangeService {
    /// Write the signed change request, push it, and open or advance the PR; then tell Slack.
    pub async fn open_pr(&self, state: &Ctx, p: &Pending) -> Result<(Pr, ChangeRequest), Failure> {
        // Confirmed later than it was asked: the requester must still be someone (a leaver's
        // pending Confirm stops working).
        let requester = slipway_core::policy::SlackUser {
            user_id: p.requester.slack_user_id.clone(),
            team_id: p.requester.slack_team_id.clone(),
            enterprise_id: p.requester.slack_enterprise_id.clone(),
        };
        state.person(&requester).await.map_err(Failure::user)?;
        let (head, render) = self.prepare(state, p).await?;
        // A window may have begun since the ack, or cover an object of a manifest: judged again
        // as the request is signed.
        let mut resources = vec![p.resource.clone()];
        resources.extend(render.object_resources.iter().cloned());
        // A manifest's objects may be on resources a `channels` entry keeps out of this channel.
        if let Some(r) = state
            .policy()
            .channel_refusal(p.family, &resources, &p.channel)
        {
            state.metrics.refused(&r.rule);
            return Err(Failure::user(r.reason));
        }
        let freeze_override = super::freeze::judge(
            &state.policy(),
            &resources,
            &p.requester.groups,
            p.override_freeze.as_deref(),
            state.clock.now(),
        )
        .map_err(|r| {
            state.metrics.refused(r.rule);
            Failure::user(r.reason)
        })?;
        if render.files.is_empty() && p.family == Family::Deploy {
            return Err(Failure::user("nothing would change"));
        }
        let slot = self.take_lock(p, head).await?;
        let cr = self.signed_request(state, p, &render, &slot, freeze_override);
        let commit = self.push_change(state, &cr, &render, &slot, head).await?;
        if let Err(e) = self.store.add_bridge_commit(&commit.to_string()) {
            tracing::error!(error = %e, "recording the bridge's own commit");
        }
        let _ = self
            .gh()
            .update_ref(&self.cfg.repo, &slot.lock_ref, &commit.to_string(), true)
            .await;
        let pr = self.open_or_advance(p, &cr, &render, &slot).await?;
        self.announce(state, p, &cr, &render, &slot, &pr, commit)
            .await;
        Ok((pr, cr))
    }

    /// Create the target's lock ref at `head`, or find the open PR of the change that holds it.
    /// Fails closed: if the lock can't be checked, nothing is done.
    async fn take_lock(&self, p: &Pending, head: git2::Oid) -> Result<Slot, Failure> {
        let repo = &self.cfg.repo;
        let lock_ref = Self::lock_ref(&p.resource);
        let fresh_lock = self
            .gh()
            .create_ref(repo, &lock_ref, &head.to_string())
            .await
            .map_err(|e| Failure::upstream("Checking the change lock (nothing was done)", e))?;
        if fresh_lock {
            return Ok(Slot {
                lock_ref,
                fresh_lock,
                existing: None,
                replaced: Vec::new(),
            });
        }
        let slug = slipway_core::change::lock_slug(&p.resource);
        let open = self
            .gh()
            .open_prs(repo)
            .await
            .map_err(|e| Failure::upstream("Listing the open pull requests", e))?;
        let same_target = |pr: &Pr| {
            pr.head_ref
                .strip_prefix("slipway/")
                .and_then(slipway_core::change::slug_of_id)
                == Some(slug.as_str())
        };
        let pr = open.into_iter().find(same_target).ok_or_else(|| {
            Failure::user(format!(
                "another change for `{}` holds the lock `{lock_ref}` but has no open PR; an owner must release it",
                p.resource
            ))
        })?;
        let replaced = self.files_only_on(&pr, head).await?;
        Ok(Slot {
            lock_ref,
            fresh_lock,
            existing: Some(pr),
            replaced,
        })
    }

    /// The change files the open PR carries now (those not on the default branch): the newest
    /// request supersedes them all, so a merge always adds exactly one change file.
    async fn files_only_on(&self, pr: &Pr, head: git2::Oid) -> Result<Vec<String>, Failure> {
        let reading = "Reading the open pull request";
        let mirror = self.mirror.clone();
        let pr_head =
            git2::Oid::from_str(&pr.head_sha).map_err(|e| Failure::upstream_error(reading, &e))?;
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
        .map_err(|e| Failure::upstream_error(reading, &e))?
        .map_err(|e| Failure::upstream_error(reading, &e))
    }

    /// The change request, signed: a fresh id, what it supersedes, the strictest approval rule
    /// found, and the execution target it is bound to.
    fn signed_request(
        &self,
        state: &Ctx,
        p: &Pending,
        render: &Render,
        slot: &Slot,
        freeze_override: Option<slipway_core::change::FreezeOverride>,
    ) -> ChangeRequest {
        let short: String = state
            .ids
            .next()
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(8)
            .collect();
        let id = format!(
            "cr-{}-{short}",
            slipway_core::change::lock_slug(&p.resource)
        );
        let now = state.clock.now();
        let binding = p.binding(render.approval.as_ref());
        let ttl = i64::try_from(binding.approval.expires_after_secs).unwrap_or(86_400);
        let supersedes = slot
            .replaced
            .iter()
            .filter_map(|f| {
                f.strip_prefix("changes/")
                    .and_then(|n| n.strip_suffix(".yaml"))
            })
            .map(String::from)
            .next()
            .or_else(|| {
                slot.existing
                    .as_ref()
                    .map(|pr| pr.head_ref.trim_start_matches("slipway/").to_string())
            });
        self.sign(ChangeRequest {
            schema_version: SCHEMA_VERSION,
            id,
            requester: p.requester.clone(),
            command: ChangeCommand {
                text: p.text.clone(),
                family: p.family,
                argv: p.argv.clone(),
            },
            target: p.target.clone(),
            tier: p.tier,
            resource: p.resource.clone(),
            policy: binding,
            rendered: render.rendered.clone(),
            reason: None,
            freeze_override,
            supersedes,
            execution: Some(Execution::of(&p.target, |env| {
                state.policy().env_cluster(env).map(String::from)
            })),
            created_at: now,
            expires_at: now + chrono::Duration::seconds(ttl),
            signature: None,
        })
    }

    /// Commit the rendered files, the change file and the removal of the replaced ones on the
    /// PR's branch, and push. A failed push releases a lock this request took.
    async fn push_change(
        &self,
        state: &Ctx,
        cr: &ChangeRequest,
        render: &Render,
        slot: &Slot,
        head: git2::Oid,
    ) -> Result<git2::Oid, Failure> {
        let mut files = render.files.clone();
        files.push(FileChange::Upsert {
            path: cr.file_path(),
            content: cr.to_yaml().into_bytes(),
        });
        for old in &slot.replaced {
            files.push(FileChange::Delete { path: old.clone() });
        }
        let (parent, branch) = match &slot.existing {
            Some(pr) => (
                git2::Oid::from_str(&pr.head_sha)
                    .map_err(|e| Failure::upstream_error("Reading the open pull request", &e))?,
                pr.head_ref.clone(),
            ),
            None => (head, cr.branch()),
        };
        let message = commit_message(state, cr, render);
        let author = Author {
            name: "Slipway".into(),
            email: "slipway@users.noreply.github.com".into(),
            unix_time: cr.created_at.timestamp(),
        };
        let creds = self
            .git_credentials()
            .await
            .map_err(|e| Failure::upstream("Getting a GitHub token", e))?;
        let mirror = self.mirror.clone();
        let b2 = branch.clone();
        let pushed = tokio::task::spawn_blocking(move || {
            let m = lock(&mirror);
            let commit = m.commit(parent, &files, &message, &author)?;
            m.push(commit, &b2, false, Some(&creds))?;
            Ok::<_, slipway_infra::gitops::GitError>(commit)
        })
        .await
        .map_err(|e| Failure::upstream_error("Pushing the change", &e))?;
        match pushed {
            Ok(c) => Ok(c),
            Err(e) => {
                if slot.fresh_lock {
                    let _ = self.gh().delete_ref(&self.cfg.repo, &slot.lock_ref).await;
                }
                Err(Failure::upstream_error(
                    format!("Pushing the branch `{branch}`"),
                    &e,
                ))
            }
        }
    }

    /// A new PR (labelled with its tier), or the existing one with a fresh body and a comment
    /// that earlier approvals are stale.
    async fn open_or_advance(
        &self,
        p: &Pending,
        cr: &ChangeRequest,
        render: &Render,
        slot: &Slot,
    ) -> Result<Pr, Failure> {
        let repo = &self.cfg.repo;
        let body = pr_body(cr, &render.title, &render.details);
        let Some(pr) = &slot.existing else {
            let pr = self
                .gh()
                .open_pr(
                    repo,
                    &format!("[slipway] {}", render.title),
                    &body,
                    &cr.branch(),
                    self.default_branch(),
                )
                .await
                .map_err(|e| Failure::upstream("Opening the pull request", e))?;
            let tier_label = format!("tier:{}", p.tier);
            let _ = self
                .gh()
                .add_labels(repo, pr.number, &["slipway", &tier_label])
                .await;
            return Ok(pr);
        };
        let _ = self
            .gh()
            .update_pr(repo, pr.number, json!({"body": body}))
            .await;
        let comment = format!(
            "Advanced by {} with change request `{}` (supersedes `{}`). Approvals given before this commit are stale.",
            p.requester.subject,
            cr.id,
            cr.supersedes.clone().unwrap_or_default()
        );
        let _ = self.gh().comment(repo, pr.number, &comment).await;
        self.gh()
            .get_pr(repo, pr.number)
            .await
            .map_err(|e| Failure::upstream("Reading the advanced pull request", e))
    }

    /// The pending approval status, the audit record, and the summary in Slack (its thread is
    /// where approvals and the runner's report are mirrored).
    #[allow(clippy::too_many_arguments)]
    async fn announce(
        &self,
        state: &Ctx,
        p: &Pending,
        cr: &ChangeRequest,
        render: &Render,
        slot: &Slot,
        pr: &Pr,
        commit: git2::Oid,
    ) {
        let a = &cr.policy.approval;
        let _ = self
            .gh()
            .set_status(
                &self.cfg.repo,
                &commit.to_string(),
                "pending",
                "slipway/approval",
                &format!("0 of {} approvals ({})", a.approvers, a.rule),
                Some(&pr.html_url),
            )
            .await;
        let record = self.change_record(state, p, cr, slot, pr, commit);
        let _ = state.record(record, "the change request").await;
        let msg = summary_message(p, cr, render, slot.existing.is_some(), pr, commit);
        match state.slack.post(&p.channel, None, &msg).await {
            Ok(ts) => self.remember_thread(pr.number, &p.channel, &ts),
            Err(e) => {
                tracing::warn!(error = %e, "posting the change summary failed; using response_url");
                self.respond(state, p, msg).await;
            }
        }
    }

    fn change_record(
        &self,
        state: &Ctx,
        p: &Pending,
        cr: &ChangeRequest,
        slot: &Slot,
        pr: &Pr,
        commit: git2::Oid,
    ) -> AuditRecord {
        let r = &p.requester;
        let mut details = json!({
            "approval_rule": cr.policy.approval.rule,
            "supersedes": cr.supersedes,
            "advanced": slot.existing.is_some(),
        });
        if let Some(o) = &cr.freeze_override {
            details["freeze_override"] = json!(o);
        }
        AuditRecord::new(EventKind::ChangeRequest, state.ids.next(), cr.created_at)
            .with_actor(Actor {
                slack_user_id: Some(r.slack_user_id.clone()),
                subject: Some(r.subject.clone()),
                role: Some(r.role.clone()),
                github_login: r.github_login.clone(),
                groups: r.groups.clone(),
                ..Actor::default()
            })
            .with_command(CommandInfo {
                text: p.text.clone(),
                family: Some(p.family),
                argv: Some(p.argv.clone()),
            })
            .with_target(p.target.clone())
            .with_tier(p.tier)
            .with_change_id(cr.id.clone())
            .with_pr(PullRequest {
                repo: self.cfg.repo.to_string(),
                number: pr.number,
                head_sha: Some(commit.to_string()),
                merge_sha: None,
            })
            .with_details(details)
    }
}

/// The commit message, with the change id, the requester and the audit trail's anchor.
fn commit_message(state: &Ctx, cr: &ChangeRequest, render: &Render) -> String {
    let mut message = format!(
        "{}\n\nSlipway-Change: {}\nRequested-By: {} <{}>",
        render.title, cr.id, cr.requester.subject, cr.requester.slack_user_id
    );
    if let Some(trailer) = super::audit_trailer(state) {
        message.push('\n');
        message.push_str(&trailer);
    }
    message
}

/// The change's Slack summary: the diff preview, what it needs, and Approve/Reject/View PR.
fn summary_message(
    p: &Pending,
    cr: &ChangeRequest,
    render: &Render,
    advanced: bool,
    pr: &Pr,
    commit: git2::Oid,
) -> crate::slack::client::Message {
    let (preview, cut) = slack_preview(&render.preview);
    let verb = if advanced { "advanced" } else { "opened" };
    let id = &cr.id;
    let headline = format!(
        ":memo: *Change request* `{id}` {verb}: <{}|#{}> {}",
        pr.html_url, pr.number, render.title
    );
    let context = format!(
        "Requested by <@{}> · needs {} · expires {}",
        p.requester.slack_user_id,
        super::pending::summary(&cr.policy.approval),
        cr.expires_at.format("%Y-%m-%d %H:%M UTC")
    );
    let note = match (cut, advanced) {
        (_, true) => "A new commit: approvals given before it are stale.",
        (true, false) => "Diff truncated; the PR shows all of it.",
        _ => "",
    };
    let buttons = [
        json!({"action_id": "slipway_approve", "text": "Approve", "style": "primary", "value": super::approve_value(pr.number, &commit.to_string())}),
        json!({"action_id": "slipway_reject", "text": "Reject", "style": "danger", "value": pr.number.to_string()}),
        json!({"action_id": "slipway_open_pr", "text": "View PR", "url": pr.html_url, "value": pr.number.to_string()}),
    ];
    change_message(
        &headline,
        &context,
        &preview,
        note,
        &buttons,
        format!("Change request {id} {verb}: {}", pr.html_url),
    )
}
