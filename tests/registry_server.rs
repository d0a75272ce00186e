//! A real OCI registry (Debian's `docker-registry`, distribution 2.8) on loopback, started and
//! stopped by a test, and minimal images pushed to it over the registry API (no docker client):
//! a config blob and an OCI manifest naming it. `scripts/install-deps` installs the package.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Digest as _;

use crate::harness::{free_port, require_tool};

/// The OCI image manifest media type the pushed images use.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// One registry process with filesystem storage in a temp dir; killed on drop.
#[derive(Debug)]
pub struct RegistryServer {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl RegistryServer {
    /// Start it and wait until `/v2/` answers.
    pub async fn start() -> RegistryServer {
        require_tool(
            "docker-registry",
            "install Debian's docker-registry (scripts/install-deps does)",
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config).expect("registry config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let server = RegistryServer {
            port,
            _dir: dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _, _)) = server
                .send("GET", &server.url_of("/v2/"), &[], Vec::new())
                .await
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("docker-registry did not start on 127.0.0.1:{port}");
    }

    /// `http://127.0.0.1:P`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let mut req = hyper::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, headers, body))
    }

    /// Upload one blob (POST for an upload session, then PUT with its digest).
    async fn push_blob(&self, name: &str, blob: &[u8]) -> String {
        let digest = sha256(blob);
        let (status, headers, body) = self
            .send(
                "POST",
                &self.url_of(&format!("/v2/{name}/blobs/uploads/")),
                &[],
                Vec::new(),
            )
            .await
            .expect("start upload");
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
        let location = headers["location"].to_str().expect("location").to_string();
        let location = if location.starts_with('/') {
            self.url_of(&location)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let (status, _, body) = self
            .send(
                "PUT",
                &format!("{location}{sep}digest={digest}"),
                &[("content-type", "application/octet-stream")],
                blob.to_vec(),
            )
            .await
            .expect("finish upload");
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        digest
    }

    /// Push a minimal image `name:tag` whose config says `variant` (so different variants have
    /// different digests); returns the manifest's digest.
    pub async fn push_image(&self, name: &str, tag: &str, variant: &str) -> String {
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"variant": variant}},
            "rootfs": {"type": "layers", "diff_ids": []},
        })
        .to_string();
        let config_digest = self.push_blob(name, config.as_bytes()).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [],
        })
        .to_string();
        let (status, _, body) = self
            .send(
                "PUT",
                &self.url_of(&format!("/v2/{name}/manifests/{tag}")),
                &[("content-type", OCI_MANIFEST)],
                manifest.clone().into_bytes(),
            )
            .await
            .expect("push manifest");
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        sha256(manifest.as_bytes())
    }
}
