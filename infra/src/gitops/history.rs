//! History: what changed between commits, and which commits did it. Verification (the bridge's
//! PR checks, the runner's merge-scope checks) reads the repository only through these.

use std::path::Path;

use git2::Oid;

use super::{Mirror, Result};

impl Mirror {
    /// The best common ancestor of two commits.
    pub fn merge_base(&self, a: Oid, b: Oid) -> Result<Oid> {
        Ok(self.repo.merge_base(a, b)?)
    }

    /// Every path that differs between two commits' trees, with how (`A`dded, `M`odified,
    /// `D`eleted; a rename is a deletion and an addition).
    pub fn changed_paths(&self, from: Oid, to: Oid) -> Result<Vec<(String, char)>> {
        let old = self.repo.find_commit(from)?.tree()?;
        let new = self.repo.find_commit(to)?.tree()?;
        let diff = self.repo.diff_tree_to_tree(Some(&old), Some(&new), None)?;
        let mut out = Vec::new();
        for d in diff.deltas() {
            let status = match d.status() {
                git2::Delta::Added => 'A',
                git2::Delta::Deleted => 'D',
                _ => 'M',
            };
            let file = if status == 'D' {
                d.old_file()
            } else {
                d.new_file()
            };
            if let Some(p) = file.path().and_then(Path::to_str) {
                out.push((p.to_string(), status));
            }
        }
        Ok(out)
    }

    /// The commits reachable from `head` but not from `base`, newest first.
    pub fn commits_between(&self, base: Oid, head: Oid) -> Result<Vec<Oid>> {
        let mut walk = self.repo.revwalk()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL)?;
        walk.push(head)?;
        walk.hide(base)?;
        Ok(walk.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// A merge's first parent: the default branch as it was before the merge.
    pub fn first_parent(&self, commit: Oid) -> Result<Oid> {
        Ok(self.repo.find_commit(commit)?.parent_id(0)?)
    }

    /// The newest commit on `from` that touched `path` (a file or directory).
    pub fn last_commit_touching(&self, from: Oid, path: &str) -> Result<Option<Oid>> {
        let mut walk = self.repo.revwalk()?;
        walk.push(from)?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
        for oid in walk {
            let oid = oid?;
            let commit = self.repo.find_commit(oid)?;
            let here = commit
                .tree()?
                .get_path(Path::new(path))
                .ok()
                .map(|e| e.id());
            let touched = if commit.parent_count() == 0 {
                here.is_some()
            } else {
                commit.parents().all(|p| {
                    p.tree()
                        .ok()
                        .and_then(|t| t.get_path(Path::new(path)).ok())
                        .map(|e| e.id())
                        != here
                })
            };
            if touched {
                return Ok(Some(oid));
            }
        }
        Ok(None)
    }

    /// What `commit` changed relative to its first parent (everything, for a root commit).
    fn first_parent_diff(&self, commit: Oid) -> Result<git2::Diff<'_>> {
        let c = self.repo.find_commit(commit)?;
        let new_tree = c.tree()?;
        let old_tree = match c.parent(0) {
            Ok(p) => Some(p.tree()?),
            Err(_) => None,
        };
        Ok(self
            .repo
            .diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), None)?)
    }

    /// Files added under `dir` by `commit` relative to its first parent.
    pub fn added_files(&self, commit: Oid, dir: &str) -> Result<Vec<String>> {
        let diff = self.first_parent_diff(commit)?;
        let mut out = Vec::new();
        for d in diff.deltas() {
            if d.status() == git2::Delta::Added
                && let Some(p) = d.new_file().path().and_then(|p| p.to_str())
                && p.starts_with(&format!("{dir}/"))
            {
                out.push(p.to_string());
            }
        }
        Ok(out)
    }

    /// Paths `commit` added, modified, deleted or renamed relative to its first parent.
    pub fn changed_files(&self, commit: Oid) -> Result<Vec<String>> {
        let diff = self.first_parent_diff(commit)?;
        let mut out = Vec::new();
        for d in diff.deltas() {
            for f in [d.old_file(), d.new_file()] {
                if let Some(p) = f.path().and_then(|p| p.to_str())
                    && !out.iter().any(|o: &String| o == p)
                {
                    out.push(p.to_string());
                }
            }
        }
        Ok(out)
    }

    /// The commit's message and first-parent count, for callers that inspect history.
    pub fn commit_info(&self, commit: Oid) -> Result<(String, usize)> {
        let c = self.repo.find_commit(commit)?;
        Ok((
            c.message().unwrap_or_default().to_string(),
            c.parent_count(),
        ))
    }
}
