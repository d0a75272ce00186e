//! GitHub App and token authentication: RS256 JWT verification (aws-lc-rs), installation tokens,
//! and `Authorization` header parsing for REST (`token`/`Bearer`) and git (HTTP Basic).

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use serde_json::Value;

use super::state::{Identity, State, Token, random_bytes};

/// Installation tokens live one hour, as on GitHub.
pub(crate) const TOKEN_TTL_SECS: i64 = 3600;

/// The DER of a PEM block's body.
fn pem_der(pem: &str) -> Option<(String, Vec<u8>)> {
    let label = pem
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN "))?
        .trim_end_matches('-')
        .to_string();
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    Some((label, STANDARD.decode(body).ok()?))
}

/// The PKCS#1 DER public key of an RSA private key PEM (PKCS#1 or PKCS#8).
pub(crate) fn public_key_of(private_key_pem: &str) -> Result<Vec<u8>, String> {
    let (label, der) = pem_der(private_key_pem).ok_or("not a PEM private key")?;
    let pair = match label.as_str() {
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        other => return Err(format!("unsupported PEM block {other:?}")),
    }
    .map_err(|e| format!("not an RSA private key: {e}"))?;
    Ok(pair.public_key().as_ref().to_vec())
}

/// A fresh 2048-bit RSA private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), for
/// registering an App with [`super::GitHubEmulator::add_app`] and signing its JWTs.
pub fn generate_app_key_pem() -> Result<String, String> {
    let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|e| format!("RSA key generation: {e}"))?;
    let der = pair.as_der().map_err(|e| format!("PKCS#8 encoding: {e}"))?;
    let b64 = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// Why a JWT was refused (GitHub answers 401 with this message).
fn jwt_error(msg: &str) -> String {
    msg.to_string()
}

/// Verifies an App JWT: RS256 by a registered app's key, `iss` = the app id (string or number),
/// `exp` no more than 10 minutes after `iat`, not expired, `iat` not in the future (60 s skew).
pub(crate) fn verify_jwt(state: &State, jwt: &str) -> Result<u64, String> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(jwt_error("A JSON web token could not be decoded"));
    };
    let decode = |p: &str| -> Result<Vec<u8>, String> {
        URL_SAFE_NO_PAD
            .decode(p.trim_end_matches('='))
            .map_err(|_| jwt_error("A JSON web token could not be decoded"))
    };
    let header: Value = serde_json::from_slice(&decode(h)?)
        .map_err(|_| jwt_error("A JSON web token could not be decoded"))?;
    let claims: Value = serde_json::from_slice(&decode(c)?)
        .map_err(|_| jwt_error("A JSON web token could not be decoded"))?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(jwt_error(
            "'Authorization' header is using an unsupported JWT algorithm",
        ));
    }
    let iss = match claims.get("iss") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| jwt_error("'Issuer' claim ('iss') must be an Integer"))?;
    let app = state
        .apps
        .get(&iss)
        .ok_or_else(|| jwt_error("Integration not found"))?;
    let signature = decode(s)?;
    let message = format!("{h}.{c}");
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &app.public_key)
        .verify(message.as_bytes(), &signature)
        .map_err(|_| jwt_error("A JSON web token could not be decoded"))?;
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return Err(jwt_error("Missing 'issued at' or 'expiration time' claim"));
    };
    let now = Utc::now().timestamp();
    if exp - iat > 600 {
        return Err(jwt_error(
            "'Expiration time' claim ('exp') is too far in the future",
        ));
    }
    if exp <= now {
        return Err(jwt_error(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        ));
    }
    if iat > now + 60 {
        return Err(jwt_error(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        ));
    }
    Ok(iss)
}

/// A new installation token (`ghs_…`), valid one hour.
pub(crate) fn issue_installation_token(
    state: &mut State,
    app_id: u64,
    installation_id: u64,
    only: Option<Vec<String>>,
) -> (String, chrono::DateTime<Utc>) {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let token: String = std::iter::once("ghs_".to_string())
        .chain(
            random_bytes::<36>()
                .iter()
                .map(|b| (ALPHABET[usize::from(*b) % ALPHABET.len()] as char).to_string()),
        )
        .collect();
    let expires_at = Utc::now() + Duration::seconds(TOKEN_TTL_SECS);
    state.tokens.insert(
        token.clone(),
        Token {
            identity: Identity::Installation {
                app_id,
                installation_id,
                only,
            },
            expires_at: Some(expires_at),
        },
    );
    (token, expires_at)
}

/// What an `Authorization` header carried.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Credential {
    None,
    /// `token X` / `Bearer X` (a JWT if it has three dot-separated parts).
    Token(String),
    /// HTTP Basic: the password (the username is ignored, as GitHub does for tokens).
    Basic(String),
    Malformed,
}

pub(crate) fn parse_authorization(value: Option<&str>) -> Credential {
    let Some(v) = value else {
        return Credential::None;
    };
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "token" | "bearer" if !rest.is_empty() => Credential::Token(rest.to_string()),
        "basic" => STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(_, p)| p.to_string()))
            .map_or(Credential::Malformed, Credential::Basic),
        _ => Credential::Malformed,
    }
}

fn is_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

/// The identity behind a credential: `Ok(None)` when there is none, `Err(message)` for a bad one.
pub(crate) fn identify(state: &State, credential: &Credential) -> Result<Option<Identity>, String> {
    let token = match credential {
        Credential::None => return Ok(None),
        Credential::Malformed => return Err("Bad credentials".to_string()),
        Credential::Token(t) | Credential::Basic(t) => t,
    };
    if is_jwt(token) {
        return verify_jwt(state, token).map(|app| Some(Identity::App(app)));
    }
    match state.tokens.get(token) {
        Some(t) if t.expires_at.is_none_or(|e| e > Utc::now()) => Ok(Some(t.identity.clone())),
        _ => Err("Bad credentials".to_string()),
    }
}
