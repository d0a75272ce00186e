//! The SCIM 2.0 service provider (RFC 7643/7644) at `/scim/v2`: Okta and Entra ID push users
//! and groups here, into the directory (`identity`).
//!
//! Mounted only when `SLIPWAY_SCIM_TOKEN` (`scim.token`) is set; every route, the discovery
//! endpoints included, first checks `Authorization: Bearer <token>` in constant time and answers
//! 401 with `WWW-Authenticate: Bearer` otherwise, before any body is read. Bodies are capped at
//! [`MAX_SCIM_BODY`]. Every answer is `application/scim+json`, errors included (`error`).
//!
//! - `schema`: the schemas as data, and the discovery documents built from them;
//! - `filter` and `matcher`: filters and PATCH paths, parsed and evaluated;
//! - `normalize`: request bodies → the stored form; `patch`: PATCH in both dialects;
//! - `render`: the stored form → what is served (`meta`, `groups`, `attributes`);
//! - `resources`: the handlers; `record`: a user or group, whichever the endpoint serves.

mod error;
mod filter;
mod matcher;
mod normalize;
mod patch;
mod record;
mod render;
mod resources;
mod schema;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use error::{SCIM_JSON, ScimError};

use super::AppState;
use schema::Kind;

/// The largest SCIM request body: a group of several thousand members fits.
pub const MAX_SCIM_BODY: usize = 1024 * 1024;
/// The most resources one list or search returns (`count` is capped to it).
pub const MAX_RESULTS: usize = 500;

/// The SCIM routes, to nest at `/scim/v2`, when a token and the directory are configured.
pub fn routes(state: &AppState) -> Option<Router<AppState>> {
    if !state.config.scim.enabled() || state.directory.is_none() {
        return None;
    }
    let router = Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(one_schema))
        .route("/.search", post(resources::search_all))
        .route("/{resource}", get(resources::list).post(resources::create))
        .route(
            "/{resource}/{id}",
            get(resources::fetch)
                .put(resources::replace_or_modify)
                .patch(resources::replace_or_modify)
                .delete(resources::delete)
                .post(resources::search_in),
        )
        .fallback(|| async { ScimError::NotFound("no such SCIM endpoint".into()) })
        .method_not_allowed_fallback(|req: Request| async move {
            ScimError::MethodNotAllowed(req.method().to_string())
        })
        .layer(DefaultBodyLimit::max(MAX_SCIM_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), authorize));
    Some(router)
}

/// `Bearer <token>` (any case of `Bearer`), or `None`.
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Constant time whatever the lengths: both sides are hashed first. (Also the Google push
/// channel token's check.)
pub(super) fn token_matches(expected: &str, presented: &str) -> bool {
    let (a, b) = (Sha256::digest(expected), Sha256::digest(presented));
    !expected.is_empty() && bool::from(a.ct_eq(&b))
}

async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    if !presented.is_some_and(|t| token_matches(&state.config.scim.token.expose(), t)) {
        state.metrics.request("scim", "unauthorized");
        return ScimError::Unauthorized.into_response();
    }
    next.run(req).await
}

/// The URL the provider reached `/scim/v2` at, for `meta.location` and `$ref`: the `Host` it
/// sent, `https` unless `X-Forwarded-Proto` says otherwise or the host is loopback.
#[derive(Debug)]
pub struct BaseUrl(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let host = header(header::HOST)
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
            })
            .unwrap_or("localhost");
        let loopback = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .any(|l| host == *l || host.starts_with(&format!("{l}:")));
        let scheme = match header(header::HeaderName::from_static("x-forwarded-proto")) {
            Some("http") => "http",
            Some("https") => "https",
            _ if loopback => "http",
            _ => "https",
        };
        Ok(BaseUrl(format!("{scheme}://{host}/scim/v2")))
    }
}

/// A SCIM JSON answer.
pub fn scim_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, SCIM_JSON)],
        body.to_string(),
    )
        .into_response()
}

async fn service_provider_config(base: BaseUrl) -> Response {
    scim_json(
        StatusCode::OK,
        &schema::service_provider_config(&base.0, MAX_RESULTS, MAX_SCIM_BODY),
    )
}

async fn resource_types(base: BaseUrl) -> Response {
    let all: Vec<Value> = [Kind::User, Kind::Group]
        .into_iter()
        .map(|k| schema::resource_type_json(k, &base.0))
        .collect();
    scim_json(StatusCode::OK, &render::list(all.len(), 1, all))
}

async fn resource_type(base: BaseUrl, Path(id): Path<String>) -> Response {
    match [Kind::User, Kind::Group]
        .into_iter()
        .find(|k| k.name() == id)
    {
        Some(k) => scim_json(StatusCode::OK, &schema::resource_type_json(k, &base.0)),
        None => ScimError::NotFound(format!("no resource type {id}")).into_response(),
    }
}

async fn schemas(base: BaseUrl) -> Response {
    let all: Vec<Value> = schema::ALL
        .iter()
        .map(|s| schema::schema_json(s, &base.0))
        .collect();
    scim_json(StatusCode::OK, &render::list(all.len(), 1, all))
}

async fn one_schema(base: BaseUrl, Path(id): Path<String>) -> Response {
    match schema::ALL.iter().find(|s| s.id.eq_ignore_ascii_case(&id)) {
        Some(s) => scim_json(StatusCode::OK, &schema::schema_json(s, &base.0)),
        None => ScimError::NotFound(format!("no schema {id}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_bearer_token_passes() {
        let token = "0123456789abcdef-scim-token";
        assert_eq!(bearer(&format!("Bearer {token}")), Some(token));
        assert_eq!(bearer(&format!("bearer   {token} ")), Some(token));
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer(&format!("Basic {token}")), None);
        assert!(token_matches(token, token));
        assert!(!token_matches(token, "0123456789abcdef-scim-tokeN"));
        assert!(!token_matches(token, ""));
        assert!(
            !token_matches("", ""),
            "an empty expected token matches nothing"
        );
    }
}
