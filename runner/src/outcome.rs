//! What happened to one change, as the three phases hand it on: the processes it ran
//! (`execute`), how it ended (`Outcome`), and everything its report names (`Ended`). A leaf
//! module, so `verify`, `execute` and `report` share these types without depending on each other.

use std::time::Duration;

use slipway_core::approval::Counted;
use slipway_infra::exec::ExecEnd;

use crate::credentials::Granted;

/// One process the change ran.
#[derive(Debug, Clone)]
pub struct Step {
    /// The command as shown to people (no credentials in it).
    pub shown: String,
    pub end: ExecEnd,
    /// How it ended, in words (`finished`, `timed out after 15m and was stopped …`).
    pub ended: String,
    pub duration: Duration,
    /// Redacted, capped output (empty for steps whose output isn't shown).
    pub output: String,
    pub truncated: bool,
    /// sha256 of the full redacted output.
    pub digest: String,
    pub total_bytes: u64,
    /// This step changes infrastructure.
    pub mutating: bool,
}

/// How the processes ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// Failed before anything was changed, or applied but its rollout never became ready (the
    /// reason says which).
    Failed(String),
    /// A mutating step started and did not finish cleanly: some of it may have happened.
    Partial(String),
    /// The re-plan differs from the approved plan: nothing was applied.
    Drift(String),
}

/// The processes one change ran, and the verdict on them.
#[derive(Debug, Clone)]
pub struct Ran {
    pub steps: Vec<Step>,
    pub verdict: Verdict,
}

/// How a change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified, and about to run (the audit record written before anything runs).
    Started,
    Executed,
    /// Failed before changing anything.
    Failed(String),
    /// Failed midway: some of it may have been done.
    Partial(String),
    /// Refused before anything ran.
    Refused(String),
    /// A previous run already handled it; nothing was done.
    AlreadyDone(String),
    /// A previous run started executing it and never reported: not retried.
    Interrupted,
}

impl Outcome {
    pub fn from_verdict(v: &Verdict) -> Outcome {
        match v {
            Verdict::Done => Outcome::Executed,
            Verdict::Failed(why) => Outcome::Failed(why.clone()),
            Verdict::Partial(why) => Outcome::Partial(why.clone()),
            Verdict::Drift(why) => Outcome::Refused(why.clone()),
        }
    }

    /// One word, for logs, statuses and the audit.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Executed => "executed",
            Outcome::Failed(_) => "failed",
            Outcome::Partial(_) => "partial",
            Outcome::Refused(_) => "refused",
            Outcome::AlreadyDone(_) => "already-done",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// Whether the run as a whole is still a success (exit 0).
    pub fn ok(&self) -> bool {
        matches!(
            self,
            Outcome::Started | Outcome::Executed | Outcome::AlreadyDone(_)
        )
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Failed(r) | Outcome::Partial(r) | Outcome::Refused(r) => Some(r),
            Outcome::AlreadyDone(prev) => Some(prev),
            Outcome::Interrupted => Some(
                "a previous run of this workflow started executing it and never reported a result, so what it did is unknown; it is not retried: check the target, then request the change again",
            ),
            Outcome::Started | Outcome::Executed => None,
        }
    }

    /// `success`, `failure` or `error`.
    pub fn status_state(&self) -> &'static str {
        match self {
            Outcome::Started => "pending",
            Outcome::Executed => "success",
            Outcome::Refused(_) | Outcome::Failed(_) => "failure",
            Outcome::Partial(_) | Outcome::Interrupted | Outcome::AlreadyDone(_) => "error",
        }
    }
}

/// How one change ended, with everything its report names. `verify` hands one on when the
/// change doesn't run, `execute` when it ran (or failed to start); `report` tells everyone.
#[derive(Debug, Clone)]
pub struct Ended {
    pub outcome: Outcome,
    /// The processes run, if any were.
    pub ran: Option<Ran>,
    /// The approvals that counted (empty before the quorum was checked).
    pub approvals: Vec<Counted>,
    pub granted: Granted,
    /// Only the audit hears of it: the PR already carries the result, or can't be read.
    pub audit_only: bool,
}

impl Ended {
    /// Nothing ran; the PR, the status and the audit all say so.
    pub fn before_running(outcome: Outcome, approvals: Vec<Counted>) -> Ended {
        Ended {
            outcome,
            ran: None,
            approvals,
            granted: Granted::default(),
            audit_only: false,
        }
    }

    /// Nothing ran, and only the audit hears of it.
    pub fn audit_only(outcome: Outcome) -> Ended {
        Ended {
            audit_only: true,
            ..Ended::before_running(outcome, Vec::new())
        }
    }
}
