//! The loopback relay that gives libgit2 HTTPS through rustls: a request to the relay reaches an
//! HTTPS server (the Kubernetes emulator's TLS side, trusted via its CA) and comes back intact.

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use slipway_emulators::kube::KubeEmulator;
use slipway_infra::git_relay::GitRelay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_forwards_to_its_https_upstream() {
    let kube = KubeEmulator::start().await;
    let upstream = kube.https_url();
    let relay = GitRelay::start(&upstream, Some(&kube.ca_pem())).unwrap();
    let url = relay.local_url(&format!("{upstream}/version")).unwrap();
    assert!(url.starts_with("http://127.0.0.1:"));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let resp = client
        .request(
            hyper::Request::get(url)
                .header("accept", "application/json")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("gitVersion"),
        "{body:?}"
    );
    // An untrusted upstream (no extra CA) fails closed: 502, not a downgrade.
    let strict = GitRelay::start(&upstream, None).unwrap();
    let url = strict.local_url(&format!("{upstream}/version")).unwrap();
    let resp = client
        .request(hyper::Request::get(url).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
}

/// The relay's URL carries a secret path: a request that extends the secret into a host name
/// (`/<secret>.evil.example/x`) goes nowhere, and the relay's `Debug` never shows the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_pins_its_host_and_its_secret_stays_out_of_debug() {
    let kube = KubeEmulator::start().await;
    let upstream = kube.https_url();
    let relay = GitRelay::start(&upstream, Some(&kube.ca_pem())).unwrap();
    let local = relay.local_url(&format!("{upstream}/version")).unwrap();
    let (base, _) = local.rsplit_once("/version").unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let injected = format!("{base}.evil.example/version");
    let resp = client
        .request(hyper::Request::get(injected).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "the secret must end at a `/`");
    let secret = base.rsplit('/').next().unwrap().to_string();
    assert!(!format!("{relay:?}").contains(&secret));
}

/// The URL a mirror fetches from may carry a secret (the relay's path): it stays out of the
/// mirror's files (no FETCH_HEAD), its `Debug` and its errors, which show the real remote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_never_shows_the_url_it_fetches_from() {
    let github = slipway_emulators::github::GitHubEmulator::start().await;
    github.create_repo("acme", "gitops", "main", &[("README.md", "# x\n")]);
    let real = github.git_url("acme", "gitops");
    let shown = "https://github.com/acme/gitops.git";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.git");
    let (debug, err) = tokio::task::spawn_blocking({
        let real = real.clone();
        let path = path.clone();
        move || {
            let mirror = slipway_infra::gitops::Mirror::open(&path, &real, "trunk")
                .unwrap()
                .showing_url(shown);
            // Fetched, but its default branch isn't there: the error names the remote.
            let err = mirror.fetch(None).unwrap_err().to_string();
            (format!("{mirror:?}"), err)
        }
    })
    .await
    .unwrap();
    assert!(err.contains(shown) && !err.contains(&real), "{err}");
    assert!(debug.contains(shown) && !debug.contains(&real), "{debug}");
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&real),
            "{} holds the URL fetched from",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
