//! What a Slipway PR carries, trusted only as far as it verifies. The quorum, the
//! `slipway/approval` status, auto-merge, the lock release and the expiry sweep all act on a
//! change request, and anyone with push access can open a `slipway/cr-…` branch or push to one.
//! So every path reads the change request through [`ChangeService::change_of`], which checks:
//!
//! - the PR was opened by the Slipway App, from a branch of the GitOps repository itself, into
//!   the default branch;
//! - its diff adds exactly one change file, signed by this bridge's key (`key_id` included);
//! - the head branch is that request's id, or one reached by following `supersedes` back
//!   through change files that each verify (an advanced PR keeps its first branch);
//! - the diff touches nothing but that change file and the files it declares as rendered, and
//!   those match their signed digests.
//!
//! It also says who pushed after the bridge: authors, committers and pushers of later commits
//! can't approve (see [`Verified::excluded`]). Expiry is not a verification failure here: the
//! sweep must still close expired requests; the quorum judges it.

use std::collections::BTreeSet;

use git2::Oid;
use sha2::Digest;
use slipway_core::change::{CHANGES_DIR, ChangeRequest, Keyring, VerifyError, file_path};
use slipway_infra::github::Pr;
use slipway_infra::gitops::Mirror;

use super::ChangeService;

/// Why a PR isn't a verified change request (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unverified {
    /// It doesn't verify: the reason, for the status, the Slack thread and the log. Cached for
    /// the head it was judged on.
    Refused(String),
    /// Slipway couldn't check it (GitHub or git failed; the cause is logged where it happened):
    /// never cached, never shown as a verdict on the PR.
    Upstream(String),
}

impl std::fmt::Display for Unverified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) => f.write_str(why),
            Self::Upstream(what) => write!(
                f,
                "{what} failed on Slipway's side, so the pull request couldn't be checked; try again in a minute"
            ),
        }
    }
}

/// The checks' own refusals are sentences (`String`); an upstream failure must be named with
/// [`upstream`], never converted, or it would be cached as a verdict.
impl From<String> for Unverified {
    fn from(why: String) -> Self {
        Self::Refused(why)
    }
}

impl From<&str> for Unverified {
    fn from(why: &str) -> Self {
        Self::Refused(why.to_string())
    }
}

impl From<Unverified> for String {
    fn from(u: Unverified) -> Self {
        u.to_string()
    }
}

/// An upstream failure while verifying: logged with its cause here, `what` kept.
fn upstream(what: &str, cause: &dyn std::fmt::Display) -> Unverified {
    tracing::warn!(error = %cause, "{what} failed while verifying a change PR");
    Unverified::Upstream(what.to_string())
}

/// Most `supersedes` links followed back to the PR's branch.
const MAX_CHAIN: usize = 50;

/// A verified change request and what happened on its PR after the bridge's own commit.
#[derive(Debug, Clone)]
pub struct Verified {
    pub cr: ChangeRequest,
    /// GitHub logins (lower case) that authored, committed or pushed a commit after the
    /// bridge's newest one: like the requester, they can't approve.
    pub excluded: BTreeSet<String>,
    /// Commits after the bridge's newest one (`abc1234 by login: title`), oldest first.
    pub foreign_commits: Vec<String>,
    /// Paths that differ between the bridge's newest commit and the head.
    pub changed_since: Vec<String>,
}

impl Verified {
    /// A merged PR's change request, verified at its merge commit: nobody can push to it any
    /// more, so there is nobody to exclude and nothing changed since.
    pub(crate) fn merged(cr: ChangeRequest) -> Verified {
        Verified {
            cr,
            excluded: BTreeSet::new(),
            foreign_commits: Vec::new(),
            changed_since: Vec::new(),
        }
    }
}

/// What the git inspection found.
struct Inspected {
    cr: ChangeRequest,
    /// The PR's own commits (head back to the merge base), newest first.
    commits: Vec<Oid>,
    merge_base: Oid,
}

fn verify_signature(cr: &ChangeRequest, keys: &Keyring) -> Result<(), String> {
    // Expiry is judged by the quorum, not here: an expired request must still be closable.
    match slipway_core::change::verify(cr, keys, chrono::DateTime::<chrono::Utc>::MIN_UTC) {
        Ok(()) | Err(VerifyError::Expired { .. }) => Ok(()),
        Err(e) => Err(format!(
            "its change request `{}` doesn't verify: {e}",
            cr.id
        )),
    }
}

fn parse(bytes: &[u8], path: &str) -> Result<ChangeRequest, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| format!("`{path}` is not UTF-8"))?;
    ChangeRequest::from_yaml(text).map_err(|e| format!("`{path}`: {e}"))
}

