//! A GitHub emulator set up as Slipway's GitOps remote: the `acme/gitops` repo with a deployed
//! `api`, the `acme/api` service repo with a green CI run, and a GitHub App installed on both.

use slipway_emulators::github::GitHubEmulator;

pub const OWNER: &str = "acme";
pub const REPO: &str = "gitops";
pub const APP_ID: u64 = 4242;
/// The change-request signing seed used in tests (32 bytes of 0x11).
pub const SIGNING_KEY_HEX: &str =
    "1111111111111111111111111111111111111111111111111111111111111111";
pub const WEBHOOK_SECRET: &str = "whsec-test-secret";
pub const APP_KEY_PEM: &str = include_str!("fixtures/keys/github-app-test.pem");

pub const KUSTOMIZATION_V1: &str = "# Managed by Slipway: /deploy api staging sets the image below.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: registry.example/api\n    newName: registry.example/api\n    newTag: \"v1.0.0\"\n";

/// A started emulator plus the bridge environment and config file that point at it.
#[derive(Debug)]
pub struct GitOpsFixture {
    pub github: GitHubEmulator,
    pub env: Vec<(&'static str, String)>,
    pub config_yaml: String,
    /// The service repo's head commit that CI built.
    pub api_sha: String,
}

impl GitOpsFixture {
    /// Poll `f` for up to 30 s.
    pub async fn github_wait(&self, f: impl Fn() -> bool) -> bool {
        for _ in 0..300 {
            if f() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }
}

pub async fn start() -> GitOpsFixture {
    let github = GitHubEmulator::start().await;
    github.create_repo(
        OWNER,
        REPO,
        "main",
        &[
            ("apps/api/staging/kustomization.yaml", KUSTOMIZATION_V1),
            (
                "apps/api/production/kustomization.yaml",
                &KUSTOMIZATION_V1.replace("staging", "production"),
            ),
            (
                "apps/api/base/deployment.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n",
            ),
            (
                "stacks/network/main.tf",
                "resource \"terraform_data\" \"net\" {\n  input = \"v1\"\n}\n",
            ),
            ("README.md", "# GitOps\n"),
        ],
    );
    github.create_repo(OWNER, "api", "main", &[("README.md", "# api\n")]);
    let api_sha = github.branch_sha(OWNER, "api", "main").expect("api head");
    github.add_workflow_run(OWNER, "api", "main", &api_sha, "ci", "success");
    let installation = github.add_app(APP_ID, APP_KEY_PEM, &[(OWNER, REPO), (OWNER, "api")]);
    for (login, token) in [
        ("omar-operator", "tok-omar"),
        ("ada-approver", "tok-ada"),
        ("bo-approver", "tok-bo"),
        ("pat-proddeploy", "tok-pat"),
        ("olga-owner", "tok-olga"),
    ] {
        github.add_user(login, token);
    }
    let env = vec![
        ("SLIPWAY_GITOPS_REPO", format!("{OWNER}/{REPO}")),
        ("SLIPWAY_GITOPS_GIT_URL", github.git_url(OWNER, REPO)),
        ("SLIPWAY_GITHUB_API_URL", github.api_url()),
        ("SLIPWAY_GITHUB_APP_ID", APP_ID.to_string()),
        ("SLIPWAY_GITHUB_INSTALLATION_ID", installation.to_string()),
        ("SLIPWAY_GITHUB_PRIVATE_KEY", APP_KEY_PEM.to_string()),
        ("SLIPWAY_SIGNING_KEY", SIGNING_KEY_HEX.to_string()),
        ("SLIPWAY_SIGNING_KEY_ID", "test".to_string()),
        ("SLIPWAY_GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET.to_string()),
    ];
    let config_yaml = "gitops:\n  services:\n    api:\n      repo: acme/api\n      image: registry.example/api\n      workflow: ci.yml\n    web:\n      repo: acme/api\n      image: registry.example/web\n      workflow: ci.yml\n".to_string();
    GitOpsFixture {
        github,
        env,
        config_yaml,
        api_sha,
    }
}

/// The bridge's public key for verifying change requests in tests.
pub fn verifying_key() -> ed25519_dalek::VerifyingKey {
    slipway_core::change::parse_signing_key(SIGNING_KEY_HEX)
        .expect("key")
        .verifying_key()
}
