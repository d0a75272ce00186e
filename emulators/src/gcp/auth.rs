//! Who is calling, and may they: the bearer check every Cloud API call makes, IAM policy
//! membership (including Workload Identity Federation's `principal://` and `principalSet://`
//! members), the project read check, Google's error bodies, the OAuth token endpoint for
//! service account keys (the JWT bearer grant, verified by [`crate::google::oauth`]), and the
//! recording of every request.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::state::{Bindings, Project, RecordedRequest, Shared, State as Gcp, Token, lock};
use crate::google::oauth::{
    ApiError, api_error, assertion_of, bearer, oauth_error, verify_assertion,
};
use crate::google::state::random_hex;

/// The scope that reaches every Cloud API.
pub(crate) const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The scopes a read accepts (the read-only one only reads, which is all the emulator serves
/// besides token minting).
const READ_SCOPES: [&str; 2] = [
    CLOUD_PLATFORM,
    "https://www.googleapis.com/auth/cloud-platform.read-only",
];
/// Roles that read a whole project.
pub(crate) const READ_ROLES: [&str; 3] = ["roles/viewer", "roles/editor", "roles/owner"];
/// The header gcloud sends its `core/request_reason` property in.
pub(crate) const REQUEST_REASON: &str = "x-goog-request-reason";

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Issues a token for `principal` that lives `lifetime` seconds; the token and its expiry.
pub(crate) fn issue(st: &mut Gcp, mut token: Token, lifetime: i64) -> (String, i64) {
    let access = format!("ya29.c.{}", random_hex(40));
    token.expires = now() + lifetime;
    let expires = token.expires;
    st.tokens.insert(access.clone(), token);
    (access, expires)
}

/// A token for a plain principal (a service account or user), with `scopes`.
pub(crate) fn principal_token(principal: &str, scopes: Vec<String>) -> Token {
    Token {
        principal: principal.to_string(),
        pool: None,
        attributes: BTreeMap::new(),
        scopes,
        expires: 0,
    }
}

/// Whether the IAM member string `member` names the token's principal.
pub(crate) fn is_member(member: &str, token: &Token) -> bool {
    if member == token.principal || member == "allUsers" || member == "allAuthenticatedUsers" {
        return true;
    }
    let (Some(set), Some(pool)) = (
        member.strip_prefix("principalSet://iam.googleapis.com/"),
        &token.pool,
    ) else {
        return false;
    };
    let Some(rest) = set.strip_prefix(pool.as_str()) else {
        return false;
    };
    if rest == "/*" {
        return true;
    }
    rest.strip_prefix("/attribute.")
        .and_then(|r| r.split_once('/'))
        .is_some_and(|(name, value)| token.attributes.get(name).is_some_and(|v| v == value))
}

/// Whether any of `roles` is bound, in `bindings`, to a member naming the token's principal.
pub(crate) fn granted(bindings: &Bindings, roles: &[&str], token: &Token) -> bool {
    roles.iter().any(|role| {
        bindings
            .get(*role)
            .is_some_and(|members| members.iter().any(|m| is_member(m, token)))
    })
}

fn unauthenticated(reason: Option<&str>) -> ApiError {
    let e = api_error(
        StatusCode::UNAUTHORIZED,
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login \
         cookie or other valid authentication credential. See \
         https://developers.google.com/identity/sign-in/web/devconsole-project.",
    );
    match reason {
        Some(r) => e.with_info(r, "googleapis.com", &json!({})),
        None => e,
    }
}

/// `403 PERMISSION_DENIED` for `permission` on `resource`.
pub(crate) fn denied(permission: &str, resource: &str) -> ApiError {
    api_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        &format!(
            "Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
        ),
    )
    .with_info(
        "IAM_PERMISSION_DENIED",
        "iam.googleapis.com",
        &json!({"permission": permission, "resource": resource}),
    )
}

pub(crate) fn not_found(message: &str) -> ApiError {
    api_error(StatusCode::NOT_FOUND, "notFound", message)
}

pub(crate) fn bad_request(message: &str) -> ApiError {
    api_error(StatusCode::BAD_REQUEST, "badRequest", message)
}

