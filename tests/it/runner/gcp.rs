//! Google Cloud by Workload Identity Federation. The GCP emulator holds the provider
//! `deploy/terraform/gcp` makes (its attribute condition read from the module) for the job's
//! issuer, and the account binding the module gives the pinned runner workflow. The runner
//! exchanges the job's OIDC token at STS and mints a token for the target's service account:
//! real terraform gets it as `GOOGLE_OAUTH_ACCESS_TOKEN`, real kubectl as the bearer token of a
//! GKE cluster (the Kubernetes emulator, taking only live Google tokens of the cluster's
//! account). A wrong branch, repository or workflow, or a missing binding, gets nothing and runs
//! nothing, and no token is ever left where people, logs or the trail can read it.

use std::sync::{Arc, Mutex};

use slipway_emulators::gcp::{GcpEmulator, IssuedToken, WifProvider};

use super::kubectl::web_cluster;
use super::terraform::{pinned_digest, tf_rendered, tf_stack};
use super::*;

const PROJECT: &str = "acme-prod";
const PROJECT_NUMBER: u64 = 123_456_789_012;
/// The module's `runner_workflow` and `runner_workflow_ref`: the reusable workflow, pinned.
const RUNNER_WORKFLOW: &str = "acme/slipway-runner-workflow/.github/workflows/slipway-runner.yml";
const RUNNER_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const SCALE: &str = "/kubectl scale deployment/web --replicas=5 -n web";
/// `gcp.token_lifetime` in the runner's config, in seconds.
const LIFETIME: i64 = 600;

fn pinned_workflow() -> String {
    format!("{RUNNER_WORKFLOW}@{RUNNER_COMMIT}")
}

/// The runner's job for a push of `sha` to `branch` of `repository`: the pinned reusable
/// workflow defines it.
fn runner_job(repository: &str, branch: &str, sha: &str) -> ActionsJob {
    ActionsJob::push(repository, branch, sha).calling(&pinned_workflow())
}

fn gitops_runner_job(sha: &str) -> ActionsJob {
    runner_job(&format!("{OWNER}/{REPO}"), "main", sha)
}

/// The module's attribute condition with its variables set, and a check that the runner
/// account's binding is the pinned workflow's principal set.
fn module_condition() -> String {
    let main =
        std::fs::read_to_string(slipway_tests::repo_root().join("deploy/terraform/gcp/main.tf"))
            .unwrap();
    assert!(
        main.contains(
            "/attribute.job_workflow_ref/${var.runner_workflow}@${var.runner_workflow_ref}\""
        ),
        "the module binds the runner account to the pinned workflow's principal set"
    );
    let line = main
        .lines()
        .find_map(|l| l.trim().strip_prefix("attribute_condition"))
        .expect("the provider's attribute_condition");
    let condition = line
        .trim()
        .trim_start_matches('=')
        .trim()
        .trim_matches('"')
        .replace("${var.github_repository}", &format!("{OWNER}/{REPO}"))
        .replace("${var.default_branch}", "main")
        .replace("${var.runner_workflow}", RUNNER_WORKFLOW)
        .replace("${var.runner_workflow_ref}", RUNNER_COMMIT);
    assert!(!condition.contains("${"), "{condition}");
    condition
}

/// Google Cloud as the module sets it up, and the service account a target names.
struct Google {
    gcp: GcpEmulator,
    provider: WifProvider,
    account: String,
}

/// The emulator with the module's provider for the job's issuer and a service account
/// `account_id`; `bound`: the pinned workflow's principals may impersonate it.
async fn google(fx: &Fx, account_id: &str, bound: bool) -> Google {
    let gcp = GcpEmulator::start().await;
    gcp.add_project(PROJECT, PROJECT_NUMBER);
    let provider = WifProvider::github(PROJECT_NUMBER, "github", "slipway", fx.oidc.jwks())
        .with_condition(&module_condition());
    gcp.add_wif_provider(provider.clone());
    let account = gcp.add_service_account(PROJECT, account_id).client_email;
    if bound {
        gcp.grant_on_service_account(
            &account,
            "roles/iam.workloadIdentityUser",
            &provider.principal_set("job_workflow_ref", &pinned_workflow()),
        );
    }
    Google {
        gcp,
        provider,
        account,
    }
}

