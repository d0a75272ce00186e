//! A ready-made project for tests of the read commands: one of everything the emulator serves,
//! fake secrets where real ones hide (a startup script, `ssh-keys`, project metadata, a Cloud
//! Run env var), a read-only service account, and the bridge's own account that may mint its
//! tokens.

use super::GcpEmulator;
use crate::google::ServiceAccountKey;

/// What [`GcpEmulator::seed_example`] made.
#[derive(Debug, Clone)]
pub struct Example {
    pub project: String,
    pub project_number: u64,
    pub zone: String,
    /// A running instance whose metadata holds [`Example::startup_secret`] and
    /// [`Example::ssh_key`].
    pub instance: String,
    /// A regional cluster (`us-central1`) with a second node pool, `batch`.
    pub cluster: String,
    pub region: String,
    /// A Cloud Run service whose env holds [`Example::run_secret`].
    pub run_service: String,
    pub bucket: String,
    /// `slipway-reader`: `roles/viewer` on the project, nothing else.
    pub reader: ServiceAccountKey,
    /// `slipway-bridge`: may mint tokens for `slipway-reader`, reads nothing itself.
    pub bridge: ServiceAccountKey,
    pub startup_secret: String,
    pub ssh_key: String,
    pub metadata_secret: String,
    pub run_secret: String,
}

const PROJECT: &str = "acme-prod";
const NUMBER: u64 = 123_456_789_012;
const ZONE: &str = "us-central1-a";
const REGION: &str = "us-central1";
const STARTUP_SECRET: &str = "DB_PASSWORD=fake-startup-secret-7Qd9vX2m";
const SSH_KEY: &str =
    "deploy:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly deploy@example.com";
const METADATA_SECRET: &str = "fake-project-metadata-token-3kP0";
const RUN_SECRET: &str = "fake-run-api-key-Zm9vYmFy";

impl GcpEmulator {
    /// Seeds `acme-prod` (number 123456789012): see [`Example`].
    pub fn seed_example(&self) -> Example {
        self.add_project(PROJECT, NUMBER);
        self.seed_example_compute();
        self.seed_example_services();
        let reader = self.add_service_account(PROJECT, "slipway-reader");
        let bridge = self.add_service_account(PROJECT, "slipway-bridge");
        self.grant_reader(PROJECT, &format!("serviceAccount:{}", reader.client_email));
        let bridge_member = format!("serviceAccount:{}", bridge.client_email);
        self.grant_token_creator(&reader.client_email, &bridge_member);
        Example {
            project: PROJECT.into(),
            project_number: NUMBER,
            zone: ZONE.into(),
            instance: "web-1".into(),
            cluster: "prod".into(),
            region: REGION.into(),
            run_service: "api".into(),
            bucket: "acme-prod-artifacts".into(),
            reader,
            bridge,
            startup_secret: STARTUP_SECRET.into(),
            ssh_key: SSH_KEY.into(),
            metadata_secret: METADATA_SECRET.into(),
            run_secret: RUN_SECRET.into(),
        }
    }

    fn seed_example_compute(&self) {
        let metadata = [
            ("enable-oslogin", "TRUE"),
            ("deploy-token", METADATA_SECRET),
        ];
        self.set_project_metadata(PROJECT, &metadata);
        let script = format!("#!/bin/bash\nexport {STARTUP_SECRET}\n/opt/app/start\n");
        let web = [("startup-script", script.as_str()), ("ssh-keys", SSH_KEY)];
        self.add_instance(PROJECT, ZONE, "web-1", &web);
        let worker = [("enable-oslogin", "TRUE")];
        self.add_instance(PROJECT, "us-central1-b", "worker-1", &worker);
        self.add_disk(PROJECT, ZONE, "data-1", 200);
        let anywhere = ["0.0.0.0/0"];
        self.add_firewall(
            PROJECT,
            "allow-https",
            "default",
            "tcp",
            &["443"],
            &anywhere,
        );
    }

    fn seed_example_services(&self) {
        self.add_cluster(PROJECT, REGION, "prod");
        self.add_node_pool(PROJECT, REGION, "prod", "batch", "n2-standard-4", 1);
        self.add_bucket(PROJECT, "acme-prod-artifacts", REGION);
        let audit = "logName:\"cloudaudit.googleapis.com\"";
        let bucket = "storage.googleapis.com/acme-prod-artifacts";
        self.add_sink(PROJECT, "audit-to-bucket", bucket, audit);
        self.add_log_entry(PROJECT, "app", "INFO", "service started");
        self.add_log_entry(PROJECT, "app", "ERROR", "upstream timed out");
        let image = "us-docker.pkg.dev/acme-prod/app/api:1.4.2";
        let env = [("LOG_LEVEL", "info"), ("API_KEY", RUN_SECRET)];
        self.add_run_service(PROJECT, REGION, "api", image, &env);
        let permissions = ["run.services.get", "run.services.list"];
        self.add_custom_role(PROJECT, "deployReader", "Deploy reader", &permissions);
    }
}
