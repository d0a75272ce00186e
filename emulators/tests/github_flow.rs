//! The GitHub emulator driven by the real octocrab client: pull requests, reviews, statuses,
//! merges into the bare repository, App JWT → installation token, and GitHub's errors.
// octocrab 0.54 creates reviews only through the deprecated `pull_number(n).reviews()` builder.
#![allow(deprecated)]
#![allow(clippy::unwrap_used)]
// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

mod github_support;

use github_support::{OWNER, REPO, branch, emulator, git_ok, octo};
use octocrab::commits::PullRequestTarget;
use octocrab::models::StatusState;
use octocrab::models::pulls::ReviewAction;
use octocrab::params;
use octocrab::params::repos::Reference;
use serde_json::{Value, json};
use slipway_emulators::github::{AuthenticatedAs, generate_app_key_pem};

fn github_error(e: &octocrab::Error) -> (u16, String, Option<Vec<Value>>) {
    match e {
        octocrab::Error::GitHub { source, .. } => (
            source.status_code.as_u16(),
            source.message.clone(),
            source.errors.clone(),
        ),
        other => panic!("expected a GitHub error, got {other:?}"),
    }
}

#[tokio::test]
async fn pull_request_review_and_merge_flow() {
    let gh = emulator().await;
    let head = branch(&gh, "slipway/cr-1", "alice");
    let alice = octo(&gh, "alice-token");

    let pr = alice
        .pulls(OWNER, REPO)
        .create("Bump staging", "slipway/cr-1", "main")
        .body("why: because")
        .send()
        .await
        .unwrap();
    assert_eq!(pr.number, 1);
    assert_eq!(pr.head.sha, head);
    assert_eq!(pr.head.ref_field, "slipway/cr-1");
    assert_eq!(pr.base.ref_field, "main");
    assert_eq!(pr.user.as_ref().unwrap().login, "alice");
    assert_eq!(pr.mergeable, Some(true));
    assert_eq!(pr.commits, Some(1));
    assert_eq!(pr.changed_files, Some(1));

    let open = alice
        .pulls(OWNER, REPO)
        .list()
        .state(params::State::Open)
        .head(format!("{OWNER}:slipway/cr-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.items.len(), 1);
    assert_eq!(open.items[0].number, 1);

    // The author cannot approve their own PR.
    let err = alice
        .pulls(OWNER, REPO)
        .pull_number(1)
        .reviews()
        .create_review(head.clone(), "lgtm", ReviewAction::Approve, vec![])
        .await
        .unwrap_err();
    let (status, _, errors) = github_error(&err);
    assert_eq!(status, 422);
    assert_eq!(
        errors.unwrap()[0],
        json!("Review Can not approve your own pull request")
    );

    for who in ["bob", "carol"] {
        let review = octo(&gh, &format!("{who}-token"))
            .pulls(OWNER, REPO)
            .pull_number(1)
            .reviews()
            .create_review(head.clone(), "", ReviewAction::Approve, vec![])
            .await
            .unwrap();
        assert_eq!(review.user.as_ref().unwrap().login, who);
        assert_eq!(review.commit_id.as_deref(), Some(head.as_str()));
        assert_eq!(
            review.state,
            Some(octocrab::models::pulls::ReviewState::Approved)
        );
    }
    let reviews = alice
        .pulls(OWNER, REPO)
        .list_reviews(1)
        .send()
        .await
        .unwrap();
    let logins: Vec<_> = reviews
        .items
        .iter()
        .map(|r| r.user.as_ref().unwrap().login.clone())
        .collect();
    assert_eq!(logins, ["bob", "carol"]);
    assert_eq!(gh.reviews(OWNER, REPO, 1)[0]["state"], "APPROVED");

    // Statuses on the head.
    let status = alice
        .repos(OWNER, REPO)
        .create_status(head.clone(), StatusState::Pending)
        .context("slipway/approval".to_string())
        .description("1 of 2 approvals".to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(status.context.as_deref(), Some("slipway/approval"));
    alice
        .repos(OWNER, REPO)
        .create_status(head.clone(), StatusState::Success)
        .context("slipway/approval".to_string())
        .description("2 of 2 approvals".to_string())
        .send()
        .await
        .unwrap();
    let combined = alice
        .repos(OWNER, REPO)
        .combined_status_for_ref(&Reference::Branch("slipway/cr-1".into()))
        .await
        .unwrap();
    assert_eq!(combined.state, StatusState::Success);
    assert_eq!(combined.total_count, 1);
    assert_eq!(gh.statuses(OWNER, REPO, &head).len(), 2);

    // A comment.
    let comment = alice
        .issues(OWNER, REPO)
        .create_comment(1, "Applied.")
        .await
        .unwrap();
    assert_eq!(comment.body.as_deref(), Some("Applied."));
    assert_eq!(gh.comments(OWNER, REPO, 1).len(), 1);

    // Merge with a stale sha → 409; with the head → a real merge commit.
    let err = alice
        .pulls(OWNER, REPO)
        .merge(1)
        .sha("0000000000000000000000000000000000000001")
        .send()
        .await
        .unwrap_err();
    let (status, message, _) = github_error(&err);
    assert_eq!(
        (status, message.as_str()),
        (
            409,
            "Head branch was modified. Review and try the merge again."
        )
    );

    let main_before = gh.branch_sha(OWNER, REPO, "main").unwrap();
    let merge = octo(&gh, "bob-token")
        .pulls(OWNER, REPO)
        .merge(1)
        .sha(head.clone())
        .send()
        .await
        .unwrap();
    assert!(merge.merged);
    let merged = merge.sha.unwrap();
    assert_eq!(
        gh.branch_sha(OWNER, REPO, "main").as_deref(),
        Some(merged.as_str())
    );

    let bare = gh.repo_dir(OWNER, REPO).unwrap();
    let parents = git_ok(&bare, &["rev-list", "--parents", "-n", "1", &merged]);
    assert_eq!(parents, format!("{merged} {main_before} {head}"));
    let message = git_ok(&bare, &["log", "-1", "--format=%s%n%an", &merged]);
    assert_eq!(message, "Merge pull request #1 from acme/slipway/cr-1\nbob");
    assert_eq!(
        git_ok(&bare, &["show", &format!("{merged}:deploy/staging.yaml")]),
        "image: app:slipway/cr-1"
    );

    let pr = alice.pulls(OWNER, REPO).get(1).await.unwrap();
    assert_eq!(pr.merged, Some(true));
    assert_eq!(pr.merge_commit_sha.as_deref(), Some(merged.as_str()));
    assert_eq!(pr.merged_by.unwrap().login, "bob");
    assert_eq!(pr.state, Some(octocrab::models::IssueState::Closed));

    // Merging again → 405.
    let err = alice.pulls(OWNER, REPO).merge(1).send().await.unwrap_err();
    assert_eq!(github_error(&err).0, 405);
}

#[tokio::test]
async fn commit_pulls_tell_merged_pr_commits_from_direct_pushes() {
    let gh = emulator().await;
    let direct = gh.push_direct(
        OWNER,
        REPO,
        "main",
        &[("stacks/net/main.tf", "# direct\n")],
        "direct push",
        "mallory",
    );
    let head = branch(&gh, "feature", "alice");
    let n = gh.open_pr(OWNER, REPO, "feature", "main", "Feature", "alice");
    gh.review(OWNER, REPO, n, "bob", "APPROVE", "");
    let merge = gh.merge(OWNER, REPO, n, "bob").unwrap();
    let alice = octo(&gh, "alice-token");

    for (sha, expected) in [(&merge, vec![n]), (&head, vec![n]), (&direct, vec![])] {
        let prs = alice
            .commits(OWNER, REPO)
            .associated_pull_requests(PullRequestTarget::Sha(sha.clone()))
            .send()
            .await
            .unwrap();
        let numbers: Vec<u64> = prs.items.iter().map(|p| p.number).collect();
        assert_eq!(numbers, expected, "PRs for {sha}");
    }
    // The history of a path tells which commit touched it last.
    let commits = alice
        .repos(OWNER, REPO)
        .list_commits()
        .path("stacks/net/main.tf")
        .send()
        .await
        .unwrap();
    assert_eq!(commits.items.len(), 1);
    assert_eq!(commits.items[0].sha, direct);
    assert_eq!(commits.items[0].author.as_ref().unwrap().login, "mallory");
}

#[tokio::test]
async fn app_jwt_installation_token_and_bot_identity() {
    let gh = emulator().await;
    let key = generate_app_key_pem().unwrap();
    let installation = gh.add_app(4242, &key, &[(OWNER, REPO)]);
    branch(&gh, "slipway/cr-2", "alice");

    let app = octocrab::Octocrab::builder()
        .base_uri(gh.api_url())
        .unwrap()
        .app(
            4242.into(),
            octocrab::auth::EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let bot = app.installation(installation.into()).unwrap();
    let pr = bot
        .pulls(OWNER, REPO)
        .create("Change request", "slipway/cr-2", "main")
        .send()
        .await
        .unwrap();
    assert_eq!(pr.user.as_ref().unwrap().login, "slipway[bot]");
    let labels = bot
        .issues(OWNER, REPO)
        .add_labels(pr.number, &["slipway".to_string()])
        .await
        .unwrap();
    assert_eq!(labels[0].name, "slipway");

    // The bot cannot approve its own PR; people can.
    let err = bot
        .pulls(OWNER, REPO)
        .pull_number(pr.number)
        .reviews()
        .create_review(pr.head.sha.clone(), "", ReviewAction::Approve, vec![])
        .await
        .unwrap_err();
    assert_eq!(github_error(&err).0, 422);
    gh.review(OWNER, REPO, pr.number, "bob", "APPROVE", "ok");

    let calls = gh.calls();
    let token_call = calls
        .iter()
        .find(|c| c.path.ends_with("/access_tokens"))
        .unwrap();
    assert_eq!(token_call.status, 201);
    assert_eq!(token_call.authenticated_as, AuthenticatedAs::App(4242));
    let create = calls
        .iter()
        .find(|c| c.method == "POST" && c.path.ends_with("/pulls"))
        .unwrap();
    assert_eq!(
        create.authenticated_as,
        AuthenticatedAs::Installation {
            app_id: 4242,
            installation_id: installation
        }
    );

    // A token for another installation's repo sees nothing there.
    gh.create_repo("other", "repo", "main", &[("a", "b")]);
    let err = bot.repos("other", "repo").get().await.unwrap_err();
    assert_eq!(github_error(&err).0, 404);

    // A JWT signed by another key is refused.
    let stranger = octocrab::Octocrab::builder()
        .base_uri(gh.api_url())
        .unwrap()
        .app(
            4242.into(),
            octocrab::auth::EncodingKey::from_rsa_pem(generate_app_key_pem().unwrap().as_bytes())
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = stranger
        .installation(installation.into())
        .unwrap()
        .repos(OWNER, REPO)
        .get()
        .await
        .unwrap_err();
    assert_eq!(github_error(&err).0, 401);
}

#[tokio::test]
async fn errors_rate_limits_and_refs() {
    let gh = emulator().await;
    let alice = octo(&gh, "alice-token");

    // Bad and missing credentials.
    let err = octo(&gh, "nope")
        .repos(OWNER, REPO)
        .get()
        .await
        .unwrap_err();
    assert_eq!(github_error(&err).0, 401);
    assert_eq!(github_error(&err).1, "Bad credentials");
    let raw = reqwest::get(format!("{}repos/{OWNER}/{REPO}", gh.api_url()))
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);

    // Unknown route.
    let r: Result<Value, _> = alice
        .get("/repos/acme/gitops/nonsense/route", None::<&()>)
        .await;
    let (status, message, _) = github_error(&r.unwrap_err());
    assert_eq!((status, message.as_str()), (404, "Not Found"));

    // Refs: an atomic lock ref can be created once.
    let main = gh.branch_sha(OWNER, REPO, "main").unwrap();
    let lock = json!({ "ref": "refs/slipway/locks/staging", "sha": main });
    let created: Value = alice
        .post("/repos/acme/gitops/git/refs", Some(&lock))
        .await
        .unwrap();
    assert_eq!(created["ref"], "refs/slipway/locks/staging");
    let err = alice
        .post::<_, Value>("/repos/acme/gitops/git/refs", Some(&lock))
        .await
        .unwrap_err();
    let (status, message, _) = github_error(&err);
    assert_eq!(
        (status, message.as_str()),
        (422, "Reference already exists")
    );
    let matching: Value = alice
        .get(
            "/repos/acme/gitops/git/matching-refs/slipway/locks/",
            None::<&()>,
        )
        .await
        .unwrap();
    assert_eq!(matching.as_array().unwrap().len(), 1);
    alice
        .repos(OWNER, REPO)
        .delete_ref(&Reference::Branch("x".into()))
        .await
        .unwrap_err();

    let main_ref = alice
        .repos(OWNER, REPO)
        .get_ref(&Reference::Branch("main".into()))
        .await
        .unwrap();
    match main_ref.object {
        octocrab::models::repos::Object::Commit { sha, .. } => assert_eq!(sha, main),
        other => panic!("unexpected {other:?}"),
    }

    // Contents.
    let content = alice
        .repos(OWNER, REPO)
        .get_content()
        .path("deploy/staging.yaml")
        .r#ref("main")
        .send()
        .await
        .unwrap();
    assert_eq!(
        content.items[0].decoded_content().unwrap(),
        "image: app:1.0.0\n"
    );

    // Secondary rate limit on the next write.
    gh.rate_limit_next(1, 7);
    let err = alice
        .issues(OWNER, REPO)
        .create_comment(1, "x")
        .await
        .unwrap_err();
    match &err {
        octocrab::Error::GitHub { source, .. } => {
            assert_eq!(source.status_code, 403);
            assert!(
                source.message.contains("secondary rate limit"),
                "{}",
                source.message
            );
            let retry = source.headers.as_ref().unwrap().get("retry-after").unwrap();
            assert_eq!(retry, "7");
        }
        other => panic!("{other:?}"),
    }
    // Reads are not limited, and the next write goes through (to a 404: there is no PR 1).
    alice.repos(OWNER, REPO).get().await.unwrap();
    let err = alice
        .issues(OWNER, REPO)
        .create_comment(1, "x")
        .await
        .unwrap_err();
    assert_eq!(github_error(&err).0, 404);

    // Comment body limit.
    branch(&gh, "long", "alice");
    let n = gh.open_pr(OWNER, REPO, "long", "main", "Long", "alice");
    let err = alice
        .issues(OWNER, REPO)
        .create_comment(n, "x".repeat(65_537))
        .await
        .unwrap_err();
    assert_eq!(github_error(&err).0, 422);
    alice
        .issues(OWNER, REPO)
        .create_comment(n, "x".repeat(65_536))
        .await
        .unwrap();
}

/// Reviews come 30 a page by default and 100 at most, with GitHub's `Link` header: octocrab's own
/// pagination reads them all, in order.
#[tokio::test]
async fn reviews_paginate_with_link_headers() {
    let gh = emulator().await;
    branch(&gh, "slipway/cr-p", "alice");
    let n = gh.open_pr(OWNER, REPO, "slipway/cr-p", "main", "Paged", "alice");
    for i in 0..105 {
        gh.review(OWNER, REPO, n, "bob", "COMMENT", &format!("note {i}"));
    }
    gh.review(OWNER, REPO, n, "carol", "APPROVE", "lgtm");
    let bob = octo(&gh, "bob-token");
    let first = bob.pulls(OWNER, REPO).list_reviews(n).send().await.unwrap();
    assert_eq!(first.items.len(), 30, "the default page size");
    let page = bob
        .pulls(OWNER, REPO)
        .list_reviews(n)
        .per_page(250)
        .send()
        .await
        .unwrap();
    assert_eq!(page.items.len(), 100, "at most 100 a page");
    let next = page.next.clone().expect("a next link");
    assert!(next.to_string().contains("page=2"), "{next}");
    assert!(next.to_string().contains("per_page=250"), "{next}");
    assert!(page.last.is_some() && page.prev.is_none());
    let all = bob.all_pages(page).await.unwrap();
    assert_eq!(all.len(), 106);
    assert_eq!(all[0].body.as_deref(), Some("note 0"));
    assert_eq!(
        all[105].user.as_ref().map(|u| u.login.as_str()),
        Some("carol")
    );
    let last = bob
        .pulls(OWNER, REPO)
        .list_reviews(n)
        .per_page(100)
        .page(2u32)
        .send()
        .await
        .unwrap();
    assert_eq!(last.items.len(), 6);
    assert!(last.next.is_none() && last.prev.is_some());
}

#[tokio::test]
async fn latest_successful_workflow_run() {
    let gh = emulator().await;
    let main = gh.branch_sha(OWNER, REPO, "main").unwrap();
    gh.add_workflow_run(OWNER, REPO, "main", &main, "CI", "success");
    let newer = gh.push_direct(OWNER, REPO, "main", &[("x", "1")], "newer", "alice");
    let failed = gh.add_workflow_run(OWNER, REPO, "main", &newer, "CI", "failure");
    gh.add_workflow_run(OWNER, REPO, "other", &newer, "CI", "success");
    let runs = octo(&gh, "alice-token")
        .workflows(OWNER, REPO)
        .list_all_runs()
        .branch("main")
        .status("success")
        .per_page(1)
        .send()
        .await
        .unwrap();
    assert_eq!(runs.total_count, Some(1));
    assert_eq!(runs.items[0].head_sha, main);
    assert_eq!(runs.items[0].conclusion.as_deref(), Some("success"));
    let all = octo(&gh, "alice-token")
        .workflows(OWNER, REPO)
        .list_all_runs()
        .branch("main")
        .send()
        .await
        .unwrap();
    assert_eq!(all.items[0].id.into_inner(), failed);
}

#[tokio::test]
async fn app_jwt_claims_are_checked() {
    use octocrab::jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let gh = emulator().await;
    let key = generate_app_key_pem().unwrap();
    let installation = gh.add_app(9, &key, &[(OWNER, REPO)]);
    let signing = EncodingKey::from_rsa_pem(key.as_bytes()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mint = |claims: Value| {
        let jwt = encode(&Header::new(Algorithm::RS256), &claims, &signing).unwrap();
        let url = format!(
            "{}app/installations/{installation}/access_tokens",
            gh.api_url()
        );
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(jwt)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    // `iss` as a string (a client id style) or a number both work.
    let (status, body) = mint(json!({ "iss": "9", "iat": now - 60, "exp": now + 540 })).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["token"].as_str().unwrap().starts_with("ghs_"));
    assert_eq!(body["repository_selection"], "selected");
    // Too long-lived, expired, unknown app.
    for claims in [
        json!({ "iss": 9, "iat": now, "exp": now + 601 }),
        json!({ "iss": 9, "iat": now - 700, "exp": now - 100 }),
        json!({ "iss": 10, "iat": now - 60, "exp": now + 540 }),
    ] {
        let (status, body) = mint(claims.clone()).await;
        assert_eq!(status, 401, "{claims}: {body}");
        assert!(body["message"].is_string());
        assert!(body["documentation_url"].is_string());
    }
    // The installation token works for REST; a user token cannot mint installation tokens.
    let (_, body) = mint(json!({ "iss": 9, "iat": now - 60, "exp": now + 540 })).await;
    let bot = octo(&gh, body["token"].as_str().unwrap());
    assert_eq!(bot.repos(OWNER, REPO).get().await.unwrap().name, REPO);
    let path = format!("/app/installations/{installation}/access_tokens");
    let err = octo(&gh, "alice-token")
        .post::<_, Value>(path, None::<&()>)
        .await
        .unwrap_err();
    assert_eq!(github_error(&err).0, 401);
}
