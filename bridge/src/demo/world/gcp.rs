//! The demo's Google Cloud: the GCP emulator with one project behind the `gcp-staging` alias,
//! its read-only account, and the bridge's own account, which may only mint tokens for it.
//! Real gcloud runs against it, so the step is skipped (with a sentence) where gcloud is not
//! installed.

use slipway_emulators::gcp::GcpEmulator;

/// The project behind `gcp-staging`.
pub const PROJECT: &str = "acme-staging-demo";
/// The instance the demo's `/gcloud` step lists.
pub const INSTANCE: &str = "web-staging-1";
const ZONE: &str = "us-central1-a";

/// The emulator and the accounts the bridge is configured with.
#[derive(Debug)]
pub struct GcpDemo {
    pub emulator: GcpEmulator,
    /// The bridge's service account key (JSON), its only Google credential.
    pub bridge_key: String,
    /// The read-only account `gcp-staging` reads as.
    pub reader: String,
}

impl GcpDemo {
    /// Started and seeded, or why not (gcloud missing).
    pub async fn start() -> Result<GcpDemo, String> {
        if !super::on_path("gcloud") {
            return Err("gcloud is not installed (the google-cloud-cli package): the /gcloud step is skipped".into());
        }
        let emulator = GcpEmulator::start().await;
        emulator.add_project(PROJECT, 200_000_000_001);
        emulator.add_instance(
            PROJECT,
            ZONE,
            INSTANCE,
            &[("startup-script", "#!/bin/sh\necho hello")],
        );
        let reader = emulator.add_service_account(PROJECT, "slipway-read-gcp-staging");
        let bridge = emulator.add_service_account(PROJECT, "slipway-bridge");
        emulator.grant_reader(PROJECT, &format!("serviceAccount:{}", reader.client_email));
        emulator.grant_token_creator(
            &reader.client_email,
            &format!("serviceAccount:{}", bridge.client_email),
        );
        Ok(GcpDemo {
            emulator,
            bridge_key: bridge.json,
            reader: reader.client_email,
        })
    }

    /// The bridge config's `gcp_projects` and `gcp` sections (the key itself goes in
    /// `SLIPWAY_GCP_CREDENTIALS`).
    pub fn config_yaml(&self) -> String {
        let base = self.emulator.base_url();
        format!(
            "gcp_projects:\n  gcp-staging:\n    project: {PROJECT}\n    service_account: {}\n\
             gcp:\n  token_url: {}\n  iam_credentials_url: {base}/iamcredentials\n  \
             api_endpoint_overrides:\n    compute: {base}/compute/v1/\n    \
             container: {base}/container/\n    cloudresourcemanager: {base}/cloudresourcemanager/\n",
            self.reader,
            self.emulator.token_url(),
        )
    }
}
