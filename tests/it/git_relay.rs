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
