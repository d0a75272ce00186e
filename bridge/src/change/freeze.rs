//! Freeze windows at request time: a change request on a resource a window covers is refused
//! while the window is in force, unless the requester is one of its overriders and gave
//! `--override-freeze "<reason>"`. Judged at the ack (dry run and `--apply`) and again when the
//! PR opens (a Confirm after the window began), whose signed request then carries the override.

use chrono::{DateTime, Utc};
use slipway_core::change::FreezeOverride;
use slipway_core::command::{ParseError, ParsedCommand};
use slipway_core::policy::{Decision, FreezeCheck, Outcome, Policy};

/// The rule id (and `slipway_refusals_total{reason}` label) of a change refused by a window.
pub const FROZEN: &str = "freeze";
/// The rule id of an override by someone the window doesn't name.
pub const OVERRIDE_REFUSED: &str = "freeze.override-refused";

/// A refusal: the rule id and the sentence the requester reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: &'static str,
    pub reason: String,
}

/// The override to sign into the request (`None`: no window is in force over any of
/// `resources`), or the refusal.
pub fn judge(
    policy: &Policy,
    resources: &[String],
    groups: &[String],
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<FreezeOverride>, Refusal> {
    match policy.check_freeze(resources, now, groups, |_| reason.is_some()) {
        FreezeCheck::Open => Ok(None),
        FreezeCheck::Overridden(windows) => Ok(Some(FreezeOverride {
            windows: windows.iter().map(|f| f.window.name.clone()).collect(),
            reason: reason.unwrap_or_default().to_string(),
        })),
        FreezeCheck::Frozen(f) => Err(Refusal {
            rule: FROZEN,
            reason: f.refusal(),
        }),
        FreezeCheck::NotAllowed(f) => Err(Refusal {
            rule: OVERRIDE_REFUSED,
            reason: f.not_allowed(),
        }),
    }
}

/// At the ack: a change request decided during a window it doesn't override becomes a denial
/// naming the window; an override that holds is returned for the decision's audit record.
pub fn at_ack<'a>(
    policy: &Policy,
    mut d: Decision<'a>,
    parsed: &Result<ParsedCommand, ParseError>,
    now: DateTime<Utc>,
) -> (Decision<'a>, Option<FreezeOverride>) {
    let Ok(parsed) = parsed else { return (d, None) };
    if d.outcome != Outcome::Approval {
        return (d, None);
    }
    let reason = parsed.override_freeze.as_deref();
    let (Some(resource), Some(identity)) = (d.resource(), d.identity) else {
        return (d, None);
    };
    match judge(policy, &[resource], &identity.groups, reason, now) {
        Ok(overridden) => (d, overridden),
        Err(refusal) => {
            d.outcome = Outcome::Deny;
            d.rule = refusal.rule.to_string();
            d.reason = refusal.reason;
            d.approval = None;
            (d, None)
        }
    }
}

/// Why a change PR may not merge now: a window in force over its resource that its signed
/// request doesn't override (`slipway/approval`'s description, within GitHub's 140 characters).
/// A manifest's objects are judged when the PR opens and by the runner, not here.
pub fn blocking_merge(
    policy: &Policy,
    cr: &slipway_core::change::ChangeRequest,
    now: DateTime<Utc>,
) -> Option<String> {
    let (FreezeCheck::Frozen(f) | FreezeCheck::NotAllowed(f)) =
        policy.check_change_freeze(cr, &[], now)
    else {
        return None;
    };
    let text = format!(
        "frozen by window {} until {}",
        f.window.name,
        f.ends_at.format("%Y-%m-%d %H:%M UTC")
    );
    Some(text.chars().take(140).collect())
}
