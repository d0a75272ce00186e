//! Google's OAuth 2.0 token endpoint for service accounts (`POST /token`, grant
//! `urn:ietf:params:oauth:grant-type:jwt-bearer`) and the bearer check every Directory API call
//! makes.
//!
//! The assertion is an RS256 JWT signed with the service account's private key: `iss` the
//! account's email, `aud` Google's token endpoint (`https://oauth2.googleapis.com/token`,
//! whatever URL the assertion is posted to), `scope` space-separated, `iat`/`exp` at most an
//! hour apart and not expired, and with domain-wide delegation `sub` the Workspace user to act
//! as. Refusals carry Google's bodies: `{"error": "invalid_grant", "error_description": …}`
//! (400) and `unauthorized_client` (401) for a scope the admin did not grant the client id.

use std::collections::HashMap;

use aws_lc_rs::signature;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::state::{AccessToken, Account, Shared, State as Google, lock, random_hex};

/// The grant type of a service account's assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `aud` Google accepts: its token endpoint's canonical URL (what `google-auth` and the
/// other client libraries send, wherever they post), and the legacy ones.
pub const AUDIENCES: [&str; 3] = [
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
];
/// Google refuses assertions that live longer than an hour.
const MAX_ASSERTION_SECS: i64 = 3600;
/// Clock skew tolerated on `iat`.
const SKEW_SECS: i64 = 300;

/// A token endpoint refusal: `{"error": …, "error_description": …}` (also STS's, which follows
/// RFC 8693 the same way).
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    pub(crate) description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            json!({"error": self.error, "error_description": self.description}).to_string(),
        )
            .into_response()
    }
}

pub(crate) fn oauth_error(
    status: StatusCode,
    error: &'static str,
    description: impl Into<String>,
) -> OAuthError {
    OAuthError {
        status,
        error,
        description: description.into(),
    }
}

pub(crate) fn invalid_grant(description: impl Into<String>) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// The verified claims of an assertion.
pub(crate) struct Assertion {
    /// The service account's email (`iss`).
    pub email: String,
    pub client_id: String,
    pub subject: Option<String>,
    pub scopes: Vec<String>,
}

pub(crate) fn decode_part(p: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok()
}

/// Header and claims of a compact JWS, and the signing input and signature.
pub(crate) fn split_jwt(jwt: &str) -> Option<(Value, Value, String, Vec<u8>)> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let header: Value = serde_json::from_slice(&decode_part(h)?).ok()?;
    let claims: Value = serde_json::from_slice(&decode_part(c)?).ok()?;
    Some((header, claims, format!("{h}.{c}"), decode_part(s)?))
}

/// A service account's assertion, verified against the key `account` finds for its `iss`.
pub(crate) fn verify_assertion(
    account: impl Fn(&str) -> Option<Account>,
    jwt: &str,
    now: i64,
) -> Result<Assertion, OAuthError> {
    let Some((header, claims, input, sig)) = split_jwt(jwt) else {
        return Err(invalid_grant("Invalid JWT: the assertion does not decode."));
    };
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(invalid_grant("Invalid JWT: only RS256 is accepted."));
    }
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let iss = text("iss").unwrap_or_default();
    let Some(account) = account(&iss) else {
        return Err(invalid_grant("Invalid grant: account not found"));
    };
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &account.public_key)
        .verify(input.as_bytes(), &sig)
        .map_err(|_| invalid_grant("Invalid JWT Signature."))?;
    if let Some(kid) = header.get("kid").and_then(Value::as_str)
        && kid != account.key_id
    {
        return Err(invalid_grant("Invalid JWT Signature."));
    }
    if !text("aud").is_some_and(|a| AUDIENCES.contains(&a.as_str())) {
        return Err(invalid_grant(
            "Invalid JWT: Failed audience check. The expected audience is the token endpoint.",
        ));
    }
    let (iat, exp) = (
        claims.get("iat").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    );
    let timely = matches!((iat, exp), (Some(iat), Some(exp))
        if exp > now && iat <= now + SKEW_SECS && exp > iat && exp - iat <= MAX_ASSERTION_SECS);
    if !timely {
        return Err(invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        ));
    }
    let scopes: Vec<String> = text("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes.is_empty() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ));
    }
    Ok(Assertion {
        email: iss,
        client_id: account.client_id,
        subject: text("sub"),
        scopes,
    })
}

