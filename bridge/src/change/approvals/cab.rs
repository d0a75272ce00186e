//! The CAB gate (`audit.servicenow.cab_gate`): a change PR whose quorum holds still waits, as
//! `slipway/approval` = `pending`, until the ServiceNow change request the sink filed for it is
//! CAB-approved; a rejection is a `failure`. Auto-merge waits the same way. ServiceNow tells the
//! bridge nothing, so the expiry sweep asks again for the PRs whose status says they wait (the
//! status on GitHub is the record, so any replica's sweep finds them).

use slipway_core::change::ChangeRequest;
use slipway_infra::github::Pr;
use slipway_infra::sinks::servicenow_cab::Cab;

use super::super::ChangeService;
use crate::ctx::Ctx;

/// GitHub's limit on a status description.
const MAX_DESCRIPTION: usize = 140;

/// How a pending `slipway/approval` that waits for the CAB begins.
const WAITING: &str = "CAB: ";

impl ChangeService {
    /// `slipway/approval`'s `(state, description)` once the CAB is heard: a `success` waits
    /// for the ServiceNow change's approval. Without a gate, or short of the quorum, unchanged.
    pub(super) async fn cab_status(
        &self,
        cr: &ChangeRequest,
        (st, desc): (&'static str, String),
    ) -> (&'static str, String) {
        let Some(cab) = self.cab.as_ref().filter(|_| st == "success") else {
            return (st, desc);
        };
        let waiting = |why: String| ("pending", format!("{WAITING}{why}; {desc}"));
        let (st, desc) = match cab.approval(&cr.id).await {
            Ok(c) if c.approved() => (st, desc),
            Ok(Cab::Filed { number, approval }) if approval == "rejected" => (
                "failure",
                format!("the CAB rejected {number} in ServiceNow"),
            ),
            Ok(Cab::Filed { number, approval }) => {
                waiting(format!("waiting for approval of {number} ({approval})"))
            }
            Ok(Cab::NotFiled) => waiting("waiting for its ServiceNow change to be filed".into()),
            Err(e) => {
                tracing::warn!(error = %e, change = cr.id, "asking ServiceNow for the CAB approval");
                waiting("the approval can't be read from ServiceNow".into())
            }
        };
        (st, desc.chars().take(MAX_DESCRIPTION).collect())
    }

    /// Whether the CAB lets `cr` merge now (always, without a gate).
    pub(super) async fn cab_allows(&self, cr: &ChangeRequest) -> bool {
        match &self.cab {
            None => true,
            Some(cab) => cab.approval(&cr.id).await.is_ok_and(|c| c.approved()),
        }
    }

    /// From the expiry sweep: if open PR `pr` waits for the CAB (its `slipway/approval` says
    /// so) and ServiceNow has decided, judge it again (status, auto-merge, Slack) and say in
    /// the thread what the CAB did.
    pub(crate) async fn recheck_cab(&self, state: &Ctx, pr: &Pr) {
        let Some(cab) = &self.cab else { return };
        let status = self
            .gh()
            .status_of(&self.cfg.repo, &pr.head_sha, "slipway/approval")
            .await;
        let waits =
            matches!(&status, Ok(Some((st, desc))) if st == "pending" && desc.starts_with(WAITING));
        let Some(id) = pr.head_ref.strip_prefix("slipway/").filter(|_| waits) else {
            return;
        };
        let decided = match cab.approval(id).await {
            Ok(Cab::Filed { number, approval })
                if approval == "approved" || approval == "rejected" =>
            {
                format!("the CAB {approval} {number} in ServiceNow")
            }
            _ => return,
        };
        if let Err(e) = self.refresh_with(state, pr.number, Some(&decided)).await {
            tracing::warn!(error = %e, pr = pr.number, "refreshing after the CAB decided");
        }
    }
}
