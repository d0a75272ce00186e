//! `/slipway link sso`: an OIDC authorization-code login with PKCE at the organisation's identity
//! provider, which ties the Slack user who asked to the ID token's `sub`.
//!
//! 1. The ack ([`Sso::begin`], no I/O) makes a random `state`, a PKCE S256 verifier and a
//!    `nonce`, keeps them bound to the Slack user (in memory, or in the shared Redis written
//!    after the ack: see [`pending`]), and answers with
//!    `<public_url>/sso/start?state=…`, valid once and for ten minutes.
//! 2. `GET /sso/start` ([`Sso::authorize_url`]) reads the provider's discovery document and
//!    sends the browser to its authorization endpoint with the challenge and the nonce.
//! 3. `GET /sso/callback` ([`Sso::finish`]) takes the state out (unknown, expired or used:
//!    refused), exchanges the code with the verifier, and verifies the ID token ([`token`]).
//!
//! The ingress then records the link ([`People::link_sso`](crate::identity::People::link_sso))
//! and audits it. Errors are typed: [`SsoError::public`] is what a browser may read; the cause
//! is only logged, and no token, code, verifier, nonce or secret is in either.

pub mod claims;
mod http;
pub mod logins;
pub mod pending;
pub mod pending_shared;
pub mod person;
pub mod token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClientAuthMethod, CoreErrorResponseType, CoreJsonWebKeySet,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    PkceCodeChallenge, RedirectUrl, RequestTokenError, Scope, StandardErrorResponse,
};

pub use claims::{ClaimStore, MemoryClaims, RedbClaims, SsoClaims};
pub use person::SsoPeople;

use crate::clock::Clock;
use crate::config::{Secret, SsoConfig};
use logins::Logins;
use pending::{Flow, Refusal};
use token::{Expect, OidcClient};

/// How long discovery (metadata and JWKS) is reused before it is read again.
const DISCOVERY_TTL: Duration = Duration::from_secs(5 * 60);
/// Longest `state` and `code` a callback may carry.
const MAX_PARAM: usize = 4096;

/// Why a login didn't complete. `Display` is for the log; [`SsoError::public`] for the browser.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("the callback has no usable state")]
    NoState,
    #[error("unknown or already used state")]
    UnknownState,
    #[error("expired state")]
    Expired,
    #[error("the provider answered with error `{0}`")]
    Denied(String),
    #[error("the callback has no code")]
    NoCode,
    #[error("the shared state (Redis) holding logins in progress can't be reached")]
    Unavailable,
    #[error("discovery at the provider failed: {0}")]
    Discovery(String),
    #[error("the token exchange failed: {0}")]
    Exchange(String),
    #[error("the ID token didn't verify: {0}")]
    Token(String),
}

impl SsoError {
    /// A sentence for the person, with what to do.
    pub fn public(&self) -> String {
        const AGAIN: &str = "Run `/slipway link sso` in Slack again for a new link.";
        match self {
            Self::NoState | Self::UnknownState => {
                format!("This sign-in link is unknown or was already used. {AGAIN}")
            }
            Self::Expired => {
                format!("This sign-in link expired (links work for 10 minutes). {AGAIN}")
            }
            Self::Denied(code) => format!(
                "The identity provider didn't sign you in (`{code}`), so nothing was linked. {AGAIN}"
            ),
            Self::NoCode => format!("The identity provider sent no authorization code. {AGAIN}"),
            Self::Discovery(_) => "Slipway couldn't reach the identity provider just now; try \
                                   again in a minute."
                .into(),
            Self::Unavailable => "Slipway can't reach its shared state just now; try this link \
                                  again in a minute."
                .into(),
            Self::Exchange(_) | Self::Token(_) => format!(
                "The identity provider's answer couldn't be verified, so nothing was linked. {AGAIN}"
            ),
        }
    }

    /// The HTTP status of the page: the provider being down is 502, everything else 400.
    pub fn status(&self) -> u16 {
        match self {
            Self::Discovery(_) => 502,
            Self::Unavailable => 503,
            _ => 400,
        }
    }
}

impl From<Refusal> for SsoError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Unknown => Self::UnknownState,
            Refusal::Expired => Self::Expired,
            Refusal::Unavailable => Self::Unavailable,
        }
    }
}

