//! The Actions OIDC token service: a real RS256 JWT with the documented claims, verifiable with
//! the published JWKS, and refused without the job's request token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use slipway_emulators::actions::{ActionsJob, ActionsOidcEmulator, ISSUER};

async fn fetch(url: &str, token: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn part(p: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_verifiable_tokens_with_the_documented_claims() {
    let oidc = ActionsOidcEmulator::start(ActionsJob::push("acme/gitops", "main", "abc123")).await;
    let url = format!("{}&audience=sts.amazonaws.com", oidc.request_url());
    let (status, body) = fetch(&url, Some(&oidc.request_token())).await;
    assert_eq!(status, 200, "{body}");
    let jwt = body["value"].as_str().unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = part(parts[0]);
    let claims = part(parts[1]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "repo:acme/gitops:ref:refs/heads/main");
    assert_eq!(claims["aud"], "sts.amazonaws.com");
    assert_eq!(
        claims["job_workflow_ref"],
        "acme/gitops/.github/workflows/slipway-runner.yml@refs/heads/main"
    );
    for c in ["repository_id", "actor", "runner_environment", "jti"] {
        assert!(claims[c].is_string(), "{c}: {claims}");
    }
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(nbf <= iat && iat < exp);

    // The signature verifies with the published key (and the discovery document names it).
    let (_, config) = fetch(
        &format!(
            "{}/.well-known/openid-configuration",
            oidc.request_url().split("/_apis").next().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(config["issuer"], ISSUER);
    let (_, jwks) = fetch(config["jwks_uri"].as_str().unwrap(), None).await;
    assert_eq!(jwks, oidc.jwks());
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], header["kid"]);
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    let public = RsaPublicKeyComponents { n: &n, e: &e };
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let message = format!("{}.{}", parts[0], parts[1]);
    public
        .verify(&RSA_PKCS1_2048_8192_SHA256, message.as_bytes(), &signature)
        .expect("signature verifies");
    let mut tampered = message.clone().into_bytes();
    tampered[parts[0].len() + 5] ^= 1;
    assert!(
        public
            .verify(&RSA_PKCS1_2048_8192_SHA256, &tampered, &signature)
            .is_err()
    );
    assert_eq!(oidc.issued().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_without_the_request_token_and_defaults_the_audience() {
    let oidc = ActionsOidcEmulator::start(ActionsJob::push("acme/gitops", "main", "abc123")).await;
    assert_eq!(fetch(&oidc.request_url(), None).await.0, 401);
    assert_eq!(fetch(&oidc.request_url(), Some("wrong")).await.0, 401);
    let mut job = ActionsJob::push("acme/gitops", "main", "abc123");
    job.environment = Some("production".into());
    oidc.set_job(job);
    let (status, body) = fetch(&oidc.request_url(), Some(&oidc.request_token())).await;
    assert_eq!(status, 200);
    let claims = part(body["value"].as_str().unwrap().split('.').nth(1).unwrap());
    assert_eq!(claims["aud"], "https://github.com/acme");
    assert_eq!(claims["sub"], "repo:acme/gitops:environment:production");
    assert!(!oidc.issued().is_empty());
}

/// A job defined by a reusable workflow names it in `job_workflow_ref` (the caller stays in
/// `workflow_ref`), and a repository's customized subject lists the claims it includes, in order,
/// as GitHub documents: `repo:O/R:ref:refs/heads/main:job_workflow_ref:…`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusable_workflows_and_customized_subjects() {
    let reusable = "acme/runner-wf/.github/workflows/run.yml@refs/tags/v1";
    let job = ActionsJob::push("acme/gitops", "main", "abc123")
        .calling(reusable)
        .with_subject_claims(&["repo", "context", "job_workflow_ref"]);
    let oidc = ActionsOidcEmulator::start(job).await;
    let (status, body) = fetch(&oidc.request_url(), Some(&oidc.request_token())).await;
    assert_eq!(status, 200);
    let claims = part(body["value"].as_str().unwrap().split('.').nth(1).unwrap());
    assert_eq!(
        claims["sub"],
        format!("repo:acme/gitops:ref:refs/heads/main:job_workflow_ref:{reusable}")
    );
    assert_eq!(claims["job_workflow_ref"], reusable);
    assert_eq!(
        claims["workflow_ref"],
        "acme/gitops/.github/workflows/slipway-runner.yml@refs/heads/main"
    );
}
