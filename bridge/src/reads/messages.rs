//! Slack messages for a run, from `templates/blocks/run.json.j2`, cut to Block Kit's limits
//! (section text ≤ 3000 characters) with a note when anything was left out.

use std::time::Duration;

use slipway_infra::exec::ExecEnd;

use crate::exec::queue::Job;
use crate::exec::reply::{Reply, SECTION_BUDGET, code, fit_head};
use crate::exec::work::{Finished, Shape};
use crate::slack::client::Message;

/// Where a run is.
#[derive(Debug, Clone)]
pub enum Status {
    Running,
    Done {
        end: ExecEnd,
        timeout: Duration,
        cancelled_by: Option<String>,
        /// Says how the run ended instead of the generic process wording.
        outcome: Option<String>,
    },
}

fn secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}.{}s", s, d.subsec_millis() / 100)
    }
}

/// Keep the last characters of `text` that fit `budget`, on a line boundary where possible.
fn fit_tail(text: &str, budget: usize) -> (String, bool) {
    let count = text.chars().count();
    if count <= budget {
        return (text.to_string(), false);
    }
    let skip = count - budget;
    let tail: String = text.chars().skip(skip).collect();
    let tail = match tail.find('\n') {
        Some(i) if i < tail.len() / 2 => tail[i + 1..].to_string(),
        _ => tail,
    };
    (tail, true)
}

fn render(
    headline: &str,
    context: &str,
    output: &str,
    note: &str,
    cancel: &str,
    fallback: String,
) -> Message {
    let ctx = minijinja::context! { headline, context, output, note, cancel_value => cancel };
    match crate::templates::render_blocks("blocks/run.json.j2", ctx) {
        Ok(blocks) => Message {
            text: fallback,
            blocks,
        },
        Err(e) => {
            tracing::error!(error = %e, "rendering the run message");
            Message::text(fallback)
        }
    }
}

/// The run's main message: progress while running, the outcome afterwards.
pub fn run_message(job: &Job, status: Status, elapsed: Duration, tail: &[String]) -> Message {
    let who = format!(
        "<@{}> ({}, {}){}",
        job.requester.user_id,
        job.subject,
        job.role,
        retried(job)
    );
    match status {
        Status::Running => {
            let headline = format!(
                ":hourglass_flowing_sand: Running `{}` on *{}*",
                job.shown, job.target
            );
            let context = format!("Requested by {who} · {} elapsed", secs(elapsed));
            let (out, _) = fit_tail(&tail.join("\n"), SECTION_BUDGET);
            let output = if out.trim().is_empty() {
                String::new()
            } else {
                code(&out)
            };
            render(
                &headline,
                &context,
                &output,
                "",
                &job.id,
                format!("Running {} on {}", job.shown, job.target),
            )
        }
        Status::Done {
            end,
            timeout,
            cancelled_by,
            outcome: given,
        } => {
            let icon = match &end {
                ExecEnd::Exited(0) => ":white_check_mark:",
                ExecEnd::Cancelled | ExecEnd::TimedOut => ":stop_sign:",
                _ => ":x:",
            };
            let mut outcome = given.unwrap_or_else(|| end.describe(timeout));
            if let (ExecEnd::Cancelled, Some(by)) = (&end, &cancelled_by) {
                outcome = format!("was cancelled by <@{by}> (its whole process group was killed)");
            }
            let headline = format!("{icon} `{}` on *{}* {outcome}", job.shown, job.target);
            let context = format!(
                "Requested by {who} · took {} · output in the thread",
                secs(elapsed)
            );
            render(
                &headline,
                &context,
                "",
                "",
                "",
                format!("{} on {} {outcome}", job.shown, job.target),
            )
        }
    }
}

/// The note on a read claimed from a replica that stopped answering, run here again.
fn retried(job: &Job) -> &'static str {
    if job.retried {
        " · retried on another replica (the first one stopped)"
    } else {
        ""
    }
}

/// Where the full output is, for notes about what was left out.
pub fn kept_note(total_bytes: u64, audit_id: Option<&str>) -> String {
    format!(
        "Output truncated: {total_bytes} bytes in total. The full redacted output is kept with the audit record{}.",
        audit_id.map(|id| format!(" `{id}`")).unwrap_or_default()
    )
}

/// The thread reply with the (redacted) output, shaped by the kind of work.
pub fn output_message(finished: &Finished, audit_id: Option<&str>) -> Message {
    let result = &finished.result;
    let digest = format!("sha256 `{}`", &result.digest.get(..12).unwrap_or(""));
    match &finished.shape {
        Shape::Json if result.end.success() => {
            if let Some(reply) =
                crate::exec::aws::table_reply(&result.output, SECTION_BUDGET, &digest, audit_id)
            {
                return reply.message();
            }
        }
        Shape::Plan(summary) => {
            return crate::exec::terraform::plan_reply(
                result,
                summary.as_ref(),
                SECTION_BUDGET,
                &digest,
                audit_id,
            )
            .message();
        }
        Shape::Json | Shape::Text => {}
    }
    let (text, cut) = fit_head(&result.output, SECTION_BUDGET);
    let output = if text.trim().is_empty() {
        "_(no output)_".to_string()
    } else {
        code(&text)
    };
    Reply {
        headline: "*Output*".into(),
        context: digest,
        output,
        note: if cut || result.truncated {
            kept_note(result.total_bytes, audit_id)
        } else {
            String::new()
        },
        fallback: format!("Output:\n{text}"),
        ..Reply::default()
    }
    .message()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting() {
        let long = (0..1000)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        let (head, cut) = fit_head(&long, 100);
        assert!(cut && head.starts_with("line 0") && head.chars().count() <= 100);
        let (tail, cut) = fit_tail(&long, 100);
        assert!(cut && tail.ends_with("line 999") && tail.chars().count() <= 100);
        assert_eq!(fit_head("short", 100), ("short".into(), false));
    }

    #[test]
    fn code_fence_cannot_be_closed_by_output() {
        assert!(
            !code("a ``` b")
                .trim_start_matches("```")
                .trim_end_matches("```")
                .contains("```")
        );
    }
}
