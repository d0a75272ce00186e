//! Why a Google sync (or a push channel's registration) failed. Every variant leaves the
//! directory as the last good sync wrote it. No variant carries a token, key or assertion:
//! Google's refusal text is kept, and bodies never are.

use crate::identity::DirectoryError;

#[derive(Debug, thiserror::Error)]
pub enum GoogleError {
    /// The token endpoint refused the service account's assertion.
    #[error(
        "Google refused the service account's token request ({status} {error}: {description}); \
         check the key, and the client id's domain-wide delegation scopes in the Admin console"
    )]
    TokenRefused {
        status: u16,
        error: String,
        description: String,
    },
    /// The key couldn't sign (it parsed at startup, so this is rare).
    #[error("signing the service account's assertion: {0}")]
    Signing(String),
    /// The Directory API answered with an error.
    #[error("Google's Directory API answered {status} to {what}: {message}")]
    Api {
        status: u16,
        what: &'static str,
        message: String,
    },
    #[error("could not reach Google ({what}): {detail}")]
    Unreachable { what: &'static str, detail: String },
    /// An answer that isn't what the API documents.
    #[error("Google's answer to {what} does not parse: {detail}")]
    Malformed { what: &'static str, detail: String },
    /// A listing with no users at all: the admin Slipway acts as is a user, so this is never a
    /// real directory, and applying it would remove everyone.
    #[error("Google listed no users at all, not even the admin Slipway acts as")]
    EmptyDirectory,
    #[error("the directory store failed: {0}")]
    Store(#[from] DirectoryError),
}

impl GoogleError {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            GoogleError::TokenRefused { .. } | GoogleError::Signing(_) => "token",
            GoogleError::Api { .. } => "api",
            GoogleError::Unreachable { .. } => "unreachable",
            GoogleError::Malformed { .. } => "malformed",
            GoogleError::EmptyDirectory => "empty",
            GoogleError::Store(_) => "store",
        }
    }
}
