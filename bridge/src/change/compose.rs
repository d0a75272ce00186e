//! What a change writes and shows: the deploy manifest and its diff, the kubectl server-side
//! dry run (or the command and manifest where the API can't dry-run), the PR body, and the
//! Slack summary.

use std::fmt::Write as _;

use git2::Oid;
use slipway_core::change::{ChangeRequest, Rendered, RenderedFile};
use slipway_core::command::deploy::Deploy;
use slipway_core::command::kubectl::{Kubectl, ManifestObject};
use slipway_core::command::{Command, Target};
use slipway_core::redact::redactor;
use slipway_infra::gitops::FileChange;

use super::pending::Pending;
use super::{ChangeService, Render};
use crate::ctx::Ctx;
use crate::error::Failure;
use crate::exec::creds::RunCreds;
use crate::exec::kube_token::Purpose;

/// Section text budget in Slack, less the code fence.
const SLACK_DIFF_BUDGET: usize = 2800;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A unified diff of one file.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

/// Render a pending change against the GitOps repo at `head`.
pub async fn render(
    svc: &ChangeService,
    state: &Ctx,
    p: &Pending,
    head: Oid,
) -> Result<Render, Failure> {
    match &p.command {
        Command::Deploy(d) => render_deploy(svc, state, p, d, head).await,
        Command::Kubectl(_) => render_kubectl(svc, state, p, head).await,
        Command::TfApply { stack } => {
            super::tf_apply::render_tf_apply(svc, state, p, stack, head).await
        }
        _ => Err(Failure::user(format!(
            "`{}` can't become a change request in this build yet.",
            p.text
        ))),
    }
}

async fn render_deploy(
    svc: &ChangeService,
    state: &Ctx,
    p: &Pending,
    d: &Deploy,
    head: Oid,
) -> Result<Render, Failure> {
    let cfg = svc.cfg.services.get(&d.service).ok_or_else(|| {
        Failure::user(format!(
            "service `{}` has no image configured in the bridge (`gitops.services.{}`); ask {}.",
            d.service,
            d.service,
            state.policy().support()
        ))
    })?;
    let pick = super::artifact::pick(svc, d, cfg, p.pinned_image.as_ref()).await?;
    let path = format!("{}/kustomization.yaml", d.manifest_dir());
    let content = crate::templates::render(
        "manifests/kustomization.yaml.j2",
        minijinja::context! { service => d.service.clone(), env => d.env.clone(), image_name => cfg.image.clone(), tag => pick.tag.clone(), digest => pick.digest.clone() },
    )
    .map_err(|e| Failure::upstream("Rendering the kustomization", e))?;
    let current = read_at(svc, head, &path).await?;
    let diff = unified_diff(&path, &current, &content);
    let shown = (pick.tag.clone().or_else(|| pick.digest.clone())).unwrap_or_default();
    let image = pick.reference(&cfg.image);
    let provenance = pick.provenance(cfg, state.clock.now());
    Ok(Render {
        title: format!("Deploy {} to {} ({shown})", d.service, d.env),
        files: vec![FileChange::Upsert {
            path: path.clone(),
            content: content.clone().into_bytes(),
        }],
        rendered: Rendered {
            files: vec![RenderedFile {
                path,
                sha256: sha256_hex(content.as_bytes()),
            }],
            diff: Some(diff.clone()),
            image: Some(image.clone()),
            image_digest: pick.digest.clone(),
            source_repo: Some(cfg.repo.clone()),
            source_sha: pick.source_sha.clone(),
            ci_run_id: pick.run_id,
            ..Rendered::default()
        },
        details: format!("{provenance}\n\n```diff\n{diff}```"),
        preview: if diff.is_empty() {
            format!("{provenance}\n{image} is already deployed; nothing would change.")
        } else {
            format!("{provenance}\n\n{diff}")
        },
        approval: None,
        pinned_image: Some(pick),
        object_resources: Vec::new(),
    })
}

