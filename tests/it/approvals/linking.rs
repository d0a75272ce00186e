//! `/slipway link github`: the device flow, and the token key it needs.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_github_runs_the_device_flow_and_keeps_only_the_policys_account_sealed() {
    let (app, fx, number) = with_open_pr().await;
    let run = |user: &str| {
        let user = user.to_string();
        let app = &app;
        async move { app.ack(&user, "/slipway link github").await }
    };
    let done = link_by_device_flow(
        &app.slack,
        &fx,
        async |u| run(u).await,
        "U0APPROVER1",
        "ada-approver",
    )
    .await;
    assert!(
        done.contains("Linked GitHub account `ada-approver`"),
        "{done}"
    );
    let svc = app.state.change.as_ref().unwrap();
    let linked = svc
        .tokens
        .get("U0APPROVER1")
        .await
        .unwrap()
        .expect("linked");
    assert_eq!(linked.login, "ada-approver");
    assert!(linked.token.expose().starts_with("ghu_") && linked.expires_at.is_some());
    // At rest the token is ciphertext.
    let db = std::fs::read(app.dir.path().join("state/state.redb")).unwrap();
    assert!(
        !db.windows(linked.token.expose().len())
            .any(|w| w == linked.token.expose().as_bytes()),
        "the token is not stored in the clear"
    );
    assert!(!db.windows(4).any(|w| w == b"ghu_"));

    // The linked token makes the review, as ada.
    let ts = change_message(&app).ts;
    approve_in_slack(&app, "U0APPROVER1", &ts, "").await;
    assert!(
        fx.github_wait(|| fx
            .github
            .reviews(OWNER, REPO, number)
            .iter()
            .any(|r| r["user"]["login"] == "ada-approver" && r["state"] == "APPROVED"))
            .await
    );
    assert!(responses_contain(&app.slack, "Approved PR").await);

    // Bo signs in to GitHub as ada: refused, nothing stored.
    let done = link_by_device_flow(
        &app.slack,
        &fx,
        async |u| run(u).await,
        "U0APPROVER2",
        "ada-approver",
    )
    .await;
    assert!(
        done.contains("you authorized as GitHub user `ada-approver`")
            || done.contains("You authorized as GitHub user `ada-approver`"),
        "{done}"
    );
    assert!(
        done.contains("the policy maps you to `bo-approver`"),
        "{done}"
    );
    assert!(svc.tokens.get("U0APPROVER2").await.unwrap().is_none());

    // Olga declines in GitHub.
    let before = app.slack.responses().len();
    assert!(run("U0OWNER").await.contains("Starting"));
    assert!(
        app.slack
            .wait_until(LONG, |s| s
                .responses()
                .iter()
                .skip(before)
                .any(|r| r.body.to_string().contains("enter the code")))
            .await
    );
    let code = user_code(
        &app.slack
            .responses()
            .into_iter()
            .skip(before)
            .find_map(|r| {
                r.body["text"]
                    .as_str()
                    .filter(|t| t.contains("enter the code"))
                    .map(String::from)
            })
            .unwrap(),
    );
    assert!(fx.github.deny_device(&code));
    assert!(
        responses_contain(&app.slack, "declined in GitHub").await,
        "{:?}",
        app.slack.responses()
    );
    assert!(svc.tokens.get("U0OWNER").await.unwrap().is_none());
    // Someone unknown to the policy is told at once.
    assert!(
        app.ack("U0NOBODY", "/slipway link github")
            .await
            .contains("doesn't know you")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_is_refused_without_a_token_key() {
    let fx = gitops::start().await;
    let app = TestApp::start_with(Options {
        env: fx.env.clone(),
        config_yaml: Some(fx.config_yaml.clone()),
        ..Options::default()
    })
    .await;
    let ack = app.ack("U0APPROVER1", "/slipway link github").await;
    assert!(
        ack.contains("SLIPWAY_TOKEN_KEY") && ack.contains("won't store"),
        "{ack}"
    );
    assert!(app.slack.responses().is_empty(), "no flow started");
}
