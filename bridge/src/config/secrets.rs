//! The `secrets:` section: the stores secret references point into, and how often they are
//! read again. References are resolved before the rest of the file loads, so a bridge whose
//! store can't be reached refuses to start and says which reference failed and why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Deserialize;
use slipway_infra::secret_store::{
    AwsSettings, GcpSecretSettings, JwtLogin, SecretRef, Settings, Stores, VaultAuth, VaultSettings,
};

use super::google::text;
use super::secret::{Secret, SecretSource, de_secret, secret};
use super::{Env, check_url, duration};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSecrets {
    /// How often every reference is read again (default 5m).
    refresh_interval: Option<String>,
    /// How long the last good value stands in while a store is unreachable (default 1h).
    max_staleness: Option<String>,
    /// How long a rotated Slack signing secret's old value is still accepted (default 10m).
    rotation_grace: Option<String>,
    #[serde(default)]
    vault: Option<FileVault>,
    #[serde(default)]
    aws: Option<FileAws>,
    #[serde(default)]
    gcp: Option<FileGcpStore>,
    /// What wraps the data keys of sealed state (default: the local `github.token_key`).
    #[serde(default)]
    envelope: FileEnvelope,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEnvelope {
    /// An AWS KMS key id, ARN or alias (`SLIPWAY_STATE_KMS_KEY_ID`).
    kms_key_id: Option<String>,
    /// A Vault / OpenBao Transit key created with `derived=true` (`SLIPWAY_STATE_TRANSIT_KEY`).
    transit_key: Option<String>,
    /// Where Transit is mounted (default `transit`).
    transit_mount: Option<String>,
}

/// Which key wraps new data keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Wrapping {
    /// The local key (`github.token_key`).
    #[default]
    Local,
    Kms,
    Transit,
}

impl Wrapping {
    /// The byte a sealed row records it as.
    pub fn byte(self) -> u8 {
        match self {
            Wrapping::Local => 0,
            Wrapping::Kms => 1,
            Wrapping::Transit => 2,
        }
    }

    pub fn from_byte(b: u8) -> Option<Wrapping> {
        [Wrapping::Local, Wrapping::Kms, Wrapping::Transit]
            .into_iter()
            .find(|w| w.byte() == b)
    }
}

/// Envelope encryption of sealed state: the wrapping new records get, and every key service
/// configured (rows wrapped by any of them still open, and are re-wrapped as they are read).
#[derive(Debug, Clone, Default)]
pub struct EnvelopeConfig {
    pub wrapping: Wrapping,
    pub kms_key_id: Option<String>,
    /// Transit's mount and key.
    pub transit: Option<(String, String)>,
    /// Where KMS (`secrets.aws`) and Vault (`secrets.vault`) are.
    pub stores: Settings,
}

