//! Security Token Service (`sts.v1` discovery document, `sts.token`): `POST /sts/v1/token`
//! exchanges an OIDC token (a GitHub Actions job's) for a federated access token, the way
//! Workload Identity Federation does.
//!
//! The body is JSON in the document's camelCase (`GoogleIdentityStsV1ExchangeTokenRequest`) or
//! a form in RFC 8693's snake_case (what google-auth, so gcloud, sends). The subject token must
//! be an RS256 JWT from the provider's issuer, signed by a key of the JWKS the provider was given
//! (as a provider with an uploaded JWKS is), unexpired, with an `aud` the provider allows (by
//! default `https://iam.googleapis.com/<provider name>`, which google-github-actions requests),
//! and it must pass the provider's attribute condition. Refusals are RFC 8693 bodies
//! (`{"error", "error_description"}`, 400) with Google's wording. The federated token acts as
//! `principal://iam.googleapis.com/<pool>/subject/<sub>` and carries every string claim as an
//! attribute, so `principalSet://…/attribute.repository/<owner>/<repo>` members match it.

use std::collections::BTreeMap;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::auth::{issue, now, ok};
use super::state::{Shared, Token, lock};
use crate::google::oauth::{OAuthError, decode_part, invalid_grant, oauth_error, split_jwt};

pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const SUBJECT_TYPES: [&str; 2] = [
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
];
/// Clock skew tolerated on `iat` and `nbf`.
const SKEW_SECS: i64 = 300;

/// A workload identity pool provider for an OIDC issuer, as `gcloud iam
/// workload-identity-pools providers create-oidc` makes one.
#[derive(Debug, Clone)]
pub struct WifProvider {
    pub project_number: u64,
    pub pool: String,
    pub provider: String,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The issuer's keys (`{"keys": [...]}`), as `--jwk-json-path` uploads them.
    pub jwks: Value,
    /// `--allowed-audiences`; empty: `https://iam.googleapis.com/<provider name>`.
    pub allowed_audiences: Vec<String>,
    /// `--attribute-condition`: `&&`-joined terms `assertion.<claim> == 'v'`, `!= 'v'` or
    /// `.startsWith('v')` (also on `attribute.<name>` and `google.subject`); empty: none.
    pub attribute_condition: String,
}

impl WifProvider {
    /// A provider for GitHub Actions' issuer ([`crate::actions::ISSUER`]) with `jwks` (the
    /// [`crate::actions::ActionsOidcEmulator::jwks`] of the job's token service).
    pub fn github(project_number: u64, pool: &str, provider: &str, jwks: Value) -> WifProvider {
        WifProvider {
            project_number,
            pool: pool.to_string(),
            provider: provider.to_string(),
            issuer: crate::actions::ISSUER.to_string(),
            jwks,
            allowed_audiences: Vec::new(),
            attribute_condition: String::new(),
        }
    }

    /// With this attribute condition.
    #[must_use]
    pub fn with_condition(mut self, condition: &str) -> WifProvider {
        self.attribute_condition = condition.to_string();
        self
    }

    /// With these allowed audiences instead of the default one.
    #[must_use]
    pub fn with_audiences(mut self, audiences: &[&str]) -> WifProvider {
        self.allowed_audiences = audiences.iter().map(|a| (*a).to_string()).collect();
        self
    }

    /// `projects/N/locations/global/workloadIdentityPools/P`.
    pub fn pool_name(&self) -> String {
        format!(
            "projects/{}/locations/global/workloadIdentityPools/{}",
            self.project_number, self.pool
        )
    }

    /// `projects/N/locations/global/workloadIdentityPools/P/providers/V`.
    pub fn name(&self) -> String {
        format!("{}/providers/{}", self.pool_name(), self.provider)
    }

    /// The STS `audience` (and a credential file's): `//iam.googleapis.com/<name>`.
    pub fn audience(&self) -> String {
        format!("//iam.googleapis.com/{}", self.name())
    }

    /// The `aud` a GitHub job requests its token with: `https://iam.googleapis.com/<name>`.
    pub fn token_audience(&self) -> String {
        format!("https://iam.googleapis.com/{}", self.name())
    }

