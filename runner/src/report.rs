//! What a change's result looks like: the PR comment (with a hidden marker so a re-run finds
//! it), the commit status, and the audit record.

use std::fmt::Write as _;
use std::time::Duration;

use slipway_core::audit::{
    Actor, Approval, ApprovalSource, AuditRecord, CommandInfo, EventKind, Output, PullRequest,
    RunnerInfo,
};
use slipway_core::change::ChangeRequest;
use slipway_infra::github::{Comment, Pr};

use crate::apply::{Execution, Verdict};

/// The commit status context on the merge commit.
pub const STATUS_CONTEXT: &str = "slipway/execution";

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

/// The hidden marker of a change's final result comment.
pub fn result_marker(id: &str) -> String {
    format!("<!-- slipway-runner:{id} -->")
}

/// The hidden marker of the "starting" comment posted before anything runs.
pub fn started_marker(id: &str) -> String {
    format!("<!-- slipway-runner:{id}:started -->")
}

/// What earlier runs left on the PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    None,
    /// The first line of the earlier result comment.
    Done(String),
    Started,
}

/// Only comments by a bot (the workflow's token) count: a person pasting a marker can't make
/// the runner skip a change.
pub fn previous(comments: &[Comment], id: &str) -> Previous {
    let ours = |c: &&Comment| c.author_type.eq_ignore_ascii_case("bot");
    let result = result_marker(id);
    if let Some(c) = comments
        .iter()
        .filter(ours)
        .find(|c| c.body.contains(&result))
    {
        let headline = c
            .body
            .lines()
            .find(|l| l.starts_with("### "))
            .unwrap_or("a result")
            .trim_start_matches("### ")
            .to_string();
        return Previous::Done(headline);
    }
    if comments
        .iter()
        .filter(ours)
        .any(|c| c.body.contains(&started_marker(id)))
    {
        return Previous::Started;
    }
    Previous::None
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn fence(text: &str) -> String {
    text.replace("```", "`\u{200b}``")
}

/// The "starting" comment.
pub fn started_body(cr: &ChangeRequest, run_url: &str, merge_sha: &str) -> String {
    format!(
        "{}\n:hourglass_flowing_sand: **Executing** `{}` (change `{}`) from merge {} in [this run]({run_url}). The result will follow here; if none does, the run was interrupted and the change is **not** retried.",
        started_marker(&cr.id),
        cr.command.text,
        cr.id,
        merge_sha.get(..7).unwrap_or(merge_sha)
    )
}

/// Everything the result comment says.
#[derive(Debug, Clone, Copy)]
pub struct Result<'a> {
    pub id: &'a str,
    pub command: &'a str,
    pub outcome: &'a Outcome,
    pub execution: Option<&'a Execution>,
    pub duration: Duration,
    pub run_url: &'a str,
    pub merge_sha: &'a str,
    pub notes: &'a [String],
}

/// The result comment (the caller cuts it to GitHub's limit).
pub fn result_body(r: &Result<'_>) -> String {
    let (icon, verb) = match r.outcome {
        Outcome::Started => (":hourglass_flowing_sand:", "Executing"),
        Outcome::Executed => (":white_check_mark:", "Executed"),
        Outcome::Failed(_) => (":x:", "Failed"),
        Outcome::Partial(_) => (":warning:", "Partially executed"),
        Outcome::Refused(_) => (":no_entry:", "Refused"),
        Outcome::AlreadyDone(_) => (":information_source:", "Already handled"),
        Outcome::Interrupted => (":warning:", "Interrupted earlier, not retried"),
    };
    let mut out = format!(
        "{}\n### {icon} {verb}: `{}`\n\n",
        result_marker(r.id),
        r.command
    );
    if let Some(reason) = r.outcome.reason() {
        let _ = writeln!(out, "**Why:** {reason}\n");
    }
    let _ = writeln!(
        out,
        "Change `{}` · merge `{}` · took {} · [runner log]({})",
        r.id,
        r.merge_sha.get(..7).unwrap_or(r.merge_sha),
        secs(r.duration),
        r.run_url
    );
    for n in r.notes {
        let _ = writeln!(out, "\n{n}");
    }
    if let Some(ex) = r.execution
        && !ex.steps.is_empty()
    {
        out.push_str("\n**Steps**\n\n");
        for s in &ex.steps {
            let _ = writeln!(
                out,
                "- `{}`: {} ({})",
                s.shown,
                if s.end.success() {
                    "ok"
                } else {
                    s.ended.as_str()
                },
                secs(s.duration)
            );
        }
        out.push_str("\n<details><summary>Output (redacted)</summary>\n\n```text\n");
        for s in ex.steps.iter().filter(|s| !s.output.is_empty()) {
            let _ = writeln!(out, "$ {}\n{}", s.shown, fence(s.output.trim_end()));
            if s.truncated {
                let _ = writeln!(
                    out,
                    "… (output cut at the policy's limit; {} bytes in all, sha256 {})",
                    s.total_bytes, s.digest
                );
            }
        }
        out.push_str("```\n\n</details>\n");
    }
    out
}

