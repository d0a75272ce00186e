//! `--git`: the GitOps repository's history against the audit trail.
//!
//! - A change request is merged when its file `changes/<id>.yaml` was added on the default
//!   branch (following first parents, so the merge commit is where it landed); each such change
//!   is checked against the trail in [`super::changes`].
//! - Every commit reachable from the branch may carry `Slipway-Audit-Checkpoint:` trailers (the
//!   bridge adds its signed chain head to each commit it makes and to each merge it makes): each
//!   must verify, and the trail must still hold the record it signed. That is what shows a tail
//!   cut from a spool before it was mirrored.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{Commit, Delta, Repository, Sort};
use serde::Deserialize;
use slipway_core::audit::{AuditRecord, Checkpoint, WriterAllowlist};
use slipway_core::change::ChangeRequest;

use super::changes::{self, MergedChange};
use super::report::Finding;

/// The changes directory in the GitOps repository.
const CHANGES_DIR: &str = "changes";

/// Only the `id` is read when the file is not a valid change request.
#[derive(Deserialize)]
struct ChangeId {
    id: String,
}

fn is_change_file(path: &str) -> bool {
    let path = Path::new(path);
    path.parent() == Some(Path::new(CHANGES_DIR))
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// Everything `--git` checks; returns the findings and a summary line.
pub fn check(
    repo_path: &Path,
    branch: Option<&str>,
    records: &[AuditRecord],
    allow: &WriterAllowlist,
) -> Result<(Vec<Finding>, String), String> {
    let shown = repo_path.display();
    let repo = Repository::open(repo_path).map_err(|e| {
        format!(
            "{shown} is not a git repository I can open: {}",
            e.message()
        )
    })?;
    let tip = match branch {
        Some(b) => repo
            .revparse_single(&format!("refs/heads/{b}"))
            .or_else(|_| repo.revparse_single(b))
            .map_err(|e| format!("{shown}: no branch {b}: {}", e.message()))?,
        None => repo.revparse_single("HEAD").map_err(|e| {
            format!(
                "{shown}: HEAD does not name a commit ({}); pass --branch",
                e.message()
            )
        })?,
    };
    let tip = tip
        .peel_to_commit()
        .map_err(|e| format!("{shown}: the branch tip is not a commit: {}", e.message()))?;
    let git_err = |e: git2::Error| format!("{shown}: reading history: {}", e.message());

    let (merged, mut findings) = merged_changes(&repo, &tip).map_err(git_err)?;
    let anchors = anchored(&repo, &tip).map_err(git_err)?;
    let anchored_count = anchors.len();
    findings.extend(check_anchors(anchors, records, allow));
    let (found, outcomes) = changes::cross_check(&merged, records);
    findings.extend(found);
    let summary = format!(
        "git: {} merged change request(s) in {shown}{}; {anchored_count} checkpoint anchor(s) in \
         commit trailers",
        merged.len(),
        if outcomes.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
            format!(" (outcomes: {})", list.join(", "))
        }
    );
    Ok((findings, summary))
}

fn commit_time(c: &Commit<'_>) -> DateTime<Utc> {
    DateTime::from_timestamp(c.time().seconds(), 0).unwrap_or_default()
}

