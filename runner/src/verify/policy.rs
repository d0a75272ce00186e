//! The policy of the merge's first parent, re-deciding the signed command for its requester:
//! the same argv, family, tier, resource and identity, and every `-f` object allowed.

use std::time::Duration;

use slipway_core::change::{ApprovalRequirement, ChangeRequest};
use slipway_core::command::kubectl::{KindScopes, Kubectl, dir_reads, manifest_objects};
use slipway_core::command::{Command, ParsedCommand, Target, parse_line};
use slipway_core::policy::{Decision, Outcome, Policy, SlackUser, decide_objects, decide_with};

use crate::job::Job;

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
    /// `kubectl -f`: the resources the manifest's objects are authorised as.
    pub object_resources: Vec<String>,
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
    same_as_signed(cr, command, &d)?;
    let (requirement, object_resources) = match (&command.command, d.approval.clone()) {
        (Command::Kubectl(k), Some(base)) if !k.files.is_empty() => {
            let (approval, resources) = check_objects(policy, &user, cr, k, &scopes, tree)?;
            (Some(approval.unwrap_or(base)), resources)
        }
        // A roll back the bridge vouched for (and signed): the rules' `rollback_approvers`.
        (Command::Deploy(_), Some(base)) if command.rollback_of.is_some() => {
            (Some(policy.rollback_requirement(&base)), Vec::new())
        }
        (_, requirement) => (requirement, Vec::new()),
    };
    Ok(PolicyCheck {
        requirement,
        rule: d.rule.clone(),
        reason: d.reason.clone(),
        timeout: policy.timeout(cr.tier),
        output_cap: usize::try_from(policy.output_bytes()).unwrap_or(usize::MAX),
        target: d.target.clone(),
        object_resources,
    })
}

/// The command must mean today exactly what was signed: the same argv, family, change-request
/// tier, resource and requester identity.
fn same_as_signed(
    cr: &ChangeRequest,
    command: &ParsedCommand,
    d: &Decision<'_>,
) -> Result<(), String> {
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
    Ok(())
}

/// The merged commit's files, as the checks read them.
pub trait Tree {
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// Every file under `dir`, recursively.
    fn list(&self, dir: &str) -> Vec<String>;
}

impl Tree for Job {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        Job::read(self, path)
    }

    fn list(&self, dir: &str) -> Vec<String> {
        Job::list(self, dir)
    }
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
/// approval they need together, and the resources they are authorised as.
fn check_objects(
    policy: &Policy,
    user: &SlackUser,
    cr: &ChangeRequest,
    k: &Kubectl,
    scopes: &KindScopes,
    tree: &dyn Tree,
) -> Result<(Option<ApprovalRequirement>, Vec<String>), String> {
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
        override_freeze: None,
        rollback_of: None,
    };
    let d = decide_objects(policy, user, &command, &objects, scopes);
    if d.outcome == Outcome::Deny {
        return Err(format!(
            "the policy doesn't allow an object of the manifest: {} (rule {})",
            d.reason, d.rule
        ));
    }
    let resources = slipway_core::policy::object_resources(&d.target, &objects, scopes);
    Ok((d.approval, resources))
}
