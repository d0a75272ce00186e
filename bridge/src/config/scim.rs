//! The `scim:` section: the bearer token the identity provider (Okta, Entra ID) sends to
//! `/scim/v2`. Without one the SCIM routes are not mounted; a token that is set must be a real
//! one, because it is all that stands between the internet and the directory of who may do what.

use serde::Deserialize;

use super::{Env, Secret, SecretSource, de_secret, keys, secret};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileScim {
    /// The provisioning bearer token (`SLIPWAY_SCIM_TOKEN` overrides it).
    #[serde(default, deserialize_with = "de_secret")]
    token: Option<SecretSource>,
}

/// The SCIM service provider's settings.
#[derive(Debug, Clone, Default)]
pub struct ScimConfig {
    /// Empty: `/scim/v2` is not mounted (404).
    pub token: Secret,
}

impl ScimConfig {
    pub fn enabled(&self) -> bool {
        !self.token.is_empty()
    }
}

pub(super) fn load(file: &FileScim, env: Env<'_>) -> Result<ScimConfig, String> {
    let configured = env("SLIPWAY_SCIM_TOKEN").is_some() || file.token.is_some();
    let token = secret(env, "SLIPWAY_SCIM_TOKEN", file.token.as_ref(), "scim.token")?;
    if configured && token.is_empty() {
        return Err(format!(
            "{} is set but empty: set {} to {}, or unset it to turn SCIM off.",
            keys::SCIM_TOKEN.what,
            keys::SCIM_TOKEN.set_with,
            keys::SCIM_TOKEN.how
        ));
    }
    keys::check(&token, &keys::SCIM_TOKEN)?;
    Ok(ScimConfig { token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let pairs = pairs.to_vec();
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn an_empty_or_short_scim_token_is_refused_with_what_to_set() {
        let none = load(&FileScim::default(), &env_of(&[])).unwrap();
        assert!(!none.enabled());
        for bad in ["", "short-token"] {
            let e = load(
                &FileScim::default(),
                &env_of(&[("SLIPWAY_SCIM_TOKEN", bad)]),
            )
            .unwrap_err();
            assert!(
                e.contains("SLIPWAY_SCIM_TOKEN") && e.contains("`scim.token`"),
                "{e}"
            );
            assert!(bad.is_empty() || !e.contains(bad), "never printed: {e}");
        }
        let file = FileScim {
            token: Some(SecretSource::Env {
                env: "SCIM_FROM_VAULT".into(),
            }),
        };
        let ok = load(
            &file,
            &env_of(&[("SCIM_FROM_VAULT", "0123456789abcdef-scim")]),
        )
        .unwrap();
        assert!(ok.enabled());
        assert_eq!(format!("{ok:?}"), "ScimConfig { token: Secret(***) }");
        let over = load(
            &file,
            &env_of(&[
                ("SCIM_FROM_VAULT", "0123456789abcdef-scim"),
                ("SLIPWAY_SCIM_TOKEN", "fedcba9876543210-env"),
            ]),
        )
        .unwrap();
        assert_eq!(&*over.token.expose(), "fedcba9876543210-env");
    }
}
