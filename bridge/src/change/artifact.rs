//! The image a `/deploy` ships: the version given or CI's newest green build, then (when the
//! service names its registry) checked to exist there and resolved to a digest. The dry run
//! pins what it resolved, so a tag moved between dry run and Confirm does not change what the
//! PR deploys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use slipway_core::command::deploy::Deploy;
use slipway_infra::github::Repo;
use slipway_infra::oci::{OciError, Registry};

use super::{ChangeService, ServiceConfig};
use crate::error::Failure;

/// How long one registry request may take.
const REGISTRY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The image a deploy pins, and where it came from when CI chose it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedImage {
    pub tag: Option<String>,
    /// `sha256:…`: given, or resolved from the tag in the registry.
    pub digest: Option<String>,
    /// Whether the registry confirmed the image (false: no registry configured).
    #[serde(default)]
    pub checked: bool,
    pub source_sha: Option<String>,
    pub run_id: Option<u64>,
    #[serde(default)]
    pub run_url: Option<String>,
    /// When CI built it (the run's `created_at`).
    #[serde(default)]
    pub built_at: Option<DateTime<Utc>>,
}

impl PinnedImage {
    /// `image:tag@sha256:…`, `image:tag` or `image@sha256:…`.
    pub fn reference(&self, image: &str) -> String {
        let mut s = image.to_string();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The lines the dry run and PR show about where the image came from and whether the
    /// registry has it.
    pub fn provenance(&self, cfg: &ServiceConfig, now: DateTime<Utc>) -> String {
        let mut lines = Vec::new();
        if let (Some(id), Some(sha)) = (self.run_id, &self.source_sha) {
            let short: String = sha.chars().take(7).collect();
            let age = self
                .built_at
                .map(|t| format!(", built {} ago", age(now - t)))
                .unwrap_or_default();
            let url = self
                .run_url
                .as_deref()
                .map(|u| format!(" ({u})"))
                .unwrap_or_default();
            lines.push(format!(
                "Build: CI run {id}{url} of {}@{short}{age}",
                cfg.repo
            ));
        }
        lines.push(match (&cfg.registry, self.checked) {
            (Some(r), true) => format!(
                "Image: {} (found in {})",
                self.reference(&cfg.image),
                r.base_url(&cfg.image)
            ),
            _ => format!(
                "Image: {} (not checked: no registry configured for this service)",
                self.reference(&cfg.image)
            ),
        });
        lines.join("\n")
    }
}

fn age(d: chrono::Duration) -> String {
    let m = d.num_minutes().max(0);
    match m {
        0..60 => format!("{m}m"),
        60..2880 => format!("{}h", m / 60),
        _ => format!("{}d", m / 1440),
    }
}

/// What `d` deploys: the image pinned at the dry run when there is one (its digest checked
/// again), else the version given or CI's newest green build, checked in the registry.
pub(super) async fn pick(
    svc: &ChangeService,
    d: &Deploy,
    cfg: &ServiceConfig,
    pinned: Option<&PinnedImage>,
) -> Result<PinnedImage, Failure> {
    let mut pick = match pinned {
        Some(p) => p.clone(),
        None => unpinned(svc, d, cfg).await?,
    };
    if let Some(reg) = &cfg.registry {
        let base = reg.base_url(&cfg.image);
        let (_, name) = slipway_infra::oci::split_image(&cfg.image);
        let reference = pick
            .digest
            .clone()
            .or_else(|| pick.tag.clone())
            .unwrap_or_default();
        let registry = Registry::new(&base, REGISTRY_TIMEOUT)
            .map_err(|e| Failure::upstream(format!("Reaching the registry {base}"), e))?;
        let resolved = registry
            .resolve(&name, &reference, &reg.auth())
            .await
            .map_err(|e| refusal(&cfg.image, &pick, e))?;
        pick.digest = Some(resolved.digest);
        pick.checked = true;
    }
    Ok(pick)
}

/// A missing image or a lying registry is the requester's to fix (or report); a network
/// failure is upstream.
fn refusal(image: &str, pick: &PinnedImage, e: OciError) -> Failure {
    let shown = pick.reference(image);
    match e {
        OciError::NotFound { registry, .. } => Failure::user(format!(
            "the image `{shown}` is not in the registry {registry}: check the version, or wait for CI to push it, then run `/deploy` again."
        )),
        OciError::DigestMismatch { .. } => Failure::user(format!(
            "refusing `{shown}`: {e}. The registry is not serving what it claims; tell whoever runs it."
        )),
        OciError::Denied { .. } => Failure::user(format!(
            "can't check `{shown}`: {e} (`gitops.services.<service>.registry`)."
        )),
        OciError::Transport(_) => {
            Failure::upstream(format!("Checking `{shown}` in the registry"), e)
        }
    }
}

/// The version given (a tag, or a `sha256:` digest), or else the newest successful CI build of
/// the service's branch, so a bare `/deploy svc env` ships what CI last built.
async fn unpinned(
    svc: &ChangeService,
    d: &Deploy,
    cfg: &ServiceConfig,
) -> Result<PinnedImage, Failure> {
    if let Some(v) = &d.version {
        let is_digest = v.starts_with("sha256:");
        return Ok(PinnedImage {
            tag: (!is_digest).then(|| v.clone()),
            digest: is_digest.then(|| v.clone()),
            ..PinnedImage::default()
        });
    }
    let repo = Repo::parse(&cfg.repo).ok_or_else(|| {
        Failure::upstream(
            "Reading the service's configuration",
            format!("`{}` is not owner/name", cfg.repo),
        )
    })?;
    let branch = cfg.branch.clone().unwrap_or_else(|| "main".into());
    let workflow = cfg.workflow.as_deref().ok_or_else(|| Failure::user(format!("`/deploy {}` without a version needs to know which CI workflow builds the image: set `gitops.services.{}.workflow` (e.g. ci.yml), or pass a version: `/deploy {} {} <version>`", d.service, d.service, d.service, d.env)))?;
    let run = svc
        .gh_ci()
        .latest_successful_run(&repo, workflow, &branch)
        .await
        .map_err(|e| Failure::upstream(format!("Looking up the newest CI build of {repo}"), e))?;
    let run = run.ok_or_else(|| Failure::user(format!("{repo} has no successful `{workflow}` run from a push to {branch}; pass a version: `/deploy {} {} <version>`", d.service, d.env)))?;
    let short: String = run.head_sha.chars().take(7).collect();
    let tag = cfg
        .tag_template
        .clone()
        .unwrap_or_else(|| "sha-{short_sha}".into())
        .replace("{short_sha}", &short)
        .replace("{sha}", &run.head_sha);
    Ok(PinnedImage {
        tag: Some(tag),
        built_at: DateTime::parse_from_rfc3339(&run.created_at)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        run_url: (!run.html_url.is_empty()).then(|| run.html_url.clone()),
        source_sha: Some(run.head_sha),
        run_id: Some(run.id),
        ..PinnedImage::default()
    })
}