impl Google {
    /// The runner config's `gcp:` section (the emulator's endpoints) and `targets`.
    fn config(&self, targets: &str) -> String {
        format!(
            "gcp:\n  workload_identity_provider: {}\n  token_lifetime: {LIFETIME}s\n  sts_endpoint: \"{}\"\n  iam_credentials_endpoint: \"{}/iamcredentials\"\n{targets}",
            self.provider.name(),
            self.gcp.sts_token_url(),
            self.gcp.base_url()
        )
    }

    /// The tokens minted for the account.
    fn minted(&self) -> Vec<IssuedToken> {
        let principal = format!("serviceAccount:{}", self.account);
        self.gcp
            .issued_tokens()
            .into_iter()
            .filter(|t| t.principal == principal)
            .collect()
    }

    /// `(method and path, status, principal)` of every request the emulator received.
    fn calls(&self) -> Vec<(String, u16, Option<String>)> {
        self.gcp
            .requests()
            .into_iter()
            .map(|r| (format!("{} {}", r.method, r.path), r.status, r.principal))
            .collect()
    }

    fn mint_path(&self) -> String {
        format!(
            "POST /iamcredentials/v1/projects/-/serviceAccounts/{}:generateAccessToken",
            self.account
        )
    }
}

/// A GKE cluster for the `staging` alias: the Kubernetes emulator taking only live tokens
/// Google issued for the account (GKE maps a Google token to its IAM principal). Its runner
/// config, and every bearer token it was shown.
async fn gke(google: &Google) -> (KubeEmulator, String, Arc<Mutex<Vec<String>>>) {
    use base64::Engine as _;
    let kube = web_cluster().await;
    let shown = Arc::new(Mutex::new(Vec::new()));
    let (gcp, principal, seen) = (
        google.gcp.clone(),
        format!("serviceAccount:{}", google.account),
        shown.clone(),
    );
    kube.check_tokens(move |token| {
        seen.lock().unwrap().push(token.to_string());
        let now = chrono::Utc::now().timestamp();
        gcp.issued_tokens()
            .iter()
            .any(|t| t.token == token && t.principal == principal && t.expires_at > now)
    });
    let ca = base64::engine::general_purpose::STANDARD.encode(kube.ca_pem());
    let cfg = format!(
        "clusters:\n  staging: {{ server: \"{}/clusters/staging\", certificate_authority_data: \"{ca}\", gcp_service_account: {} }}\n",
        kube.https_url(),
        google.account
    );
    (kube, cfg, shown)
}

/// One GKE change, approved, merged and run by `job` (of the merge sha).
struct GkeRun {
    fx: Fx,
    google: Google,
    kube: KubeEmulator,
    /// The bearer tokens the cluster was shown.
    shown: Arc<Mutex<Vec<String>>>,
    cr: ChangeRequest,
    number: u64,
    sha: String,
    out: Output,
}

/// The job that runs the merge of a sha.
type JobOf = fn(&str) -> ActionsJob;

async fn gke_run(job: JobOf, bound: bool, env: &[(&str, String)]) -> GkeRun {
    let fx = fixture(&[], &[]).await;
    let google = google(&fx, "slipway-deploy", bound).await;
    let (kube, clusters, shown) = gke(&google).await;
    let cr = change(&fx, "g1", SCALE, Rendered::default());
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    fx.oidc.set_job(job(&sha));
    let ws = checkout(&fx, &sha);
    let cfg = config(&fx, &google.config(&clusters));
    let out = run(&fx, &ws, &sha, &cfg, env).await;
    GkeRun {
        fx,
        google,
        kube,
        shown,
        cr,
        number,
        sha,
        out,
    }
}

impl GkeRun {
    fn replicas(&self) -> Value {
        self.kube.deployment("web", "web").unwrap()["spec"]["replicas"].clone()
    }

