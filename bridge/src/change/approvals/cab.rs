//! The CAB gate (`audit.servicenow.cab_gate`): a change PR whose quorum holds still waits, as
//! `slipway/approval` = `pending`, until the ServiceNow change request the sink filed for it is
//! CAB-approved; a rejection is a `failure`. Auto-merge waits the same way. ServiceNow tells the
//! bridge nothing, so the expiry sweep asks again for the PRs that wait.

use slipway_core::change::ChangeRequest;
use slipway_infra::sinks::servicenow_cab::Cab;
use slipway_infra::sync::lock;

use super::super::ChangeService;
use crate::ctx::Ctx;

/// GitHub's limit on a status description.
const MAX_DESCRIPTION: usize = 140;

impl ChangeService {
    /// `slipway/approval`'s `(state, description)` once the CAB is heard: a `success` waits
    /// for the ServiceNow change's approval. Without a gate, or short of the quorum, unchanged.
    pub(super) async fn cab_status(
        &self,
        number: u64,
        cr: &ChangeRequest,
        (st, desc): (&'static str, String),
    ) -> (&'static str, String) {
        let Some(cab) = &self.cab else {
            return (st, desc);
        };
        if st != "success" {
            lock(&self.cab_waiting).remove(&number);
            return (st, desc);
        }
        let (st, desc) = match cab.approval(&cr.id).await {
            Ok(c) if c.approved() => (st, desc),
            Ok(Cab::Filed {
                number: chg,
                approval,
            }) if approval == "rejected" => {
                ("failure", format!("the CAB rejected {chg} in ServiceNow"))
            }
            Ok(Cab::Filed {
                number: chg,
                approval,
            }) => (
                "pending",
                format!("{desc}; waiting for CAB approval of {chg} ({approval})"),
            ),
            Ok(Cab::NotFiled) => (
                "pending",
                format!("{desc}; waiting for its ServiceNow change to be filed"),
            ),
            Err(e) => {
                tracing::warn!(error = %e, pr = number, "asking ServiceNow for the CAB approval");
                (
                    "pending",
                    format!("{desc}; the CAB approval can't be read from ServiceNow"),
                )
            }
        };
        if st == "pending" {
            lock(&self.cab_waiting).insert(number);
        } else {
            lock(&self.cab_waiting).remove(&number);
        }
        (st, desc.chars().take(MAX_DESCRIPTION).collect())
    }

    /// Whether the CAB lets `cr` merge now (always, without a gate).
    pub(super) async fn cab_allows(&self, cr: &ChangeRequest) -> bool {
        match &self.cab {
            None => true,
            Some(cab) => cab.approval(&cr.id).await.is_ok_and(|c| c.approved()),
        }
    }

    /// From the expiry sweep: PR `number` waits for the CAB. When ServiceNow has decided, the
    /// PR is judged again (status, auto-merge, Slack) and the thread says what the CAB did.
    pub(crate) async fn recheck_cab(&self, state: &Ctx, number: u64, change_id: Option<&str>) {
        let (Some(cab), Some(id)) = (&self.cab, change_id) else {
            return;
        };
        if !lock(&self.cab_waiting).contains(&number) {
            return;
        }
        let decided = match cab.approval(id).await {
            Ok(Cab::Filed {
                number: chg,
                approval,
            }) if approval == "approved" || approval == "rejected" => {
                format!("the CAB {approval} {chg} in ServiceNow")
            }
            _ => return,
        };
        if let Err(e) = self.refresh_with(state, number, Some(&decided)).await {
            tracing::warn!(error = %e, pr = number, "refreshing after the CAB decided");
        }
    }
}
