//! `audit.loki`: where the Loki sink pushes the audit records (see
//! `slipway_infra::sinks::loki`), the tenant, and how it signs in.

use serde::Deserialize;
use slipway_infra::sinks::loki::{LokiAuth, LokiSettings};

use super::{Env, SecretSource, check_url, de_secret};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLoki {
    url: String,
    tenant: Option<String>,
    user: Option<String>,
    #[serde(default, deserialize_with = "de_secret")]
    password: Option<SecretSource>,
    #[serde(default, deserialize_with = "de_secret")]
    token: Option<SecretSource>,
}

/// Validates the section: an https URL (http on loopback), and at most one way to sign in.
pub(super) fn load(
    f: FileLoki,
    env: Env<'_>,
    timeout: std::time::Duration,
) -> Result<LokiSettings, String> {
    check_url(&f.url, "audit.loki.url")?;
    if f.url.contains("/loki/api/") {
        return Err(format!(
            "audit.loki.url is the base URL of Loki, without /loki/api/v1/push: {}",
            f.url
        ));
    }
    let auth = sign_in(
        "audit.loki",
        f.user,
        f.password.as_ref(),
        f.token.as_ref(),
        env,
    )?;
    let tenant = f.tenant.map(|t| t.trim().to_string());
    if tenant.as_deref().is_some_and(str::is_empty) {
        return Err("audit.loki.tenant is empty: give the X-Scope-OrgID, or remove it".into());
    }
    Ok(LokiSettings {
        url: f.url.trim_end_matches('/').to_string(),
        tenant,
        auth,
        timeout,
    })
}

/// `user` + `password` (basic auth), or `token` (bearer), or none of them; anything else is a
/// mistake `section` names.
pub(super) fn sign_in(
    section: &str,
    user: Option<String>,
    password: Option<&SecretSource>,
    token: Option<&SecretSource>,
    env: Env<'_>,
) -> Result<Option<LokiAuth>, String> {
    let load = |s: Option<&SecretSource>, what: &str| {
        s.map(|s| s.load(&format!("{section}.{what}"), env))
            .transpose()
    };
    let (password, token) = (load(password, "password")?, load(token, "token")?);
    match (user, password, token) {
        (None, None, None) => Ok(None),
        (Some(user), Some(password), None) if !password.is_empty() => Ok(Some(LokiAuth::Basic {
            user,
            token: password.credential(),
        })),
        (None, None, Some(token)) if !token.is_empty() => Ok(Some(LokiAuth::Bearer {
            token: token.credential(),
        })),
        _ => Err(format!(
            "{section}: sign in with `user` and `password` (basic auth) or with `token` (a bearer \
             token), not both, and not one half of a pair"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<LokiSettings, String> {
        let f: FileLoki = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        load(f, &|_| None, std::time::Duration::from_secs(1))
    }

    #[test]
    fn loki_settings_and_mistakes() {
        let s = parse("url: https://logs.example/\ntenant: ops\nuser: \"1234\"\npassword: glc\n")
            .unwrap();
        assert_eq!(s.url, "https://logs.example");
        assert_eq!(s.tenant.as_deref(), Some("ops"));
        assert!(matches!(s.auth, Some(LokiAuth::Basic { .. })));
        assert!(!format!("{s:?}").contains("glc"));
        let s = parse("url: http://127.0.0.1:3100\ntoken: t\n").unwrap();
        assert!(matches!(s.auth, Some(LokiAuth::Bearer { .. })));
        assert!(
            parse("url: http://127.0.0.1:3100\n")
                .unwrap()
                .auth
                .is_none()
        );
        let err = |yaml: &str| parse(yaml).unwrap_err();
        assert!(err("url: http://logs.example\n").contains("https"));
        assert!(err("url: https://l.example/loki/api/v1/push\n").contains("base URL"));
        assert!(err("url: https://l.example\nuser: u\n").contains("not one half"));
        assert!(
            err("url: https://l.example\nuser: u\npassword: p\ntoken: t\n").contains("not both")
        );
        assert!(err("url: https://l.example\ntenant: \" \"\n").contains("X-Scope-OrgID"));
        assert!(err("url: https://l.example\nlabels: {}\n").contains("labels"));
    }
}
