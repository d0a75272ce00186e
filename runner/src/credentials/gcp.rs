//! Google Cloud for one change, by Workload Identity Federation: the job's OIDC token (with the
//! provider's audience) is exchanged at STS for a federated token, which mints a short-lived
//! token for the target's service account (`generateAccessToken`). Google checks the
//! provider's attribute condition (repository, default branch, workflow) at the exchange and
//! the account's `roles/iam.workloadIdentityUser` binding at the mint; the runner checks the
//! branch first so a wrong one is refused with a sentence.

use std::time::Duration;

use slipway_infra::gcp::{AccessToken, GcpClient};
use slipway_infra::oidc::{self, Claims};

use super::check_claims;
use crate::config::RunnerConfig;

/// A minted token and what it is for. `Debug` hides the token (see [`AccessToken`]).
#[derive(Debug, Clone)]
pub struct GcpGrant {
    pub token: AccessToken,
    pub service_account: String,
    pub claims: Claims,
}

impl GcpGrant {
    /// What terraform's Google provider reads (and gcloud, for a stack's external data).
    pub fn terraform_env(&self) -> Vec<(String, String)> {
        vec![
            ("GOOGLE_OAUTH_ACCESS_TOKEN".into(), self.token.token.clone()),
            (
                "CLOUDSDK_AUTH_ACCESS_TOKEN".into(),
                self.token.token.clone(),
            ),
        ]
    }
}

/// A token for `account` (`None`: the target needs no Google credentials).
pub async fn for_account(
    id_token_request: Option<&(String, String)>,
    cfg: &RunnerConfig,
    account: Option<&str>,
    default_branch: &str,
    now: i64,
) -> Result<Option<GcpGrant>, String> {
    let Some(account) = account else {
        return Ok(None);
    };
    let Some((url, request_token)) = id_token_request else {
        return Err(format!(
            "the target's service account {account} is reached with the job's OIDC token, but the job has none: grant `permissions: id-token: write`"
        ));
    };
    let timeout = Duration::from_secs(20);
    let audience = cfg.gcp.oidc_audience()?;
    let id = oidc::request_token(url, request_token, &audience, timeout)
        .await
        .map_err(|e| e.to_string())?;
    check_claims(&id.claims, default_branch)?;
    let client = GcpClient::new(timeout).map_err(|e| e.to_string())?;
    let federated = client
        .sts_exchange(
            cfg.gcp.sts_url(),
            &cfg.gcp.sts_audience()?,
            id.expose(),
            now,
        )
        .await
        .map_err(|e| format!("Workload Identity Federation: {e}"))?;
    let token = client
        .generate_access_token(
            cfg.gcp.iam_credentials_url(),
            &federated,
            account,
            cfg.gcp.lifetime(),
        )
        .await
        .map_err(|e| format!("impersonating {account}: {e}"))?;
    Ok(Some(GcpGrant {
        token,
        service_account: account.to_string(),
        claims: id.claims,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Granted;

    #[test]
    fn debug_never_shows_the_google_token() {
        let grant = GcpGrant {
            token: AccessToken {
                token: "ya29.c.minted-secret".into(),
                expires_at: 1,
            },
            service_account: "deploy@p.iam.gserviceaccount.com".into(),
            claims: Claims::default(),
        };
        let granted = Granted {
            env: grant.terraform_env(),
            google_account: Some(grant.service_account.clone()),
            ..Granted::default()
        };
        for shown in [format!("{grant:?}"), format!("{granted:?}")] {
            assert!(
                shown.contains("deploy@p.iam.gserviceaccount.com"),
                "{shown}"
            );
            assert!(!shown.contains("minted-secret"), "{shown}");
        }
        assert!(format!("{granted:?}").contains("GOOGLE_OAUTH_ACCESS_TOKEN"));
    }
}
