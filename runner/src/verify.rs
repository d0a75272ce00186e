//! The re-verification of a merged change request, as pure functions over what was fetched: the
//! PR it came through, its rendered files, the policy of the merged commit, and the quorum on
//! the PR's final head. Each `Err` is the refusal reason shown on the PR and in the audit.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use slipway_core::approval::{
    ListedReview, Quorum, QuorumInput, ReviewInput, Source, inputs_by_deadline, judged_at, quorum,
};
use slipway_core::change::{ApprovalRequirement, ChangeRequest};
use slipway_core::command::kubectl::{KindScopes, Kubectl, dir_reads, manifest_objects};
use slipway_core::command::{Command, ParsedCommand, Target, parse_line};
use slipway_core::policy::{
    IdentityProvider, Outcome, Policy, SlackUser, decide_objects, decide_with,
};
use slipway_infra::github::{Pr, Review};

/// `changes/<id>.yaml` → `<id>`.
pub fn id_from_path(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix(slipway_core::change::CHANGES_DIR)?
        .strip_prefix('/')?;
    let id = rest.strip_suffix(".yaml")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
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

/// Directories a merge carrying a change request may not touch: `.github/` holds the workflows
/// (and CODEOWNERS) that decide who gets the runner's cloud role, `.slipway/` the runner's own
/// configuration. A PR that changes either together with a change request could swap what runs
/// the request, or who reviews the swap, in the same merge.
pub const PROTECTED_DIRS: &[&str] = &[".github/", ".slipway/"];

/// The paths a merge may change: its change files and the files they declare as rendered.
pub fn declared_paths<'a>(
    changes: impl IntoIterator<Item = &'a ChangeRequest>,
) -> std::collections::BTreeSet<String> {
    changes
        .into_iter()
        .flat_map(|cr| {
            std::iter::once(cr.file_path()).chain(cr.rendered.files.iter().map(|f| f.path.clone()))
        })
        .collect()
}

