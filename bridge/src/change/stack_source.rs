//! `/tf plan` reads stacks from the git mirror at the default branch's head (fetched just
//! before), so what is planned is exactly what is merged, and nothing on disk that a person can
//! touch is involved.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ChangeService;
use crate::error::Failure;
use crate::exec::terraform::{STACKS_DIR, StackSource};

/// The git mirror as a [`StackSource`].
#[derive(Debug)]
pub struct MirrorSource {
    pub svc: Arc<ChangeService>,
    pub handle: tokio::runtime::Handle,
}

impl StackSource for MirrorSource {
    fn export(&self, stack: &str, dest: &Path) -> Result<PathBuf, Failure> {
        let reading = "Reading the GitOps repository";
        // Called on a blocking thread, so waiting on the runtime for a token is allowed here.
        let creds = self
            .handle
            .block_on(self.svc.git_credentials())
            .map_err(|e| Failure::upstream("Getting a GitHub token", e))?;
        let mirror = slipway_infra::sync::lock(&self.svc.mirror);
        let head = mirror
            .fetch(Some(&creds))
            .map_err(|e| Failure::upstream_error("Fetching the GitOps repository", &e))?;
        let dir = format!("{STACKS_DIR}/{stack}");
        let files = mirror
            .list_files(head, &dir)
            .map_err(|e| Failure::upstream_error(reading, &e))?;
        if files.is_empty() {
            return Err(Failure::user(format!(
                "stack `{stack}` has no directory `{dir}` on the default branch"
            )));
        }
        let prefix = format!("{dir}/");
        mirror
            .export_filtered(head, dest, |p| {
                !p.starts_with(&format!("{STACKS_DIR}/")) || p.starts_with(&prefix)
            })
            .map_err(|e| Failure::upstream_error(reading, &e))?;
        Ok(dest.join(dir))
    }

    fn describe(&self) -> String {
        format!(
            "{} at the head of {}",
            self.svc.cfg.repo,
            self.svc.default_branch()
        )
    }
}
