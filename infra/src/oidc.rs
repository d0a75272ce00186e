//! The GitHub Actions OIDC token: a job with `permissions: id-token: write` gets
//! `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`; `GET <url>&audience=<aud>`
//! with `Authorization: bearer <request token>` answers `{"value": "<JWT>"}`, a token signed by
//! `https://token.actions.githubusercontent.com` that says which repository, ref and workflow the
//! job runs for. AWS STS checks its signature and the trust policy's conditions; here the claims
//! are only decoded (not verified) to record and pre-check them.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use hyper::Method;
use serde::Deserialize;

use crate::sinks::http::Http;

/// The audience AWS STS expects (`token.actions.githubusercontent.com:aud` in trust policies).
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";
/// The issuer of Actions OIDC tokens.
pub const ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OidcError(String);

/// The claims Slipway looks at (others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub iss: String,
    /// `repo:O/R:ref:refs/heads/B` (or `repo:O@ORGID/R@REPOID:…` for newer repositories).
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub aud: Audience,
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub repository_id: Option<String>,
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub job_workflow_ref: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub runner_environment: Option<String>,
    #[serde(default)]
    pub exp: Option<i64>,
}

/// `aud` is a string or a list of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Audience::None => false,
            Audience::One(a) => a == aud,
            Audience::Many(v) => v.iter().any(|a| a == aud),
        }
    }
}

impl Claims {
    /// The branch the `sub` claim names (`…:ref:refs/heads/<branch>`, possibly followed by more
    /// `:key:value` pairs when the repository customizes its subject), if it names one. Branch
    /// names can't contain `:`.
    pub fn branch(&self) -> Option<&str> {
        self.sub
            .split_once(":ref:refs/heads/")
            .and_then(|(_, b)| b.split(':').next())
            .filter(|b| !b.is_empty())
    }
}

/// A signed ID token. Debug never shows the token itself.
#[derive(Clone)]
pub struct IdToken {
    jwt: String,
    pub claims: Claims,
}

impl fmt::Debug for IdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdToken")
            .field("claims", &self.claims)
            .field("jwt", &"***")
            .finish()
    }
}

impl IdToken {
    /// Wrap a JWT, decoding (not verifying) its claims.
    pub fn parse(jwt: &str) -> Result<IdToken, OidcError> {
        let claims = decode_claims(jwt)?;
        Ok(IdToken {
            jwt: jwt.to_string(),
            claims,
        })
    }

    /// The JWT, for `AssumeRoleWithWebIdentity`.
    pub fn expose(&self) -> &str {
        &self.jwt
    }
}

/// Decode a JWT's payload without checking its signature.
pub fn decode_claims(jwt: &str) -> Result<Claims, OidcError> {
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError(
            "the OIDC token is not a JWT (expected three dot-separated parts)".into(),
        ));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| OidcError("the OIDC token's payload is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| OidcError(format!("the OIDC token's claims are not JSON: {e}")))
}

/// The token service's answer.
#[derive(Deserialize)]
struct Answer {
    value: String,
}

/// Percent-encode a query value (RFC 3986 unreserved characters pass).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Only https, or http on loopback (emulators and tests).
fn check_url(url: &str) -> Result<(), OidcError> {
    if crate::https_or_loopback(url) {
        Ok(())
    } else {
        Err(OidcError(format!(
            "ACTIONS_ID_TOKEN_REQUEST_URL must be https (or http on loopback), got `{}`",
            url.split('?').next().unwrap_or_default()
        )))
    }
}

/// Ask the Actions token service for an ID token for `audience`.
pub async fn request_token(
    request_url: &str,
    request_token: &str,
    audience: &str,
    timeout: Duration,
) -> Result<IdToken, OidcError> {
    check_url(request_url)?;
    let sep = if request_url.contains('?') { '&' } else { '?' };
    let url = format!("{request_url}{sep}audience={}", encode(audience));
    let http = Http::new(timeout).map_err(OidcError)?;
    let bearer = format!("bearer {request_token}");
    let resp = http
        .send(
            Method::GET,
            &url,
            &[("authorization", &bearer), ("accept", "application/json")],
            None,
        )
        .await
        .map_err(|e| OidcError(format!("requesting the Actions OIDC token: {e}")))?;
    if resp.status != 200 {
        let hint = if resp.status == 401 || resp.status == 403 {
            " (does the workflow grant `permissions: id-token: write`?)"
        } else {
            ""
        };
        return Err(OidcError(format!(
            "the Actions OIDC token service answered HTTP {}{hint}: {}",
            resp.status,
            resp.text()
        )));
    }
    let answer: Answer = serde_json::from_slice(&resp.body).map_err(|e| {
        OidcError(format!(
            "the Actions OIDC token service's answer has no `value`: {e}"
        ))
    })?;
    let token = IdToken::parse(&answer.value)?;
    if !token.claims.aud.contains(audience) {
        return Err(OidcError(format!(
            "the OIDC token is for audience {:?}, not `{audience}`",
            token.claims.aud
        )));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &serde_json::Value) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"RS256"}"#),
            b64(claims.to_string().as_bytes()),
            b64(b"sig")
        )
    }

    #[test]
    fn claims_decode_and_name_the_branch() {
        let t = IdToken::parse(&jwt(&serde_json::json!({
            "iss": ACTIONS_ISSUER, "sub": "repo:acme/gitops:ref:refs/heads/main", "aud": "sts.amazonaws.com",
            "job_workflow_ref": "acme/gitops/.github/workflows/slipway-runner.yml@refs/heads/main"
        })))
        .unwrap();
        assert_eq!(t.claims.branch(), Some("main"));
        assert!(t.claims.aud.contains(STS_AUDIENCE));
        assert!(!format!("{t:?}").contains("eyJ"));
        let many = decode_claims(&jwt(
            &serde_json::json!({"sub": "repo:a/b:pull_request", "aud": ["x", "y"]}),
        ))
        .unwrap();
        assert!(many.aud.contains("y"));
        assert_eq!(many.branch(), None);
        let custom = decode_claims(&jwt(&serde_json::json!({"sub": "repo:a/b:ref:refs/heads/main:job_workflow_ref:a/b/.github/workflows/x.yml@refs/heads/main"}))).unwrap();
        assert_eq!(custom.branch(), Some("main"));
        assert!(decode_claims("nope").is_err());
        assert!(decode_claims("a.!!!.c").is_err());
    }

    #[test]
    fn urls_and_encoding() {
        assert!(
            check_url("https://pipelines.actions.githubusercontent.com/x?api-version=2.0").is_ok()
        );
        assert!(check_url("http://127.0.0.1:8080/token").is_ok());
        assert!(check_url("http://example.com/token").is_err());
        assert_eq!(encode("sts.amazonaws.com"), "sts.amazonaws.com");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
