//! The `gcp:` section: how the bridge reaches Google Cloud for `/gcloud` reads and GKE
//! clusters (the aliases themselves are `gcp_projects`, see `gcp`). The bridge's own identity does one thing: mint, per run, a short-lived token for
//! the read-only service account of the project or cluster at hand (IAM Credentials'
//! `generateAccessToken`), so the only standing grant is "may create tokens for these read
//! accounts". Off unless the bridge's key is set.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use slipway_infra::gcp::{IAM_CREDENTIALS_URL, MAX_LIFETIME, ServiceAccountKey};

use super::google::text;
use super::secret::{SecretSource, de_secret, secret};
use super::{Env, Live, Secret, check_url, duration};

/// The gcloud APIs an emulator may stand in for (`CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>`).
const OVERRIDABLE: &[&str] = &[
    "compute",
    "container",
    "cloudresourcemanager",
    "iam",
    "storage",
    "logging",
    "run",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileGcp {
    /// The bridge's service account key (`SLIPWAY_GCP_CREDENTIALS`), a secret reference.
    #[serde(default, deserialize_with = "de_secret")]
    credentials: Option<SecretSource>,
    /// Tests and emulators only: the OAuth token endpoint and IAM Credentials' root.
    token_url: Option<String>,
    iam_credentials_url: Option<String>,
    /// How long a minted read token lives (default 15m, at most 1h).
    token_lifetime: Option<String>,
    /// The gcloud binary (default `gcloud` on the bridge's PATH).
    cli: Option<String>,
    /// Tests and emulators only: gcloud API name → endpoint URL.
    #[serde(default)]
    api_endpoint_overrides: BTreeMap<String, String>,
}

/// The validated `gcp:` section.
#[derive(Debug, Clone)]
pub struct GcpConfig {
    /// The bridge's own identity, following `gcp.credentials`' rotations.
    pub key: Live<ServiceAccountKey>,
    /// The key file as configured: what the minter is rebuilt from when it rotates.
    pub credentials: Secret,
    /// `None`: the key file's `token_uri`, else Google's.
    pub token_url: Option<String>,
    /// Without a trailing slash.
    pub iam_credentials_url: String,
    pub token_lifetime: Duration,
    pub cli: String,
    /// `CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>` values, from configuration only.
    pub api_endpoint_overrides: BTreeMap<String, String>,
}

impl GcpConfig {
    /// What the token minter needs: the current key, where tokens come from, their lifetime.
    pub fn minter_settings(&self) -> slipway_infra::gcp::MinterSettings {
        slipway_infra::gcp::MinterSettings {
            key: (*self.key.get()).clone(),
            token_url: self.token_url.clone(),
            iam_credentials_url: self.iam_credentials_url.clone(),
            lifetime: self.token_lifetime,
        }
    }
}

const SET_KEY: &str = "set SLIPWAY_GCP_CREDENTIALS (or `gcp.credentials`, e.g. \
                       `{ file: /run/secrets/gcp-sa.json }`) to the bridge's service account key";

/// `None` when GCP is off (no key, and nothing else of the section set).
pub(super) fn load(file: &FileGcp, env: Env<'_>) -> Result<Option<GcpConfig>, String> {
    let key = secret(
        env,
        "SLIPWAY_GCP_CREDENTIALS",
        file.credentials.as_ref(),
        "gcp.credentials",
    )?;
    if key.is_empty() {
        if file.token_url.is_some()
            || file.iam_credentials_url.is_some()
            || !file.api_endpoint_overrides.is_empty()
        {
            return Err(format!("GCP is half configured: {SET_KEY}."));
        }
        return Ok(None);
    }
    let credentials = key.clone();
    let key = Live::new("gcp.credentials", vec![key], |v| {
        ServiceAccountKey::parse(&v[0]).map_err(|e| format!("{e}: {SET_KEY}."))
    })?;
    let token_url = text(env, "SLIPWAY_GCP_TOKEN_URL", file.token_url.as_ref());
    if let Some(u) = &token_url {
        check_url(u, "the GCP token URL (SLIPWAY_GCP_TOKEN_URL)")?;
    }
    let iam = text(
        env,
        "SLIPWAY_GCP_IAM_CREDENTIALS_URL",
        file.iam_credentials_url.as_ref(),
    )
    .unwrap_or_else(|| IAM_CREDENTIALS_URL.to_string());
    check_url(
        &iam,
        "the IAM Credentials URL (SLIPWAY_GCP_IAM_CREDENTIALS_URL)",
    )?;
    let token_lifetime = duration(
        "SLIPWAY_GCP_TOKEN_LIFETIME / gcp.token_lifetime",
        env("SLIPWAY_GCP_TOKEN_LIFETIME")
            .or(file.token_lifetime.clone())
            .as_deref(),
        Duration::from_secs(15 * 60),
    )?;
    if token_lifetime > MAX_LIFETIME || token_lifetime < Duration::from_secs(60) {
        return Err(format!(
            "gcp.token_lifetime must be between 1m and 1h (Google's limit), not {}",
            humantime::format_duration(token_lifetime)
        ));
    }
    Ok(Some(GcpConfig {
        key,
        credentials,
        token_url,
        iam_credentials_url: iam.trim_end_matches('/').to_string(),
        token_lifetime,
        cli: text(env, "SLIPWAY_GCLOUD", file.cli.as_ref()).unwrap_or_else(|| "gcloud".into()),
        api_endpoint_overrides: overrides(&file.api_endpoint_overrides)?,
    }))
}

fn overrides(raw: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    for (api, url) in raw {
        if !OVERRIDABLE.contains(&api.as_str()) {
            return Err(format!(
                "gcp.api_endpoint_overrides.{api}: not an API gcloud reads here (one of {})",
                OVERRIDABLE.join(", ")
            ));
        }
        check_url(url, &format!("gcp.api_endpoint_overrides.{api}"))?;
    }
    Ok(raw.clone())
}
