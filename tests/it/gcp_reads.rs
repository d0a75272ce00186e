//! `/gcloud` end to end: the real bridge runs the real gcloud against the GCP emulator, as the
//! alias's read-only account, impersonated per run with the bridge's own key; the request
//! reason names the person and the decision; secret-bearing fields never reach Slack.

use std::time::Duration;

use slipway_core::audit::EventKind;
use slipway_emulators::gcp::{Example, GcpEmulator};
use slipway_tests::harness::{Options, TestApp, require_tool};

const LONG: Duration = Duration::from_secs(60);

/// A bridge whose `gcp-staging` alias is the emulator's `acme-prod`, read as `slipway-reader`,
/// minted by `slipway-bridge`.
async fn app(gcp: &GcpEmulator, ex: &Example, read_account: &str) -> TestApp {
    require_tool(
        "gcloud",
        "the google-cloud-cli package (gcloud) is on the machine image",
    );
    let base = gcp.base_url();
    let yaml = format!(
        "gcp_projects:\n  gcp-staging:\n    project: {}\n    service_account: {}\n\
         gcp:\n  token_url: {}\n  iam_credentials_url: {base}/iamcredentials\n  \
         api_endpoint_overrides:\n    compute: {base}/compute/v1/\n    container: {base}/container/\n    \
         cloudresourcemanager: {base}/cloudresourcemanager/\n",
        ex.project,
        read_account,
        gcp.token_url(),
    );
    TestApp::start_with(Options {
        config_yaml: Some(yaml),
        env: vec![("SLIPWAY_GCP_CREDENTIALS", ex.bridge.json.clone())],
        ..Options::default()
    })
    .await
}

/// Run `line` as `user` to the end; the final thread text.
async fn run(app: &TestApp, user: &str, line: &str, shown: &str) -> String {
    let ack = app.ack(user, line).await;
    assert!(ack.starts_with(&format!("Running `{shown}`")), "{ack}");
    let msg = app.wait_message(shown, LONG).await.expect("run message");
    let (main, thread) = app.wait_finished(&msg.ts, LONG).await;
    format!(
        "{}\n{}",
        main.blocks,
        thread
            .iter()
            .map(|m| m.blocks.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_lists_instances_as_the_read_account_and_metadata_never_reaches_slack() {
    let gcp = GcpEmulator::start().await;
    let ex = gcp.seed_example();
    // A startup script whose secret no redaction pattern knows: only stripping keeps it out.
    let opaque = "opaque-value-9f8e7d6c5b4a3";
    let script = format!("curl -H 'X-Internal: {opaque}' http://10.0.0.2/boot");
    gcp.add_instance(
        &ex.project,
        &ex.zone,
        "db-1",
        &[("startup-script", script.as_str())],
    );
    let app = app(&gcp, &ex, &ex.reader.client_email).await;
    let shown = "gcloud compute instances list --format=json";
    let out = run(
        &app,
        "U0VIEWER",
        "/gcloud gcp-staging compute instances list",
        shown,
    )
    .await;
    assert!(
        out.contains(&ex.instance),
        "the instances are listed: {out}"
    );
    let trail = serde_json::to_string(&app.audit()).unwrap();
    for secret in [&ex.startup_secret, &ex.ssh_key, &opaque.to_string()] {
        assert!(
            !out.contains(secret.as_str()),
            "stripped before Slack: {out}"
        );
        assert!(
            !trail.contains(secret.as_str()),
            "stripped before the trail"
        );
    }
    assert!(
        trail.contains("db-1"),
        "the trail keeps the stripped output"
    );
    let execution = app
        .audit()
        .into_iter()
        .find(|r| r.kind == EventKind::Execution)
        .expect("the execution record");
    assert_eq!(
        execution.details.as_ref().unwrap()["service_account"],
        ex.reader.client_email.as_str(),
        "the record names the account the read ran as"
    );

    let requests = gcp.requests();
    let minted: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains(":generateAccessToken"))
        .collect();
    assert_eq!(minted.len(), 1, "one token for the run: {requests:#?}");
    assert!(
        minted[0]
            .principal
            .as_deref()
            .is_some_and(|p| p.contains(&ex.bridge.client_email)),
        "minted with the bridge's own identity: {:?}",
        minted[0].principal
    );
    let read = requests
        .iter()
        .find(|r| r.path.contains("/compute/v1/") && r.path.contains("instances"))
        .expect("gcloud read the instances");
    assert!(
        read.principal
            .as_deref()
            .is_some_and(|p| p.contains(&ex.reader.client_email)),
        "read as the read-only account: {:?}",
        read.principal
    );
    let decision = app
        .audit()
        .into_iter()
        .find(|r| {
            r.kind == EventKind::Decision
                && r.command
                    .as_ref()
                    .is_some_and(|c| c.text.contains("instances list"))
        })
        .expect("the decision is audited");
    let reason = read.request_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("slack=U0VIEWER")
            && reason.contains(&format!("decision={}", decision.event_id)),
        "the request reason ties the read to the person and the decision: {reason}"
    );
    // Nothing of the run's configuration directory (and its token file) is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(app.dir.path().join("state/work"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !leftovers
            .iter()
            .any(|n| n.to_string_lossy().starts_with("gcloud-")),
        "{leftovers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_the_bridge_may_not_impersonate_runs_nothing_and_says_why() {
    let gcp = GcpEmulator::start().await;
    let ex = gcp.seed_example();
    // An account the bridge was never allowed to mint tokens for.
    let other = gcp.add_service_account(&ex.project, "slipway-other");
    let app = app(&gcp, &ex, &other.client_email).await;
    let shown = "gcloud compute zones list";
    let out = run(
        &app,
        "U0VIEWER",
        "/gcloud gcp-staging compute zones list",
        shown,
    )
    .await;
    assert!(
        out.contains("read-only account") && out.contains("PERMISSION_DENIED"),
        "says it could not get a token, and Google's reason: {out}"
    );
    assert!(
        !gcp.requests().iter().any(|r| r.path.contains("/compute/")),
        "gcloud never ran"
    );
}
