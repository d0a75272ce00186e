//! The audit record of a change's outcome: who asked, what ran, what it said (an excerpt of
//! the redacted output with the digests), and the approvals that counted.

use std::fmt::Write as _;
use std::time::Duration;

use slipway_core::audit::{
    Actor, Approval, ApprovalSource, AuditRecord, CommandInfo, EventKind, Output, PullRequest,
    RunnerInfo,
};
use slipway_core::change::ChangeRequest;
use slipway_infra::github::Pr;

use crate::outcome::{Outcome, Ran};

/// All steps' output, for the audit excerpt.
fn excerpt(ex: &Ran, cap: usize) -> (String, u64, bool) {
    let mut text = String::new();
    let mut total = 0u64;
    let mut truncated = false;
    for s in &ex.steps {
        let _ = writeln!(text, "$ {}\n{}", s.shown, s.output.trim_end());
        total += s.total_bytes;
        truncated |= s.truncated;
    }
    if text.len() > cap {
        let mut cut = cap;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        truncated = true;
    }
    (text, total, truncated)
}

/// What the audit record is built from.
#[derive(Debug, Clone, Copy)]
pub struct AuditInput<'a> {
    pub event_id: &'a str,
    pub now: chrono::DateTime<chrono::Utc>,
    pub path: &'a str,
    pub cr: Option<&'a ChangeRequest>,
    pub pr: Option<&'a Pr>,
    pub repo: &'a str,
    pub merge_sha: &'a str,
    pub outcome: &'a Outcome,
    pub ran: Option<&'a Ran>,
    pub duration: Duration,
    pub run_id: &'a str,
    pub oidc_subject: Option<&'a str>,
    pub approvals: &'a [slipway_core::approval::Counted],
    pub details: &'a serde_json::Value,
}

/// The audit record: `execution` for something that ran (or was found done), `rejection` for a
/// refusal.
pub fn audit_record(a: &AuditInput<'_>) -> AuditRecord {
    let kind = match a.outcome {
        Outcome::Refused(_) => EventKind::Rejection,
        _ => EventKind::Execution,
    };
    let mut r = AuditRecord::new(kind, a.event_id, a.now).with_runner(RunnerInfo {
        run_id: a.run_id.to_string(),
        oidc_subject: a.oidc_subject.map(String::from),
    });
    if let Some(cr) = a.cr {
        r = with_request(r, cr);
    } else if let Some(id) = crate::job::id_from_path(a.path) {
        r = r.with_change_id(id);
    }
    if let Some(pr) = a.pr {
        r = r.with_pr(PullRequest {
            repo: a.repo.to_string(),
            number: pr.number,
            head_sha: Some(pr.head_sha.clone()),
            merge_sha: Some(a.merge_sha.to_string()),
        });
    }
    for c in a.approvals {
        r = r.with_approval(Approval {
            who: c.subject.clone(),
            when: a.now,
            source: ApprovalSource::Github,
            head_sha: a.pr.map(|p| p.head_sha.clone()),
        });
    }
    if let Some(ran) = a.ran {
        r = r.with_output(output(ran, a.duration));
    }
    r.with_details(details(a))
}

/// Who asked for what, as the signed request says.
fn with_request(r: AuditRecord, cr: &ChangeRequest) -> AuditRecord {
    r.with_actor(Actor {
        slack_user_id: Some(cr.requester.slack_user_id.clone()),
        slack_team_id: cr.requester.slack_team_id.clone(),
        slack_enterprise_id: cr.requester.slack_enterprise_id.clone(),
        subject: Some(cr.requester.subject.clone()),
        email: cr.requester.email.clone(),
        github_login: cr.requester.github_login.clone(),
        groups: cr.requester.groups.clone(),
        role: Some(cr.requester.role.clone()),
    })
    .with_command(CommandInfo {
        text: cr.command.text.clone(),
        family: Some(cr.command.family),
        argv: Some(cr.command.argv.clone()),
    })
    .with_target(cr.target.clone())
    .with_tier(cr.tier)
    .with_change_id(cr.id.clone())
}

/// The steps' output, capped, with the exit code and digest of the step that failed (a rollout
/// that never became ready, though the steps after it, gathering the pods' reasons, exit 0),
/// else of the last step.
fn output(ran: &Ran, duration: Duration) -> Output {
    let (text, total, truncated) = excerpt(ran, 64 * 1024);
    let decisive = ran
        .steps
        .iter()
        .find(|s| s.end.exit_code() != Some(0))
        .or_else(|| ran.steps.last());
    let exit = decisive.and_then(|s| s.end.exit_code());
    let mut out = Output::new(
        text,
        b"",
        exit,
        u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        truncated,
    );
    // The digests are of the redacted streams (the unredacted text is never held).
    out.sha256 = decisive.map(|s| s.digest.clone()).unwrap_or_default();
    out.bytes = total;
    out
}

/// The outcome, the file, each step, and the caller's own details on top.
fn details(a: &AuditInput<'_>) -> serde_json::Value {
    let mut details = serde_json::json!({
        "outcome": a.outcome.word(),
        "reason": a.outcome.reason(),
        "file": a.path,
        "merge_sha": a.merge_sha,
        "steps": a.ran.map(|ex| ex.steps.iter().map(|s| serde_json::json!({"command": s.shown, "end": s.ended, "ms": u64::try_from(s.duration.as_millis()).unwrap_or(u64::MAX), "output_sha256": s.digest})).collect::<Vec<_>>()),
    });
    if let (Some(obj), Some(extra)) = (details.as_object_mut(), a.details.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    details
}
