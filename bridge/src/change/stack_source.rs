//! `/tf plan` reads stacks from the git mirror at the default branch's head (fetched just
//! before), so what is planned is exactly what is merged, and nothing on disk that a person can
//! touch is involved.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ChangeService;
use crate::exec::terraform::{STACKS_DIR, StackSource};

/// The git mirror as a [`StackSource`].
#[derive(Debug)]
pub struct MirrorSource {
    pub svc: Arc<ChangeService>,
    pub handle: tokio::runtime::Handle,
}

impl StackSource for MirrorSource {
    fn export(&self, stack: &str, dest: &Path) -> Result<PathBuf, String> {
        // Called on a blocking thread, so waiting on the runtime for a token is allowed here.
        let creds = self.handle.block_on(self.svc.git_credentials())?;
        let mirror = self
            .svc
            .mirror
            .lock()
            .map_err(|_| "the git mirror is unavailable".to_string())?;
        let head = mirror
            .fetch(Some(&creds))
            .map_err(|e| format!("fetching the GitOps repo: {e}"))?;
        let dir = format!("{STACKS_DIR}/{stack}");
        if mirror
            .list_files(head, &dir)
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            return Err(format!(
                "stack `{stack}` has no directory `{dir}` on the default branch"
            ));
        }
        let prefix = format!("{dir}/");
        mirror
            .export_filtered(head, dest, |p| {
                !p.starts_with(&format!("{STACKS_DIR}/")) || p.starts_with(&prefix)
            })
            .map_err(|e| e.to_string())?;
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