    /// The change failed before anything ran, saying `why`: the cluster saw no request, the
    /// deployment is as it was, the lock is released, the status and the trail say failed.
    fn failed_before_running(&self, why: &[&str]) {
        assert_eq!(
            self.out.status.code(),
            Some(1),
            "{}",
            crate::stderr(&self.out)
        );
        let body = result_comment(&self.fx, self.number, &self.cr.id);
        assert!(
            body.contains("Failed") && body.contains("nothing was changed"),
            "{body}"
        );
        for w in why {
            assert!(body.contains(w), "{w}: {body}");
        }
        assert!(self.kube.requests().is_empty(), "kubectl never ran");
        assert_eq!(self.replicas(), 2);
        assert!(self.google.minted().is_empty(), "no token for the account");
        assert_eq!(execution_status(&self.fx, &self.sha)["state"], "failure");
        assert!(
            !lock_exists(&self.fx, &self.cr),
            "the lock is released, as on any failure"
        );
        assert!(audit(&self.fx).iter().any(|r| {
            r.change_id.as_deref() == Some(self.cr.id.as_str())
                && r.details.as_ref().is_some_and(|d| d["outcome"] == "failed")
        }));
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcp_stack_is_applied_with_a_token_minted_for_its_service_account() {
    slipway_tests::harness::require_terraform();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("app.tfstate");
    let seen = state_dir.path().join("google-token");
    // What terraform's Google provider would read, written where the test can compare it.
    let main_tf = tf_stack(
        &state,
        "v2",
        Some(&format!(
            "echo $GOOGLE_OAUTH_ACCESS_TOKEN $CLOUDSDK_AUTH_ACCESS_TOKEN > {}",
            seen.display()
        )),
    );
    let fx = fixture(&[], &[("stacks/app/main.tf", main_tf.clone())]).await;
    let google = google(&fx, "slipway-tf", true).await;
    let digest = pinned_digest(&fx, &main_tf);
    let cr = change(&fx, "gtf", "/tf apply app", tf_rendered(&digest));
    let (number, sha) = approved_and_merged(&fx, &cr, &cr.to_yaml(), &[]).await;
    fx.oidc.set_job(gitops_runner_job(&sha));
    let ws = checkout(&fx, &sha);
    let stacks = format!(
        "stacks:\n  app: {{ gcp_service_account: {} }}\n",
        google.account
    );
    let cfg = config(&fx, &google.config(&stacks));
    let before = now();
    let out = run(&fx, &ws, &sha, &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", crate::stderr(&out));
    let after = now();

    // terraform applied, with the token the emulator minted for the stack's account.
    assert!(std::fs::read_to_string(&state).unwrap().contains("\"v2\""));
    let written = std::fs::read_to_string(&seen).expect("the provisioner ran");
    let minted = google.minted();
    assert_eq!(minted.len(), 1, "one token for the account");
    assert_eq!(
        written.split_whitespace().collect::<Vec<_>>(),
        [minted[0].token.as_str(); 2],
        "GOOGLE_OAUTH_ACCESS_TOKEN and CLOUDSDK_AUTH_ACCESS_TOKEN are the minted token"
    );
    assert!(
        (before + LIFETIME..=after + LIFETIME).contains(&minted[0].expires_at),
        "the configured lifetime"
    );
    assert_exchanged_then_minted(&fx, &google);

    let body = result_comment(&fx, number, &cr.id);
    let note = format!(
        "Credentials: a short-lived Google token for `{}`",
        google.account
    );
    assert!(
        body.contains("Executed") && body.contains("Apply complete!") && body.contains(&note),
        "{body}"
    );
    let details = executed_record(&fx).details.unwrap();
    assert_eq!(details["google_account"], google.account.as_str());
    assert!(details["assumed_role"].is_null(), "no AWS role: {details}");
    assert_eq!(
        details["oidc"]["sub"],
        "repo:acme/gitops:ref:refs/heads/main"
    );
    assert!(!lock_exists(&fx, &cr));
}

/// One OIDC token, with the provider's audience; one exchange at STS, then one mint for the
/// account by the federated principal of the job's subject, both granted.
fn assert_exchanged_then_minted(fx: &Fx, google: &Google) {
    let issued = fx.oidc.issued();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0]["aud"], google.provider.token_audience().as_str());
    let sub = issued[0]["sub"].as_str().unwrap();
    assert_eq!(
        google.calls(),
        [
            ("POST /sts/v1/token".to_string(), 200, None),
            (
                google.mint_path(),
                200,
                Some(google.provider.principal(sub))
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gke_change_runs_with_a_token_minted_for_the_clusters_service_account() {
    let before = now();
    let r = gke_run(gitops_runner_job, true, &[]).await;
    let after = now();
    assert_eq!(r.out.status.code(), Some(0), "{}", crate::stderr(&r.out));
    assert_eq!(r.replicas(), 5);
    let minted = r.google.minted();
    assert_eq!(minted.len(), 1, "one token for the cluster's account");
    assert!(
        (before + LIFETIME..=after + LIFETIME).contains(&minted[0].expires_at),
        "gcp.token_lifetime is the minted token's lifetime"
    );
    let shown = r.shown.lock().unwrap().clone();
    assert!(!shown.is_empty());
    assert!(
        shown.iter().all(|t| *t == minted[0].token),
        "kubectl's bearer is the minted Google token, on every request"
    );
    assert!(
        r.kube
            .requests()
            .iter()
            .any(|q| q.method == "PATCH" && q.context.as_deref() == Some("staging"))
    );
    assert_exchanged_then_minted(&r.fx, &r.google);
    let body = result_comment(&r.fx, r.number, &r.cr.id);
    assert!(
        body.contains("deployment.apps/web scaled")
            && body.contains(&format!(
                "a short-lived Google token for `{}`",
                r.google.account
            )),
        "{body}"
    );
    assert_eq!(
        executed_record(&r.fx).details.unwrap()["google_account"],
        r.google.account.as_str()
    );
    assert!(!lock_exists(&r.fx, &r.cr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_branch_is_refused_before_any_exchange() {
    let r = gke_run(
        |sha| runner_job(&format!("{OWNER}/{REPO}"), "feature", sha),
        true,
        &[],
    )
    .await;
    r.failed_before_running(&["no credentials:", "not the default branch `main`"]);
    assert_eq!(r.fx.oidc.issued().len(), 1);
    assert!(
        r.google.calls().is_empty(),
        "STS never saw the token: {:?}",
        r.google.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_condition_refuses_another_repository_or_workflow() {
    let cases: [(&str, JobOf); 2] = [
        ("another repository", |sha| {
            runner_job("acme/other", "main", sha)
        }),
        ("a workflow of the GitOps repo itself", |sha| {
            ActionsJob::push(&format!("{OWNER}/{REPO}"), "main", sha)
        }),
    ];
    for (what, job) in cases {
        eprintln!("--- {what}");
        let r = gke_run(job, true, &[]).await;
        r.failed_before_running(&[
            "no credentials: Workload Identity Federation: the STS token exchange was refused",
            "rejected by the attribute condition; nothing was changed",
        ]);
        assert_eq!(
            r.google.calls(),
            [("POST /sts/v1/token".to_string(), 400, None)],
            "{what}: refused at the exchange, nothing minted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_without_the_pools_binding_mints_nothing() {
    let r = gke_run(gitops_runner_job, false, &[]).await;
    let why = format!(
        "no credentials: impersonating {}: generateAccessToken was refused: HTTP 403",
        r.google.account
    );
    r.failed_before_running(&[
        why.as_str(),
        "iam.serviceAccounts.getAccessToken",
        "(or it may not exist); nothing was changed",
    ]);
    let calls = r.google.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!((calls[0].1, calls[1].1), (200, 403), "{calls:?}");
    assert_eq!(calls[1].0, r.google.mint_path());
}

/// Every file under `dir`, as text.
fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_google_token_reaches_the_pr_the_trail_the_logs_or_the_disk() {
    let summary = tempfile::NamedTempFile::new().unwrap();
    let env = [
        ("RUST_LOG", "trace".to_string()),
        ("GITHUB_STEP_SUMMARY", summary.path().display().to_string()),
    ];
    let r = gke_run(gitops_runner_job, true, &env).await;
    assert_eq!(r.out.status.code(), Some(0), "{}", crate::stderr(&r.out));
    // The federated token and the minted one, both issued by the emulator during the run.
    let tokens: Vec<String> = r
        .google
        .gcp
        .issued_tokens()
        .into_iter()
        .map(|t| t.token)
        .collect();
    assert_eq!(tokens.len(), 2);
    let mut places: Vec<(String, String)> = vec![
        ("stdout".into(), crate::stdout(&r.out)),
        ("stderr".into(), crate::stderr(&r.out)),
        (
            "the job summary".into(),
            std::fs::read_to_string(summary.path()).unwrap(),
        ),
        ("the PR".into(), comments(&r.fx, r.number).join("\n")),
        (
            "the statuses".into(),
            serde_json::to_string(&r.fx.github.statuses(OWNER, REPO, &r.sha)).unwrap(),
        ),
    ];
    assert!(
        places[1].1.contains("TRACE") || places[1].1.contains("DEBUG"),
        "trace logs ran"
    );
    // The spool, the checkout, HOME and RUNNER_TEMP (the scratch with the kubeconfig is gone).
    for (path, text) in files_under(r.fx.dir.path()) {
        places.push((path.display().to_string(), text));
    }
    assert!(
        places.iter().any(|(p, _)| p.contains("/spool/")),
        "the audit spool is among them"
    );
    for (place, text) in &places {
        for token in &tokens {
            assert!(!text.contains(token.as_str()), "a Google token in {place}");
        }
        assert!(!text.contains("eyJhbGci"), "a JWT in {place}");
    }
}