    /// The IAM member for every identity of the pool whose `attribute` is `value`.
    pub fn principal_set(&self, attribute: &str, value: &str) -> String {
        format!(
            "principalSet://iam.googleapis.com/{}/attribute.{attribute}/{value}",
            self.pool_name()
        )
    }

    /// The IAM member (and a federated token's principal) for one `sub`.
    pub fn principal(&self, subject: &str) -> String {
        format!(
            "principal://iam.googleapis.com/{}/subject/{subject}",
            self.pool_name()
        )
    }
}

/// One term of an attribute condition.
#[derive(Debug, Clone)]
enum Term {
    Equals { path: String, value: String },
    NotEquals { path: String, value: String },
    StartsWith { path: String, prefix: String },
}

/// A registered provider with its condition parsed.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    pub config: WifProvider,
    condition: Vec<Term>,
}

fn quoted(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))?;
    Some(inner.to_string())
}

fn parse_term(term: &str) -> Option<Term> {
    let term = term.trim();
    if let Some((path, rest)) = term.split_once(".startsWith(") {
        let prefix = quoted(rest.trim().strip_suffix(')')?)?;
        return Some(Term::StartsWith {
            path: path.trim().to_string(),
            prefix,
        });
    }
    if let Some((path, value)) = term.split_once("!=") {
        return Some(Term::NotEquals {
            path: path.trim().to_string(),
            value: quoted(value)?,
        });
    }
    let (path, value) = term.split_once("==")?;
    Some(Term::Equals {
        path: path.trim().to_string(),
        value: quoted(value)?,
    })
}

impl Provider {
    /// Parses the provider's condition; the error names the term it can't read.
    pub(crate) fn new(config: WifProvider) -> Result<Provider, String> {
        let text = config.attribute_condition.trim();
        let condition = if text.is_empty() {
            Vec::new()
        } else {
            text.split("&&")
                .map(|t| parse_term(t).ok_or_else(|| format!("unsupported condition term `{t}`")))
                .collect::<Result<_, _>>()?
        };
        Ok(Provider { config, condition })
    }

    fn allows(&self, claims: &Value, attributes: &BTreeMap<String, String>) -> bool {
        let lookup = |path: &str| -> Option<String> {
            if let Some(claim) = path.strip_prefix("assertion.") {
                return claims.get(claim).and_then(claim_text);
            }
            if path == "google.subject" {
                return claims.get("sub").and_then(claim_text);
            }
            path.strip_prefix("attribute.")
                .and_then(|a| attributes.get(a).cloned())
        };
        self.condition.iter().all(|term| match term {
            Term::Equals { path, value } => lookup(path).is_some_and(|v| v == *value),
            Term::NotEquals { path, value } => lookup(path).is_some_and(|v| v != *value),
            Term::StartsWith { path, prefix } => {
                lookup(path).is_some_and(|v| v.starts_with(prefix.as_str()))
            }
        })
    }

    fn audience_allowed(&self, aud: &str) -> bool {
        if self.config.allowed_audiences.is_empty() {
            return aud == self.config.token_audience() || aud == self.config.audience();
        }
        self.config.allowed_audiences.iter().any(|a| a == aud)
    }
}

fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The exchange request, from either body form.
struct Exchange {
    grant_type: String,
    audience: String,
    scope: String,
    requested_token_type: String,
    subject_token: String,
    subject_token_type: String,
}

fn parse_exchange(headers: &HeaderMap, body: &[u8]) -> Option<Exchange> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let fields: BTreeMap<String, String> = if is_json {
        let v: BTreeMap<String, Value> = serde_json::from_slice(body).ok()?;
        v.into_iter()
            .filter_map(|(k, v)| Some((snake(&k), v.as_str()?.to_string())))
            .collect()
    } else {
        serde_urlencoded::from_bytes(body).ok()?
    };
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    Some(Exchange {
        grant_type: get("grant_type"),
        audience: get("audience"),
        scope: get("scope"),
        requested_token_type: get("requested_token_type"),
        subject_token: get("subject_token"),
        subject_token_type: get("subject_token_type"),
    })
}

/// `subjectTokenType` → `subject_token_type`.
fn snake(camel: &str) -> String {
    camel.chars().fold(String::new(), |mut s, c| {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
        s
    })
}

