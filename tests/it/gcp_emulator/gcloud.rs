//! The real gcloud CLI against the emulator. Each run costs a Python start-up (1–3 s), so runs
//! are few and paired.

use std::time::Duration;

use serde_json::{Value, json};
use slipway_emulators::gcp::GcpEmulator;

use super::{Gcloud, federation, reader};

const REASON: &str = "slipway:U024BE7LH:run-42";
const P: &str = "--project=acme-prod";

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("gcloud printed no JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcloud_reads_each_api_through_the_overrides_and_sends_the_request_reason() {
    let gcp = GcpEmulator::start().await;
    let ex = gcp.seed_example();
    let mut g = Gcloud::new(&gcp).with_token(&gcp.token_for(&reader(&ex)));
    g.set("CLOUDSDK_CORE_REQUEST_REASON", REASON);

    let (list, vm) = tokio::join!(
        g.ok(&["compute", "instances", "list", P]),
        g.ok(&[
            "compute",
            "instances",
            "describe",
            "web-1",
            "--zone=us-central1-a",
            P,
            "--format=json"
        ]),
    );
    assert!(list.starts_with("NAME"), "{list}");
    assert!(list.contains("web-1     us-central1-a  e2-small"), "{list}");
    assert!(list.contains("worker-1  us-central1-b"), "{list}");
    let vm = json_of(&vm);
    let items = vm["metadata"]["items"].as_array().unwrap();
    assert!(items.iter().any(|i| i["key"] == "startup-script"
        && i["value"].as_str().unwrap().contains(&ex.startup_secret)));
    assert!(
        items
            .iter()
            .any(|i| i["key"] == "ssh-keys" && i["value"] == ex.ssh_key.as_str())
    );

    let (cluster, policy) = tokio::join!(
        g.ok(&[
            "container",
            "clusters",
            "describe",
            "prod",
            "--location=us-central1",
            P,
            "--format=json"
        ]),
        g.ok(&["projects", "get-iam-policy", "acme-prod", "--format=json"]),
    );
    let cluster = json_of(&cluster);
    assert_eq!(cluster["endpoint"], "34.118.0.10");
    assert_eq!(cluster["locations"].as_array().unwrap().len(), 3);
    // base64 of a PEM certificate: "-----BEGIN CERTIFICATE-----".
    let ca = cluster["masterAuth"]["clusterCaCertificate"]
        .as_str()
        .unwrap();
    assert!(
        ca.starts_with("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"),
        "{ca}"
    );
    assert_eq!(
        json_of(&policy)["bindings"],
        json!([{"role": "roles/viewer", "members": [reader(&ex)]}])
    );

    let (service, errors) = tokio::join!(
        g.ok(&[
            "run",
            "services",
            "describe",
            "api",
            "--region=us-central1",
            P,
            "--format=json"
        ]),
        g.ok(&[
            "logging",
            "read",
            "severity>=ERROR",
            P,
            "--format=value(textPayload)"
        ]),
    );
    let env = &json_of(&service)["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!({"name": "API_KEY", "value": ex.run_secret}))
    );
    assert_eq!(errors.trim(), "upstream timed out");

    let sa_policy = [
        "iam",
        "service-accounts",
        "get-iam-policy",
        &ex.reader.client_email,
        P,
        "--format=json",
    ];
    let (buckets, creators) = tokio::join!(
        g.ok(&["storage", "buckets", "list", P, "--format=value(name)"]),
        g.ok(&sa_policy),
    );
    assert_eq!(buckets.trim(), "acme-prod-artifacts");
    assert_eq!(
        json_of(&creators)["bindings"][0]["members"],
        json!([format!("serviceAccount:{}", ex.bridge.client_email)])
    );

    let requests = gcp.requests();
    for api in [
        "compute",
        "container",
        "cloudresourcemanager",
        "run",
        "logging",
        "storage",
        "iam",
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.path.starts_with(&format!("/{api}/"))),
            "no call reached /{api}/"
        );
    }
    for r in &requests {
        assert_eq!(r.request_reason.as_deref(), Some(REASON), "{r:?}");
        assert_eq!(r.principal.as_deref(), Some(reader(&ex).as_str()), "{r:?}");
        assert_eq!(r.status, 200, "{r:?}");
    }
    let regional = requests
        .iter()
        .find(|r| r.path.starts_with("/run/apis/"))
        .unwrap();
    assert!(
        regional
            .host
            .as_deref()
            .unwrap()
            .starts_with("us-central1-localhost:"),
        "{regional:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcloud_is_refused_without_a_read_role_and_with_an_expired_token() {
    let gcp = GcpEmulator::start().await;
    let ex = gcp.seed_example();
    let stranger = Gcloud::new(&gcp)
        .with_token(&gcp.token_for(&format!("serviceAccount:{}", ex.bridge.client_email)));
    let expired =
        Gcloud::new(&gcp).with_token(&gcp.token_for_lifetime(&reader(&ex), Duration::ZERO));
    let (denied, unauthenticated) = tokio::join!(
        stranger.run(&["container", "clusters", "list", P]),
        expired.run(&["projects", "describe", "acme-prod"]),
    );
    assert!(!denied.status.success());
    let text = String::from_utf8_lossy(&denied.stderr);
    assert!(
        text.contains("code=403") && text.contains("Permission 'container.clusters.list' denied"),
        "{text}"
    );
    assert!(!unauthenticated.status.success());
    let text = String::from_utf8_lossy(&unauthenticated.stderr);
    assert!(
        text.contains("UNAUTHENTICATED: Request had invalid authentication credentials"),
        "{text}"
    );
    let statuses: Vec<u16> = gcp.requests().iter().map(|r| r.status).collect();
    assert!(
        statuses.contains(&403) && statuses.contains(&401),
        "{statuses:?}"
    );
}