/// The one change file the diff adds; any other change under `changes/` is refused.
fn added_change_file(changed: &[(String, char)]) -> Result<String, String> {
    let prefix = format!("{CHANGES_DIR}/");
    let mut added = Vec::new();
    for (path, status) in changed.iter().filter(|(p, _)| p.starts_with(&prefix)) {
        if *status != 'A' {
            return Err(format!(
                "the PR modifies or deletes `{path}`, which is outside this change request"
            ));
        }
        added.push(path.clone());
    }
    match added.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("the PR adds no change file".into()),
        many => Err(format!(
            "the PR adds more than one change file: {}",
            many.join(", ")
        )),
    }
}

/// Follow `supersedes` from `cr` back to the branch's id; every link must verify.
fn check_chain(
    m: &Mirror,
    cr: &ChangeRequest,
    branch_id: &str,
    commits: &[Oid],
    keys: &Keyring,
) -> Result<(), String> {
    let mut current = cr.clone();
    for _ in 0..MAX_CHAIN {
        if current.id == branch_id {
            return Ok(());
        }
        let prev = current.supersedes.clone().ok_or_else(|| {
            format!(
                "its change request `{}` is not for branch `slipway/{branch_id}` and supersedes nothing",
                current.id
            )
        })?;
        let path = file_path(&prev);
        let bytes = commits
            .iter()
            .find_map(|c| m.read_file(*c, &path).ok().flatten())
            .ok_or_else(|| {
                format!(
                    "`{}` supersedes `{prev}`, which is nowhere in the PR",
                    current.id
                )
            })?;
        let older = parse(&bytes, &path)?;
        if older.id != prev {
            return Err(format!("`{path}` holds change `{}`", older.id));
        }
        verify_signature(&older, keys)?;
        current = older;
    }
    Err(format!("more than {MAX_CHAIN} superseded requests"))
}

/// Every changed path must be the change file or a declared rendered file, and every rendered
/// file must be at the head exactly as signed.
fn check_files(
    m: &Mirror,
    cr: &ChangeRequest,
    changed: &[(String, char)],
    head: Oid,
) -> Result<(), String> {
    let own = cr.file_path();
    for (path, _) in changed {
        if *path != own && !cr.rendered.files.iter().any(|f| f.path == *path) {
            return Err(format!(
                "`{path}` is outside the change request (neither its change file nor a file it rendered)"
            ));
        }
    }
    for f in &cr.rendered.files {
        let bytes = m
            .read_file(head, &f.path)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("`{}`, which the request rendered, is missing", f.path))?;
        let got = hex::encode(sha2::Sha256::digest(&bytes));
        if !got.eq_ignore_ascii_case(&f.sha256) {
            return Err(format!(
                "`{}` is not what the request rendered (it was edited after signing)",
                f.path
            ));
        }
    }
    Ok(())
}

/// The git side of verification, on the mirror (blocking).
fn inspect(
    m: &Mirror,
    base_head: Oid,
    head: Oid,
    branch_id: &str,
    keys: &Keyring,
) -> Result<Inspected, Unverified> {
    let reading = "Reading the GitOps mirror";
    if !m.has_commit(head) {
        return Err(Unverified::Refused(
            "its head commit is not in the repository".into(),
        ));
    }
    let merge_base = m
        .merge_base(base_head, head)
        .map_err(|e| upstream(reading, &e))?;
    let changed = m
        .changed_paths(merge_base, head)
        .map_err(|e| upstream(reading, &e))?;
    let path = added_change_file(&changed)?;
    let bytes = m
        .read_file(head, &path)
        .map_err(|e| upstream(reading, &e))?
        .unwrap_or_default();
    let cr = parse(&bytes, &path)?;
    if path != cr.file_path() {
        return Err(format!("`{path}` holds change `{}`", cr.id).into());
    }
    verify_signature(&cr, keys)?;
    let commits = m
        .commits_between(merge_base, head)
        .map_err(|e| upstream(reading, &e))?;
    check_chain(m, &cr, branch_id, &commits, keys)?;
    check_files(m, &cr, &changed, head)?;
    Ok(Inspected {
        cr,
        commits,
        merge_base,
    })
}

impl ChangeService {
    /// The change request PR `pr` carries, verified (see the module doc). `Err` says what failed.
    pub(crate) async fn change_of(&self, pr: &Pr) -> Result<Verified, Unverified> {
        let key = (pr.number, pr.head_sha.to_ascii_lowercase());
        if let Some(hit) = super::lock(&self.verified).get(&key).cloned() {
            return hit;
        }
        let result = self.verify_pr(pr).await;
        if matches!(result, Err(Unverified::Upstream(_))) {
            return result;
        }
        let mut cache = super::lock(&self.verified);
        if cache.len() > 1000 {
            cache.clear();
        }
        cache.insert(key, result.clone());
        result
    }

