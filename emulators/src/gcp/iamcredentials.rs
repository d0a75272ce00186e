//! IAM Service Account Credentials (`iamcredentials.v1` discovery document,
//! `iamcredentials.projects.serviceAccounts.generateAccessToken`):
//! `POST /iamcredentials/v1/projects/-/serviceAccounts/<email>:generateAccessToken`.
//!
//! The caller's bearer token must belong to a principal granted
//! `roles/iam.serviceAccountTokenCreator` or `roles/iam.workloadIdentityUser` (both hold
//! `iam.serviceAccounts.getAccessToken`) on the service account, or on its project. The body is
//! a `GenerateAccessTokenRequest`: `scope` (required), `lifetime` (`"<seconds>s"`, default and
//! at most 3600 s), `delegates` (not supported). The answer is `{accessToken, expireTime}`,
//! a token acting as `serviceAccount:<email>` that expires when it says. The caller's token
//! needs the `cloud-platform` or `iam` scope (google-auth asks STS for the latter).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};

use super::auth::{
    CLOUD_PLATFORM, Reply, authenticate_for, bad_request, denied, granted, issue, not_found, ok,
    principal_token,
};
use super::state::{Shared, State as Gcp, lock};
use crate::google::oauth::ApiError;

const TOKEN_ROLES: [&str; 2] = [
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.workloadIdentityUser",
];
/// The longest lifetime without the org policy that extends it to 12 hours.
const MAX_LIFETIME_SECS: i64 = 3600;
const PERMISSION: &str = "iam.serviceAccounts.getAccessToken";
/// The scope google-auth gives the token it impersonates with.
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";

/// `"3600s"` (fractions allowed, as protobuf's Duration JSON) → whole seconds.
fn parse_lifetime(text: &str) -> Option<i64> {
    let secs: f64 = text.strip_suffix('s')?.parse().ok()?;
    // The check keeps the cast in range; fractions round up, as a deadline should.
    #[allow(clippy::cast_possible_truncation)]
    (secs.is_finite() && secs > 0.0 && secs < 1e9).then(|| secs.ceil() as i64)
}

/// The request's `scope` and lifetime in seconds.
fn parse_request(body: &[u8]) -> Result<(Vec<String>, i64), ApiError> {
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|_| bad_request("Invalid JSON payload received."))?
    };
    let scopes: Vec<String> = req
        .get("scope")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if scopes.is_empty() {
        return Err(bad_request("Scope required."));
    }
    if req
        .get("delegates")
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty())
    {
        return Err(bad_request(
            "Delegation chains are not supported by this emulator.",
        ));
    }
    let lifetime = match req.get("lifetime") {
        None | Some(Value::Null) => MAX_LIFETIME_SECS,
        Some(v) => v.as_str().and_then(parse_lifetime).ok_or_else(|| {
            bad_request(
                "Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration).",
            )
        })?,
    };
    if lifetime > MAX_LIFETIME_SECS {
        return Err(bad_request(
            "Lifetime must be between 1 second and 3600 seconds (the maximum without the \
             constraints/iam.allowServiceAccountCredentialLifetimeExtension policy).",
        ));
    }
    Ok((scopes, lifetime))
}

/// Whether the caller may mint tokens for the account `email` names: a token role on the
/// account or on its project. Returns the account's email.
fn may_act_as(st: &Gcp, headers: &HeaderMap, email: &str) -> Result<String, ApiError> {
    let caller = authenticate_for(st, headers, &[CLOUD_PLATFORM, IAM_SCOPE])?;
    let sa = st.account(email).filter(|sa| {
        granted(&sa.bindings, &TOKEN_ROLES, caller)
            || st
                .projects
                .get(&sa.project)
                .is_some_and(|p| granted(&p.bindings, &TOKEN_ROLES, caller))
    });
    sa.map(|sa| sa.email.clone())
        .ok_or_else(|| denied(PERMISSION, &format!("projects/-/serviceAccounts/{email}")))
}

/// `POST …/serviceAccounts/{email}:generateAccessToken`.
pub(crate) async fn generate_access_token(
    State(state): State<Shared>,
    Path((_project, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let email = name
        .strip_suffix(":generateAccessToken")
        .ok_or_else(|| not_found("Method not found."))?;
    let mut st = lock(&state);
    let email = may_act_as(&st, &headers, email)?;
    let (scopes, lifetime) = parse_request(&body)?;
    let principal = format!("serviceAccount:{email}");
    let (access, expires) = issue(&mut st, principal_token(&principal, scopes), lifetime);
    let expire_time = chrono::DateTime::from_timestamp(expires, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .ok_or_else(|| bad_request("The lifetime is out of range."))?;
    Ok(ok(
        &json!({"accessToken": access, "expireTime": expire_time}),
    ))
}