fn invalid_request(description: &str) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// The request's own fields, before any token is looked at.
fn check_request(x: &Exchange) -> Result<(), OAuthError> {
    if x.grant_type != TOKEN_EXCHANGE {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("The grant type [{}] is not supported.", x.grant_type),
        ));
    }
    if x.requested_token_type != ACCESS_TOKEN_TYPE {
        return Err(invalid_request(
            "The requested token type must be urn:ietf:params:oauth:token-type:access_token.",
        ));
    }
    if !SUBJECT_TYPES.contains(&x.subject_token_type.as_str()) {
        return Err(invalid_request(
            "The subject token type must be urn:ietf:params:oauth:token-type:jwt or \
             urn:ietf:params:oauth:token-type:id_token for an OIDC provider.",
        ));
    }
    if x.subject_token.is_empty() {
        return Err(invalid_request("The subject token is missing."));
    }
    Ok(())
}

/// Whether one JWK (RSA) verifies `sig` over `input`.
fn jwk_verifies(jwk: &Value, input: &[u8], sig: &[u8]) -> bool {
    let part = |k: &str| jwk.get(k).and_then(Value::as_str).and_then(decode_part);
    let (Some(n), Some(e)) = (part("n"), part("e")) else {
        return false;
    };
    if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
        return false;
    }
    RsaPublicKeyComponents { n, e }
        .verify(&RSA_PKCS1_2048_8192_SHA256, input, sig)
        .is_ok()
}

/// The subject token verified against the provider: signature (by `kid`, or any key without
/// one), issuer, time and audience. Returns its claims.
fn verify_subject(p: &Provider, jwt: &str, now: i64) -> Result<Value, OAuthError> {
    let Some((head, claims, input, sig)) = split_jwt(jwt) else {
        return Err(invalid_grant("Unable to parse the ID Token."));
    };
    if head.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(invalid_grant("The ID Token must be signed with RS256."));
    }
    let kid = head.get("kid").and_then(Value::as_str);
    let keys = p.config.jwks.get("keys").and_then(Value::as_array);
    let signed = keys.is_some_and(|keys| {
        keys.iter()
            .filter(|k| kid.is_none() || k.get("kid").and_then(Value::as_str) == kid)
            .any(|k| jwk_verifies(k, input.as_bytes(), &sig))
    });
    if !signed {
        return Err(invalid_grant("Invalid ID Token signature."));
    }
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss != p.config.issuer {
        return Err(invalid_grant(format!(
            "The issuer in ID Token [{iss}] does not match the expected ones: [{}].",
            p.config.issuer
        )));
    }
    let time = |k: &str| claims.get(k).and_then(Value::as_i64);
    let timely = matches!(time("exp"), Some(exp) if exp > now)
        && time("iat").is_none_or(|iat| iat <= now + SKEW_SECS)
        && time("nbf").is_none_or(|nbf| nbf <= now + SKEW_SECS);
    if !timely {
        return Err(invalid_grant(
            "The ID Token has expired or is not yet valid.",
        ));
    }
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !auds.iter().any(|a| p.audience_allowed(a)) {
        return Err(invalid_grant(format!(
            "The audience in ID Token [{}] does not match the expected audience.",
            auds.join(", ")
        )));
    }
    Ok(claims)
}

