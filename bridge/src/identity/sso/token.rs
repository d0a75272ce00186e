//! The ID token: its types (the core ones, with every extra claim kept so the group claim's
//! name can be configured) and its verification, which `openidconnect` does: the signature
//! against the provider's JWKS with an asymmetric algorithm only, `iss`, `aud` (no other
//! audience trusted), `exp` and `iat` within a small clock skew, and the `nonce` of this login.

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, ClientId, EmptyExtraTokenFields, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdTokenFields, IdTokenVerifier, IssuerUrl, Nonce,
    StandardErrorResponse, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How far the provider's clock may be from ours.
pub const SKEW_SECS: i64 = 60;
/// The oldest `iat` accepted: the token is asked for seconds after it is issued.
pub const MAX_TOKEN_AGE_SECS: i64 = 5 * 60;
/// At most this many groups, each at most [`MAX_GROUP_LEN`] bytes, are taken from a claim.
pub const MAX_GROUPS: usize = 256;
pub const MAX_GROUP_LEN: usize = 256;

/// The signature algorithms accepted: asymmetric only. An HMAC (`HS256`…) token would be
/// signed with the client secret, which a public client doesn't have and a confidential one
/// shouldn't have to trust; `none` is never accepted.
const ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Every claim beyond the standard ones, by name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Extra {
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl AdditionalClaims for Extra {}

pub type IdToken = openidconnect::IdToken<
    Extra,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

pub type IdTokenClaims = openidconnect::IdTokenClaims<Extra, CoreGenderClaim>;

pub type TokenResponse = StandardTokenResponse<
    IdTokenFields<
        Extra,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

/// The client as discovery builds it: authorization endpoint set, token and user-info
/// endpoints as the provider's metadata says.
pub type OidcClient = openidconnect::Client<
    Extra,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What a token must match.
#[derive(Debug)]
pub struct Expect<'a> {
    pub client_id: &'a str,
    pub issuer: &'a IssuerUrl,
    pub jwks: &'a CoreJsonWebKeySet,
    pub nonce: &'a Nonce,
    pub now: DateTime<Utc>,
    pub groups_claim: &'a str,
}

/// What a verified token says about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sub: String,
    /// Only when the token says `email_verified: true`.
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
}

/// Verify `token` for this login, or say why not.
pub fn verify(token: &IdToken, e: &Expect<'_>) -> Result<Verified, ClaimsVerificationError> {
    let now = e.now;
    let verifier: IdTokenVerifier<'_, CoreJsonWebKey> = IdTokenVerifier::new_public_client(
        ClientId::new(e.client_id.to_string()),
        e.issuer.clone(),
        e.jwks.clone(),
    )
    .set_allowed_algs(ALGS)
    .set_time_fn(move || now - chrono::Duration::seconds(SKEW_SECS))
    .set_issue_time_verifier_fn(move |iat| {
        let age = (now - iat).num_seconds();
        if age < -SKEW_SECS {
            Err(format!("issued in the future ({iat})"))
        } else if age > MAX_TOKEN_AGE_SECS + SKEW_SECS {
            Err(format!("issued too long ago ({iat})"))
        } else {
            Ok(())
        }
    });
    let claims = token.claims(&verifier, e.nonce)?;
    Ok(Verified {
        sub: claims.subject().as_str().to_string(),
        email: verified_email(claims),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string()),
        groups: groups(&claims.additional_claims().rest, e.groups_claim),
    })
}

fn verified_email(claims: &IdTokenClaims) -> Option<String> {
    if claims.email_verified() != Some(true) {
        return None;
    }
    claims
        .email()
        .map(|e| e.as_str().trim().to_string())
        .filter(|e| e.contains('@'))
}

/// The group claim's names: an array of strings or one string. Anything else is no groups.
pub fn groups(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    let values: Vec<&str> = match claims.get(name) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for g in values.into_iter().map(str::trim) {
        if !g.is_empty() && g.len() <= MAX_GROUP_LEN && !out.iter().any(|o| o == g) {
            out.push(g.to_string());
        }
        if out.len() == MAX_GROUPS {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests;
