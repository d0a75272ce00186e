//! kubectl changes from manifests in the GitOps repo (`apply -f`, `delete -f`): the file is pinned
//! by digest, dry-run as it is in the repo, and every object in it is authorised as what it is.

use std::time::Duration;

use sha2::Digest;

use slipway_tests::gitops::{OWNER, REPO};

use crate::changes::{change_file, start, submit_view, wait_pulls};

const LONG: Duration = Duration::from_secs(30);
const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n  namespace: web\ndata:\n  level: info\n";

fn push_to_main(fx: &slipway_tests::gitops::GitOpsFixture, path: &str, content: &str) {
    fx.github.push_direct(
        OWNER,
        REPO,
        "main",
        &[(path, content)],
        "add a manifest",
        "olga-owner",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_from_a_file_is_dry_run_against_the_repo_file_and_its_digest_is_pinned() {
    let (app, fx) = start().await;
    let path = "apps/web/old-config.yaml";
    push_to_main(&fx, path, CONFIG_MAP);
    app.kube
        .add_configmap("web", "app-config", &[("level", "info")]);
    let ack = app
        .ack("U0OPERATOR", &format!("/kubectl delete -f {path} -n web"))
        .await;
    assert!(ack.starts_with("Dry run of"), "{ack}");
    let shown = |s: &slipway_emulators::slack::SlackEmulator| {
        s.responses()
            .iter()
            .any(|r| r.body.to_string().contains("deleted (server dry run)"))
    };
    assert!(
        app.slack.wait_until(LONG, shown).await,
        "the dry run ran against the file: {:?}",
        app.slack.responses()
    );
    assert!(
        app.kube
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.ends_with("/configmaps/app-config")),
        "kubectl read the repo's file and asked the API"
    );
    assert!(
        app.kube.object("configmaps", "web", "app-config").is_some(),
        "only a dry run"
    );

    app.ack(
        "U0OPERATOR",
        &format!("/kubectl delete -f {path} -n web --apply"),
    )
    .await;
    assert!(app.slack.wait_until(LONG, |s| !s.views().is_empty()).await);
    let token = app.slack.views()[0]["private_metadata"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = submit_view(&app, "U0OPERATOR", &token, path).await;
    assert_eq!(status, 200);
    let pulls = wait_pulls(&fx, 1).await;
    let cr = change_file(&fx, pulls[0]["head"]["ref"].as_str().unwrap());
    assert_eq!(cr.rendered.files.len(), 1, "{:?}", cr.rendered);
    assert_eq!(cr.rendered.files[0].path, path);
    assert_eq!(
        cr.rendered.files[0].sha256,
        hex::encode(sha2::Sha256::digest(CONFIG_MAP.as_bytes())),
        "the approval is bound to the manifest's content"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_role_binding_inside_an_applied_manifest_is_refused_and_nothing_opens() {
    let (app, fx) = start().await;
    let path = "apps/web/sneaky.yaml";
    let manifest = format!(
        "{CONFIG_MAP}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: everyone-admin\n"
    );
    push_to_main(&fx, path, &manifest);
    app.ack(
        "U0OPERATOR",
        &format!("/kubectl apply -f {path} -n web --apply"),
    )
    .await;
    let refused = |s: &slipway_emulators::slack::SlackEmulator| {
        s.responses().iter().any(|r| {
            r.body
                .to_string()
                .contains("ClusterRoleBinding/everyone-admin")
        })
    };
    assert!(
        app.slack.wait_until(LONG, refused).await,
        "the refusal names the object: {:?}",
        app.slack.responses()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fx.github.pulls(OWNER, REPO).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_object_in_a_manifest_brings_its_protected_approval_rule() {
    let (app, fx) = start().await;
    let path = "apps/web/with-ns.yaml";
    let manifest =
        format!("{CONFIG_MAP}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n");
    push_to_main(&fx, path, &manifest);
    let ack = app
        .ack(
            "U0OPERATOR",
            &format!("/kubectl apply -f {path} -n web --apply"),
        )
        .await;
    assert!(
        ack.contains("standard"),
        "the ack knows only the command: {ack}"
    );
    let pulls = wait_pulls(&fx, 1).await;
    let cr = change_file(&fx, pulls[0]["head"]["ref"].as_str().unwrap());
    assert_eq!(
        cr.policy.approval.rule, "production",
        "the Namespace object is kube:staging/prod, which is protected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_take_the_scope_the_clusters_discovery_declares() {
    let (app, _fx) = start().await;
    let known = || {
        app.state
            .discovery
            .scopes("staging")
            .lookup("widgets.example.com")
            .is_some()
    };
    for _ in 0..100 {
        if known() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(known(), "the bridge asked the cluster's discovery");
    let ack = app
        .ack(
            "U0OPERATOR",
            "/kubectl @staging delete widgets.example.com w1 -n web",
        )
        .await;
    assert!(
        ack.starts_with("Dry run of"),
        "a namespaced custom resource is judged in its namespace: {ack}"
    );
    let ack = app
        .ack(
            "U0OPERATOR",
            "/kubectl @staging delete clusterwidgets.example.com w1",
        )
        .await;
    assert!(
        ack.contains(":no_entry:") && ack.contains("cluster-scoped"),
        "a cluster-scoped custom resource needs a cluster-scope grant: {ack}"
    );
    let ack = app
        .ack(
            "U0OPERATOR",
            "/kubectl @staging delete gadgets.unknown.io g1 -n web",
        )
        .await;
    assert!(
        ack.contains(":no_entry:"),
        "an unknown kind is cluster-scoped: {ack}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_one_namespace_never_advances_the_pr_of_a_namespace_its_name_prefixes() {
    let (app, fx) = start().await;
    let scale =
        |ns: &str, n: u32| format!("/kubectl scale deployment/api --replicas={n} -n {ns} --apply");
    // web's PR first, then web-api's, which GitHub lists before it (newest first).
    app.ack("U0OPERATOR", &scale("web", 3)).await;
    wait_pulls(&fx, 1).await;
    app.ack("U0OPERATOR", &scale("web-api", 2)).await;
    let both = wait_pulls(&fx, 2).await;
    let number_of = |ns: &str| {
        both.iter()
            .find(|p| {
                let id = p["head"]["ref"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("slipway/");
                change_file(&fx, p["head"]["ref"].as_str().unwrap()).resource
                    == format!("kube:staging/{ns}")
                    && id.starts_with("cr-")
            })
            .map(|p| p["number"].as_u64().unwrap())
            .unwrap()
    };
    let (web_api, web) = (number_of("web-api"), number_of("web"));
    // web's lock is held now: a second request for web advances web's PR, never web-api's.
    app.ack("U0OPERATOR", &scale("web", 4)).await;
    let advanced = |n: u64| {
        fx.github
            .comments(OWNER, REPO, n)
            .iter()
            .any(|c| c["body"].as_str().unwrap_or("").contains("Advanced by"))
    };
    assert!(
        fx.github_wait(|| advanced(web)).await,
        "web's own PR is advanced"
    );
    assert!(!advanced(web_api), "the web-api PR is untouched");
    assert_eq!(fx.github.pulls(OWNER, REPO).len(), 2);
}
