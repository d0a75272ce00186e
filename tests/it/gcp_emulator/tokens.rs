//! STS, IAM Credentials and the read check over plain HTTP: what each refuses, in Google's
//! shapes, and that tokens expire when they say.

use std::time::Duration;

use serde_json::{Value, json};
use slipway_emulators::actions::{ActionsJob, ActionsOidcEmulator};
use slipway_emulators::gcp::GcpEmulator;

use super::{actions_token, call, call_with, federation, reader};

const CLOUD: &str = "https://www.googleapis.com/auth/cloud-platform";

fn exchange_form(audience: &str, subject: &str) -> (&'static str, String) {
    let form = serde_urlencoded::to_string([
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", audience),
        ("scope", CLOUD),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("subject_token", subject),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
    ])
    .unwrap();
    ("application/x-www-form-urlencoded", form)
}

async fn exchange(gcp: &GcpEmulator, audience: &str, subject: &str) -> (u16, Value) {
    call(
        "POST",
        &gcp.sts_token_url(),
        None,
        Some(exchange_form(audience, subject)),
    )
    .await
}

/// A refusal's HTTP status and Google's `error.status`.
fn google_error(status: u16, v: &Value) -> (u16, &str) {
    (status, v["error"]["status"].as_str().unwrap_or_default())
}