/// Refuse a merge that changed anything beyond its change files and the files they declare as
/// rendered: a PR that also edits, say, a kubeconfig or a script the deploy reads would run its
/// own code with the runner's credentials.
pub fn check_merge_scope(
    changed: &[String],
    declared: &std::collections::BTreeSet<String>,
) -> Result<(), String> {
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

/// What the merged commit's policy says about the request.
#[derive(Debug, Clone)]
pub struct PolicyCheck {
    /// The approval rule the policy applies now (`None` if it no longer needs one).
    pub requirement: Option<ApprovalRequirement>,
    pub rule: String,
    pub reason: String,
    pub timeout: Duration,
    pub output_cap: usize,
    /// The target with the policy's defaults filled in.
    pub target: Target,
}

/// Re-decide the request's command text for its requester with the policy. The text must still
/// parse to exactly the signed argv, target and tier, and not be denied. Custom kinds take the
/// scope the bridge's discovery signed; `kubectl -f` objects are read from the merged commit
/// (`read`, whose digests were checked) and authorised one by one.
pub fn check_policy(
    policy: &Policy,
    cr: &ChangeRequest,
    tree: &dyn Tree,
) -> Result<PolicyCheck, String> {
    let user = SlackUser {
        user_id: cr.requester.slack_user_id.clone(),
        team_id: cr.requester.slack_team_id.clone(),
        enterprise_id: cr.requester.slack_enterprise_id.clone(),
    };
    let parsed = parse_line(&cr.command.text);
    let scopes = KindScopes::from_map(cr.rendered.kind_scopes.clone());
    let d = decide_with(policy, &user, &parsed, &scopes);
    if d.outcome == Outcome::Deny {
        return Err(format!(
            "the policy on the merged commit no longer allows it: {} (rule {})",
            d.reason, d.rule
        ));
    }
    let Ok(command) = &parsed else {
        return Err("the command no longer parses".into());
    };
    if command.argv().as_deref() != Some(cr.command.argv.as_slice()) {
        return Err(format!(
            "the signed argv `{}` is not what `{}` means today (`{}`)",
            cr.command.argv.join(" "),
            cr.command.text,
            command.argv().unwrap_or_default().join(" ")
        ));
    }
    if command.family() != cr.command.family {
        return Err(format!(
            "`{}` is a {} command, but the request says {}",
            cr.command.text,
            command.family().as_str(),
            cr.command.family.as_str()
        ));
    }
    if d.tier != Some(cr.tier)
        || !d
            .tier
            .is_some_and(slipway_core::command::Tier::is_change_request)
    {
        return Err(format!(
            "`{}` is tier {}, but the request says {}",
            cr.command.text,
            d.tier.map_or("none", slipway_core::command::Tier::as_str),
            cr.tier.as_str()
        ));
    }
    if d.resource().as_deref() != Some(cr.resource.as_str()) {
        return Err(format!(
            "`{}` targets {} today, but the request was for {}",
            cr.command.text,
            d.resource().unwrap_or_default(),
            cr.resource
        ));
    }
    if let Some(subject) = d.identity.map(|i| i.subject.as_str())
        && subject != cr.requester.subject
    {
        return Err(format!(
            "Slack user {} is {subject} in the policy now, but the request was made as {}",
            cr.requester.slack_user_id, cr.requester.subject
        ));
    }
    let requirement = match (&command.command, d.approval.clone()) {
        (Command::Kubectl(k), Some(base)) if !k.files.is_empty() => {
            Some(check_objects(policy, &user, cr, k, &scopes, tree)?.unwrap_or(base))
        }
        (_, requirement) => requirement,
    };
    Ok(PolicyCheck {
        requirement,
        rule: d.rule.clone(),
        reason: d.reason.clone(),
        timeout: policy.timeout(cr.tier),
        output_cap: usize::try_from(policy.output_bytes()).unwrap_or(usize::MAX),
        target: d.target.clone(),
    })
}

/// The merged commit's files, as the checks read them.
pub trait Tree {
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// Every file under `dir`, recursively.
    fn list(&self, dir: &str) -> Vec<String>;
}

/// The manifest files `-f path` reads in the merged commit. A directory must hold exactly the
/// manifests the request pinned: one added since would run unreviewed.
fn manifest_files(
    cr: &ChangeRequest,
    k: &Kubectl,
    path: &str,
    tree: &dyn Tree,
) -> Result<Vec<String>, String> {
    if tree.read(path).is_some() {
        return Ok(vec![path.to_string()]);
    }
    let mut found: Vec<String> = tree
        .list(path)
        .into_iter()
        .filter(|f| dir_reads(path, f, k.recursive()))
        .collect();
    let mut pinned: Vec<String> = cr
        .rendered
        .files
        .iter()
        .map(|f| f.path.clone())
        .filter(|f| dir_reads(path, f, k.recursive()))
        .collect();
    found.sort();
    pinned.sort();
    if found.is_empty() || found != pinned {
        return Err(format!(
            "`-f {path}` reads {} in the merged commit, but the request pinned {}",
            list_or_none(&found),
            list_or_none(&pinned)
        ));
    }
    Ok(found)
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(", ")
    }
}

/// `kubectl -f`: every object of the merged files, authorised as policy would alone; the
/// approval they need together.
fn check_objects(
    policy: &Policy,
    user: &SlackUser,
    cr: &ChangeRequest,
    k: &Kubectl,
    scopes: &KindScopes,
    tree: &dyn Tree,
) -> Result<Option<ApprovalRequirement>, String> {
    let mut objects = Vec::new();
    for path in &k.files {
        for file in manifest_files(cr, k, path, tree)? {
            let bytes = tree
                .read(&file)
                .ok_or_else(|| format!("`{file}` is not in the merged commit"))?;
            let text = String::from_utf8(bytes).map_err(|_| format!("`{file}` is not UTF-8"))?;
            objects.extend(
                manifest_objects(&text)
                    .map_err(|e| format!("`{file}` can't be read as a manifest: {e}"))?,
            );
        }
    }
    let command = ParsedCommand {
        text: cr.command.text.clone(),
        command: Command::Kubectl(k.clone()),
        apply: true,
    };
    let d = decide_objects(policy, user, &command, &objects, scopes);
    if d.outcome == Outcome::Deny {
        return Err(format!(
            "the policy doesn't allow an object of the manifest: {} (rule {})",
            d.reason, d.rule
        ));
    }
    Ok(d.approval)
}

