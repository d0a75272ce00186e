//! Each merged change request against its records: not "a record of each kind exists", but the
//! story the records tell must be the one git tells.
//!
//! - its `change_request` record, at the head that was merged;
//! - approvals on that head from enough distinct people, none of them the requester, meeting the
//!   signed rule (the rule in the merged change file, each group quorum included);
//! - those approvals after the request and (enough of them) before the merge;
//! - the runner's records naming the merge commit and head, starting after the merge, and ending
//!   with an outcome.
//!
//! Records from hosts with different clocks are compared with [`SKEW`] to spare.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use slipway_core::audit::{AuditRecord, EventKind};
use slipway_core::change::ChangeRequest;

use super::report::Finding;

/// How far apart the clocks of GitHub, the bridge and the runner may be.
pub const SKEW: Duration = Duration::seconds(120);

/// A change request file found on the default branch.
#[derive(Debug, Clone)]
pub struct MergedChange {
    pub id: String,
    pub path: String,
    /// The first-parent commit that added the file (the merge, for merged pull requests).
    pub commit: String,
    /// The pull request's head: the merge commit's second parent (`None` for a squash or a
    /// direct commit).
    pub head: Option<String>,
    pub merged_at: DateTime<Utc>,
    /// The file as a change request (`None` when it isn't one; reported separately).
    pub request: Option<ChangeRequest>,
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The runner's outcome word, from its record's details.
fn outcome(r: &AuditRecord) -> &str {
    r.details
        .as_ref()
        .and_then(|d| d.get("outcome"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

/// The checks, pure, over loaded records; also counts the final outcomes.
pub fn cross_check(
    merged: &[MergedChange],
    records: &[AuditRecord],
) -> (Vec<Finding>, BTreeMap<String, usize>) {
    let merged_ids: BTreeSet<&str> = merged.iter().map(|c| c.id.as_str()).collect();
    let mut findings = Vec::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for change in merged {
        let mut found = Vec::new();
        check_change(change, records, &mut found, &mut outcomes);
        for mut f in found {
            if f.event.is_empty() {
                f.event = format!("change {}", change.id);
            }
            findings.push(f);
        }
    }
    for r in records.iter().filter(|r| r.kind == EventKind::Execution) {
        if let Some(id) = r.change_id.as_deref()
            && !merged_ids.contains(id)
        {
            findings.push(
                Finding::new(
                    "orphan_execution",
                    format!(
                        "execution of change {id}, but no changes/{id}.yaml was merged on the \
                         default branch"
                    ),
                )
                .at(&r.writer, r.seq, &r.event_id),
            );
        }
    }
    (findings, outcomes)
}

fn check_change(
    change: &MergedChange,
    records: &[AuditRecord],
    findings: &mut Vec<Finding>,
    outcomes: &mut BTreeMap<String, usize>,
) {
    let id = change.id.as_str();
    let merge = short(&change.commit);
    let requests: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.kind == EventKind::ChangeRequest && r.change_id.as_deref() == Some(id))
        .collect();
    let Some(request) = requests.iter().max_by_key(|r| r.time) else {
        findings.push(Finding::new(
            "missing_decision",
            format!(
                "change {id} was merged ({} in commit {merge}) but has no change_request \
                 (decision) record",
                change.path
            ),
        ));
        return;
    };
    let pr = request.pr.as_ref();
    let head = change
        .head
        .clone()
        .or_else(|| pr.and_then(|p| p.head_sha.clone()));
    if let (Some(merged_head), Some(recorded)) =
        (&change.head, pr.and_then(|p| p.head_sha.as_ref()))
        && merged_head != recorded
    {
        findings.push(
            Finding::new(
                "head_mismatch",
                format!(
                    "the change request was recorded at head {}, but head {} was merged (commit \
                     {merge})",
                    short(recorded),
                    short(merged_head)
                ),
            )
            .at(&request.writer, request.seq, &request.event_id),
        );
    }
    check_approvals(change, request, head.as_deref(), records, findings);
    check_execution(
        change,
        request.time,
        head.as_deref(),
        records,
        findings,
        outcomes,
    );
}

/// Who approved the merged head: earliest approval time and groups, per person.
type Counted<'a> = BTreeMap<&'a str, (DateTime<Utc>, BTreeSet<&'a str>)>;

/// Approvals on the merged head, distinct, not the requester's, against the signed rule, in
/// order.
fn check_approvals(
    change: &MergedChange,
    request: &AuditRecord,
    head: Option<&str>,
    records: &[AuditRecord],
    findings: &mut Vec<Finding>,
) {
    let id = change.id.as_str();
    let pr = request.pr.as_ref().map(|p| (&p.repo, p.number));
    let approvals: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.kind == EventKind::Approval)
        .filter(|r| {
            r.change_id.as_deref() == Some(id)
                || (pr.is_some() && r.pr.as_ref().map(|p| (&p.repo, p.number)) == pr)
        })
        .collect();
    if approvals.is_empty() {
        findings.push(Finding::new(
            "missing_approval",
            format!(
                "change {id} was merged ({} in commit {}) but has no approval record",
                change.path,
                short(&change.commit)
            ),
        ));
        return;
    }
    let Some(cr) = &change.request else {
        return;
    };
    let counted = count(&approvals, cr, request, head, findings);
    check_rule(change, cr, &counted, approvals.len(), findings);
}

/// The distinct approvers of `head`; the requester's own approvals and approvals older than the
/// request are findings.
fn count<'a>(
    approvals: &[&'a AuditRecord],
    cr: &ChangeRequest,
    request: &AuditRecord,
    head: Option<&str>,
    findings: &mut Vec<Finding>,
) -> Counted<'a> {
    let excluded: BTreeSet<&str> = [
        Some(cr.requester.subject.as_str()),
        cr.requester.github_login.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut counted = Counted::new();
    for r in approvals {
        let at = |f: Finding| f.at(&r.writer, r.seq, &r.event_id);
        for a in &r.approvals {
            let on = a
                .head_sha
                .as_deref()
                .or(r.pr.as_ref().and_then(|p| p.head_sha.as_deref()));
            if head.is_some() && on != head {
                continue; // stale: given on an earlier head
            }
            if excluded.contains(a.who.as_str()) {
                let why = format!("{} approved their own change request {}", a.who, cr.id);
                findings.push(at(Finding::new("self_approval", why)));
                continue;
            }
            if a.when + SKEW < request.time {
                let why = format!(
                    "{}'s approval ({}) precedes the change request itself ({})",
                    a.who,
                    a.when.to_rfc3339(),
                    request.time.to_rfc3339()
                );
                findings.push(at(Finding::new("out_of_order", why)));
            }
            let groups = r.actor.iter().flat_map(|a| a.groups.iter());
            let entry = counted
                .entry(a.who.as_str())
                .or_insert((a.when, BTreeSet::new()));
            entry.0 = entry.0.min(a.when);
            entry.1.extend(groups.map(String::as_str));
        }
    }
    counted
}

/// The signed rule: enough distinct approvers, each group quorum, enough of them before the merge.
fn check_rule(
    change: &MergedChange,
    cr: &ChangeRequest,
    counted: &Counted<'_>,
    records: usize,
    findings: &mut Vec<Finding>,
) {
    let rule = &cr.policy.approval;
    let n = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
    let names: Vec<&str> = counted.keys().copied().collect();
    if n(counted.len()) < rule.approvers {
        findings.push(Finding::new(
            "short_quorum",
            format!(
                "the signed rule {} needs {} distinct approver(s) on the merged head, but the trail \
                 has {} ({}) in {records} approval record(s)",
                rule.rule,
                rule.approvers,
                counted.len(),
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ),
        ));
    }
    for quorum in rule.constraints().iter().filter(|q| !q.groups.is_empty()) {
        let from = counted
            .values()
            .filter(|(_, g)| quorum.groups.iter().any(|q| g.contains(q.as_str())))
            .count();
        if n(from) < quorum.approvers {
            findings.push(Finding::new(
                "short_quorum",
                format!(
                    "rule {} needs {} approver(s) from {}, but the trail has {from}",
                    quorum.rule,
                    quorum.approvers,
                    quorum.groups.join(" or ")
                ),
            ));
        }
    }
    let before_merge = counted
        .values()
        .filter(|(when, _)| *when <= change.merged_at + SKEW)
        .count();
    if !counted.is_empty() && n(before_merge) < rule.approvers.min(n(counted.len())) {
        findings.push(Finding::new(
            "out_of_order",
            format!(
                "commit {} merged {} at {}, before its approvals: only {before_merge} were given by then",
                short(&change.commit),
                change.id,
                change.merged_at.to_rfc3339()
            ),
        ));
    }
}

/// The runner's records: the merge and head they name, after the merge, and a final outcome.
fn check_execution(
    change: &MergedChange,
    requested: DateTime<Utc>,
    head: Option<&str>,
    records: &[AuditRecord],
    findings: &mut Vec<Finding>,
    outcomes: &mut BTreeMap<String, usize>,
) {
    let id = change.id.as_str();
    let mut runs: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.runner.is_some() && r.change_id.as_deref() == Some(id))
        .collect();
    runs.sort_by(|a, b| (&a.writer, a.seq).cmp(&(&b.writer, b.seq)));
    if runs.is_empty() {
        findings.push(Finding::new(
            "missing_execution",
            format!(
                "change {id} was merged ({} in commit {}) but has no execution record",
                change.path,
                short(&change.commit)
            ),
        ));
        return;
    }
    for r in &runs {
        check_run(change, requested, head, r, findings);
    }
    check_outcome(id, &runs, findings, outcomes);
}

/// One runner record: the merge commit and head it names, and that it follows the merge.
fn check_run(
    change: &MergedChange,
    requested: DateTime<Utc>,
    head: Option<&str>,
    r: &AuditRecord,
    findings: &mut Vec<Finding>,
) {
    let id = change.id.as_str();
    let at = |f: Finding| f.at(&r.writer, r.seq, &r.event_id);
    let pr = r.pr.as_ref();
    if let Some(sha) = pr.and_then(|p| p.merge_sha.as_deref())
        && sha != change.commit
    {
        let why = format!(
            "the runner recorded merge {} for {id}, but git merged it in {}",
            short(sha),
            short(&change.commit)
        );
        findings.push(at(Finding::new("merge_mismatch", why)));
    }
    if let (Some(h), Some(recorded)) = (head, pr.and_then(|p| p.head_sha.as_deref()))
        && h != recorded
    {
        let why = format!(
            "the runner recorded head {} for {id}, but head {} was merged",
            short(recorded),
            short(h)
        );
        findings.push(at(Finding::new("head_mismatch", why)));
    }
    if r.time + SKEW < change.merged_at.max(requested) {
        let why = format!(
            "the runner's record ({}) precedes the merge of {id} ({})",
            r.time.to_rfc3339(),
            change.merged_at.to_rfc3339()
        );
        findings.push(at(Finding::new("out_of_order", why)));
    }
}

/// Each run (runner writer) ends after it started, and some run ended with an outcome.
fn check_outcome(
    id: &str,
    runs: &[&AuditRecord],
    findings: &mut Vec<Finding>,
    outcomes: &mut BTreeMap<String, usize>,
) {
    let mut by_run: BTreeMap<&str, Vec<&AuditRecord>> = BTreeMap::new();
    for r in runs {
        by_run.entry(r.writer.as_str()).or_default().push(r);
    }
    for rs in by_run.values() {
        if let [.., start, end] = rs.as_slice()
            && end.time + SKEW < start.time
        {
            let why = format!(
                "the run's outcome ({}) precedes its start",
                end.time.to_rfc3339()
            );
            findings.push(Finding::new("out_of_order", why).at(
                &end.writer,
                end.seq,
                &end.event_id,
            ));
        }
    }
    let finished = by_run
        .values()
        .filter_map(|rs| rs.last().copied())
        .filter(|r| !outcome(r).is_empty() && outcome(r) != "started")
        .max_by_key(|r| r.time);
    if let Some(last) = finished {
        *outcomes.entry(outcome(last).to_string()).or_default() += 1;
        return;
    }
    let last = runs.last().copied();
    findings.push(
        Finding::new(
            "unfinished",
            format!(
                "the runner started {id} but the trail has no outcome for it: the run's final \
                 record is missing (cut), or the run died midway"
            ),
        )
        .at(
            last.map_or("", |r| r.writer.as_str()),
            last.map_or(0, |r| r.seq),
            last.map_or("", |r| r.event_id.as_str()),
        ),
    );
}