/// Domain-wide delegation: `sub` must be a live user, and every scope granted to the client.
fn check_delegation(st: &Google, a: &Assertion) -> Result<(), OAuthError> {
    let Some(sub) = &a.subject else {
        return Ok(());
    };
    match st.user(sub) {
        Some(u) if !u.suspended && !u.archived => {}
        _ => return Err(invalid_grant("Invalid email or User ID")),
    }
    let granted = st.grants.get(&a.client_id).cloned().unwrap_or_default();
    if a.scopes.iter().all(|s| granted.contains(s)) {
        return Ok(());
    }
    Err(oauth_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized_client",
        "Client is unauthorized to retrieve access tokens using this method, or client not \
         authorized for any of the scopes requested.",
    ))
}

/// The assertion of a token request's form, if it is the JWT bearer grant (the only one
/// served).
pub(crate) fn assertion_of<S: std::hash::BuildHasher>(
    form: &HashMap<String, String, S>,
) -> Result<&str, OAuthError> {
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: only the JWT bearer grant is served here.",
        ));
    }
    form.get("assertion")
        .map(String::as_str)
        .ok_or_else(|| invalid_grant("Invalid JWT: no assertion."))
}

/// `POST /token`.
pub(crate) async fn token(
    State(state): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut st = lock(&state);
    st.requests.push("POST /token".into());
    let jwt = match assertion_of(&form) {
        Ok(jwt) => jwt,
        Err(e) => return e.into_response(),
    };
    let now = chrono::Utc::now().timestamp();
    let assertion = match verify_assertion(|iss| st.accounts.get(iss).cloned(), jwt, now) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = check_delegation(&st, &assertion) {
        return e.into_response();
    }
    let access = format!("ya29.c.{}", random_hex(48));
    let ttl = st.token_ttl;
    st.tokens.insert(
        access.clone(),
        AccessToken {
            scopes: assertion.scopes,
            subject: assertion.subject,
            expires: now + ttl,
        },
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({"access_token": access, "expires_in": ttl, "token_type": "Bearer"}).to_string(),
    )
        .into_response()
}

/// A Google API refusal: `{"error": {code, message, errors: [...], status, details?}}`, the
/// shape both the Directory API and Cloud's APIs answer with (`errors` is the older part that
/// compute and storage clients read, `status` and `details` the newer one).
#[derive(Debug)]
pub(crate) struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Vec<Value>,
}

pub(crate) fn api_error(code: StatusCode, reason: &'static str, message: &str) -> ApiError {
    ApiError {
        code,
        reason,
        message: message.to_string(),
        details: Vec::new(),
    }
}

impl ApiError {
    /// Adds a `google.rpc.ErrorInfo` detail (`reason`, `domain`, `metadata`), as Cloud's APIs
    /// explain a refusal.
    #[must_use]
    pub(crate) fn with_info(mut self, reason: &str, domain: &str, metadata: &Value) -> ApiError {
        self.details.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": domain,
            "metadata": metadata,
        }));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.code.as_u16() {
            400 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            409 => "ALREADY_EXISTS",
            _ => "INTERNAL",
        };
        let mut item = json!({"message": self.message, "domain": "global", "reason": self.reason});
        if self.code == StatusCode::UNAUTHORIZED {
            item["location"] = json!("Authorization");
            item["locationType"] = json!("header");
        }
        let mut body = json!({"error": {"code": self.code.as_u16(), "message": self.message, "errors": [item], "status": status}});
        if !self.details.is_empty() {
            body["error"]["details"] = Value::Array(self.details);
        }
        let mut resp = (
            self.code,
            [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
            body.to_string(),
        )
            .into_response();
        if self.code == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
            );
        }
        resp
    }
}

/// The token of an `Authorization: Bearer …` header, if that is what the request carries.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

/// The bearer token of a Directory API call: present, issued here, unexpired, holding one of
/// `scopes`, and acting for an admin of the customer.
pub(crate) fn authorize(st: &Google, headers: &HeaderMap, scopes: &[&str]) -> Result<(), ApiError> {
    let unauthenticated = || {
        api_error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
        )
    };
    let Some(token) = bearer(headers).and_then(|t| st.tokens.get(t)) else {
        return Err(unauthenticated());
    };
    if token.expires <= chrono::Utc::now().timestamp() {
        return Err(unauthenticated());
    }
    if !token.scopes.iter().any(|s| scopes.contains(&s.as_str())) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        ));
    }
    let admin = token
        .subject
        .as_deref()
        .and_then(|s| st.user(s))
        .is_some_and(|u| u.is_admin && !u.suspended);
    if !admin {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not Authorized to access this resource/api",
        ));
    }
    Ok(())
}
