//! Git over smart HTTP against the emulator with the real `git` CLI and libgit2 (git2): clone,
//! authenticated push, refused push without credentials, per-ref rejection, and the webhooks a
//! push fires.
#![allow(clippy::unwrap_used)]
// Protocol scenario tests read top to bottom; the issue-17 line cap is for production code.
#![allow(clippy::too_many_lines)]

mod github_support;

use std::time::Duration;

use github_support::{OWNER, REPO, Receiver, authed_url, emulator, git, git_ok, octo};
use serde_json::Value;
use slipway_emulators::github::{AuthenticatedAs, GitHubEmulator};

fn clone(gh: &GitHubEmulator, dir: &std::path::Path) -> std::path::PathBuf {
    let work = dir.join("work");
    git_ok(dir, &["clone", "--quiet", &gh.git_url(OWNER, REPO), "work"]);
    work
}

fn commit(work: &std::path::Path, path: &str, content: &str, message: &str) -> String {
    let file = work.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, content).unwrap();
    git_ok(work, &["add", "-A"]);
    git_ok(work, &["commit", "--quiet", "-m", message]);
    git_ok(work, &["rev-parse", "HEAD"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_cli_clone_push_and_push_webhooks() {
    let gh = emulator().await;
    let hook = Receiver::start(200).await;
    gh.set_webhook(&hook.url, "s3cret");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let gh2 = gh.clone();

    let (work, sha) = tokio::task::spawn_blocking(move || {
        let work = clone(&gh2, &dir);
        assert_eq!(
            std::fs::read_to_string(work.join("deploy/staging.yaml")).unwrap(),
            "image: app:1.0.0\n"
        );
        let sha = commit(&work, "deploy/staging.yaml", "image: app:2.0.0\n", "bump");
        // Without credentials the push is refused (401 → git gives up: no prompt).
        let out = git(&work, &["push", "origin", "HEAD:refs/heads/slipway/cr-9"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Authentication failed") || err.contains("could not read Username"),
            "{err}"
        );
        // With a token it goes through.
        git_ok(
            &work,
            &[
                "push",
                "--quiet",
                &authed_url(&gh2, "alice-token"),
                "HEAD:refs/heads/slipway/cr-9",
            ],
        );
        (work, sha)
    })
    .await
    .unwrap();
    assert_eq!(
        gh.branch_sha(OWNER, REPO, "slipway/cr-9").as_deref(),
        Some(sha.as_str())
    );
    assert_eq!(
        gh.file_at(OWNER, REPO, "slipway/cr-9", "deploy/staging.yaml")
            .unwrap(),
        "image: app:2.0.0\n"
    );
    let push = gh
        .calls()
        .into_iter()
        .rev()
        .find(|c| c.path.ends_with("/git-receive-pack"))
        .unwrap();
    assert_eq!(push.authenticated_as, AuthenticatedAs::User("alice".into()));

    // A PR on the branch; the next push synchronizes it.
    let n = gh.open_pr(OWNER, REPO, "slipway/cr-9", "main", "Bump", "alice");
    gh.review(OWNER, REPO, n, "bob", "APPROVE", "");
    let gh2 = gh.clone();
    let second = tokio::task::spawn_blocking(move || {
        let sha = commit(
            &work,
            "deploy/staging.yaml",
            "image: app:2.0.1\n",
            "bump again",
        );
        git_ok(
            &work,
            &[
                "push",
                "--quiet",
                &authed_url(&gh2, "alice-token"),
                "HEAD:refs/heads/slipway/cr-9",
            ],
        );
        sha
    })
    .await
    .unwrap();
    let pr = &gh.pulls(OWNER, REPO)[0];
    assert_eq!(pr["head"]["sha"], second.as_str());
    // The earlier approval stays, on the older commit.
    assert_eq!(gh.reviews(OWNER, REPO, n)[0]["commit_id"], sha.as_str());

    assert!(gh.wait_for_deliveries(Duration::from_secs(10)).await);
    let events: Vec<(String, Option<String>)> = gh
        .deliveries()
        .iter()
        .map(|d| (d.event.clone(), d.action.clone()))
        .collect();
    let push = |e: &(String, Option<String>)| e.0 == "push";
    assert_eq!(events.iter().filter(|e| push(e)).count(), 2, "{events:?}");
    assert!(
        events.contains(&("pull_request".into(), Some("synchronize".into()))),
        "{events:?}"
    );
    let sync = gh
        .deliveries()
        .into_iter()
        .find(|d| d.action.as_deref() == Some("synchronize"))
        .unwrap();
    assert_eq!(sync.payload["before"], sha.as_str());
    assert_eq!(sync.payload["after"], second.as_str());
    let first_push = gh
        .deliveries()
        .into_iter()
        .find(|d| d.event == "push")
        .unwrap();
    assert_eq!(first_push.payload["ref"], "refs/heads/slipway/cr-9");
    assert_eq!(first_push.payload["created"], true);
    assert_eq!(first_push.payload["pusher"]["name"], "alice");
    assert_eq!(
        first_push.payload["head_commit"]["modified"],
        serde_json::json!(["deploy/staging.yaml"])
    );
    assert!(gh.deliveries().iter().all(|d| d.status == Some(200)));
    assert_eq!(hook.all().len(), gh.deliveries().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_push_is_a_per_ref_rejection() {
    let gh = emulator().await;
    gh.reject_pushes(OWNER, REPO, "refs/heads/protected/*");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let gh2 = gh.clone();
    let (stderr, ok) = tokio::task::spawn_blocking(move || {
        let work = clone(&gh2, &dir);
        commit(&work, "x.txt", "x\n", "x");
        // Two refs in one push: one refused, one accepted.
        let out = git(
            &work,
            &[
                "push",
                "--porcelain",
                &authed_url(&gh2, "bob-token"),
                "HEAD:refs/heads/protected/a",
                "HEAD:refs/heads/free",
            ],
        );
        (
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            out.status.success(),
        )
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(
        stderr.contains("!\tHEAD:refs/heads/protected/a\t[remote rejected] (hook declined)"),
        "{stderr}"
    );
    assert!(stderr.contains("GH013"), "{stderr}");
    assert!(gh.branch_sha(OWNER, REPO, "protected/a").is_none());
    assert!(gh.branch_sha(OWNER, REPO, "free").is_some());

    // The human-readable form.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let gh2 = gh.clone();
    let text = tokio::task::spawn_blocking(move || {
        let work = clone(&gh2, &dir);
        commit(&work, "y.txt", "y\n", "y");
        let out = git(
            &work,
            &[
                "push",
                &authed_url(&gh2, "bob-token"),
                "HEAD:refs/heads/protected/b",
            ],
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    })
    .await
    .unwrap();
    assert!(
        text.contains("! [remote rejected] HEAD -> protected/b (hook declined)"),
        "{text}"
    );
}

/// libgit2 over plain HTTP: push with credentials from a callback; a rejected ref is reported
/// through `push_update_reference` while `push` itself returns Ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git2_push_and_rejection_callback() {
    let gh = emulator().await;
    gh.reject_pushes(OWNER, REPO, "locked");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let url = gh.git_url(OWNER, REPO);
    let (sha, statuses) = tokio::task::spawn_blocking(move || {
        let repo = git2::Repository::init_bare(dir.join("mirror.git")).unwrap();
        let mut remote = repo.remote_anonymous(&url).unwrap();
        remote
            .fetch(&["+refs/heads/main:refs/heads/main"], None, None)
            .unwrap();
        let main = repo
            .find_reference("refs/heads/main")
            .unwrap()
            .peel_to_commit()
            .unwrap();
        // A commit built in memory (no work tree).
        let mut tree = repo.treebuilder(Some(&main.tree().unwrap())).unwrap();
        let blob = repo.blob(b"image: app:3.0.0\n").unwrap();
        let mut deploy = repo
            .treebuilder(Some(
                &repo
                    .find_tree(main.tree().unwrap().get_name("deploy").unwrap().id())
                    .unwrap(),
            ))
            .unwrap();
        deploy.insert("staging.yaml", blob, 0o100_644).unwrap();
        tree.insert("deploy", deploy.write().unwrap(), 0o040_000)
            .unwrap();
        let tree = repo.find_tree(tree.write().unwrap()).unwrap();
        let sig = git2::Signature::now("slipway", "slipway@example.com").unwrap();
        let oid = repo
            .commit(
                Some("refs/heads/slipway/cr-3"),
                &sig,
                &sig,
                "cr-3",
                &tree,
                &[&main],
            )
            .unwrap();
        repo.reference("refs/heads/locked", oid, true, "").unwrap();

        let statuses = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = statuses.clone();
        let mut callbacks = git2::RemoteCallbacks::new();
        callbacks
            .credentials(|_, _, _| git2::Cred::userpass_plaintext("x-access-token", "carol-token"));
        callbacks.push_update_reference(move |name, status| {
            sink.lock()
                .unwrap()
                .push((name.to_string(), status.map(str::to_string)));
            Ok(())
        });
        let mut opts = git2::PushOptions::new();
        opts.remote_callbacks(callbacks);
        remote
            .push(
                &[
                    "refs/heads/slipway/cr-3:refs/heads/slipway/cr-3",
                    "refs/heads/locked:refs/heads/locked",
                ],
                Some(&mut opts),
            )
            .unwrap();
        let statuses: Vec<(String, Option<String>)> = statuses.lock().unwrap().clone();
        (oid.to_string(), statuses)
    })
    .await
    .unwrap();
    assert_eq!(
        gh.branch_sha(OWNER, REPO, "slipway/cr-3").as_deref(),
        Some(sha.as_str())
    );
    assert!(gh.branch_sha(OWNER, REPO, "locked").is_none());
    assert!(
        statuses.contains(&("refs/heads/slipway/cr-3".into(), None)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("refs/heads/locked".into(), Some("hook declined".into()))),
        "{statuses:?}"
    );
    let pushes: Vec<Value> = gh
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("git-receive-pack") && c.method == "POST")
        .map(|c| serde_json::json!(c.status))
        .collect();
    assert_eq!(pushes, [serde_json::json!(200)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_repository_is_served_with_its_history_and_left_untouched() {
    let gh = GitHubEmulator::start().await;
    gh.add_user("alice", "alice-token");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // A source repository with two commits on `trunk` (its HEAD) and a second branch.
    let work = dir.join("src-work");
    std::fs::create_dir_all(&work).unwrap();
    git_ok(&work, &["init", "--quiet", "--initial-branch=trunk"]);
    commit(
        &work,
        "apps/api/staging/kustomization.yaml",
        "newTag: v1\n",
        "one",
    );
    let head = commit(
        &work,
        "apps/api/staging/kustomization.yaml",
        "newTag: v2\n",
        "two",
    );
    git_ok(&work, &["branch", "feature"]);
    let src = dir.join("src.git");
    git_ok(&dir, &["clone", "--quiet", "--bare", "src-work", "src.git"]);

    let served = gh.import_repo(OWNER, "big", &src);
    assert_ne!(served, src);
    assert_eq!(
        gh.branch_sha(OWNER, "big", "trunk").as_deref(),
        Some(head.as_str())
    );
    assert_eq!(
        gh.branch_sha(OWNER, "big", "feature").as_deref(),
        Some(head.as_str())
    );
    assert_eq!(
        gh.file_at(OWNER, "big", "trunk", "apps/api/staging/kustomization.yaml")
            .as_deref(),
        Some("newTag: v2\n")
    );
    // Its default branch is the source's HEAD, as the REST API reports it.
    let repo: Value = octo(&gh, "alice-token")
        .get(format!("/repos/{OWNER}/big"), None::<&()>)
        .await
        .unwrap();
    assert_eq!(repo["default_branch"], "trunk");

    // It clones with its history, takes pushes (through the same update hook), and the source
    // never sees them.
    gh.reject_pushes(OWNER, "big", "refs/heads/locked");
    let url = gh.git_url(OWNER, "big");
    let pushed = url.replacen("http://", "http://x-access-token:alice-token@", 1);
    let (sha, refused) = tokio::task::spawn_blocking(move || {
        git_ok(&dir, &["clone", "--quiet", &url, "clone"]);
        let clone = dir.join("clone");
        assert_eq!(git_ok(&clone, &["rev-list", "--count", "HEAD"]), "2");
        let sha = commit(
            &clone,
            "apps/api/staging/kustomization.yaml",
            "newTag: v3\n",
            "three",
        );
        git_ok(
            &clone,
            &["push", "--quiet", &pushed, "HEAD:refs/heads/slipway/cr-1"],
        );
        let refused = !git(
            &clone,
            &["push", "--quiet", &pushed, "HEAD:refs/heads/locked"],
        )
        .status
        .success();
        (sha, refused)
    })
    .await
    .unwrap();
    assert!(refused, "the update hook is installed");
    assert_eq!(
        gh.branch_sha(OWNER, "big", "slipway/cr-1").as_deref(),
        Some(sha.as_str())
    );
    let src_refs = git_ok(&src, &["for-each-ref", "--format=%(refname)"]);
    assert_eq!(src_refs, "refs/heads/feature\nrefs/heads/trunk");
    assert!(
        !git(&src, &["cat-file", "-e", &sha]).status.success(),
        "the source has no new objects"
    );
}
