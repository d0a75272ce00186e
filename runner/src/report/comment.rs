//! What a change's result looks like on GitHub: the PR comments (each with a hidden marker so
//! a re-run finds it) and the commit status's description.

use std::fmt::Write as _;
use std::time::Duration;

use slipway_core::change::ChangeRequest;
use slipway_infra::github::Comment;

use crate::outcome::{Outcome, Ran};

/// The commit status context on the merge commit.
pub const STATUS_CONTEXT: &str = "slipway/execution";

/// The hidden marker of a change's final result comment.
pub fn result_marker(id: &str) -> String {
    format!("<!-- slipway-runner:{id} -->")
}

/// The hidden marker of a rollout's end in a result comment: `ok` or `failed`. The bridge counts
/// it (`slipway_rollouts_total`) only in comments by the runner's login.
pub fn rollout_marker(ok: bool) -> String {
    format!(
        "<!-- slipway-rollout:{} -->",
        if ok { "ok" } else { "failed" }
    )
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
pub struct ResultComment<'a> {
    pub id: &'a str,
    pub command: &'a str,
    pub outcome: &'a Outcome,
    pub ran: Option<&'a Ran>,
    pub duration: Duration,
    pub run_url: &'a str,
    pub merge_sha: &'a str,
    pub notes: &'a [String],
}

/// The result comment (the caller cuts it to GitHub's limit).
pub fn result_body(r: &ResultComment<'_>) -> String {
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
    // A rollout waited for: its end, for the bridge's metrics.
    if let Some(wait) = r.ran.and_then(|ran| {
        ran.steps
            .iter()
            .rfind(|s| s.shown.starts_with("kubectl rollout status"))
    }) {
        let _ = writeln!(out, "{}", rollout_marker(wait.end.success()));
    }
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
    if let Some(ran) = r.ran
        && !ran.steps.is_empty()
    {
        push_steps(&mut out, ran);
    }
    out
}

/// Each step's end, then the redacted output in one fenced block that no output can close.
fn push_steps(out: &mut String, ran: &Ran) {
    out.push_str("\n**Steps**\n\n");
    for s in &ran.steps {
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
    for s in ran.steps.iter().filter(|s| !s.output.is_empty()) {
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

/// The commit status description (GitHub keeps 140 characters).
pub fn status_description(id: &str, outcome: &Outcome) -> String {
    match outcome.reason() {
        Some(r) => format!("{id}: {} — {r}", outcome.word()),
        None => format!("{id}: {}", outcome.word()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Step, Verdict};
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
        let ex = Ran {
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
        let body = result_body(&ResultComment {
            id: "cr-1",
            command: "/kubectl scale",
            outcome: &outcome,
            ran: Some(&ex),
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
        assert!(
            !body.contains("slipway-rollout"),
            "no rollout was waited for"
        );
    }

    #[test]
    fn a_rollout_waited_for_leaves_its_end_in_a_marker() {
        let wait = |end: ExecEnd| Ran {
            steps: vec![Step {
                shown:
                    "kubectl rollout status deployment/web -n web --timeout=300s (cluster staging)"
                        .into(),
                ended: end.describe(Duration::from_secs(300)),
                end,
                duration: Duration::from_secs(1),
                output: String::new(),
                truncated: false,
                digest: "d".into(),
                total_bytes: 0,
                mutating: false,
            }],
            verdict: Verdict::Done,
        };
        for (end, marker) in [
            (ExecEnd::Exited(0), rollout_marker(true)),
            (ExecEnd::Exited(1), rollout_marker(false)),
        ] {
            let ran = wait(end);
            let body = result_body(&ResultComment {
                id: "cr-1",
                command: "/deploy web staging",
                outcome: &Outcome::Executed,
                ran: Some(&ran),
                duration: Duration::from_secs(2),
                run_url: "https://r",
                merge_sha: "abcdef0123",
                notes: &[],
            });
            assert!(body.contains(&marker), "{body}");
        }
    }
}
