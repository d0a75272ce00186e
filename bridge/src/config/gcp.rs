//! `gcp_projects.<alias>`: the GCP project and the read-only service account behind each
//! `/gcloud` project alias. The person names only the alias; the project id and the identity
//! the bridge acts as come from here.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One project alias.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GcpProjectConfig {
    /// The GCP project id (`--project=<id>` on every command).
    pub project: String,
    /// The email of the project's read-only service account, which the bridge impersonates.
    pub service_account: String,
}

impl super::Config {
    /// The project and service account of a `/gcloud` alias, if configured.
    pub fn gcp_project(&self, alias: &str) -> Option<&GcpProjectConfig> {
        self.gcp_projects.get(alias)
    }
}

/// Every alias names a well-formed project id and service account email.
pub(super) fn check(projects: &BTreeMap<String, GcpProjectConfig>) -> Result<(), String> {
    for (alias, p) in projects {
        if !is_project_id(&p.project) {
            return Err(format!(
                "gcp_projects.{alias}.project: `{}` is not a GCP project id (6 to 30 lowercase \
                 letters, digits and `-`, starting with a letter, not ending with `-`)",
                p.project
            ));
        }
        if !is_service_account(&p.service_account) {
            return Err(format!(
                "gcp_projects.{alias}.service_account: `{}` is not a service account email \
                 (`name@project-id.iam.gserviceaccount.com`)",
                p.service_account
            ));
        }
    }
    Ok(())
}

/// A GKE cluster's project and account are shaped like a `/gcloud` alias's.
pub(super) fn check_gke(alias: &str, g: &super::GkeCluster) -> Result<(), String> {
    if !is_project_id(&g.project) {
        return Err(format!(
            "clusters.{alias}.gke.project: `{}` is not a GCP project id",
            g.project
        ));
    }
    if !is_service_account(&g.service_account) {
        return Err(format!(
            "clusters.{alias}.gke.service_account: `{}` is not a service account email",
            g.service_account
        ));
    }
    let plain =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !plain(&g.location) || !plain(&g.name) {
        return Err(format!(
            "clusters.{alias}.gke: `location` and `name` are a region or zone and a cluster name"
        ));
    }
    Ok(())
}

/// `^[a-z][a-z0-9-]{4,28}[a-z0-9]$`.
fn is_project_id(s: &str) -> bool {
    let b = s.as_bytes();
    (6..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `<name>@<project-id>.iam.gserviceaccount.com`, the name shaped like a project id.
fn is_service_account(s: &str) -> bool {
    let Some((name, domain)) = s.split_once('@') else {
        return false;
    };
    domain
        .strip_suffix(".iam.gserviceaccount.com")
        .is_some_and(is_project_id)
        && is_project_id(name)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(yaml: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            format!("slack:\n  signing_secret: x-signing-secret-16\n{yaml}"),
        )
        .unwrap();
        Config::load_with(Some(&path), &|_| None)
    }

    #[test]
    fn aliases_map_to_a_project_and_a_read_only_service_account() {
        let c = load(
            "gcp_projects:\n  gcp-staging:\n    project: acme-staging-1\n    \
             service_account: slipway-read@acme-staging-1.iam.gserviceaccount.com\n",
        )
        .unwrap();
        let p = c.gcp_project("gcp-staging").unwrap();
        assert_eq!(p.project, "acme-staging-1");
        assert_eq!(
            p.service_account,
            "slipway-read@acme-staging-1.iam.gserviceaccount.com"
        );
        assert_eq!(c.gcp_project("gcp-prod"), None);
        assert!(load("").unwrap().gcp_projects.is_empty());
    }

    #[test]
    fn malformed_projects_and_accounts_are_refused_at_start() {
        let sa = "slipway-read@acme-staging-1.iam.gserviceaccount.com";
        for (project, account, want) in [
            ("Acme-Staging", sa, "gcp_projects.a.project"),
            ("acme", sa, "gcp_projects.a.project"),
            ("acme-staging-", sa, "gcp_projects.a.project"),
            ("1acme-staging", sa, "gcp_projects.a.project"),
            (&"a".repeat(31), sa, "gcp_projects.a.project"),
            (
                "acme-staging-1",
                "slipway-read@gmail.com",
                "service_account",
            ),
            ("acme-staging-1", "slipway-read", "service_account"),
            (
                "acme-staging-1",
                "x@acme-staging-1.iam.gserviceaccount.com",
                "service_account",
            ),
            (
                "acme-staging-1",
                "slipway-read@acme-staging-1.iam.gserviceaccount.com.evil.io",
                "service_account",
            ),
        ] {
            let e = load(&format!(
                "gcp_projects:\n  a:\n    project: \"{project}\"\n    service_account: \"{account}\"\n"
            ))
            .unwrap_err();
            assert!(e.contains(want), "{project} {account}: {e}");
        }
        // Both keys are required, and nothing else is taken.
        for yaml in [
            "gcp_projects:\n  a:\n    project: acme-staging-1\n",
            &format!("gcp_projects:\n  a:\n    service_account: {sa}\n"),
            &format!(
                "gcp_projects:\n  a:\n    project: acme-staging-1\n    service_account: {sa}\n    key_file: /k.json\n"
            ),
        ] {
            assert!(load(yaml).is_err(), "{yaml}");
        }
    }
}
