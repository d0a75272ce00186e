//! Which merged PR a change file came through, and which of a PR's change files is the one to
//! execute.

use std::time::Instant;

use slipway_core::change::ChangeRequest;
use slipway_infra::github::Pr;

use super::{Change, Job, id_from_path};

/// One change file and the PR it came through (if one did), as every report of it names them.
#[derive(Debug)]
pub struct Subject<'a> {
    pub change: &'a Change,
    /// The id the file name gives.
    pub stem: &'a str,
    pub cr: Option<&'a ChangeRequest>,
    pub pr: Option<Pr>,
    /// When handling it began, for the reported duration.
    pub started: Instant,
}

impl<'a> Subject<'a> {
    /// Find the merged PR `change` came through among `pulls` (those GitHub lists for the merge).
    pub fn locate(job: &Job, change: &'a Change, pulls: Option<&[Pr]>) -> Subject<'a> {
        let cr = change.parsed.as_ref().ok();
        let stem = id_from_path(&change.path).unwrap_or_default();
        let pr = pulls
            .and_then(|p| {
                merged_pr(
                    p,
                    &job.env.sha,
                    &job.default_branch,
                    stem,
                    cr.and_then(|c| c.supersedes.as_deref()),
                )
            })
            .cloned();
        Subject {
            change,
            stem,
            cr,
            pr,
            started: Instant::now(),
        }
    }

    /// The change's id: the signed one, else the file name's.
    pub fn id(&self) -> String {
        self.cr.map_or_else(
            || {
                id_from_path(&self.change.path)
                    .unwrap_or(&self.change.path)
                    .to_string()
            },
            |c| c.id.clone(),
        )
    }
}

/// The merged PR (into `default_branch`, merged as `merge_sha`) whose head branch is
/// `slipway/<id>` or, for a request that advanced an earlier one, `slipway/<supersedes>`.
pub fn merged_pr<'a>(
    pulls: &'a [Pr],
    merge_sha: &str,
    default_branch: &str,
    id: &str,
    supersedes: Option<&str>,
) -> Option<&'a Pr> {
    pulls.iter().find(|pr| {
        let branch = pr.head_ref.strip_prefix("slipway/");
        pr.merged
            && pr.base_ref == default_branch
            && pr
                .merge_commit_sha
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(merge_sha))
            && (branch == Some(id) || (supersedes.is_some() && branch == supersedes))
    })
}

/// When one PR's merge adds several change files (a PR advanced more than once can leave an
/// older file behind), only the newest is executed: `Some(newer id)` marks the others.
pub fn newest_per_pr(job: &Job, changes: &[Change], pulls: &[Pr]) -> Vec<Option<String>> {
    let pr_of = |c: &Change| -> Option<u64> {
        let cr = c.parsed.as_ref().ok()?;
        merged_pr(
            pulls,
            &job.env.sha,
            &job.default_branch,
            &cr.id,
            cr.supersedes.as_deref(),
        )
        .map(|p| p.number)
    };
    changes
        .iter()
        .map(|c| {
            let (Some(n), Ok(cr)) = (pr_of(c), &c.parsed) else {
                return None;
            };
            changes
                .iter()
                .filter(|o| pr_of(o) == Some(n))
                .filter_map(|o| o.parsed.as_ref().ok())
                .filter(|o| o.created_at > cr.created_at)
                .max_by_key(|o| o.created_at)
                .map(|o| o.id.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pr(head_ref: &str, merged: bool, merge_sha: &str) -> Pr {
        Pr {
            number: 7,
            html_url: String::new(),
            title: String::new(),
            body: String::new(),
            state: "closed".into(),
            merged,
            merged_by: None,
            merged_at: None,
            merge_commit_sha: Some(merge_sha.into()),
            head_ref: head_ref.into(),
            head_sha: "h".into(),
            base_ref: "main".into(),
            author: "slipway[bot]".into(),
            head_repo: "acme/gitops".into(),
        }
    }

    #[test]
    fn only_the_merged_slipway_pr_of_this_merge_counts() {
        let pulls = vec![
            pr("feature", true, "m1"),
            pr("slipway/cr-a", false, "m1"),
            pr("slipway/cr-a", true, "m2"),
        ];
        assert!(
            merged_pr(&pulls, "m1", "main", "cr-a", None).is_none(),
            "not merged, other merge, other branch"
        );
        let pulls = vec![pr("slipway/cr-a", true, "m1")];
        assert_eq!(
            merged_pr(&pulls, "M1", "main", "cr-a", None).map(|p| p.number),
            Some(7)
        );
        assert!(merged_pr(&pulls, "m1", "develop", "cr-a", None).is_none());
        assert!(merged_pr(&pulls, "m1", "main", "cr-b", None).is_none());
        assert!(
            merged_pr(&pulls, "m1", "main", "cr-b", Some("cr-a")).is_some(),
            "an advanced request keeps the first branch"
        );
    }
}