/// A file's text in the GitOps repo at `head` (empty when absent), read off the async runtime
/// because the mirror is a blocking git repository.
async fn read_at(svc: &ChangeService, head: Oid, path: &str) -> Result<String, Failure> {
    let reading = "Reading the GitOps repository";
    let mirror = svc.mirror.clone();
    let path = path.to_owned();
    let current = tokio::task::spawn_blocking(move || {
        slipway_infra::sync::lock(&mirror)
            .read_file(head, &path)
            .map_err(|e| Failure::upstream_error(reading, &e))
    })
    .await
    .map_err(|e| Failure::upstream_error(reading, &e))??;
    Ok(current
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .unwrap_or_default())
}

/// A kubectl mutation: its files pinned and their objects authorised one by one (`-f`), then the
/// server-side dry run against those files as they are in the GitOps repo (or the command and
/// manifest where the API can't dry-run).
async fn render_kubectl(
    svc: &ChangeService,
    state: &Ctx,
    p: &Pending,
    head: Oid,
) -> Result<Render, Failure> {
    let Command::Kubectl(k) = &p.command else {
        return Ok(Render::default());
    };
    let alias = match &p.target {
        Target::Cluster {
            cluster: Some(alias),
            ..
        } => alias.clone(),
        _ => return Err(Failure::user("this kubectl change has no cluster")),
    };
    let scopes = state.discovery.scopes(&alias);
    let work = tempfile::Builder::new()
        .prefix("change-")
        .tempdir_in(&state.work_dir)
        .map_err(|e| Failure::upstream_error("Creating a work directory", &e))?;
    let files = super::manifests::export(svc, head, k, work.path()).await?;
    let objects = super::manifests::authorise(state, p, &files, &scopes).map_err(Failure::User)?;
    let (details, preview) = kubectl_preview(state, &alias, p, k, work.path()).await;
    let words = kind_words(k, &objects.objects);
    Ok(Render {
        title: format!("kubectl {} on {}", k.verb.name(), p.target.describe()),
        files: Vec::new(),
        rendered: Rendered {
            files: files
                .iter()
                .map(|(path, bytes)| RenderedFile {
                    path: path.clone(),
                    sha256: sha256_hex(bytes),
                })
                .collect(),
            diff: Some(redactor().redact(&preview)),
            confirmation: p.confirmation.clone(),
            kind_scopes: scopes.subset(words.iter().map(String::as_str)),
            ..Rendered::default()
        },
        details: redactor().redact(&details),
        preview: redactor().redact(&preview),
        approval: objects.approval,
        pinned_image: None,
        object_resources: objects.resources,
    })
}

/// The PR details and Slack preview for a kubectl change: the command, then the server-side dry
/// run or why there is none (unredacted; the caller redacts).
async fn kubectl_preview(
    state: &Ctx,
    alias: &str,
    p: &Pending,
    k: &Kubectl,
    cwd: &std::path::Path,
) -> (String, String) {
    let argv_text = p.argv.join(" ");
    let mut details = format!("Command:\n\n```\n{argv_text}\n```\n");
    let mut preview = format!("$ {argv_text}\n");
    let creds = crate::exec::creds::kube_creds(state, alias, Purpose::DryRun);
    let dry_run = if matches!(k.verb.words, ["drain" | "cordon" | "uncordon"]) {
        None
    } else {
        Some(server_dry_run(state, &creds, alias, p, k, cwd).await)
    };
    // The PR names the ServiceAccount the dry run ran as (never a local path).
    let as_whom = match &creds {
        RunCreds::Kube(t) => format!(" (as ServiceAccount `{}`)", t.account),
        _ => String::new(),
    };
    match dry_run {
        Some(Ok(out)) => {
            let _ = write!(
                details,
                "\nServer-side dry run{as_whom}:\n\n```yaml\n{out}\n```\n"
            );
            let _ = write!(preview, "server-side dry run{as_whom}:\n{out}");
        }
        Some(Err(why)) => {
            let _ = write!(
                details,
                "\nA server-side dry run was not possible ({why}); review the command above.\n"
            );
            let _ = write!(preview, "(no server-side dry run: {why})");
        }
        None => preview.push_str("(this verb has no server-side dry run)"),
    }
    (details, preview)
}

