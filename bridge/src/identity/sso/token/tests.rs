//! ID-token verification against a key made here: what verifies, and each forgery that must
//! not (another key, an HMAC under the client secret, no signature, the wrong audience,
//! issuer or nonce, an expired or future token).

use std::str::FromStr;

use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use openidconnect::core::{CoreEdDsaPrivateSigningKey, CoreHmacKey};
use openidconnect::{
    Audience, EndUserEmail, JsonWebKeyId, PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use serde_json::json;

use super::*;

const ISSUER: &str = "https://idp.example.com";
const CLIENT: &str = "slipway";

fn key(seed: u8) -> CoreEdDsaPrivateSigningKey {
    let pem = ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    CoreEdDsaPrivateSigningKey::from_ed25519_pem(&pem, Some(JsonWebKeyId::new(format!("k{seed}"))))
        .unwrap()
}

fn jwks(k: &CoreEdDsaPrivateSigningKey) -> CoreJsonWebKeySet {
    CoreJsonWebKeySet::new(vec![k.as_verification_key()])
}

/// Claims as the provider would issue them now, for `aud`, with `nonce`.
fn claims(aud: &str, nonce: &str, iat: DateTime<Utc>) -> IdTokenClaims {
    let mut extra = Extra::default();
    extra
        .rest
        .insert("groups".into(), json!(["engineering", "operators", 7, ""]));
    openidconnect::IdTokenClaims::new(
        IssuerUrl::new(ISSUER.into()).unwrap(),
        vec![Audience::new(aud.into())],
        iat + chrono::Duration::minutes(5),
        iat,
        StandardClaims::new(SubjectIdentifier::new("00u-dana".into()))
            .set_email(Some(EndUserEmail::new("dana@example.com".into())))
            .set_email_verified(Some(true)),
        extra,
    )
    .set_nonce(Some(Nonce::new(nonce.into())))
}

fn signed(
    c: IdTokenClaims,
    k: &impl PrivateSigningKey<VerificationKey = CoreJsonWebKey>,
    alg: CoreJwsSigningAlgorithm,
) -> IdToken {
    IdToken::new(c, k, alg, None, None).unwrap()
}

fn check(token: &IdToken, provider: &CoreJsonWebKeySet, nonce: &str) -> Result<Verified, String> {
    let issuer = IssuerUrl::new(ISSUER.into()).unwrap();
    verify(
        token,
        &Expect {
            client_id: CLIENT,
            issuer: &issuer,
            jwks: provider,
            nonce: &Nonce::new(nonce.into()),
            now: Utc::now(),
            groups_claim: "groups",
        },
    )
    .map_err(|e| e.to_string())
}

#[test]
fn a_token_signed_by_the_providers_key_verifies_with_its_groups_and_verified_email() {
    let k = key(1);
    let t = signed(
        claims(CLIENT, "n-1", Utc::now()),
        &k,
        CoreJwsSigningAlgorithm::EdDsa,
    );
    let v = check(&t, &jwks(&k), "n-1").unwrap();
    assert_eq!(v.sub, "00u-dana");
    assert_eq!(v.email.as_deref(), Some("dana@example.com"));
    assert_eq!(v.groups, ["engineering", "operators"]);
    // The same token, read back from its compact form as the token endpoint sends it.
    let parsed = IdToken::from_str(&t.to_string()).unwrap();
    assert_eq!(check(&parsed, &jwks(&k), "n-1").unwrap(), v);
}

#[test]
fn an_unverified_email_is_not_kept() {
    let k = key(1);
    let c = claims(CLIENT, "n", Utc::now());
    let c = c.set_email_verified(None);
    let t = signed(c, &k, CoreJwsSigningAlgorithm::EdDsa);
    assert_eq!(check(&t, &jwks(&k), "n").unwrap().email, None);
}

#[test]
fn a_forged_token_signed_by_another_key_is_refused() {
    let (provider, forger) = (key(1), key(2));
    let t = signed(
        claims(CLIENT, "n", Utc::now()),
        &forger,
        CoreJwsSigningAlgorithm::EdDsa,
    );
    assert!(check(&t, &jwks(&provider), "n").is_err());
    // Even with the provider's key id on it.
    let forger = CoreEdDsaPrivateSigningKey::from_ed25519_pem(
        &ed25519_dalek::SigningKey::from_bytes(&[2; 32])
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap(),
        Some(JsonWebKeyId::new("k1".into())),
    )
    .unwrap();
    let t = signed(
        claims(CLIENT, "n", Utc::now()),
        &forger,
        CoreJwsSigningAlgorithm::EdDsa,
    );
    let e = check(&t, &jwks(&provider), "n").unwrap_err();
    assert!(e.contains("ignature"), "{e}");
}

#[test]
fn an_hmac_token_under_the_client_secret_and_an_unsigned_token_are_refused() {
    let hmac = CoreHmacKey::new(b"the-client-secret-the-client-secret".to_vec());
    let t = signed(
        claims(CLIENT, "n", Utc::now()),
        &hmac,
        CoreJwsSigningAlgorithm::HmacSha256,
    );
    let mut keys = jwks(&key(1)).keys().clone();
    keys.push(hmac.as_verification_key());
    assert!(check(&t, &CoreJsonWebKeySet::new(keys), "n").is_err());
    // `alg: none`: the signed token's claims under a header that claims no signature.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signed_text = signed(
        claims(CLIENT, "n", Utc::now()),
        &key(1),
        CoreJwsSigningAlgorithm::EdDsa,
    )
    .to_string();
    let payload = signed_text.split('.').nth(1).unwrap();
    let none = format!("{}.{payload}.", b64.encode(br#"{"alg":"none"}"#));
    if let Ok(t) = IdToken::from_str(&none) {
        assert!(check(&t, &jwks(&key(1)), "n").is_err());
    }
}

#[test]
fn the_wrong_audience_nonce_issuer_or_time_is_refused() {
    let k = key(1);
    let provider = jwks(&k);
    let eddsa = || CoreJwsSigningAlgorithm::EdDsa;
    let other_app = signed(claims("another-app", "n", Utc::now()), &k, eddsa());
    assert!(
        check(&other_app, &provider, "n")
            .unwrap_err()
            .contains("udience")
    );
    let t = signed(claims(CLIENT, "n-other-login", Utc::now()), &k, eddsa());
    assert!(check(&t, &provider, "n").unwrap_err().contains("once"));
    let c = claims(CLIENT, "n", Utc::now())
        .set_issuer(IssuerUrl::new("https://evil.example".into()).unwrap());
    assert!(check(&signed(c, &k, eddsa()), &provider, "n").is_err());
    let old = Utc::now() - chrono::Duration::hours(1);
    assert!(
        check(
            &signed(claims(CLIENT, "n", old), &k, eddsa()),
            &provider,
            "n"
        )
        .is_err()
    );
    let future = Utc::now() + chrono::Duration::minutes(10);
    assert!(
        check(
            &signed(claims(CLIENT, "n", future), &k, eddsa()),
            &provider,
            "n"
        )
        .is_err()
    );
    // Within the skew is fine.
    let skewed = Utc::now() + chrono::Duration::seconds(SKEW_SECS / 2);
    assert!(
        check(
            &signed(claims(CLIENT, "n", skewed), &k, eddsa()),
            &provider,
            "n"
        )
        .is_ok()
    );
}

#[test]
fn group_claims_are_strings_deduplicated_and_capped() {
    let m = |v: Value| {
        let mut m = Map::new();
        m.insert("g".into(), v);
        m
    };
    assert_eq!(groups(&m(json!("sre")), "g"), ["sre"]);
    assert_eq!(
        groups(&m(json!(["a", "a", " b ", null, {"x": 1}])), "g"),
        ["a", "b"]
    );
    assert!(groups(&m(json!({"a": true})), "g").is_empty());
    assert!(groups(&m(json!(["a"])), "other").is_empty());
    let many: Vec<String> = (0..1000).map(|i| format!("g{i}")).collect();
    assert_eq!(groups(&m(json!(many)), "g").len(), MAX_GROUPS);
    assert!(groups(&m(json!(["x".repeat(MAX_GROUP_LEN + 1)])), "g").is_empty());
}
