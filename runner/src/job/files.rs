//! Which change files a merge added, and the targets they belong to (`slipway-runner targets`).

use std::path::Path;

use git2::Oid;
use slipway_core::change::{ChangeRequest, lock_slug};
use slipway_infra::gitops::Mirror;

use super::{lookup, usage};

/// The target a change file belongs to: its lock slug, or `unreadable` when the file doesn't
/// parse (such a file is refused by whichever job handles that target).
pub fn target_of(text: Option<&str>) -> String {
    text.and_then(|t| ChangeRequest::from_yaml(t).ok())
        .map_or_else(|| "unreadable".to_string(), |cr| lock_slug(&cr.resource))
}

/// `slipway-runner targets`: the JSON list of targets for the workflow's matrix.
pub fn targets() -> u8 {
    let (Some(workspace), Some(sha)) = (lookup("GITHUB_WORKSPACE"), lookup("GITHUB_SHA")) else {
        return usage(
            "`targets` needs GITHUB_WORKSPACE (the checkout) and GITHUB_SHA (the pushed commit)",
        );
    };
    let files = Mirror::open_local(Path::new(&workspace), "main").and_then(|m| {
        let oid = Oid::from_str(&sha).map_err(slipway_infra::gitops::GitError::from)?;
        let files = m.added_files(oid, slipway_core::change::CHANGES_DIR)?;
        files
            .into_iter()
            .filter(|f| is_yaml(f))
            .map(|f| {
                m.read_file(oid, &f)
                    .map(|b| b.map(|b| String::from_utf8_lossy(&b).into_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
    });
    match files {
        Ok(texts) => {
            let mut targets: Vec<String> = texts.iter().map(|t| target_of(t.as_deref())).collect();
            targets.sort();
            targets.dedup();
            println!("{}", serde_json::Value::from(targets));
            0
        }
        Err(e) => usage(&format!(
            "reading the changes GITHUB_SHA added in {workspace}: {e} (check out with fetch-depth: 2 so the merge's parents are there)"
        )),
    }
}

/// `changes/<id>.yaml` → `<id>`.
pub fn id_from_path(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix(slipway_core::change::CHANGES_DIR)?
        .strip_prefix('/')?;
    let id = rest.strip_suffix(".yaml")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Change files are `changes/<id>.yaml`.
pub(super) fn is_yaml(path: &str) -> bool {
    Path::new(path).extension().is_some_and(|e| e == "yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_ids() {
        assert_eq!(id_from_path("changes/cr-x-1.yaml"), Some("cr-x-1"));
        assert_eq!(id_from_path("changes/a/b.yaml"), None);
        assert_eq!(id_from_path("changes/.yaml"), None);
        assert_eq!(id_from_path("other/cr.yaml"), None);
    }
}
