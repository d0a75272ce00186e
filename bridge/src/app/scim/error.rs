//! SCIM errors (RFC 7644 §3.12): every failure is one of these, answered as
//! `{"schemas":[…Error],"status":"400","scimType":"invalidFilter","detail":"…"}` with
//! `application/scim+json`. Details are sentences written here for the provider's admin; a
//! library's own message (redb, serde) is logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::identity::DirectoryError;

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The media type of every SCIM body.
pub const SCIM_JSON: &str = "application/scim+json";

/// One SCIM failure, with the detail the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScimError {
    #[error("{0}")]
    InvalidFilter(String),
    #[error("{0}")]
    InvalidSyntax(String),
    #[error("{0}")]
    InvalidPath(String),
    #[error("{0}")]
    NoTarget(String),
    #[error("{0}")]
    InvalidValue(String),
    #[error("{0}")]
    Mutability(String),
    #[error("{0}")]
    Uniqueness(String),
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the resource changed since the version in If-Match")]
    PreconditionFailed,
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0} is not supported on this endpoint")]
    MethodNotAllowed(String),
    /// The store failed; what failed is logged.
    #[error("the directory could not be read or written; try again")]
    Internal,
}

impl ScimError {
    pub fn status(&self) -> StatusCode {
        match self {
            ScimError::InvalidFilter(_)
            | ScimError::InvalidSyntax(_)
            | ScimError::InvalidPath(_)
            | ScimError::NoTarget(_)
            | ScimError::InvalidValue(_)
            | ScimError::Mutability(_)
            | ScimError::TooMany(_) => StatusCode::BAD_REQUEST,
            ScimError::Uniqueness(_) => StatusCode::CONFLICT,
            ScimError::NotFound(_) => StatusCode::NOT_FOUND,
            ScimError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ScimError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ScimError::Unauthorized => StatusCode::UNAUTHORIZED,
            ScimError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ScimError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// RFC 7644 Table 9's `scimType`, for the 400s and 409s that have one.
    pub fn scim_type(&self) -> Option<&'static str> {
        Some(match self {
            ScimError::InvalidFilter(_) => "invalidFilter",
            ScimError::InvalidSyntax(_) => "invalidSyntax",
            ScimError::InvalidPath(_) => "invalidPath",
            ScimError::NoTarget(_) => "noTarget",
            ScimError::InvalidValue(_) => "invalidValue",
            ScimError::Mutability(_) => "mutability",
            ScimError::Uniqueness(_) => "uniqueness",
            ScimError::TooMany(_) => "tooMany",
            _ => return None,
        })
    }

    /// A store failure: conflicts become `uniqueness`, anything else is logged and hidden.
    pub fn from_store(e: DirectoryError) -> ScimError {
        match e {
            DirectoryError::Taken { attribute } => {
                ScimError::Uniqueness(format!("another resource already has this {attribute}"))
            }
            DirectoryError::Missing => ScimError::NotFound("the resource does not exist".into()),
            DirectoryError::Stale => ScimError::PreconditionFailed,
            DirectoryError::Store(cause) => {
                tracing::error!(error = %cause, "SCIM: the directory store failed");
                ScimError::Internal
            }
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": status.as_u16().to_string(),
            "detail": self.to_string(),
        });
        if let Some(t) = self.scim_type() {
            body["scimType"] = json!(t);
        }
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON))],
            body.to_string(),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"slipway-scim\""),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_their_status_and_scim_type() {
        let resp = ScimError::Uniqueness("taken".into()).into_response();
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], SCIM_JSON);
        let resp = ScimError::Unauthorized.into_response();
        assert!(
            resp.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(ScimError::Unauthorized.scim_type(), None);
        let hidden = ScimError::from_store(DirectoryError::Store("redb: disk on fire".into()));
        assert_eq!(hidden, ScimError::Internal);
        assert!(!hidden.to_string().contains("redb"));
    }
}