/// The kind names a change touches, as named on the command line and in its manifests (also as
/// `kind.group`), so the change records only the kind scopes it needs.
fn kind_words(k: &Kubectl, objects: &[ManifestObject]) -> Vec<String> {
    let mut words: Vec<String> = k.kinds();
    for o in objects {
        words.push(o.kind.to_ascii_lowercase());
        if let Some((group, _)) = o.api_version.rsplit_once('/') {
            words.push(format!("{}.{group}", o.kind.to_ascii_lowercase()));
        }
    }
    words
}

/// `kubectl … --dry-run=server` as the cluster's dry-run ServiceAccount (whose writes are admitted
/// only as dry runs), or with its static credentials; run where the change's files were exported,
/// so `-f` reads exactly what the PR pins.
async fn server_dry_run(
    state: &Ctx,
    creds: &RunCreds,
    alias: &str,
    p: &Pending,
    k: &Kubectl,
    cwd: &std::path::Path,
) -> Result<String, String> {
    let Some(mut argv) = crate::exec::targets::kubectl_argv(state, alias, &p.argv) else {
        return Err(format!("cluster `{alias}` has no credentials configured"));
    };
    argv.push("--dry-run=server".into());
    if !matches!(k.verb.words, ["delete"]) {
        argv.push("-o".into());
        argv.push("yaml".into());
    }
    let spec = slipway_infra::exec::ExecSpec {
        argv,
        env: crate::exec::targets::base_env(state),
        cwd: cwd.to_path_buf(),
        timeout: std::time::Duration::from_secs(30),
        output_cap: 32 * 1024,
        kill_grace: state.config.execution.kill_grace,
    };
    // `-f` reads the exported files, relative to the export.
    let mut access = crate::exec::sandbox::kubectl(&state.config, alias);
    access.read_only.push(cwd.to_path_buf());
    access.cwd = Some(cwd.to_path_buf());
    let r = crate::exec::creds::run_to_end(state, creds, &access, spec).await;
    if r.end.success() {
        Ok(r.output)
    } else {
        Err(r.output.lines().last().unwrap_or("failed").to_string())
    }
}

/// The PR body from `templates/pr/body.md.j2`, cut to GitHub's limit.
pub fn pr_body(cr: &ChangeRequest, title: &str, details: &str) -> String {
    let body = crate::templates::render(
        "pr/body.md.j2",
        minijinja::context! {
            title, requester => minijinja::value::Serde(&cr.requester), command => minijinja::value::Serde(&cr.command), argv => cr.command.argv.join(" "),
            resource => cr.resource.clone(), tier => cr.tier.as_str(), policy => minijinja::value::Serde(&cr.policy), expires_at => cr.expires_at.to_rfc3339(),
            change_file => cr.file_path(), reason => cr.reason.clone(), supersedes => cr.supersedes.clone(), details,
            freeze_override => minijinja::value::Serde(&cr.freeze_override),
        },
    )
    .unwrap_or_else(|e| format!("{title}\n\n(template error: {e})\n\n{details}"));
    slipway_infra::github::fit_github_body(&redactor().redact(&body))
}

/// Code-fence a preview within Slack's section limit, with a flag when cut.
pub fn slack_preview(text: &str) -> (String, bool) {
    let count = text.chars().count();
    let (t, cut) = if count > SLACK_DIFF_BUDGET {
        (
            text.chars().take(SLACK_DIFF_BUDGET).collect::<String>(),
            true,
        )
    } else {
        (text.to_string(), false)
    };
    (
        format!("```\n{}\n```", t.replace("```", "`\u{200b}``")),
        cut,
    )
}