/// `POST /sts/v1/token`.
pub(crate) async fn token(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(x) = parse_exchange(&headers, &body) else {
        return invalid_request("The request body could not be parsed.").into_response();
    };
    if let Err(e) = check_request(&x) {
        return e.into_response();
    }
    let mut st = lock(&state);
    let provider = st
        .providers
        .iter()
        .find(|p| p.config.audience() == x.audience)
        .cloned();
    let Some(provider) = provider else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid. This might \
             either be because the pool or provider is disabled or deleted or because it doesn't \
             exist.",
        )
        .into_response();
    };
    let claims = match verify_subject(&provider, &x.subject_token, now()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let attributes: BTreeMap<String, String> = claims
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), claim_text(v)?)))
        .collect();
    if !provider.allows(&claims, &attributes) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "The given credential is rejected by the attribute condition.",
        )
        .into_response();
    }
    let subject = attributes.get("sub").cloned().unwrap_or_default();
    let federated = Token {
        principal: provider.config.principal(&subject),
        pool: Some(provider.config.pool_name()),
        attributes,
        scopes: x.scope.split_whitespace().map(str::to_string).collect(),
        expires: 0,
    };
    let ttl = st.token_ttl;
    let (access, _) = issue(&mut st, federated, ttl);
    ok(&json!({
        "access_token": access,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": ttl,
    }))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn key() -> (RsaKeyPair, Value) {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public = key.public_key();
        let jwks = json!({"keys": [{
            "kty": "RSA", "kid": "k1",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }]});
        (key, jwks)
    }

    fn sign(key: &RsaKeyPair, kid: &str, claims: &Value) -> String {
        let head = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": kid}).to_string());
        let input = format!("{head}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut sig = vec![0u8; key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn claims(p: &WifProvider, now: i64) -> Value {
        json!({
            "iss": crate::actions::ISSUER, "sub": "repo:acme/gitops:ref:refs/heads/main",
            "aud": p.token_audience(), "repository": "acme/gitops", "ref": "refs/heads/main",
            "job_workflow_ref": "acme/runner/.github/workflows/run.yml@refs/heads/main",
            "iat": now, "exp": now + 300,
        })
    }

    #[test]
    fn the_subject_token_is_checked_for_key_issuer_time_and_audience() {
        let (k, jwks) = key();
        let p = Provider::new(WifProvider::github(1, "pool", "gh", jwks)).unwrap();
        let now = 1_800_000_000;
        let good = claims(&p.config, now);
        assert!(verify_subject(&p, &sign(&k, "k1", &good), now).is_ok());
        let refused = |c: &Value, kid: &str| {
            verify_subject(&p, &sign(&k, kid, c), now)
                .unwrap_err()
                .description
        };
        assert_eq!(
            refused(&good, "k2"),
            "Invalid ID Token signature.",
            "an unknown kid"
        );
        let (other, _) = key();
        let foreign = verify_subject(&p, &sign(&other, "k1", &good), now).unwrap_err();
        assert_eq!(foreign.description, "Invalid ID Token signature.");
        let mut c = good.clone();
        c["exp"] = json!(now - 1);
        assert!(refused(&c, "k1").contains("expired"));
        let mut c = good.clone();
        c["nbf"] = json!(now + 3600);
        assert!(refused(&c, "k1").contains("not yet valid"));
        let mut c = good.clone();
        c["iss"] = json!("https://accounts.example.com");
        assert!(refused(&c, "k1").contains("does not match the expected ones"));
        let mut c = good.clone();
        c["aud"] = json!(["https://elsewhere", p.config.audience()]);
        assert!(
            verify_subject(&p, &sign(&k, "k1", &c), now).is_ok(),
            "one allowed aud of several"
        );
        c["aud"] = json!("https://elsewhere");
        assert!(refused(&c, "k1").contains("expected audience"));
    }

    #[test]
    fn conditions_compare_claims_attributes_and_prefixes() {
        let base = WifProvider::github(1, "pool", "gh", json!({"keys": []}));
        let c = claims(&base, 0);
        let attrs: BTreeMap<String, String> =
            [("repository".to_string(), "acme/gitops".to_string())].into();
        let allows = |cond: &str| {
            Provider::new(base.clone().with_condition(cond))
                .unwrap()
                .allows(&c, &attrs)
        };
        assert!(allows(""));
        assert!(allows(
            "assertion.repository == 'acme/gitops' && assertion.ref == \"refs/heads/main\""
        ));
        assert!(!allows(
            "assertion.repository == 'acme/gitops' && assertion.ref == 'refs/heads/dev'"
        ));
        assert!(allows("attribute.repository != 'evil/fork'"));
        assert!(allows(
            "assertion.job_workflow_ref.startsWith('acme/runner/')"
        ));
        assert!(allows(
            "google.subject == 'repo:acme/gitops:ref:refs/heads/main'"
        ));
        assert!(
            !allows("assertion.environment == 'prod'"),
            "a missing claim fails"
        );
        assert!(Provider::new(base.with_condition("assertion.repository in ['a']")).is_err());
    }
}