/// GitHub's reviews as the quorum's input, under the one deadline rule (reviews submitted after
/// `deadline` don't count; pending ones have no state). A review whose body carries the bridge's
/// signed marker for it was made in Slack.
pub fn review_inputs(
    reviews: &[Review],
    keys: &[(String, ed25519_dalek::VerifyingKey)],
    repo: &str,
    pr: u64,
    deadline: DateTime<Utc>,
) -> Vec<ReviewInput> {
    let listed: Vec<ListedReview<'_>> = reviews
        .iter()
        .map(|r| ListedReview {
            id: r.id,
            login: &r.user,
            state: &r.state,
            commit_id: &r.commit_id,
            submitted_at: r.submitted_at.as_deref(),
            source: if slipway_core::change::is_slack_review(
                &r.body,
                keys,
                repo,
                pr,
                &r.commit_id,
                &r.user,
            ) {
                Source::Slack
            } else {
                Source::Github
            },
        })
        .collect();
    inputs_by_deadline(&listed, deadline)
}

fn explain(q: &Quorum, rule: &str, head: &str) -> String {
    let mut parts = vec![format!(
        "{} approval(s) for rule `{rule}` on the PR's final head {}",
        q.progress(),
        short(head)
    )];
    if !q.stale.is_empty() {
        parts.push(format!(
            "given on an older commit (stale): {}",
            q.stale.join(", ")
        ));
    }
    if !q.changes_requested.is_empty() {
        parts.push(format!(
            "changes requested by {}",
            q.changes_requested.join(", ")
        ));
    }
    for i in &q.ignored {
        parts.push(format!("{} doesn't count ({})", i.login, i.reason));
    }
    if q.expired {
        parts.push("the request expired".into());
    }
    parts.join("; ")
}

/// The quorum under the signed rule and under the merged policy's rule: both must hold (the
/// stricter of the two wins). Returns the signed rule's quorum.
pub fn check_quorum(
    policy: &Policy,
    cr: &ChangeRequest,
    pr: &Pr,
    reviews: &[ReviewInput],
    current: Option<&ApprovalRequirement>,
    now: DateTime<Utc>,
) -> Result<Quorum, String> {
    let identities = policy.identities();
    let mut requirements = vec![&cr.policy.approval];
    requirements.extend(current);
    let mut first = None;
    for req in requirements {
        let input = QuorumInput {
            requirement: req,
            requester_subject: &cr.requester.subject,
            requester_login: cr.requester.github_login.as_deref(),
            pr_author: &pr.author,
            excluded: &[],
            head_sha: &pr.head_sha,
            reviews,
            now: judged_at(pr.merged_at, now, cr.expires_at),
            expires_at: cr.expires_at,
        };
        let q = quorum(&input, |login| identities.by_github(login));
        if !q.met {
            return Err(format!(
                "the approvals recorded on GitHub don't meet the quorum: {}",
                explain(&q, &req.rule, &pr.head_sha)
            ));
        }
        first.get_or_insert(q);
    }
    first.ok_or_else(|| "no approval rule applies".to_string())
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
    fn a_merge_may_change_only_its_requests_and_their_rendered_files() {
        let declared: std::collections::BTreeSet<String> =
            ["apps/api/staging/kustomization.yaml".to_string()].into();
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

    #[test]
    fn paths_name_ids() {
        assert_eq!(id_from_path("changes/cr-x-1.yaml"), Some("cr-x-1"));
        assert_eq!(id_from_path("changes/a/b.yaml"), None);
        assert_eq!(id_from_path("changes/.yaml"), None);
        assert_eq!(id_from_path("other/cr.yaml"), None);
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