/// The caller's token for a read: see [`authenticate_for`].
pub(crate) fn authenticate<'a>(st: &'a Gcp, headers: &HeaderMap) -> Result<&'a Token, ApiError> {
    authenticate_for(st, headers, &READ_SCOPES)
}

/// The caller's token: present, issued here, unexpired, holding one of `scopes`; else `401` (or
/// `403` for a token without the scope), in Google's shape.
pub(crate) fn authenticate_for<'a>(
    st: &'a Gcp,
    headers: &HeaderMap,
    scopes: &[&str],
) -> Result<&'a Token, ApiError> {
    let Some(presented) = bearer(headers) else {
        return Err(unauthenticated(Some("CREDENTIALS_MISSING")));
    };
    let Some(token) = st.tokens.get(presented) else {
        return Err(unauthenticated(None));
    };
    if token.expires <= now() {
        return Err(unauthenticated(Some("ACCESS_TOKEN_EXPIRED")));
    }
    if !token.scopes.iter().any(|s| scopes.contains(&s.as_str())) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        )
        .with_info(
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "googleapis.com",
            &json!({}),
        ));
    }
    Ok(token)
}

/// A read of `project` (id or number): an authenticated caller whom the project's policy grants
/// a read role. An unknown project is refused like a forbidden one, as Google does, so a caller
/// can't probe which projects exist.
pub(crate) fn read_project<'a>(
    st: &'a Gcp,
    headers: &HeaderMap,
    project: &str,
    permission: &str,
) -> Result<&'a Project, ApiError> {
    let token = authenticate(st, headers)?;
    match st.project(project) {
        Some(p) if granted(&p.bindings, &READ_ROLES, token) => Ok(p),
        _ => Err(denied(permission, &format!("projects/{project}"))),
    }
}

/// What an API handler answers: its JSON, or Google's error body.
pub(crate) type Reply = Result<Response, ApiError>;

/// A JSON `200`.
pub(crate) fn ok(body: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /token`: a service account key's JWT bearer grant (no domain-wide delegation: `sub`,
/// if present, must be the account itself). The token acts as `serviceAccount:<email>`.
pub(crate) async fn token(State(state): State<Shared>, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let jwt = match assertion_of(&form) {
        Ok(jwt) => jwt,
        Err(e) => return e.into_response(),
    };
    let mut st = lock(&state);
    let lookup = |iss: &str| st.accounts.get(iss).and_then(|a| a.key.clone());
    let assertion = match verify_assertion(lookup, jwt, now()) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if assertion
        .subject
        .as_ref()
        .is_some_and(|s| *s != assertion.email)
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not \
             authorized for any of the scopes requested.",
        )
        .into_response();
    }
    let principal = format!("serviceAccount:{}", assertion.email);
    let ttl = st.token_ttl;
    let (access, _) = issue(&mut st, principal_token(&principal, assertion.scopes), ttl);
    ok(&json!({"access_token": access, "expires_in": ttl, "token_type": "Bearer"}))
}

/// Records every request (with its principal, if its token is valid, and its status), and gives
/// the router's own refusals (an unknown method, a query that does not parse) Google's shape.
pub(crate) async fn record(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let text = |v: &header::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let mut rec = RecordedRequest {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_string(), ToString::to_string),
        host: headers.get(header::HOST).map(text),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), text(v)))
            .collect(),
        request_reason: headers.get(REQUEST_REASON).map(text),
        principal: None,
        status: 0,
    };
    rec.principal = {
        let st = lock(&state);
        bearer(headers)
            .and_then(|t| st.tokens.get(t))
            .filter(|t| t.expires > now())
            .map(|t| t.principal.clone())
    };
    let resp = google_shaped(next.run(req).await);
    rec.status = resp.status().as_u16();
    lock(&state).requests.push(rec);
    resp
}

/// A refusal that isn't JSON (axum's own 404, 405 or rejection text) as Google's error body.
fn google_shaped(resp: Response) -> Response {
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let reason = match status.as_u16() {
        404 => "notFound",
        405 => "methodNotAllowed",
        _ => "badRequest",
    };
    let message = status.canonical_reason().unwrap_or("Bad Request");
    api_error(status, reason, message).into_response()
}
