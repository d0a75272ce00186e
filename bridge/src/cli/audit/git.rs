//! `--git`: the GitOps repository's history against the audit trail. A change request is merged
//! when its file `changes/<id>.yaml` was added on the default branch; each such change must have
//! its decision (`change_request`), approval and execution records, and every execution record
//! that names a change must name a merged one.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use git2::{Delta, Repository, Sort};
use serde::Deserialize;
use slipway_core::audit::{AuditRecord, EventKind};

use super::report::Finding;

/// The changes directory in the GitOps repository.
const CHANGES_DIR: &str = "changes";

/// A change request file found on the default branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedChange {
    pub id: String,
    pub path: String,
    /// The first-parent commit that added the file (the merge, for merged pull requests).
    pub commit: String,
}

/// Only the `id` is read; the rest of the file is the change itself.
#[derive(Deserialize)]
struct ChangeFile {
    id: String,
}

fn is_change_file(path: &str) -> bool {
    let path = Path::new(path);
    path.parent() == Some(Path::new(CHANGES_DIR))
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Every change file added on `branch` (default: the repository's `HEAD`), following first
/// parents so a merge commit counts as the point where its change landed. Files that can't be
/// read as a change come back as findings.
pub fn merged_changes(
    repo_path: &Path,
    branch: Option<&str>,
) -> Result<(Vec<MergedChange>, Vec<Finding>), String> {
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
    let mut walk = repo.revwalk().map_err(git_err)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(git_err)?;
    walk.simplify_first_parent().map_err(git_err)?;
    walk.push(tip.id()).map_err(git_err)?;

    let mut changes = Vec::new();
    let mut findings = Vec::new();
    for oid in walk {
        let commit = repo.find_commit(oid.map_err(git_err)?).map_err(git_err)?;
        let tree = commit.tree().map_err(git_err)?;
        let parent_tree = match commit.parent(0) {
            Ok(p) => Some(p.tree().map_err(git_err)?),
            Err(_) => None,
        };
        let diff = repo
            .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None)
            .map_err(git_err)?;
        for delta in diff.deltas() {
            if delta.status() != Delta::Added {
                continue;
            }
            let Some(path) = delta.new_file().path().and_then(|p| p.to_str()) else {
                continue;
            };
            if !is_change_file(path) {
                continue;
            }
            let at = commit.id().to_string();
            let short = at.get(..12).unwrap_or(&at).to_string();
            let text = repo
                .find_blob(delta.new_file().id())
                .map(|b| String::from_utf8_lossy(b.content()).into_owned())
                .map_err(git_err)?;
            match serde_saphyr::from_str::<ChangeFile>(&text) {
                Ok(file) if !file.id.trim().is_empty() => changes.push(MergedChange {
                    id: file.id,
                    path: path.to_string(),
                    commit: at,
                }),
                Ok(_) => findings.push(Finding::new(
                    "unreadable_change",
                    format!("{path} (commit {short}) has an empty `id:`"),
                )),
                Err(e) => findings.push(Finding::new(
                    "unreadable_change",
                    format!(
                        "{path} (commit {short}) has no readable top-level `id:` field: {}",
                        e.to_string().lines().next().unwrap_or_default()
                    ),
                )),
            }
        }
    }
    Ok((changes, findings))
}

/// The cross-check itself; pure, over already-loaded records.
pub fn cross_check(merged: &[MergedChange], records: &[AuditRecord]) -> Vec<Finding> {
    let mut kinds: BTreeMap<&str, HashSet<EventKind>> = BTreeMap::new();
    for r in records {
        if let Some(id) = r.change_id.as_deref() {
            kinds.entry(id).or_default().insert(r.kind);
        }
    }
    let merged_ids: BTreeSet<&str> = merged.iter().map(|c| c.id.as_str()).collect();
    let mut findings = Vec::new();
    for change in merged {
        let seen = kinds.get(change.id.as_str());
        let has = |k: EventKind| seen.is_some_and(|s| s.contains(&k));
        let short = change.commit.get(..12).unwrap_or(&change.commit);
        for (kind, problem, what) in [
            (
                EventKind::ChangeRequest,
                "missing_decision",
                "change_request (decision)",
            ),
            (EventKind::Approval, "missing_approval", "approval"),
            (EventKind::Execution, "missing_execution", "execution"),
        ] {
            if !has(kind) {
                let mut f = Finding::new(
                    problem,
                    format!(
                        "change {} was merged ({} in commit {short}) but has no {what} record",
                        change.id, change.path
                    ),
                );
                f.event = format!("change {}", change.id);
                findings.push(f);
            }
        }
    }
    for r in records {
        if r.kind != EventKind::Execution {
            continue;
        }
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
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn change_file_paths() {
        assert!(is_change_file("changes/cr-1.yaml"));
        assert!(is_change_file("changes/cr-1.yml"));
        assert!(!is_change_file("changes/sub/cr-1.yaml"));
        assert!(!is_change_file("other/changes/cr-1.yaml"));
        assert!(!is_change_file("changes/README.md"));
    }

    #[test]
    fn merged_changes_need_three_records_and_executions_need_a_merge() {
        let rec = |kind, change: &str, seq| {
            let mut r = AuditRecord::new(kind, format!("e{seq}"), DateTime::UNIX_EPOCH)
                .with_change_id(change);
            r.writer = "w".into();
            r.seq = seq;
            r
        };
        let merged = vec![MergedChange {
            id: "cr-1".into(),
            path: "changes/cr-1.yaml".into(),
            commit: "abc".into(),
        }];
        let records = vec![
            rec(EventKind::ChangeRequest, "cr-1", 1),
            rec(EventKind::Execution, "cr-1", 2),
            rec(EventKind::Execution, "cr-9", 3),
        ];
        let f = cross_check(&merged, &records);
        let problems: Vec<&str> = f.iter().map(|f| f.problem).collect();
        assert_eq!(problems, ["missing_approval", "orphan_execution"]);
        assert_eq!(f[1].seq, Some(3));
    }
}
