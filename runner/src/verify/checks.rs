//! The checks on what a merge changed: nothing under `.github/` or `.slipway/`, nothing its
//! signed requests don't declare, and every rendered file exactly as signed. Pure functions;
//! each `Err` is the refusal reason shown on the PR and in the audit.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use slipway_core::change::ChangeRequest;

use crate::job::id_from_path;

/// Directories a merge carrying a change request may not touch: `.github/` holds the workflows
/// (and CODEOWNERS) that decide who gets the runner's cloud role, `.slipway/` the runner's own
/// configuration. A PR that changes either together with a change request could swap what runs
/// the request, or who reviews the swap, in the same merge.
pub const PROTECTED_DIRS: &[&str] = &[".github/", ".slipway/"];

/// Refuse a merge that changed anything beyond its change files and the files they declare as
/// rendered: a PR that also edits, say, a kubeconfig or a script the deploy reads would run its
/// own code with the runner's credentials.
pub fn check_merge_scope(changed: &[String], declared: &BTreeSet<String>) -> Result<(), String> {
    let outside: Vec<String> = changed
        .iter()
        .filter(|p| !declared.contains(*p) && !is_change_file(p))
        .take(5)
        .map(|p| format!("`{p}`"))
        .collect();
    if outside.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the same merge changed {}, which no change request in it declares: nothing runs from a merge that changes more than its requests. Merge other changes on their own, then request the change again",
        outside.join(", ")
    ))
}

/// `changes/<id>.yaml`: each is verified on its own.
fn is_change_file(path: &str) -> bool {
    id_from_path(path).is_some()
}

/// Refuse a merge that changed anything under [`PROTECTED_DIRS`] (compared without case: a
/// case-insensitive checkout would read `.GitHub/` as `.github/`).
pub fn check_protected_paths(changed: &[String]) -> Result<(), String> {
    let hits: Vec<&str> = changed
        .iter()
        .map(String::as_str)
        .filter(|p| {
            PROTECTED_DIRS.iter().any(|d| {
                p.get(..d.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(d))
            })
        })
        .collect();
    if hits.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = hits.iter().take(5).map(|p| format!("`{p}`")).collect();
    let more = hits.len().saturating_sub(shown.len());
    Err(format!(
        "the same merge changed {}{}: nothing runs from a merge that touches `.github/` (the workflows that get the runner's cloud role) or `.slipway/` (the runner's config). Merge such changes on their own, reviewed by their code owners, then request the change again",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

/// Every file the change rendered must be in the merged commit exactly as rendered.
pub fn check_rendered_files(
    cr: &ChangeRequest,
    read: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<(), String> {
    for f in &cr.rendered.files {
        match read(&f.path) {
            None => {
                return Err(format!(
                    "`{}`, which the change rendered, is not in the merged commit",
                    f.path
                ));
            }
            Some(bytes) => {
                let got = hex::encode(Sha256::digest(&bytes));
                if !got.eq_ignore_ascii_case(&f.sha256) {
                    return Err(format!(
                        "`{}` in the merged commit is not what the change rendered (sha256 {got}, signed {}): it was edited after the request",
                        f.path, f.sha256
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_may_change_only_its_requests_and_their_rendered_files() {
        let declared: BTreeSet<String> = ["apps/api/staging/kustomization.yaml".to_string()].into();
        let ok = vec![
            "changes/cr-a.yaml".to_string(),
            "apps/api/staging/kustomization.yaml".into(),
        ];
        assert!(check_merge_scope(&ok, &declared).is_ok());
        let mut more = ok.clone();
        more.push("kube/staging.yaml".into());
        let e = check_merge_scope(&more, &declared).unwrap_err();
        assert!(e.contains("`kube/staging.yaml`"), "{e}");
    }

    #[test]
    fn merges_touching_github_or_slipway_are_refused() {
        let ok = vec!["changes/cr-a.yaml".to_string(), "apps/api/k.yaml".into()];
        assert!(check_protected_paths(&ok).is_ok());
        assert!(check_protected_paths(&[".githubx/a".into(), "x/.github/y".into()]).is_ok());
        for bad in [
            ".github/workflows/slipway-runner.yml",
            ".github/CODEOWNERS",
            ".slipway/runner.yaml",
            ".GitHub/workflows/x.yml",
        ] {
            let mut changed = ok.clone();
            changed.push(bad.into());
            let e = check_protected_paths(&changed).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }
}
