//! `/gcloud` through the real bridge: judged on `gcp:<alias>` and audited, then refused with a
//! sentence when the bridge has no Google identity or no project for the alias; attacks
//! refused before anything is decided. (Runs against the GCP emulator: `gcp_reads`.)

use std::time::Duration;

use slipway_core::audit::EventKind;
use slipway_core::command::{Family, Target};
use slipway_tests::harness::{Options, TestApp};

const STAGING: &str = "gcp_projects:\n  gcp-staging:\n    project: acme-staging-1\n    \
                       service_account: slipway-read@acme-staging-1.iam.gserviceaccount.com\n";

/// A bridge with `gcp-staging` configured and `gcp-prod` (in the policy) not.
async fn app() -> TestApp {
    TestApp::start_with(Options {
        config_yaml: Some(STAGING.into()),
        ..Options::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_judged_and_audited_then_refused_without_a_google_identity() {
    let app = app().await;
    let ack = app
        .ack("U0VIEWER", "/gcloud gcp-staging compute instances list")
        .await;
    assert!(
        ack.contains("no Google identity") && ack.contains("gcp.credentials"),
        "{ack}"
    );
    let ack = app
        .ack("U0OWNER", "/gcloud gcp-prod compute zones list")
        .await;
    assert!(ack.contains("gcp_projects.gcp-prod"), "{ack}");
    let ack = app
        .ack("U0VIEWER", "/gcloud gcp-prod compute zones list")
        .await;
    assert!(ack.starts_with(":no_entry:"), "{ack}");

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
    let command = decision.command.unwrap();
    assert_eq!(command.family, Some(Family::Gcloud));
    assert_eq!(
        command.argv.unwrap(),
        ["gcloud", "compute", "instances", "list", "--format=json"]
    );
    assert_eq!(
        decision.target,
        Some(Target::GcpProject {
            alias: "gcp-staging".into()
        })
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.slack.messages().is_empty(), "nothing may run");
}

/// Whatever the role: credentials, another project or identity, transforms, changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_other_projects_transforms_and_changes_are_refused_for_owners_too() {
    let app = app().await;
    for (line, why) in [
        ("/gcloud gcp-staging auth print-access-token", "credentials"),
        (
            "/gcloud gcp-staging container clusters get-credentials prod",
            "credentials",
        ),
        (
            "/gcloud gcp-staging secrets versions access latest --secret=db",
            "secret payloads",
        ),
        (
            "/gcloud gcp-staging compute instances list --project other-project",
            "--project",
        ),
        (
            "/gcloud gcp-staging compute zones list --impersonate-service-account=admin@x.iam.gserviceaccount.com",
            "identity",
        ),
        (
            "/gcloud gcp-staging compute disks list --format=\"value(name.encode(base64))\"",
            "transform",
        ),
        (
            "/gcloud gcp-staging compute instances list --filter=\"metadata.items.value:sk_live*\"",
            "removes",
        ),
        (
            "/gcloud gcp-staging compute instances delete web-1 --zone=us-east1-b",
            "/tf apply",
        ),
    ] {
        let ack = app.ack("U0OWNER", line).await;
        assert!(ack.starts_with(":no_entry:"), "{line}: {ack}");
        assert!(ack.contains(why), "{line}: {ack}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.slack.messages().is_empty(), "nothing may run");
}
