//! `kubectl apply -f` / `delete -f`: the files come from the GitOps repo at the head the change
//! renders against, their digests are pinned in the change request (the runner refuses a
//! mismatch), and every object inside them is authorised as the resource it is.

use std::path::Path;

use git2::Oid;
use slipway_core::change::ApprovalRequirement;
use slipway_core::command::ParsedCommand;
use slipway_core::command::kubectl::{
    KindScopes, Kubectl, ManifestObject, dir_reads, manifest_objects,
};
use slipway_core::policy::{Outcome, SlackUser, decide_objects};

use super::ChangeService;
use super::pending::Pending;
use crate::ctx::Ctx;
use crate::error::Failure;

/// The objects of a change's files, and the approval they need together.
#[derive(Debug, Default)]
pub struct Authorised {
    pub objects: Vec<ManifestObject>,
    pub approval: Option<ApprovalRequirement>,
    /// The resources the objects are authorised as (freeze windows judge them too).
    pub resources: Vec<String>,
}

/// Copy what each `-f` names from the mirror at `head` into `dest` (same relative paths) and
/// return every manifest file it reads with its bytes: the file itself, or the manifests a
/// directory holds (as `kubectl -f <dir>` reads them). A path missing from the repo is an error
/// that names it.
pub async fn export(
    svc: &ChangeService,
    head: Oid,
    k: &Kubectl,
    dest: &Path,
) -> Result<Vec<(String, Vec<u8>)>, Failure> {
    if k.files.is_empty() {
        return Ok(Vec::new());
    }
    let mirror = svc.mirror.clone();
    let (paths, recursive) = (k.files.clone(), k.recursive());
    let dest = dest.to_path_buf();
    let branch = svc.default_branch().to_string();
    tokio::task::spawn_blocking(move || {
        let m = slipway_infra::sync::lock(&mirror);
        let mut out = Vec::new();
        for path in paths {
            let read = |p: &str| {
                m.read_file(head, p).map_err(|e| {
                    Failure::upstream_error(format!("Reading `{p}` from the GitOps repo"), &e)
                })
            };
            if let Some(bytes) = read(&path)? {
                out.push((path, bytes));
                continue;
            }
            let listed = m
                .list_files(head, &path)
                .map_err(|e| {
                    Failure::upstream_error(format!("Reading `{path}` from the GitOps repo"), &e)
                })?;
            let inside: Vec<String> = listed
                .into_iter()
                .filter(|f| dir_reads(&path, f, recursive))
                .collect();
            if inside.is_empty() {
                return Err(Failure::user(format!("`-f {path}` names no manifest in the GitOps repo at `{branch}`; commit it there first (through a reviewed PR), then ask again.")));
            }
            for f in inside {
                let bytes = read(&f)?.unwrap_or_default();
                out.push((f, bytes));
            }
        }
        for (path, bytes) in &out {
            let target = dest.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Failure::upstream_error(format!("Preparing `{path}`"), &e)
                })?;
            }
            std::fs::write(&target, bytes)
                .map_err(|e| Failure::upstream_error(format!("Preparing `{path}`"), &e))?;
        }
        Ok(out)
    })
    .await
    .map_err(|e| Failure::upstream_error("Exporting the change's files", &e))?
}

/// Authorise every object of the files for the requester, as policy would authorise each one
/// alone. Any denial refuses the change with its reason.
pub fn authorise(
    state: &Ctx,
    p: &Pending,
    files: &[(String, Vec<u8>)],
    scopes: &KindScopes,
) -> Result<Authorised, String> {
    if files.is_empty() {
        return Ok(Authorised::default());
    }
    let mut objects = Vec::new();
    for (path, bytes) in files {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| format!("`{path}` is not UTF-8 text, so its objects can't be checked"))?;
        let found = manifest_objects(text)
            .map_err(|e| format!("`{path}` can't be read as a Kubernetes manifest: {e}"))?;
        if found.is_empty() {
            return Err(format!("`{path}` holds no Kubernetes objects"));
        }
        objects.extend(found);
    }
    let user = SlackUser {
        user_id: p.requester.slack_user_id.clone(),
        team_id: p.requester.slack_team_id.clone(),
        enterprise_id: p.requester.slack_enterprise_id.clone(),
    };
    let parsed = ParsedCommand {
        text: p.text.clone(),
        command: p.command.clone(),
        apply: true,
        override_freeze: None,
        rollback_of: None,
    };
    let policy = state.policy();
    let d = decide_objects(&policy, &user, &parsed, &objects, scopes);
    if d.outcome == Outcome::Deny {
        return Err(format!("{} (rule `{}`)", d.reason, d.rule));
    }
    let resources = slipway_core::policy::object_resources(&d.target, &objects, scopes);
    Ok(Authorised {
        approval: d.approval,
        objects,
        resources,
    })
}