/// A completed, verified login, for the Slack user who asked. `Debug` hides the response URL.
#[derive(Debug)]
pub struct Login {
    pub slack_user: String,
    pub response_url: Secret,
    pub claims: SsoClaims,
}

/// The provider's query parameters on `/sso/callback`.
#[derive(Debug, Default)]
pub struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

impl Callback {
    /// Tolerant of anything: a parameter that is missing, repeated, empty or too long is absent.
    pub fn parse(query: Option<&str>) -> Callback {
        let pairs: Vec<(String, String)> = query
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let one = |name: &str| {
            let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
            match (values.next(), values.next()) {
                (Some(v), None) if !v.is_empty() && v.len() <= MAX_PARAM => Some(v.clone()),
                _ => None,
            }
        };
        Callback {
            state: one("state"),
            code: one("code"),
            error: one("error"),
        }
    }
}

/// The OAuth error codes a provider may send back (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6);
/// anything else is shown as `error`, since the query is anyone's to write.
fn known_error(code: &str) -> String {
    const KNOWN: [&str; 12] = [
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
        "invalid_request_uri",
    ];
    KNOWN
        .iter()
        .find(|k| **k == code)
        .map_or("error", |k| k)
        .to_string()
}

/// A failed token request, for the log: the provider's error code, our transport error, or
/// where its answer didn't parse, never the answer itself (it may hold tokens).
fn exchange_failure(
    e: &RequestTokenError<http::HttpError, StandardErrorResponse<CoreErrorResponseType>>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => format!("the provider refused: {}", r.error()),
        RequestTokenError::Request(e) => e.to_string(),
        RequestTokenError::Parse(e, _) => format!("an unreadable answer (at `{}`)", e.path()),
        RequestTokenError::Other(s) => s.clone(),
    }
}

/// The discovered provider: the client built from its metadata (endpoints and JWKS).
#[derive(Debug)]
struct Provider {
    client: OidcClient,
    issuer: IssuerUrl,
    jwks: CoreJsonWebKeySet,
}

/// The SSO login service.
#[derive(Debug)]
pub struct Sso {
    cfg: SsoConfig,
    pending: Logins,
    provider: tokio::sync::Mutex<Option<(Instant, Arc<Provider>)>>,
    clock: Arc<dyn Clock>,
}

impl Sso {
    /// With `redis`, logins in progress are shared by the replicas.
    pub fn new(cfg: SsoConfig, clock: Arc<dyn Clock>, redis: Option<crate::shared::Redis>) -> Sso {
        Sso {
            cfg,
            pending: match redis {
                Some(r) => Logins::Shared(pending_shared::SharedLogins::new(r)),
                None => Logins::Local(pending::Local::default()),
            },
            provider: tokio::sync::Mutex::new(None),
            clock,
        }
    }

    pub fn config(&self) -> &SsoConfig {
        &self.cfg
    }

    /// The ack: a one-time login link for `slack_user`. Local only (no I/O).
    pub fn begin(&self, slack_user: &str, response_url: &str) -> String {
        let state = CsrfToken::new_random_len(32);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let now = self.clock.unix();
        let flow = Flow {
            slack_user: slack_user.to_string(),
            response_url: Secret::new(response_url),
            verifier,
            challenge,
            nonce: Nonce::new_random_len(32),
            issued: now,
        };
        self.pending.insert(state.secret(), flow, now);
        format!("{}?state={}", self.cfg.start_url, state.secret())
    }

    /// `GET /sso/start`: the provider's authorization URL for a pending login (left pending).
    pub async fn authorize_url(&self, query: Option<&str>) -> Result<String, SsoError> {
        let state = Callback::parse(query).state.ok_or(SsoError::NoState)?;
        let (challenge, nonce) = self.pending.peek(&state, self.clock.unix()).await?;
        let provider = self.provider().await?;
        let (url, _, _) = provider
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || nonce,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(url.to_string())
    }