/// What the runner will do: google-github-actions/auth's `external_account` file, the subject
/// token fetched from the job's token service, exchanged at STS, impersonating the reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcloud_exchanges_an_actions_oidc_token_through_sts_and_iam_credentials() {
    let (gcp, ex, oidc, provider) = federation().await;
    let credentials = json!({
        "type": "external_account",
        "audience": provider.audience(),
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": gcp.sts_token_url(),
        "service_account_impersonation_url": gcp.generate_access_token_url(&ex.reader.client_email),
        "credential_source": {
            "url": format!("{}&audience={}", oidc.request_url(), provider.token_audience()),
            "headers": {"Authorization": format!("Bearer {}", oidc.request_token())},
            "format": {"type": "json", "subject_token_field_name": "value"},
        },
        "universe_domain": "googleapis.com",
    });
    let g = Gcloud::new(&gcp).with_credential_file(&credentials.to_string());
    let names = g
        .ok(&["compute", "instances", "list", P, "--format=value(name)"])
        .await;
    assert_eq!(names.lines().collect::<Vec<_>>(), ["web-1", "worker-1"]);

    assert_eq!(oidc.issued()[0]["aud"], provider.token_audience());
    let requests = gcp.requests();
    let paths: Vec<(&str, u16)> = requests
        .iter()
        .map(|r| (r.path.split('?').next().unwrap(), r.status))
        .collect();
    let impersonate = format!(
        "/iamcredentials/v1/projects/-/serviceAccounts/{}:generateAccessToken",
        ex.reader.client_email
    );
    assert_eq!(
        paths[..2],
        [("/sts/v1/token", 200), (impersonate.as_str(), 200)],
        "{paths:?}"
    );
    let federated = provider.principal("repo:acme/gitops:ref:refs/heads/main");
    assert_eq!(requests[1].principal.as_deref(), Some(federated.as_str()));
    let read = requests
        .iter()
        .find(|r| r.path.starts_with("/compute/"))
        .unwrap();
    assert_eq!(read.principal.as_deref(), Some(reader(&ex).as_str()));
}

/// The bridge's way: its own service account key (the JWT bearer grant at the token endpoint),
/// impersonating the reader it may mint tokens for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcloud_impersonates_the_reader_with_the_bridge_service_account_key() {
    let gcp = GcpEmulator::start().await;
    let ex = gcp.seed_example();
    let mut g = Gcloud::new(&gcp).with_credential_file(&ex.bridge.json);
    g.set(
        "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT",
        &ex.reader.client_email,
    );
    let names = g
        .ok(&["container", "clusters", "list", P, "--format=value(name)"])
        .await;
    assert_eq!(names.trim(), "prod");
    let requests = gcp.requests();
    let bridge = format!("serviceAccount:{}", ex.bridge.client_email);
    assert!(
        requests
            .iter()
            .any(|r| r.path.starts_with("/token") && r.status == 200)
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path.starts_with("/iamcredentials/")
                && r.principal.as_deref() == Some(bridge.as_str()))
    );
    let read = requests
        .iter()
        .find(|r| r.path.starts_with("/container/"))
        .unwrap();
    assert_eq!(read.principal.as_deref(), Some(reader(&ex).as_str()));
}
