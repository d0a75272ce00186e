//! `sso:` and `public_url:`: `/slipway link sso`, an OIDC login at the organisation's identity
//! provider. SSO is on when an issuer and a client id are set; then the bridge's public URL is
//! required too, since the provider sends the browser back to `<public_url>/sso/callback`.

use std::time::Duration;

use serde::Deserialize;

use super::{Env, Secret, SecretSource, check_url, de_secret, duration, secret};

/// The claim that carries group names, unless configured.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
/// How long the groups of an SSO login count without a directory, unless configured.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSso {
    issuer: Option<String>,
    client_id: Option<String>,
    #[serde(default, deserialize_with = "de_secret")]
    client_secret: Option<SecretSource>,
    groups_claim: Option<String>,
    max_age: Option<String>,
}

/// The OIDC client the bridge is at the identity provider.
#[derive(Debug, Clone)]
pub struct SsoConfig {
    /// The issuer URL exactly as the provider's ID tokens carry it in `iss` (discovery is at
    /// `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    /// Empty for a public client (PKCE only).
    pub client_secret: Secret,
    /// `<public_url>/sso/callback`, registered at the provider.
    pub redirect_url: String,
    /// `<public_url>/sso/start`: where the link in Slack points.
    pub start_url: String,
    /// The ID-token claim with the person's group names.
    pub groups_claim: String,
    /// Without a directory, how long a login's groups count before the person must sign in
    /// again.
    pub max_age: Duration,
}

const SET_BOTH: &str = "SSO linking needs both SLIPWAY_SSO_ISSUER (`sso.issuer`) and \
                        SLIPWAY_SSO_CLIENT_ID (`sso.client_id`); set both, or neither to turn it off";

/// `None` when no issuer and no client id are set. Half a configuration is an error that says
/// what is missing.
pub(super) fn load(
    file: &FileSso,
    public_url: Option<&str>,
    env: Env<'_>,
) -> Result<Option<SsoConfig>, String> {
    let issuer = env("SLIPWAY_SSO_ISSUER")
        .or(file.issuer.clone())
        .filter(|s| !s.trim().is_empty());
    let client_id = env("SLIPWAY_SSO_CLIENT_ID")
        .or(file.client_id.clone())
        .filter(|s| !s.trim().is_empty());
    let (issuer, client_id) = match (issuer, client_id) {
        (None, None) => return Ok(None),
        (Some(i), Some(c)) => (i.trim().to_string(), c.trim().to_string()),
        _ => return Err(SET_BOTH.into()),
    };
    check_url(&issuer, "the SSO issuer (SLIPWAY_SSO_ISSUER)")?;
    let Some(public_url) = public_url else {
        return Err(
            "SSO linking needs the bridge's public URL, where the identity provider \
                    sends people back (`<url>/sso/callback`): set SLIPWAY_PUBLIC_URL or \
                    `public_url`"
                .into(),
        );
    };
    let groups_claim = env("SLIPWAY_SSO_GROUPS_CLAIM")
        .or(file.groups_claim.clone())
        .map_or_else(
            || DEFAULT_GROUPS_CLAIM.to_string(),
            |c| c.trim().to_string(),
        );
    if groups_claim.is_empty() {
        return Err(
            "SLIPWAY_SSO_GROUPS_CLAIM (`sso.groups_claim`) is empty: name the ID-token \
                    claim with group names (default `groups`)"
                .into(),
        );
    }
    Ok(Some(SsoConfig {
        issuer,
        client_id,
        client_secret: secret(
            env,
            "SLIPWAY_SSO_CLIENT_SECRET",
            file.client_secret.as_ref(),
            "sso.client_secret",
        )?,
        redirect_url: format!("{public_url}/sso/callback"),
        start_url: format!("{public_url}/sso/start"),
        groups_claim,
        max_age: duration(
            "SLIPWAY_SSO_MAX_AGE / sso.max_age",
            env("SLIPWAY_SSO_MAX_AGE")
                .or(file.max_age.clone())
                .as_deref(),
            DEFAULT_MAX_AGE,
        )?
        .max(Duration::from_secs(60)),
    }))
}

/// `SLIPWAY_PUBLIC_URL` / `public_url`: the bridge's base URL as browsers reach it, without a
/// trailing slash; https, or http on loopback.
pub(super) fn public_url(file: Option<String>, env: Env<'_>) -> Result<Option<String>, String> {
    let Some(url) = env("SLIPWAY_PUBLIC_URL")
        .or(file)
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
    else {
        return Ok(None);
    };
    check_url(&url, "the public URL (SLIPWAY_PUBLIC_URL)")?;
    if url.contains(['?', '#']) {
        return Err(format!(
            "the public URL (SLIPWAY_PUBLIC_URL) is a base URL without a query or fragment: {url}"
        ));
    }
    Ok(Some(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        }
    }

    fn load_env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> Result<Option<SsoConfig>, String> {
        let env = env_of(pairs);
        let public = public_url(None, &env)?;
        load(&FileSso::default(), public.as_deref(), &env)
    }

    #[test]
    fn off_unless_issuer_and_client_id_are_both_set() {
        assert!(load_env(&[]).unwrap().is_none());
        let e = load_env(&[("SLIPWAY_SSO_ISSUER", "https://idp.example.com")]).unwrap_err();
        assert!(e.contains("SLIPWAY_SSO_CLIENT_ID"), "{e}");
        let e = load_env(&[
            ("SLIPWAY_SSO_ISSUER", "https://idp.example.com"),
            ("SLIPWAY_SSO_CLIENT_ID", "slipway"),
        ])
        .unwrap_err();
        assert!(e.contains("SLIPWAY_PUBLIC_URL"), "{e}");
    }

    #[test]
    fn a_full_configuration_derives_the_callback_and_keeps_the_secret_hidden() {
        let c = load_env(&[
            (
                "SLIPWAY_SSO_ISSUER",
                "https://idp.example.com/oauth2/default",
            ),
            ("SLIPWAY_SSO_CLIENT_ID", "slipway"),
            ("SLIPWAY_SSO_CLIENT_SECRET", "very-secret-client-secret"),
            ("SLIPWAY_PUBLIC_URL", "https://slipway.example.com/"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.redirect_url, "https://slipway.example.com/sso/callback");
        assert_eq!(c.start_url, "https://slipway.example.com/sso/start");
        assert_eq!(c.groups_claim, "groups");
        assert_eq!(c.max_age, DEFAULT_MAX_AGE);
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let e = load_env(&[
            ("SLIPWAY_SSO_ISSUER", "http://idp.example.com"),
            ("SLIPWAY_SSO_CLIENT_ID", "slipway"),
            ("SLIPWAY_PUBLIC_URL", "https://slipway.example.com"),
        ])
        .unwrap_err();
        assert!(e.contains("SLIPWAY_SSO_ISSUER"), "{e}");
        let e = load_env(&[("SLIPWAY_PUBLIC_URL", "http://slipway.example.com")]).unwrap_err();
        assert!(e.contains("SLIPWAY_PUBLIC_URL"), "{e}");
        assert!(
            load_env(&[
                ("SLIPWAY_SSO_ISSUER", "http://127.0.0.1:9400"),
                ("SLIPWAY_SSO_CLIENT_ID", "slipway"),
                ("SLIPWAY_PUBLIC_URL", "http://127.0.0.1:3000"),
                ("SLIPWAY_SSO_GROUPS_CLAIM", "roles"),
            ])
            .unwrap()
            .is_some_and(|c| c.groups_claim == "roles")
        );
    }
}