    /// `GET /sso/callback`: consume the state, exchange the code, verify the ID token.
    pub async fn finish(&self, query: Option<&str>) -> Result<Login, SsoError> {
        let cb = Callback::parse(query);
        let state = cb.state.ok_or(SsoError::NoState)?;
        let flow = self.pending.take(&state, self.clock.unix()).await?;
        if let Some(code) = cb.error {
            return Err(SsoError::Denied(known_error(&code)));
        }
        let code = cb.code.ok_or(SsoError::NoCode)?;
        let provider = self.provider().await?;
        let response = provider
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| SsoError::Exchange(e.to_string()))?
            .set_pkce_verifier(flow.verifier)
            .request_async(&http::send)
            .await
            .map_err(|e| SsoError::Exchange(exchange_failure(&e)))?;
        let id_token = openidconnect::TokenResponse::id_token(&response)
            .ok_or_else(|| SsoError::Token("the token response has no ID token".into()))?;
        let verified = token::verify(
            id_token,
            &Expect {
                client_id: &self.cfg.client_id,
                issuer: &provider.issuer,
                jwks: &provider.jwks,
                nonce: &flow.nonce,
                now: self.clock.now(),
                groups_claim: &self.cfg.groups_claim,
            },
        )
        .map_err(|e| SsoError::Token(e.to_string()))?;
        Ok(Login {
            slack_user: flow.slack_user,
            response_url: flow.response_url,
            claims: SsoClaims {
                sub: verified.sub,
                email: verified.email,
                name: verified.name,
                groups: verified.groups,
                at: self.clock.unix(),
            },
        })
    }

    /// The provider's client, from a discovery at most [`DISCOVERY_TTL`] old.
    async fn provider(&self) -> Result<Arc<Provider>, SsoError> {
        let mut cached = self.provider.lock().await;
        if let Some((at, p)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(p.clone());
        }
        let p = Arc::new(self.discover().await?);
        *cached = Some((Instant::now(), p.clone()));
        Ok(p)
    }

    async fn discover(&self) -> Result<Provider, SsoError> {
        let fail = |e: String| SsoError::Discovery(e);
        let issuer = IssuerUrl::new(self.cfg.issuer.clone()).map_err(|e| fail(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &http::send)
            .await
            .map_err(|e| fail(slipway_infra::with_causes(&e)))?;
        // Basic auth unless the provider takes the secret only in the body.
        let post_only = metadata
            .token_endpoint_auth_methods_supported()
            .is_some_and(|m| {
                m.contains(&CoreClientAuthMethod::ClientSecretPost)
                    && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
            });
        let secret = Some(self.cfg.client_secret.expose())
            .filter(|s| !s.is_empty())
            .map(|s| ClientSecret::new(s.to_string()));
        let redirect = RedirectUrl::new(self.cfg.redirect_url.clone())
            .map_err(|e| fail(format!("the redirect URL: {e}")))?;
        let jwks = metadata.jwks().clone();
        let client = OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(self.cfg.client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect)
        .set_auth_type(if post_only {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        });
        Ok(Provider {
            client,
            issuer,
            jwks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_parse_whatever_arrives() {
        for q in [
            None,
            Some(""),
            Some("%"),
            Some("state"),
            Some("state=&code="),
            Some("state=a&state=b&code=c"),
            Some("==&&=%zz%00"),
        ] {
            let cb = Callback::parse(q);
            assert!(cb.state.is_none(), "{q:?}");
        }
        let cb = Callback::parse(Some("code=c%2F1&state=s-1&extra=x"));
        assert_eq!(
            (cb.code.as_deref(), cb.state.as_deref()),
            (Some("c/1"), Some("s-1"))
        );
        let long = format!("state={}", "a".repeat(MAX_PARAM + 1));
        assert!(Callback::parse(Some(&long)).state.is_none());
    }

    #[test]
    fn only_known_error_codes_are_echoed() {
        assert_eq!(known_error("access_denied"), "access_denied");
        assert_eq!(known_error("<script>alert(1)</script>"), "error");
    }

    #[test]
    fn public_sentences_carry_no_cause() {
        let e = SsoError::Exchange("invalid_grant: code=abc123 verifier=xyz".into());
        assert!(!e.public().contains("abc123"));
        assert_eq!(e.status(), 400);
        assert_eq!(SsoError::Discovery("x".into()).status(), 502);
    }
}