/// Every change file added on the first-parent history of `tip`. Files that can't be read as a
/// change come back as findings.
fn merged_changes(
    repo: &Repository,
    tip: &Commit<'_>,
) -> Result<(Vec<MergedChange>, Vec<Finding>), git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    walk.simplify_first_parent()?;
    walk.push(tip.id())?;
    let mut changes = Vec::new();
    let mut findings = Vec::new();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let tree = commit.tree()?;
        let parent_tree = match commit.parent(0) {
            Ok(p) => Some(p.tree()?),
            Err(_) => None,
        };
        let diff = repo.diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None)?;
        for delta in diff.deltas() {
            let path = delta.new_file().path().and_then(|p| p.to_str());
            let Some(path) = path.filter(|p| delta.status() == Delta::Added && is_change_file(p))
            else {
                continue;
            };
            let at = commit.id().to_string();
            let blob = repo.find_blob(delta.new_file().id())?;
            let text = String::from_utf8_lossy(blob.content());
            let unreadable = |why: String| {
                Finding::new(
                    "unreadable_change",
                    format!("{path} (commit {}) {why}", short(&at)),
                )
            };
            let request = ChangeRequest::from_yaml(&text);
            let id = match (&request, serde_saphyr::from_str::<ChangeId>(&text)) {
                (Ok(cr), _) => cr.id.clone(),
                (Err(e), Ok(file)) if !file.id.trim().is_empty() => {
                    findings.push(unreadable(format!(
                        "is not a change request, so its signed approval rule can't be checked: {e}"
                    )));
                    file.id
                }
                (Err(e), _) => {
                    findings.push(unreadable(format!("has no readable `id:` field: {e}")));
                    continue;
                }
            };
            changes.push(MergedChange {
                id,
                path: path.to_string(),
                commit: at,
                head: commit.parent_id(1).ok().map(|p| p.to_string()),
                merged_at: commit_time(&commit),
                request: request.ok(),
            });
        }
    }
    Ok((changes, findings))
}

/// A checkpoint trailer (or why it doesn't parse) and the commit carrying it.
type Anchor = (String, Result<Checkpoint, String>);

/// Every checkpoint trailer on any commit reachable from `tip`.
fn anchored(repo: &Repository, tip: &Commit<'_>) -> Result<Vec<Anchor>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)?;
    walk.push(tip.id())?;
    let mut out = Vec::new();
    for oid in walk {
        let commit = repo.find_commit(oid?)?;
        let message = String::from_utf8_lossy(commit.message_bytes()).into_owned();
        for cp in Checkpoint::from_trailers(&message) {
            out.push((commit.id().to_string(), cp));
        }
    }
    Ok(out)
}

/// Each anchor verifies, and the trail holds the record it signed.
fn check_anchors(
    anchors: Vec<Anchor>,
    records: &[AuditRecord],
    allow: &WriterAllowlist,
) -> Vec<Finding> {
    let mut ends: BTreeMap<&str, u64> = BTreeMap::new();
    for r in records {
        let end = ends.entry(r.writer.as_str()).or_default();
        *end = (*end).max(r.seq);
    }
    let mut findings = Vec::new();
    for (commit, cp) in anchors {
        let cp = match cp {
            Ok(cp) => cp,
            Err(e) => {
                findings.push(Finding::new(
                    "bad_anchor",
                    format!("commit {}: {e}", short(&commit)),
                ));
                continue;
            }
        };
        let at = |f: Finding| f.at(&cp.writer, cp.seq, "");
        if let Err(e) = allow.verify(&cp) {
            findings.push(at(Finding::new(
                "bad_anchor",
                format!("the checkpoint trailer of commit {}: {e}", short(&commit)),
            )));
            continue;
        }
        let end = ends.get(cp.writer.as_str()).copied().unwrap_or(0);
        let held: Vec<&AuditRecord> = records
            .iter()
            .filter(|r| r.writer == cp.writer && r.seq == cp.seq)
            .collect();
        if held.iter().any(|r| r.hash == cp.hash) {
            continue;
        }
        let detail = if held.is_empty() && cp.seq > end {
            (
                "truncated",
                format!(
                    "commit {} anchors this writer's chain at seq {} ({}), but the trail ends at \
                     seq {end}: records were removed before (or after) mirroring",
                    short(&commit),
                    cp.seq,
                    cp.time.to_rfc3339()
                ),
            )
        } else if held.is_empty() {
            continue; // a gap: the chain check reports it
        } else {
            (
                "anchor_mismatch",
                format!(
                    "commit {} anchors seq {} with another hash than the trail holds: the chain \
                     was rewritten",
                    short(&commit),
                    cp.seq
                ),
            )
        };
        findings.push(at(Finding::new(detail.0, detail.1)));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_file_paths() {
        assert!(is_change_file("changes/cr-1.yaml"));
        assert!(is_change_file("changes/cr-1.yml"));
        assert!(!is_change_file("changes/sub/cr-1.yaml"));
        assert!(!is_change_file("other/changes/cr-1.yaml"));
        assert!(!is_change_file("changes/README.md"));
    }
}
