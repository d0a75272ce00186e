//! The `gcp:` section's rules: what a workload identity provider and a service account look
//! like, and the defaults Google's own `google-github-actions/auth` uses.

use std::time::Duration;

use super::GcpConfig;

impl GcpConfig {
    /// `stacks.X` / `clusters.X` may name a service account only with a provider to reach it.
    pub(super) fn check_account(&self, what: &str, account: Option<&String>) -> Result<(), String> {
        let Some(a) = account else { return Ok(()) };
        let Some((name, domain)) = a.split_once('@') else {
            return Err(bad_account(what, a));
        };
        if name.is_empty() || !domain.ends_with(".gserviceaccount.com") || a.contains('/') {
            return Err(bad_account(what, a));
        }
        self.provider()
            .map(|_| ())
            .map_err(|e| format!("{what}: {e}"))
    }

    /// The provider's resource name, checked.
    pub fn provider(&self) -> Result<&str, String> {
        let p = self.workload_identity_provider.as_deref().ok_or(
            "a target has a `gcp_service_account`, so set gcp.workload_identity_provider \
             (projects/NUM/locations/global/workloadIdentityPools/POOL/providers/PROVIDER)",
        )?;
        let parts: Vec<&str> = p.split('/').collect();
        let shaped = matches!(
            parts.as_slice(),
            ["projects", num, "locations", "global", "workloadIdentityPools", pool, "providers", prov]
                if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit())
                    && !pool.is_empty() && !prov.is_empty()
        );
        if !shaped {
            return Err(format!(
                "gcp.workload_identity_provider `{p}` is not projects/NUM/locations/global/workloadIdentityPools/POOL/providers/PROVIDER (the project number, not its id)"
            ));
        }
        Ok(p)
    }

    /// STS's `audience`: the provider's full resource name.
    pub fn sts_audience(&self) -> Result<String, String> {
        Ok(format!("//iam.googleapis.com/{}", self.provider()?))
    }

    /// The OIDC token's audience (what the provider's allowed audiences must list).
    pub fn oidc_audience(&self) -> Result<String, String> {
        match &self.audience {
            Some(a) => Ok(a.clone()),
            None => Ok(format!("https://iam.googleapis.com/{}", self.provider()?)),
        }
    }

    pub fn sts_url(&self) -> &str {
        self.sts_endpoint
            .as_deref()
            .unwrap_or(slipway_infra::gcp::STS_URL)
    }

    pub fn iam_credentials_url(&self) -> &str {
        self.iam_credentials_endpoint
            .as_deref()
            .unwrap_or(slipway_infra::gcp::IAM_CREDENTIALS_URL)
    }

    /// How long a minted token lives: configured, else 15 minutes; never over Google's hour.
    pub fn lifetime(&self) -> Duration {
        self.token_lifetime
            .map_or(Duration::from_secs(900), |d| d.0)
            .min(slipway_infra::gcp::MAX_LIFETIME)
    }
}

fn bad_account(what: &str, a: &str) -> String {
    format!(
        "{what}.gcp_service_account `{a}` is not a service account email (NAME@PROJECT.iam.gserviceaccount.com)"
    )
}

#[cfg(test)]
mod tests {
    use super::super::RunnerConfig;

    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const PROVIDER: &str =
        "projects/123456/locations/global/workloadIdentityPools/github/providers/slipway";

    fn parse(rest: &str) -> Result<RunnerConfig, String> {
        RunnerConfig::parse(
            &format!("keys: {{k: \"{KEY}\"}}\n{rest}"),
            std::path::Path::new("/"),
        )
    }

    #[test]
    fn a_service_account_needs_a_provider_and_an_email_shape() {
        let sa = "stacks: {net: {gcp_service_account: tf@acme-prod.iam.gserviceaccount.com}}\n";
        let e = parse(sa).unwrap_err();
        assert!(e.contains("gcp.workload_identity_provider"), "{e}");
        let cfg = parse(&format!(
            "gcp: {{workload_identity_provider: {PROVIDER}}}\n{sa}"
        ))
        .unwrap();
        assert_eq!(
            cfg.gcp.sts_audience().unwrap(),
            format!("//iam.googleapis.com/{PROVIDER}")
        );
        assert_eq!(
            cfg.gcp.oidc_audience().unwrap(),
            format!("https://iam.googleapis.com/{PROVIDER}")
        );
        let e = parse(&format!(
            "gcp: {{workload_identity_provider: {PROVIDER}}}\nstacks: {{net: {{gcp_service_account: \"tf@evil.com\"}}}}\n"
        ))
        .unwrap_err();
        assert!(e.contains("not a service account email"), "{e}");
        let e = parse(
            "gcp: {workload_identity_provider: projects/acme-prod/locations/global/workloadIdentityPools/g/providers/s}\nstacks: {net: {gcp_service_account: tf@p.iam.gserviceaccount.com}}\n",
        )
        .unwrap_err();
        assert!(e.contains("project number"), "{e}");
    }

    #[test]
    fn a_gke_cluster_takes_its_token_from_google_only_and_endpoints_are_https() {
        let gcp = format!("gcp: {{workload_identity_provider: {PROVIDER}}}\n");
        let e = parse(&format!(
            "{gcp}clusters: {{gke: {{server: \"https://34.1.2.3\", token_env: T, gcp_service_account: d@p.iam.gserviceaccount.com}}}}\n"
        ))
        .unwrap_err();
        assert!(e.contains("no `token_env`"), "{e}");
        assert!(parse(&format!(
            "{gcp}clusters: {{gke: {{server: \"https://34.1.2.3\", gcp_service_account: d@p.iam.gserviceaccount.com}}}}\n"
        ))
        .is_ok());
        let e = parse(&format!(
            "gcp: {{workload_identity_provider: {PROVIDER}, sts_endpoint: \"http://sts.example.com/v1/token\"}}\n"
        ))
        .unwrap_err();
        assert!(e.contains("gcp.sts_endpoint"), "{e}");
    }
}