fn refusal(v: &Value) -> (String, String) {
    (
        v["error"].as_str().unwrap_or_default().to_string(),
        v["error_description"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_exchanges_only_tokens_its_provider_accepts() {
    let (gcp, _ex, oidc, provider) = federation().await;
    let good = actions_token(&oidc, &provider.token_audience()).await;
    let (status, v) = exchange(&gcp, &provider.audience(), &good).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(
        v["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(v["expires_in"], 3599);

    let camel = json!({
        "grantType": "urn:ietf:params:oauth:grant-type:token-exchange", "audience": provider.audience(),
        "scope": CLOUD, "requestedTokenType": "urn:ietf:params:oauth:token-type:access_token",
        "subjectToken": good, "subjectTokenType": "urn:ietf:params:oauth:token-type:id_token",
    });
    let (status, v) = call(
        "POST",
        &gcp.sts_token_url(),
        None,
        Some(("application/json", camel.to_string())),
    )
    .await;
    assert_eq!(status, 200, "the discovery document's JSON form: {v}");

    let (status, v) = exchange(
        &gcp,
        &provider.audience().replace("actions", "other"),
        &good,
    )
    .await;
    assert_eq!(
        (status, refusal(&v).0.as_str()),
        (400, "invalid_target"),
        "{v}"
    );

    let wrong_aud = actions_token(&oidc, "https://example.com/not-google").await;
    let (status, v) = exchange(&gcp, &provider.audience(), &wrong_aud).await;
    assert_eq!(status, 400);
    assert!(
        refusal(&v)
            .1
            .contains("does not match the expected audience"),
        "{v}"
    );

    let (head, sig) = good.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{head}.{flipped}{}", &sig[1..]);
    let (_, v) = exchange(&gcp, &provider.audience(), &tampered).await;
    assert_eq!(
        refusal(&v),
        ("invalid_grant".into(), "Invalid ID Token signature.".into())
    );

    let impostor =
        ActionsOidcEmulator::start(ActionsJob::push("acme/gitops", "main", "abc123")).await;
    let foreign = actions_token(&impostor, &provider.token_audience()).await;
    let (_, v) = exchange(&gcp, &provider.audience(), &foreign).await;
    assert_eq!(
        refusal(&v).1,
        "Invalid ID Token signature.",
        "a key outside the provider's JWKS"
    );

    for job in [
        ActionsJob::push("acme/gitops", "feature", "def456"),
        ActionsJob::push("evil/fork", "main", "abc123"),
    ] {
        oidc.set_job(job);
        let other = actions_token(&oidc, &provider.token_audience()).await;
        let (status, v) = exchange(&gcp, &provider.audience(), &other).await;
        assert_eq!(status, 400);
        assert_eq!(
            refusal(&v),
            (
                "unauthorized_client".into(),
                "The given credential is rejected by the attribute condition.".into()
            )
        );
    }

    let (_, v) = call(
        "POST",
        &gcp.sts_token_url(),
        None,
        Some((
            "application/x-www-form-urlencoded",
            "grant_type=password".into(),
        )),
    )
    .await;
    assert_eq!(refusal(&v).0, "unsupported_grant_type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_access_token_needs_the_token_creator_grant_and_honours_the_lifetime() {
    let (gcp, ex, oidc, provider) = federation().await;
    let url = gcp.generate_access_token_url(&ex.reader.client_email);
    let body = |lifetime: &str| {
        Some((
            "application/json",
            json!({"scope": [CLOUD], "lifetime": lifetime}).to_string(),
        ))
    };

    let (status, v) = call("POST", &url, None, body("600s")).await;
    assert_eq!(google_error(status, &v), (401, "UNAUTHENTICATED"), "{v}");
    let (status, v) = call(
        "POST",
        &url,
        Some(&gcp.token_for(&reader(&ex))),
        body("600s"),
    )
    .await;
    assert_eq!(google_error(status, &v), (403, "PERMISSION_DENIED"), "{v}");
    assert_eq!(
        v["error"]["details"][0]["metadata"]["permission"],
        "iam.serviceAccounts.getAccessToken"
    );

    let bridge = gcp.token_for(&format!("serviceAccount:{}", ex.bridge.client_email));
    let (status, v) = call("POST", &url, Some(&bridge), body("7200s")).await;
    assert_eq!(google_error(status, &v), (400, "INVALID_ARGUMENT"), "{v}");
    let (status, _) = call(
        "POST",
        &url,
        Some(&bridge),
        Some(("application/json", "{\"scope\": []}".into())),
    )
    .await;
    assert_eq!(status, 400, "a scope is required");
    let (status, v) = call("POST", &url, Some(&bridge), body("600s")).await;
    assert_eq!(status, 200, "{v}");
    let expires = chrono::DateTime::parse_from_rfc3339(v["expireTime"].as_str().unwrap()).unwrap();
    let left = expires.timestamp() - chrono::Utc::now().timestamp();
    assert!((595..=600).contains(&left), "600s asked, {left}s given");
    let minted = v["accessToken"].as_str().unwrap().to_string();
    let vms = format!(
        "{}/compute/v1/projects/acme-prod/aggregated/instances",
        gcp.base_url()
    );
    assert_eq!(
        call("GET", &vms, Some(&minted), None).await.0,
        200,
        "the reader's token reads"
    );

    let subject = actions_token(&oidc, &provider.token_audience()).await;
    let (_, sts) = exchange(&gcp, &provider.audience(), &subject).await;
    let federated = sts["access_token"].as_str().unwrap();
    assert_eq!(
        call("GET", &vms, Some(federated), None).await.0,
        403,
        "the pool can't read by itself"
    );
    gcp.grant_reader(
        "acme-prod",
        &provider.principal_set("repository", "acme/gitops"),
    );
    assert_eq!(
        call("GET", &vms, Some(federated), None).await.0,
        200,
        "direct federation: the principalSet reads"
    );
    let (status, v) = call("POST", &url, Some(federated), body("1s")).await;
    assert_eq!(
        status, 200,
        "the pool's principalSet holds workloadIdentityUser: {v}"
    );
    let short = v["accessToken"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, v) = call("GET", &vms, Some(&short), None).await;
    assert_eq!(status, 401, "expired: {v}");
    assert_eq!(v["error"]["details"][0]["reason"], "ACCESS_TOKEN_EXPIRED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_a_live_token_whose_principal_may_read_the_project() {
    let gcp = GcpEmulator::start().await;
    let ex = gcp.seed_example();
    let base = gcp.base_url();
    let clusters = format!("{base}/container/v1/projects/acme-prod/locations/-/clusters");
    let (status, v) = call("GET", &clusters, None, None).await;
    assert_eq!(
        (status, v["error"]["code"].as_u64()),
        (401, Some(401)),
        "{v}"
    );
    assert_eq!(v["error"]["errors"][0]["reason"], "authError");
    assert_eq!(
        call("GET", &clusters, Some("ya29.made-up"), None).await.0,
        401
    );
    let expired = gcp.token_for_lifetime(&reader(&ex), Duration::ZERO);
    assert_eq!(call("GET", &clusters, Some(&expired), None).await.0, 401);

    let eve = gcp.token_for("user:eve@example.com");
    let (status, v) = call("GET", &clusters, Some(&eve), None).await;
    assert_eq!(google_error(status, &v), (403, "PERMISSION_DENIED"), "{v}");
    assert_eq!(v["error"]["details"][0]["reason"], "IAM_PERMISSION_DENIED");
    gcp.grant_reader("acme-prod", "user:eve@example.com");
    assert_eq!(call("GET", &clusters, Some(&eve), None).await.0, 200);
    gcp.revoke("acme-prod", "roles/viewer", "user:eve@example.com");
    assert_eq!(call("GET", &clusters, Some(&eve), None).await.0, 403);

    let token = gcp.token_for(&reader(&ex));
    let (status, v) = call_with(
        "POST",
        &format!("{base}/logging/v2/entries:list"),
        Some(&token),
        &[("x-goog-request-reason", "ticket-7".into())],
        Some(("application/json", "{not json".into())),
    )
    .await;
    assert_eq!(google_error(status, &v), (400, "INVALID_ARGUMENT"), "{v}");
    let (status, v) = call(
        "GET",
        &format!("{base}/compute/v1/projects/acme-prod/made-up"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(google_error(status, &v), (404, "NOT_FOUND"), "{v}");
    let (status, v) = call(
        "DELETE",
        &format!("{base}/compute/v1/projects/acme-prod/zones/us-central1-a/instances/web-1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 405, "reads only: {v}");
    assert_eq!(v["error"]["code"], 405, "in Google's shape: {v}");
    let filter = json!({"resourceNames": ["projects/acme-prod"], "filter": "jsonPayload.x=1 OR severity>=ERROR"});
    let (status, v) = call(
        "POST",
        &format!("{base}/logging/v2/entries:list"),
        Some(&token),
        Some(("application/json", filter.to_string())),
    )
    .await;
    assert_eq!(
        status, 400,
        "a filter the emulator can't evaluate is refused, not ignored: {v}"
    );

    let recorded = gcp.requests();
    let with_reason = recorded
        .iter()
        .find(|r| r.request_reason.is_some())
        .unwrap();
    assert_eq!(with_reason.request_reason.as_deref(), Some("ticket-7"));
    assert_eq!(with_reason.principal.as_deref(), Some(reader(&ex).as_str()));
    assert!(
        recorded
            .iter()
            .any(|r| r.principal.is_none() && r.status == 401)
    );
}
