//! Merging a change PR the bridge may merge by itself (auto-merge and self-service rules): with
//! the expected head SHA, and again when a required check passes later.

use slipway_core::change::ChangeRequest;
use slipway_infra::github::Pr;

use crate::change::ChangeService;
use crate::ctx::Ctx;

impl ChangeService {
    /// Merge an open change PR whose quorum holds under an auto-merging rule; nothing else (no
    /// status, no Slack message: the merge's own webhook reports it).
    pub async fn merge_if_ready(&self, state: &Ctx, number: u64) -> Result<(), String> {
        let pr = self
            .gh()
            .get_pr(&self.cfg.repo, number)
            .await
            .map_err(|e| e.to_string())?;
        if pr.state != "open" || !pr.head_ref.starts_with("slipway/cr-") {
            return Ok(());
        }
        let verified = self.change_of(&pr).await?;
        let q = self.quorum_of(state, &pr, &verified).await?;
        if q.met && state.policy().auto_merge(&verified.cr.policy.approval) {
            self.auto_merge(state, &pr, &verified.cr).await;
        }
        Ok(())
    }

    /// Merge with the expected head SHA: GitHub refuses (409) if a push moved the head since.
    /// The merge commit anchors the audit chain head (the approvals included) in git.
    /// Never during a freeze window the request doesn't override, nor before the CAB approved
    /// it when the gate is on.
    pub(super) async fn auto_merge(&self, state: &Ctx, pr: &Pr, cr: &ChangeRequest) {
        let now = state.clock.now();
        if let Some(why) = crate::change::freeze::blocking_merge(&state.policy(), cr, now) {
            tracing::info!(
                pr = pr.number,
                why,
                "not merged: a freeze window is in force"
            );
            return;
        }
        if !self.cab_allows(cr).await {
            tracing::info!(
                pr = pr.number,
                "not merged: the CAB hasn't approved it in ServiceNow"
            );
            return;
        }
        let body = crate::change::audit_trailer(state)
            .map(|t| format!("Slipway-Change: {}\n{t}", cr.id))
            .unwrap_or_default();
        match self
            .gh()
            .merge(
                &self.cfg.repo,
                pr.number,
                &pr.head_sha,
                &format!("[slipway] {}", cr.id),
                &body,
            )
            .await
        {
            Ok(sha) => tracing::info!(pr = pr.number, merge = %sha, "auto-merged"),
            Err(e) => tracing::warn!(error = %e, pr = pr.number, "auto-merge failed"),
        }
    }
}
