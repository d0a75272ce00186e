//! Expiry: a change request not approved by its `expires_at` gets a PR comment, is closed, its
//! lock ref released and its Slack message updated.
//!
//! A timer (`gitops.expiry_interval` / `SLIPWAY_EXPIRY_INTERVAL`, default 60 s) sweeps the open
//! Slipway PRs against the injected clock (`state.clock`), so a test's fake clock can jump past a
//! deadline. Deadlines are cached per PR and head SHA in the state store; the PR and its reviews
//! are re-read from GitHub before anything is closed. Each sweep also forgets webhook delivery
//! ids older than a week (GitHub offers redelivery for a few days).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use slipway_core::approval::Quorum;
use slipway_core::audit::{AuditRecord, EventKind, PullRequest};
use slipway_core::change::ChangeRequest;
use slipway_infra::github::Pr;

use super::ChangeService;
use crate::ctx::Ctx;
use crate::store::Deadline;

/// How long delivery ids are remembered.
const DELIVERY_MEMORY_SECS: i64 = 7 * 24 * 3600;

impl ChangeService {
    /// Start the expiry timer. It holds the service and state weakly, so it ends with them.
    pub fn start_expiry_timer(self: &Arc<Self>, state: &Ctx) {
        let svc = Arc::downgrade(self);
        let ctx = state.downgrade();
        let every = self.cfg.expiry_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (Some(svc), Some(state)) = (svc.upgrade(), Ctx::upgrade(&ctx)) else {
                    break;
                };
                // One replica sweeps, under a fence checked just before.
                let Some(fence) = state.leader.lead().await else {
                    continue;
                };
                tracing::debug!(fence = fence.0, "expiry sweep as leader");
                match svc.sweep(&state).await {
                    Ok(closed) if !closed.is_empty() => {
                        tracing::info!(?closed, "expired change requests closed");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "expiry sweep"),
                }
            }
        });
    }

    /// One sweep: close every open Slipway PR whose deadline passed without the quorum.
    /// Returns the PR numbers closed.
    pub async fn sweep(&self, state: &Ctx) -> Result<Vec<u64>, String> {
        let now = state.clock.now();
        if let Err(e) = self
            .store
            .prune_deliveries(now.timestamp() - DELIVERY_MEMORY_SECS)
        {
            tracing::warn!(error = %e, "pruning webhook delivery ids");
        }
        let open = self
            .gh()
            .open_prs(&self.cfg.repo)
            .await
            .map_err(|e| format!("listing open PRs: {e}"))?;
        let mut closed = Vec::new();
        for pr in open
            .into_iter()
            .filter(|p| p.head_ref.starts_with("slipway/cr-"))
        {
            let cached = self
                .store
                .deadline(pr.number)
                .ok()
                .flatten()
                .filter(|d| d.head_sha == pr.head_sha);
            let expires_at = match cached {
                Some(d) => d.expires_at,
                None => match self.change_of(&pr).await {
                    Ok(v) => {
                        let cr = v.cr;
                        let d = Deadline {
                            head_sha: pr.head_sha.clone(),
                            expires_at: cr.expires_at.timestamp(),
                        };
                        if let Err(e) = self.store.set_deadline(pr.number, &d) {
                            tracing::warn!(error = %e, "caching a deadline");
                        }
                        d.expires_at
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, pr = pr.number, "reading a change request for expiry");
                        continue;
                    }
                },
            };
            if now.timestamp() <= expires_at {
                if let Some(at) = DateTime::from_timestamp(expires_at, 0) {
                    self.remind_approvers(state, &pr, at).await;
                }
                self.recheck_cab(state, &pr).await;
                continue;
            }
            match self.expire(state, pr.number, now).await {
                Ok(true) => closed.push(pr.number),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, pr = pr.number, "expiring a change request"),
            }
        }
        Ok(closed)
    }

    /// Close PR `number` if it is open, past its deadline and wasn't approved by then. The PR
    /// and its change are re-read first: the cached deadline may be stale.
    async fn expire(&self, state: &Ctx, number: u64, now: DateTime<Utc>) -> Result<bool, String> {
        // The fence again, just before acting: a leader that lost its lease mid-sweep stops.
        if state.leader.lead().await.is_none() {
            return Ok(false);
        }
        let pr = self
            .gh()
            .get_pr(&self.cfg.repo, number)
            .await
            .map_err(|e| e.to_string())?;
        if pr.state != "open" {
            return Ok(false);
        }
        let verified = self.change_of(&pr).await?;
        if now <= verified.cr.expires_at {
            return Ok(false);
        }
        let q = self.quorum_of(state, &pr, &verified).await?;
        if !q.expired {
            // It was approved in time; merging it is up to people (or auto-merge).
            return Ok(false);
        }
        self.close_expired(state, &pr, &verified.cr, &q, now)
            .await?;
        Ok(true)
    }

    /// Tells GitHub and Slack why, closes the PR and releases its lock, so the resource is free
    /// for a new request; the failed status and lock release are best effort.
    async fn close_expired(
        &self,
        state: &Ctx,
        pr: &Pr,
        cr: &ChangeRequest,
        q: &Quorum,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let repo = &self.cfg.repo;
        let number = pr.number;
        let rule = &cr.policy.approval.rule;
        let when = cr.expires_at.format("%Y-%m-%d %H:%M UTC");
        let body = format!(
            ":hourglass: Change request `{}` expired at {when} with {} approvals (rule `{rule}` needs {}). Slipway closed this pull request and released the lock on `{}`. Run the command in Slack again to start over.",
            cr.id,
            q.progress(),
            q.needed,
            cr.resource
        );
        let _ = self
            .gh()
            .set_status(
                repo,
                &pr.head_sha,
                "failure",
                "slipway/approval",
                &format!("expired ({rule})"),
                Some(&pr.html_url),
            )
            .await;
        self.gh()
            .comment(repo, number, &body)
            .await
            .map_err(|e| format!("commenting on PR #{number}: {e}"))?;
        self.gh()
            .update_pr(repo, number, serde_json::json!({"state": "closed"}))
            .await
            .map_err(|e| format!("closing PR #{number}: {e}"))?;
        if let Err(e) = self
            .gh()
            .delete_ref(repo, &Self::lock_ref(&cr.resource))
            .await
        {
            tracing::warn!(error = %e, pr = number, "releasing the lock of an expired change");
        }
        let record = AuditRecord::new(EventKind::Expiry, state.ids.next(), now)
            .with_change_id(cr.id.clone())
            .with_pr(PullRequest { repo: repo.to_string(), number, head_sha: Some(pr.head_sha.clone()), merge_sha: None })
            .with_details(serde_json::json!({"expires_at": cr.expires_at, "approvals": q.progress(), "rule": rule, "resource": cr.resource, "action": "closed"}));
        let _ = state.record(record, "an expiry").await;
        self.refresh(
            state,
            number,
            &format!(
                ":hourglass: expired at {when} without enough approvals; Slipway closed the PR"
            ),
        )
        .await
    }
}
