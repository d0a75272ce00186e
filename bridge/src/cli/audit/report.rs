//! What `slipway audit verify` found, and the table it prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use slipway_core::audit::{ChainReport, ProblemKind};

/// One break in the trail. `writer`/`seq`/`event` locate it as far as they are known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub writer: String,
    pub seq: Option<u64>,
    pub event: String,
    /// A short, stable name: `hash_mismatch`, `gap`, `no_retention`, `missing_execution`…
    pub problem: &'static str,
    pub detail: String,
}

impl Finding {
    pub fn new(problem: &'static str, detail: impl Into<String>) -> Finding {
        Finding {
            writer: String::new(),
            seq: None,
            event: String::new(),
            problem,
            detail: detail.into(),
        }
    }

    #[must_use]
    pub fn at(mut self, writer: &str, seq: u64, event: &str) -> Finding {
        self.writer = writer.to_string();
        self.seq = Some(seq);
        self.event = event.to_string();
        self
    }
}

fn chain_problem_name(kind: ProblemKind) -> &'static str {
    match kind {
        ProblemKind::UnsupportedVersion => "unsupported_version",
        ProblemKind::Unsealed => "unsealed",
        ProblemKind::HashMismatch => "hash_mismatch",
        ProblemKind::Gap => "gap",
        ProblemKind::Duplicate => "duplicate",
        ProblemKind::Fork => "fork",
        ProblemKind::BrokenLink => "broken_link",
        ProblemKind::UnknownWriter => "unknown_writer",
        ProblemKind::BadCheckpoint => "bad_checkpoint",
        ProblemKind::CheckpointMismatch => "checkpoint_mismatch",
        ProblemKind::Truncated => "truncated",
        ProblemKind::Unsigned => "unsigned",
    }
}

/// The chain verifier's problems as findings; `source` (when several trails are compared)
/// leads each detail.
pub fn from_chain(report: &ChainReport, source: Option<&str>) -> Vec<Finding> {
    report
        .problems
        .iter()
        .map(|p| {
            let detail = match source {
                Some(s) => format!("{s}: {}", p.message),
                None => p.message.clone(),
            };
            Finding::new(chain_problem_name(p.kind), detail).at(&p.writer, p.seq, &p.event_id)
        })
        .collect()
}

/// Left-aligned columns, two spaces apart; the last column is never padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.iter().map(|h| (*h).to_string()).collect::<Vec<_>>());
    for row in rows {
        line(row);
    }
    out
}

/// The per-writer summary of each trail and the findings, as printed.
pub fn render(sources: &[(String, ChainReport)], findings: &[Finding], notes: &[String]) -> String {
    let mut out = String::new();
    let mut per_writer: BTreeMap<&str, usize> = BTreeMap::new();
    for f in findings {
        *per_writer.entry(f.writer.as_str()).or_default() += 1;
    }
    for (source, report) in sources {
        let _ = writeln!(out, "audit trail: {source}\n");
        if report.writers.is_empty() {
            out.push_str("no records\n\n");
            continue;
        }
        out.push_str(&writers_table(report, &per_writer));
        out.push('\n');
    }
    if !findings.is_empty() {
        out.push_str(&findings_table(findings));
        out.push('\n');
    }
    for note in notes {
        out.push_str(note);
        out.push('\n');
    }
    out.push_str(&verdict(sources, findings));
    out
}

/// One row per writer of a trail: how far its chain and its signatures reach, and whether
/// any finding is about it (`per_writer` counts them), so a break is easy to place.
fn writers_table(report: &ChainReport, per_writer: &BTreeMap<&str, usize>) -> String {
    let rows: Vec<Vec<String>> = report
        .writers
        .iter()
        .map(|(writer, head)| {
            let n = per_writer.get(writer.as_str()).copied().unwrap_or(0);
            vec![
                writer.clone(),
                head.records.to_string(),
                head.last_seq.to_string(),
                head.last_hash
                    .get(..12)
                    .unwrap_or(&head.last_hash)
                    .to_string(),
                head.signed_seq.to_string(),
                if n == 0 {
                    "ok".to_string()
                } else {
                    format!("{n} problem(s)")
                },
            ]
        })
        .collect();
    table(
        &[
            "WRITER",
            "RECORDS",
            "LAST SEQ",
            "LAST HASH",
            "SIGNED TO",
            "STATUS",
        ],
        &rows,
    )
}

/// One row per finding; what is not known about its place shows as `-`.
fn findings_table(findings: &[Finding]) -> String {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            vec![
                dash(&f.writer),
                f.seq.map_or_else(|| "-".into(), |s| s.to_string()),
                dash(&f.event),
                f.problem.to_string(),
                f.detail.clone(),
            ]
        })
        .collect();
    table(&["WRITER", "SEQ", "EVENT", "PROBLEM", "DETAIL"], &rows)
}

/// The last line, which scripts read: OK with the first trail's size, or FAILED with a count.
fn verdict(sources: &[(String, ChainReport)], findings: &[Finding]) -> String {
    let records = sources.first().map_or(0, |(_, r)| r.records);
    let writers = sources.first().map_or(0, |(_, r)| r.writers.len());
    if findings.is_empty() {
        format!("OK: {records} record(s) from {writers} writer(s), no breaks\n")
    } else {
        format!(
            "FAILED: {} problem(s) in {records} record(s)\n",
            findings.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::audit::verify_chain;

    #[test]
    fn renders_writers_and_findings() {
        let report = verify_chain(&[]);
        let text = render(
            &[("spool x".into(), report)],
            &[Finding::new("gap", "record 3 is missing").at("bridge:a", 3, "e4")],
            &[],
        );
        assert!(text.contains("no records"), "{text}");
        assert!(
            text.contains("bridge:a  3    e4     gap      record 3 is missing"),
            "{text}"
        );
        assert!(
            text.ends_with("FAILED: 1 problem(s) in 0 record(s)\n"),
            "{text}"
        );
    }
}