/// The commit status description (GitHub keeps 140 characters).
pub fn status_description(id: &str, outcome: &Outcome) -> String {
    match outcome.reason() {
        Some(r) => format!("{id}: {} — {r}", outcome.word()),
        None => format!("{id}: {}", outcome.word()),
    }
}

/// All steps' output, for the audit excerpt.
fn excerpt(ex: &Execution, cap: usize) -> (String, u64, bool) {
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
    pub execution: Option<&'a Execution>,
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
        r = r
            .with_actor(Actor {
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
            .with_change_id(cr.id.clone());
    } else if let Some(id) = crate::verify::id_from_path(a.path) {
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
    if let Some(ex) = a.execution {
        let (text, total, truncated) = excerpt(ex, 64 * 1024);
        let exit = ex.steps.last().and_then(|s| s.end.exit_code());
        let mut out = Output::new(
            text,
            b"",
            exit,
            u64::try_from(a.duration.as_millis()).unwrap_or(u64::MAX),
            truncated,
        );
        // The digests are of the redacted streams (the unredacted text is never held).
        out.sha256 = ex
            .steps
            .last()
            .map(|s| s.digest.clone())
            .unwrap_or_default();
        out.bytes = total;
        r = r.with_output(out);
    }
    let mut details = serde_json::json!({
        "outcome": a.outcome.word(),
        "reason": a.outcome.reason(),
        "file": a.path,
        "merge_sha": a.merge_sha,
        "steps": a.execution.map(|ex| ex.steps.iter().map(|s| serde_json::json!({"command": s.shown, "end": s.ended, "ms": u64::try_from(s.duration.as_millis()).unwrap_or(u64::MAX), "output_sha256": s.digest})).collect::<Vec<_>>()),
    });
    if let (Some(obj), Some(extra)) = (details.as_object_mut(), a.details.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    r.with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Step;
    use slipway_infra::exec::ExecEnd;

    fn comment(author_type: &str, body: &str) -> Comment {
        Comment {
            id: 1,
            author: "x".into(),
            author_type: author_type.into(),
            body: body.into(),
        }
    }

    #[test]
    fn markers_from_bots_only() {
        let done = format!(
            "{}\n### :white_check_mark: Executed: `/kubectl scale`\n",
            result_marker("cr-1")
        );
        assert_eq!(
            previous(&[comment("User", &done)], "cr-1"),
            Previous::None,
            "a person can't fake a result"
        );
        assert_eq!(
            previous(&[comment("Bot", &done)], "cr-1"),
            Previous::Done(":white_check_mark: Executed: `/kubectl scale`".into())
        );
        assert_eq!(previous(&[comment("Bot", &done)], "cr-2"), Previous::None);
        assert_eq!(
            previous(&[comment("Bot", &started_marker("cr-1"))], "cr-1"),
            Previous::Started
        );
    }

    #[test]
    fn result_bodies_show_steps_and_fence_output() {
        let ex = Execution {
            steps: vec![Step {
                shown: "kubectl scale deployment/web --replicas=5".into(),
                end: ExecEnd::TimedOut,
                ended: ExecEnd::TimedOut.describe(Duration::from_secs(60)),
                duration: Duration::from_millis(1500),
                output: "x\n```\ny".into(),
                truncated: false,
                digest: "d".into(),
                total_bytes: 3,
                mutating: true,
            }],
            verdict: Verdict::Partial("timed out".into()),
        };
        let outcome = Outcome::from_verdict(&ex.verdict);
        let body = result_body(&Result {
            id: "cr-1",
            command: "/kubectl scale",
            outcome: &outcome,
            execution: Some(&ex),
            duration: Duration::from_secs(2),
            run_url: "https://r",
            merge_sha: "abcdef0123",
            notes: &[],
        });
        assert!(body.starts_with(&result_marker("cr-1")));
        assert!(
            body.contains("Partially executed")
                && body.contains("timed out after 1m")
                && body.contains("took 2.0s"),
            "{body}"
        );
        assert_eq!(
            body.matches("```").count(),
            2,
            "the output can't close the fence: {body}"
        );
        assert_eq!(outcome.status_state(), "error");
        assert!(!outcome.ok());
    }
}
