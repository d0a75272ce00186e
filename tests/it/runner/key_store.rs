//! The runner's `key_store`: keys and revocations published in OpenBao, read per run with the
//! job's own OIDC token through JWT auth (the role bound to this repository).

use super::*;
use slipway_tests::openbao::OpenBao;

/// OpenBao trusting the job's OIDC issuer for role `slipway-runner`, bound to the GitOps repo.
async fn store(fx: &Fx, dir: &Path) -> OpenBao {
    let bao = OpenBao::start(dir).await;
    // `http://127.0.0.1:P/…`: the issuer's JWKS is at the same origin.
    let url = fx.oidc.request_url();
    let origin = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    bao.api("POST", "sys/auth/jwt", serde_json::json!({"type": "jwt"}))
        .await;
    bao.api(
        "POST",
        "auth/jwt/config",
        serde_json::json!({
            "jwks_url": format!("{origin}/.well-known/jwks"),
            "bound_issuer": slipway_emulators::actions::ISSUER,
        }),
    )
    .await;
    bao.api(
        "POST",
        "auth/jwt/role/slipway-runner",
        serde_json::json!({
            "role_type": "jwt",
            "bound_audiences": ["vault"],
            "user_claim": "sub",
            "bound_claims": {"repository": format!("{OWNER}/{REPO}")},
            "token_policies": ["slipway"],
            "token_ttl": "5m",
        }),
    )
    .await;
    bao
}

/// An approved, merged `/kubectl scale` change: its PR number, merge commit and checkout.
async fn merged(fx: &Fx, suffix: &str) -> (ChangeRequest, u64, String, PathBuf) {
    let text = "/kubectl scale deployment/web --replicas=4 -n web";
    let cr = change(fx, suffix, text, Rendered::default());
    let (number, sha) = approved_and_merged(fx, &cr, &cr.to_yaml(), &[]).await;
    let ws = checkout(fx, &sha);
    (cr, number, sha, ws)
}

fn key_store_yaml(bao_url: &str) -> String {
    format!(
        "key_store:\n  address: {bao_url}\n  role: slipway-runner\n  path: secret/data/slipway/runner-keys\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_in_the_key_store_is_refused_though_the_runner_config_trusts_it() {
    let fx = fixture(&[], &[]).await;
    let bao = store(&fx, fx.dir.path()).await;
    let rotated = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[5; 32])
            .verifying_key()
            .as_bytes(),
    );
    bao.put(
        "slipway/runner-keys",
        &[("bridge-2027", rotated.as_str()), ("revoked", "test")],
    )
    .await;
    let (cr, number, sha, ws) = merged(&fx, "ks1").await;
    // The runner's own file still trusts `test`; the store revoked it for every runner.
    let path = config(&fx, &key_store_yaml(&bao.url()));
    let out = run(&fx, &ws, &sha, &path, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    assert_eq!(execution_status(&fx, &sha)["state"], "failure");
    let body = result_comment(&fx, number, &cr.id);
    assert!(body.contains("revoked"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_store_that_cannot_be_read_stops_the_run_before_anything_executes() {
    let fx = fixture(&[], &[]).await;
    let mut bao = store(&fx, fx.dir.path()).await;
    let (_, number, sha, ws) = merged(&fx, "ks2").await;
    let path = config(&fx, &key_store_yaml(&bao.url()));
    // No document at the path: refused, and the run stops.
    let out = run(&fx, &ws, &sha, &path, &[]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        crate::stderr(&out).contains("key_store"),
        "{}",
        crate::stderr(&out)
    );
    // No store at all: the same.
    bao.kill();
    let out = run(&fx, &ws, &sha, &path, &[]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        crate::stderr(&out).contains("key_store"),
        "{}",
        crate::stderr(&out)
    );
    assert!(
        !comments(&fx, number)
            .iter()
            .any(|c| c.contains(":started -->")),
        "nothing started"
    );
}