    async fn verify_pr(&self, pr: &Pr) -> Result<Verified, Unverified> {
        let branch_id = pr
            .head_ref
            .strip_prefix("slipway/")
            .filter(|id| id.starts_with("cr-"))
            .ok_or("not a Slipway change branch")?
            .to_string();
        if !pr.author.eq_ignore_ascii_case(&self.cfg.app_login) {
            return Err(format!(
                "it was opened by `{}`, not by the Slipway App (`{}`)",
                pr.author, self.cfg.app_login
            )
            .into());
        }
        let repo = self.cfg.repo.to_string();
        if !pr.head_repo.eq_ignore_ascii_case(&repo) {
            return Err(format!("its branch lives in `{}`, not in `{repo}`", pr.head_repo).into());
        }
        if pr.base_ref != self.default_branch() {
            return Err(format!(
                "it targets `{}`, not `{}`",
                pr.base_ref,
                self.default_branch()
            )
            .into());
        }
        let head = Oid::from_str(&pr.head_sha).map_err(|e| e.to_string())?;
        let creds = self
            .git_credentials()
            .await
            .map_err(|e| upstream("Getting a GitHub token", &e))?;
        let keys = super::signer::keyring(&self.cfg, &self.signer);
        let mirror = self.mirror.clone();
        let inspected = tokio::task::spawn_blocking(move || {
            let m = super::lock(&mirror);
            let base_head = m
                .fetch(Some(&creds))
                .map_err(|e| upstream("Fetching the GitOps repository", &e))?;
            inspect(&m, base_head, head, &branch_id, &keys)
        })
        .await
        .map_err(|e| upstream("Verifying the pull request", &e))??;
        self.after_the_bridge(pr, inspected).await
    }

    /// The change request a merged PR carried, read at its merge commit and checked against
    /// the keyring. (Once merged, the PR's diff against the default branch is empty, so
    /// [`Self::change_of`] no longer applies.)
    pub(crate) async fn merged_change(&self, pr: &Pr) -> Result<ChangeRequest, String> {
        let id = pr
            .head_ref
            .strip_prefix("slipway/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .ok_or_else(|| format!("PR #{} is not a Slipway change request", pr.number))?
            .to_string();
        let merge = pr
            .merge_commit_sha
            .as_deref()
            .filter(|_| pr.merged)
            .and_then(|sha| Oid::from_str(sha).ok())
            .ok_or_else(|| format!("PR #{} was not merged", pr.number))?;
        let creds = self
            .git_credentials()
            .await
            .map_err(|e| format!("getting a GitHub token failed: {e}"))?;
        let keys = super::signer::keyring(&self.cfg, &self.signer);
        let mirror = self.mirror.clone();
        tokio::task::spawn_blocking(move || {
            let m = super::lock(&mirror);
            m.fetch(Some(&creds)).map_err(|e| e.to_string())?;
            let path = slipway_core::change::file_path(&id);
            let bytes = m
                .read_file(merge, &path)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the merge commit has no `{path}`"))?;
            let cr = parse(&bytes, &path)?;
            if cr.id != id {
                return Err(format!("`{path}` names another change, `{}`", cr.id));
            }
            verify_signature(&cr, &keys)?;
            Ok(cr)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Who pushed after the bridge's newest commit, and what changed since.
    async fn after_the_bridge(&self, pr: &Pr, found: Inspected) -> Result<Verified, Unverified> {
        let store = &self.store;
        let bridge_tip = found
            .commits
            .iter()
            .find(|c| store.is_bridge_commit(&c.to_string()).unwrap_or(false))
            .copied();
        let commits = self
            .gh()
            .pr_commits(&self.cfg.repo, pr.number)
            .await
            .map_err(|e| upstream("Listing the pull request's commits", &e))?;
        let after = match bridge_tip {
            Some(tip) => {
                let tip = tip.to_string();
                commits
                    .iter()
                    .position(|c| c.sha.eq_ignore_ascii_case(&tip))
                    .map_or(&commits[..], |i| &commits[i + 1..])
            }
            None => &commits[..],
        };
        let bot = self.cfg.app_login.to_ascii_lowercase();
        let mut excluded: BTreeSet<String> = store.pushers(pr.number).unwrap_or_default();
        let mut foreign = Vec::new();
        for c in after {
            let who = c.author.clone().or_else(|| c.committer.clone());
            excluded.extend(
                [&c.author, &c.committer]
                    .into_iter()
                    .flatten()
                    .map(|l| l.to_ascii_lowercase()),
            );
            foreign.push(format!(
                "{} by {}: {}",
                c.sha.get(..7).unwrap_or(&c.sha),
                who.as_deref().unwrap_or("an unknown account"),
                c.title
            ));
        }
        excluded.retain(|l| *l != bot && l != "web-flow");
        let mirror = self.mirror.clone();
        let (from, head) = (bridge_tip.unwrap_or(found.merge_base), pr.head_sha.clone());
        let reading = "Reading the GitOps mirror";
        let changed_since = tokio::task::spawn_blocking(move || {
            let to = Oid::from_str(&head).map_err(|e| Unverified::Refused(e.to_string()))?;
            super::lock(&mirror)
                .changed_paths(from, to)
                .map(|v| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>())
                .map_err(|e| upstream(reading, &e))
        })
        .await
        .map_err(|e| upstream(reading, &e))??;
        Ok(Verified {
            cr: found.cr,
            excluded,
            foreign_commits: foreign,
            changed_since,
        })
    }
}
