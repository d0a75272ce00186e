//! The `google:` section: a Google Workspace directory sync through the Admin SDK Directory API,
//! as a service account acting for an admin (domain-wide delegation). Off unless the service
//! account key is set; once it is, everything the sync needs is checked here, so a missing or
//! malformed setting stops `slipway serve` with what to set rather than failing at the first
//! sync. Push notifications (`POST /google/notify`) are on only with a public URL and a channel
//! token.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::{Env, Live, Secret, SecretSource, check_url, de_secret, duration, keys, secret};

/// Google's OAuth token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The Admin SDK's root (the Directory API is under `/admin/directory/v1`).
pub const DEFAULT_API_URL: &str = "https://admin.googleapis.com";
/// The longest channel token Google keeps.
const MAX_CHANNEL_TOKEN: usize = 256;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileGoogle {
    /// The service account's JSON key (`SLIPWAY_GOOGLE_SERVICE_ACCOUNT`).
    #[serde(default, deserialize_with = "de_secret")]
    service_account: Option<SecretSource>,
    admin_email: Option<String>,
    customer: Option<String>,
    sync_interval: Option<String>,
    api_url: Option<String>,
    token_url: Option<String>,
    push_url: Option<String>,
    #[serde(default, deserialize_with = "de_secret")]
    channel_token: Option<SecretSource>,
}

/// What Slipway reads of a service account's key file.
#[derive(Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    /// The key's id, sent as the assertion's `kid`.
    pub private_key_id: Option<String>,
    /// PEM (PKCS#8 as Google issues it).
    pub private_key: Secret,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

/// Push notifications: Google POSTs to `url` with the channel token.
#[derive(Debug, Clone)]
pub struct GooglePush {
    pub url: String,
    pub channel_token: Secret,
}

/// The validated `google:` section.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// Follows `google.service_account`'s rotations.
    pub service_account: Live<ServiceAccount>,
    /// The admin the service account acts as.
    pub admin_email: String,
    /// `my_customer` (the admin's own account) or a customer id.
    pub customer: String,
    pub sync_interval: Duration,
    /// Without a trailing slash.
    pub api_url: String,
    pub token_url: String,
    pub push: Option<GooglePush>,
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

const SET_KEY: &str = "set SLIPWAY_GOOGLE_SERVICE_ACCOUNT (or `google.service_account`, e.g. \
                       `{ file: /run/secrets/google-sa.json }`) to the service account's JSON key";

/// The key file's fields; errors say where it doesn't parse, never what it holds.
fn parse_key(key: &str) -> Result<(ServiceAccount, Option<String>), String> {
    let file: KeyFile = serde_json::from_str(key).map_err(|e| {
        format!(
            "the Google service account key is not a JSON key file with `client_email` and \
             `private_key` (line {}, column {}): {SET_KEY}",
            e.line(),
            e.column()
        )
    })?;
    if file.kind.as_deref().is_some_and(|k| k != "service_account") {
        return Err(format!(
            "the Google service account key is not a service account key (its `type` is not \
             `service_account`): {SET_KEY}"
        ));
    }
    if jsonwebtoken::EncodingKey::from_rsa_pem(file.private_key.as_bytes()).is_err() {
        return Err(format!(
            "the Google service account key's `private_key` is not an RSA private key in PEM: \
             {SET_KEY}"
        ));
    }
    let account = ServiceAccount {
        client_email: file.client_email,
        private_key_id: file.private_key_id,
        private_key: Secret::new(file.private_key),
    };
    Ok((account, file.token_uri))
}

/// A plain setting: the variable, else the file's value; blank is unset.
pub(super) fn text(env: Env<'_>, var: &str, file: Option<&String>) -> Option<String> {
    env(var)
        .or_else(|| file.cloned())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The push settings: both the URL and a real channel token, or neither.
fn push(file: &FileGoogle, env: Env<'_>) -> Result<Option<GooglePush>, String> {
    let url = text(env, "SLIPWAY_GOOGLE_PUSH_URL", file.push_url.as_ref());
    let token = secret(
        env,
        "SLIPWAY_GOOGLE_CHANNEL_TOKEN",
        file.channel_token.as_ref(),
        "google.channel_token",
    )?;
    let Some(url) = url else {
        if token.is_empty() {
            return Ok(None);
        }
        return Err(
            "SLIPWAY_GOOGLE_CHANNEL_TOKEN is set but SLIPWAY_GOOGLE_PUSH_URL isn't: set \
                    the push URL (the public https URL of the bridge's /google/notify) too, or \
                    unset the token to sync on the interval only."
                .into(),
        );
    };
    check_url(&url, "the Google push URL (SLIPWAY_GOOGLE_PUSH_URL)")?;
    if token.is_empty() {
        return Err(format!(
            "Google push notifications need a channel token: set {} to {}.",
            keys::GOOGLE_CHANNEL_TOKEN.set_with,
            keys::GOOGLE_CHANNEL_TOKEN.how
        ));
    }
    keys::check(&token, &keys::GOOGLE_CHANNEL_TOKEN)?;
    let t = token.expose();
    if t.len() > MAX_CHANNEL_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the Google channel token must be at most {MAX_CHANNEL_TOKEN} printable ASCII \
             characters without spaces: set {} to {}.",
            keys::GOOGLE_CHANNEL_TOKEN.set_with,
            keys::GOOGLE_CHANNEL_TOKEN.how
        ));
    }
    Ok(Some(GooglePush {
        url,
        channel_token: token,
    }))
}