pub(super) fn envelope(
    file: &FileSecrets,
    stores: &Settings,
    env: Env<'_>,
) -> Result<EnvelopeConfig, String> {
    let f = &file.envelope;
    let kms = text(env, "SLIPWAY_STATE_KMS_KEY_ID", f.kms_key_id.as_ref());
    let transit = text(env, "SLIPWAY_STATE_TRANSIT_KEY", f.transit_key.as_ref());
    let wrapping = match (&kms, &transit) {
        (Some(_), Some(_)) => {
            return Err(
                "secrets.envelope: set kms_key_id or transit_key, not both (rows wrapped by the \
                 other still need it configured only while they are re-wrapped: keep one)"
                    .into(),
            );
        }
        (Some(_), None) => Wrapping::Kms,
        (None, Some(_)) => Wrapping::Transit,
        (None, None) => Wrapping::Local,
    };
    if transit.is_some() && stores.vault.is_none() {
        return Err(
            "secrets.envelope.transit_key needs the `secrets.vault` section (address and login)"
                .into(),
        );
    }
    let mount = f.transit_mount.clone().unwrap_or_else(|| "transit".into());
    Ok(EnvelopeConfig {
        wrapping,
        kms_key_id: kms,
        transit: transit.map(|k| (mount, k)),
        stores: stores.clone(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVault {
    /// `https://vault.example:8200` (`SLIPWAY_VAULT_ADDR`).
    address: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    auth: FileVaultAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVaultAuth {
    /// `kubernetes` (default), `jwt`, `approle` or `token`.
    method: Option<String>,
    /// Where the method is mounted (default: its name).
    mount: Option<String>,
    /// The Vault role (kubernetes, jwt).
    role: Option<String>,
    /// The token file sent at login (kubernetes: the pod's service account token).
    jwt_file: Option<PathBuf>,
    /// AppRole's role id and secret id.
    role_id: Option<String>,
    #[serde(default, deserialize_with = "de_secret")]
    secret_id: Option<SecretSource>,
    /// A token given outright (`SLIPWAY_VAULT_TOKEN`), for development.
    #[serde(default, deserialize_with = "de_secret")]
    token: Option<SecretSource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAws {
    region: Option<String>,
    /// Tests and emulators only.
    endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGcpStore {
    /// Tests and emulators only (default Google's).
    endpoint: Option<String>,
}

/// The timing of the refresher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretTiming {
    pub refresh_interval: Duration,
    pub max_staleness: Duration,
    pub rotation_grace: Duration,
}

/// Every store reference in the configuration, its live value, and when it was last read.
/// The refresher writes here; the ingress asks [`SecretBook::stale`] before it trusts a value.
#[derive(Debug, Default)]
pub struct SecretBook {
    pub settings: Settings,
    pub timing: Option<SecretTiming>,
    pub entries: Vec<BookEntry>,
}

/// One reference.
#[derive(Debug)]
pub struct BookEntry {
    pub reference: SecretRef,
    pub secret: Secret,
    /// Unix seconds of the last successful read.
    pub read_at: AtomicI64,
    /// The settings that hold this value (`slack.signing_secret`).
    pub fields: Vec<String>,
}

impl SecretBook {
    /// Records which settings took which reference.
    pub(super) fn note_fields(&mut self, used: Vec<(SecretRef, String)>) {
        for (r, what) in used {
            if let Some(e) = self.entries.iter_mut().find(|e| e.reference == r)
                && !e.fields.contains(&what)
            {
                e.fields.push(what);
            }
        }
    }

    /// The references older than the maximum staleness at `now`: while there are any, the
    /// bridge fails closed.
    pub fn stale(&self, now: i64) -> Vec<&SecretRef> {
        let Some(t) = self.timing else {
            return Vec::new();
        };
        let max = i64::try_from(t.max_staleness.as_secs()).unwrap_or(i64::MAX);
        self.entries
            .iter()
            .filter(|e| now.saturating_sub(e.read_at.load(Ordering::Relaxed)) > max)
            .map(|e| &e.reference)
            .collect()
    }
}

fn timing(file: &FileSecrets, env: Env<'_>) -> Result<SecretTiming, String> {
    let d = |var: &str, key: &str, v: &Option<String>, default: u64| {
        duration(
            &format!("{var} / secrets.{key}"),
            env(var).or(v.clone()).as_deref(),
            Duration::from_secs(default),
        )
    };
    let t = SecretTiming {
        refresh_interval: d(
            "SLIPWAY_SECRETS_REFRESH_INTERVAL",
            "refresh_interval",
            &file.refresh_interval,
            300,
        )?,
        max_staleness: d(
            "SLIPWAY_SECRETS_MAX_STALENESS",
            "max_staleness",
            &file.max_staleness,
            3600,
        )?,
        rotation_grace: d(
            "SLIPWAY_SECRETS_ROTATION_GRACE",
            "rotation_grace",
            &file.rotation_grace,
            600,
        )?,
    };
    if t.refresh_interval.is_zero() || t.max_staleness < t.refresh_interval {
        return Err(format!(
            "secrets.max_staleness ({}) must be at least secrets.refresh_interval ({}), which \
             must not be zero",
            humantime::format_duration(t.max_staleness),
            humantime::format_duration(t.refresh_interval)
        ));
    }
    Ok(t)
}

fn vault(file: Option<&FileVault>, env: Env<'_>) -> Result<Option<VaultSettings>, String> {
    let address = text(
        env,
        "SLIPWAY_VAULT_ADDR",
        file.and_then(|f| f.address.as_ref()),
    );
    let Some(address) = address else {
        return match file {
            Some(_) => Err("secrets.vault needs an address (or SLIPWAY_VAULT_ADDR)".into()),
            None => Ok(None),
        };
    };
    check_url(&address, "the Vault address (secrets.vault.address)")?;
    let default_auth = FileVaultAuth::default();
    let auth = vault_auth(file.map_or(&default_auth, |f| &f.auth), env)?;
    Ok(Some(VaultSettings {
        address: address.trim_end_matches('/').to_string(),
        namespace: file.and_then(|f| f.namespace.clone()),
        auth,
        timeout: Duration::from_secs(10),
    }))
}

/// How the bridge logs in to Vault: the method named, else a token if one is given, else
/// Kubernetes (the pod's service account).
fn vault_auth(a: &FileVaultAuth, env: Env<'_>) -> Result<VaultAuth, String> {
    let token = secret(
        env,
        "SLIPWAY_VAULT_TOKEN",
        a.token.as_ref(),
        "secrets.vault.auth.token",
    )?;
    let method = a.method.clone().unwrap_or_else(|| {
        if token.is_empty() {
            "kubernetes"
        } else {
            "token"
        }
        .into()
    });
    let mount = a.mount.clone().unwrap_or_else(|| method.clone());
    let role = || {
        a.role
            .clone()
            .ok_or_else(|| format!("secrets.vault.auth: the {method} method needs a `role`"))
    };
    Ok(match method.as_str() {
        "token" if !token.is_empty() => VaultAuth::Token(token.expose().to_string().into()),
        "token" => {
            return Err(
                "secrets.vault.auth: the token method needs SLIPWAY_VAULT_TOKEN or `token`".into(),
            );
        }
        "approle" => approle(a, mount, env)?,
        "jwt" => VaultAuth::Jwt(JwtLogin {
            mount,
            role: role()?,
            jwt_file: a
                .jwt_file
                .clone()
                .ok_or("secrets.vault.auth: jwt needs a `jwt_file`")?,
        }),
        "kubernetes" => VaultAuth::Kubernetes(JwtLogin {
            mount,
            role: role()?,
            jwt_file: a
                .jwt_file
                .clone()
                .unwrap_or_else(|| slipway_infra::secret_store::vault::KUBERNETES_TOKEN.into()),
        }),
        other => {
            return Err(format!(
                "secrets.vault.auth.method `{other}` is not one of kubernetes, jwt, approle, token"
            ));
        }
    })
}

fn approle(a: &FileVaultAuth, mount: String, env: Env<'_>) -> Result<VaultAuth, String> {
    let secret_id = secret(
        env,
        "SLIPWAY_VAULT_SECRET_ID",
        a.secret_id.as_ref(),
        "secrets.vault.auth.secret_id",
    )?;
    if secret_id.is_empty() {
        return Err(
            "secrets.vault.auth: approle needs a `secret_id` (or SLIPWAY_VAULT_SECRET_ID)".into(),
        );
    }
    Ok(VaultAuth::AppRole {
        mount,
        role_id: a
            .role_id
            .clone()
            .ok_or("secrets.vault.auth: approle needs a `role_id`")?,
        secret_id: secret_id.expose().to_string().into(),
    })
}

/// The stores the file configures. Google's needs the bridge's own key (the `gcp:` section),
/// read only when a reference points there.
fn settings(
    file: &FileSecrets,
    gcp: impl FnOnce() -> Result<Option<super::GcpConfig>, String>,
    refs: &[SecretRef],
    env: Env<'_>,
) -> Result<Settings, String> {
    let aws = file.aws.as_ref().map(|a| AwsSettings {
        region: a.region.clone(),
        endpoint_url: a.endpoint_url.clone(),
        timeout: None,
    });
    if let Some(url) = aws.as_ref().and_then(|a| a.endpoint_url.as_ref()) {
        check_url(url, "secrets.aws.endpoint_url")?;
    }
    let wants_gcp = refs
        .iter()
        .any(|r| matches!(r, SecretRef::GcpSecretManager { .. }));
    let gcp = if wants_gcp {
        let g = gcp()?.ok_or(
            "a secret refers to Google Secret Manager: set SLIPWAY_GCP_CREDENTIALS (the \
             `gcp:` section) to the key the bridge reads it with",
        )?;
        let endpoint = file
            .gcp
            .as_ref()
            .and_then(|g| g.endpoint.clone())
            .unwrap_or_else(|| slipway_infra::secret_store::gcp::SECRET_MANAGER_URL.into());
        check_url(&endpoint, "secrets.gcp.endpoint")?;
        Some(GcpSecretSettings {
            identity: g.minter_settings(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            timeout: Duration::from_secs(10),
        })
    } else {
        None
    };
    Ok(Settings {
        vault: vault(file.vault.as_ref(), env)?,
        aws,
        gcp,
    })
}

/// Reads every reference once, before anything else is loaded. Runs on a thread of its own,
/// with its own runtime, so loading stays synchronous wherever it is called from.
pub(super) fn resolve(
    file: &FileSecrets,
    gcp: impl FnOnce() -> Result<Option<super::GcpConfig>, String>,
    refs: Vec<SecretRef>,
    env: Env<'_>,
    now: i64,
) -> Result<(BTreeMap<SecretRef, Secret>, SecretBook), String> {
    let timing = timing(file, env)?;
    let settings = settings(file, gcp, &refs, env)?;
    if refs.is_empty() {
        return Ok((
            BTreeMap::new(),
            SecretBook {
                settings,
                ..SecretBook::default()
            },
        ));
    }
    let fetched = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("can't start a runtime to read the secrets: {e}"))?;
            rt.block_on(Stores::new(settings.clone()).fetch_all(&refs))
                .map_err(|(r, e)| {
                    format!(
                        "can't read the secret {r}: {e}. The bridge does not start without its \
                         secrets: check that the store is reachable from here and that the \
                         bridge's identity may read this secret"
                    )
                })
        })
        .join()
        .unwrap_or_else(|_| Err("reading the secrets failed".into()))
    })?;
    let mut cells = BTreeMap::new();
    let mut entries = Vec::new();
    for r in refs {
        let secret = Secret::new(fetched[&r].expose_secret().to_string());
        cells.insert(r.clone(), secret.clone());
        entries.push(BookEntry {
            reference: r,
            secret,
            read_at: AtomicI64::new(now),
            fields: Vec::new(),
        });
    }
    Ok((
        cells,
        SecretBook {
            settings,
            timing: Some(timing),
            entries,
        },
    ))
}

#[cfg(test)]
mod tests;