/// `None` when the sync is off (no key and nothing else of the section set).
pub(super) fn load(file: &FileGoogle, env: Env<'_>) -> Result<Option<GoogleConfig>, String> {
    let key = secret(
        env,
        "SLIPWAY_GOOGLE_SERVICE_ACCOUNT",
        file.service_account.as_ref(),
        "google.service_account",
    )?;
    let admin = text(env, "SLIPWAY_GOOGLE_ADMIN_EMAIL", file.admin_email.as_ref());
    let push = push(file, env)?;
    if key.is_empty() {
        if admin.is_some() || push.is_some() || file.service_account.is_some() {
            return Err(format!(
                "Google Workspace sync is half configured: {SET_KEY}."
            ));
        }
        return Ok(None);
    }
    let (_, key_token_url) = parse_key(&key.expose())?;
    let service_account = Live::new("google.service_account", vec![key], |v| {
        parse_key(&v[0]).map(|(account, _)| account)
    })?;
    let admin_email = admin.filter(|a| a.contains('@')).ok_or(
        "Google Workspace sync acts as an admin through domain-wide delegation: set \
         SLIPWAY_GOOGLE_ADMIN_EMAIL (or `google.admin_email`) to a super admin's address, \
         e.g. admin@example.com.",
    )?;
    let sync_interval = duration(
        "SLIPWAY_GOOGLE_SYNC_INTERVAL / google.sync_interval",
        env("SLIPWAY_GOOGLE_SYNC_INTERVAL")
            .or(file.sync_interval.clone())
            .as_deref(),
        Duration::from_secs(300),
    )?;
    if sync_interval < Duration::from_secs(1) {
        return Err("SLIPWAY_GOOGLE_SYNC_INTERVAL must be at least 1s (the default is 5m).".into());
    }
    let mut api_url = text(env, "SLIPWAY_GOOGLE_API_URL", file.api_url.as_ref())
        .unwrap_or_else(|| DEFAULT_API_URL.into());
    while api_url.ends_with('/') {
        api_url.pop();
    }
    check_url(&api_url, "the Google API URL (SLIPWAY_GOOGLE_API_URL)")?;
    let token_url = text(env, "SLIPWAY_GOOGLE_TOKEN_URL", file.token_url.as_ref())
        .or(key_token_url)
        .unwrap_or_else(|| DEFAULT_TOKEN_URL.into());
    check_url(
        &token_url,
        "the Google token URL (SLIPWAY_GOOGLE_TOKEN_URL, or the key's token_uri)",
    )?;
    Ok(Some(GoogleConfig {
        service_account,
        admin_email,
        customer: text(env, "SLIPWAY_GOOGLE_CUSTOMER", file.customer.as_ref())
            .unwrap_or_else(|| "my_customer".into()),
        sync_interval,
        api_url,
        token_url,
        push,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = include_str!("../../../tests/fixtures/keys/github-app-test.pem");

    fn key_json(token_uri: &str) -> String {
        serde_json::json!({
            "type": "service_account", "client_email": "sync@p.iam.gserviceaccount.com",
            "private_key_id": "k1", "private_key": PEM, "token_uri": token_uri,
        })
        .to_string()
    }

    fn load_env(pairs: &[(&str, String)]) -> Result<Option<GoogleConfig>, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        load(&FileGoogle::default(), &move |k| {
            pairs
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn google_sync_is_off_without_a_key_and_says_what_is_missing() {
        assert!(load_env(&[]).unwrap().is_none());
        let key = (
            "SLIPWAY_GOOGLE_SERVICE_ACCOUNT",
            key_json(DEFAULT_TOKEN_URL),
        );
        let admin = (
            "SLIPWAY_GOOGLE_ADMIN_EMAIL",
            "admin@example.com".to_string(),
        );
        let e = load_env(std::slice::from_ref(&admin)).unwrap_err();
        assert!(e.contains("SLIPWAY_GOOGLE_SERVICE_ACCOUNT"), "{e}");
        let e = load_env(std::slice::from_ref(&key)).unwrap_err();
        assert!(e.contains("SLIPWAY_GOOGLE_ADMIN_EMAIL"), "{e}");
        let c = load_env(&[key.clone(), admin.clone()]).unwrap().unwrap();
        assert_eq!(
            (c.customer.as_str(), c.sync_interval, c.api_url.as_str()),
            ("my_customer", Duration::from_secs(300), DEFAULT_API_URL)
        );
        assert_eq!(c.token_url, DEFAULT_TOKEN_URL);
        assert!(c.push.is_none());
        let shown = format!("{c:?}");
        assert!(
            shown.contains("sync@p.iam") && !shown.contains("PRIVATE KEY"),
            "{shown}"
        );
        for bad in ["{not json", r#"{"client_email": "x"}"#] {
            let e = load_env(&[
                ("SLIPWAY_GOOGLE_SERVICE_ACCOUNT", bad.to_string()),
                admin.clone(),
            ])
            .unwrap_err();
            assert!(e.contains("SLIPWAY_GOOGLE_SERVICE_ACCOUNT"), "{e}");
        }
        let not_rsa = key_json(DEFAULT_TOKEN_URL).replace("MII", "XXX");
        let e =
            load_env(&[("SLIPWAY_GOOGLE_SERVICE_ACCOUNT", not_rsa), admin.clone()]).unwrap_err();
        assert!(
            e.contains("not an RSA private key") && !e.contains("BEGIN"),
            "{e}"
        );
        let e = load_env(&[
            (
                "SLIPWAY_GOOGLE_SERVICE_ACCOUNT",
                key_json("http://evil.example/token"),
            ),
            admin,
        ])
        .unwrap_err();
        assert!(e.contains("token_uri") && e.contains("https"), "{e}");
    }

    #[test]
    fn push_needs_a_url_and_a_real_channel_token() {
        let base = vec![
            (
                "SLIPWAY_GOOGLE_SERVICE_ACCOUNT",
                key_json(DEFAULT_TOKEN_URL),
            ),
            (
                "SLIPWAY_GOOGLE_ADMIN_EMAIL",
                "admin@example.com".to_string(),
            ),
            ("SLIPWAY_GOOGLE_SYNC_INTERVAL", "90s".to_string()),
        ];
        let with = |extra: &[(&'static str, &str)]| {
            let mut v = base.clone();
            v.extend(extra.iter().map(|(k, x)| (*k, (*x).to_string())));
            load_env(&v)
        };
        let url = (
            "SLIPWAY_GOOGLE_PUSH_URL",
            "https://slipway.example.com/google/notify",
        );
        let e = with(&[url]).unwrap_err();
        assert!(e.contains("SLIPWAY_GOOGLE_CHANNEL_TOKEN"), "{e}");
        let e = with(&[url, ("SLIPWAY_GOOGLE_CHANNEL_TOKEN", "short")]).unwrap_err();
        assert!(e.contains("16"), "{e}");
        let e = with(&[("SLIPWAY_GOOGLE_CHANNEL_TOKEN", "0123456789abcdef-token")]).unwrap_err();
        assert!(e.contains("SLIPWAY_GOOGLE_PUSH_URL"), "{e}");
        let e = with(&[
            (
                "SLIPWAY_GOOGLE_PUSH_URL",
                "http://slipway.example.com/google/notify",
            ),
            ("SLIPWAY_GOOGLE_CHANNEL_TOKEN", "0123456789abcdef-token"),
        ])
        .unwrap_err();
        assert!(e.contains("https"), "{e}");
        let c = with(&[
            url,
            ("SLIPWAY_GOOGLE_CHANNEL_TOKEN", "0123456789abcdef-token"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.sync_interval, Duration::from_secs(90));
        let push = c.push.unwrap();
        assert_eq!(push.url, url.1);
        assert!(!format!("{push:?}").contains("0123456789abcdef"));
        let e = with(&[("SLIPWAY_GOOGLE_SYNC_INTERVAL", "0s")]).unwrap_err();
        assert!(e.contains("at least 1s"), "{e}");
    }
}
