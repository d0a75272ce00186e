//! The SCIM service provider through the real router: the conformance run of `scim2-cli` (a
//! client nobody here wrote), the providers' own flows, and an attacker's requests. The restart
//! test runs the real `slipway serve` twice on one state directory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::HeaderMap;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use slipway_core::audit::EventKind;
use slipway_tests::harness::{Options, TestApp, free_port, require_tool, write_audit_key};

pub(crate) const TOKEN: &str = "scim-test-token-0123456789abcdef";

async fn app() -> TestApp {
    TestApp::start_with(Options {
        env: vec![("SLIPWAY_SCIM_TOKEN", TOKEN.into())],
        ..Options::default()
    })
    .await
}

/// One HTTP request; `auth` is the whole `Authorization` header, if any.
async fn call(
    addr: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, HeaderMap, String) {
    call_attempt(addr, method, path, auth, body, 0).await
}

/// [`call`]'s `attempt`th try.
async fn call_attempt(
    addr: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Vec<u8>>,
    attempt: u32,
) -> (u16, HeaderMap, String) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}/scim/v2{path}"))
        .header("content-type", "application/scim+json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let body_again = body.clone();
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("answered in time");
    // A refusal that doesn't read the body (401, 413) may close the connection while the
    // client still writes it: the client then sees a broken pipe, not the answer. Asked again.
    let resp = match resp {
        Ok(r) => r,
        Err(e) if e.is_connect() => panic!("no connection: {e}"),
        Err(e) => {
            assert!(attempt < 5, "the connection kept breaking: {e}");
            let again = call_attempt(addr, method, path, auth, body_again, attempt + 1);
            return Box::pin(again).await;
        }
    };
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// An authorised request with a JSON body; returns the status and the parsed answer.
pub(crate) async fn scim(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let bearer = format!("Bearer {TOKEN}");
    let body = body.map(|b| b.to_string().into_bytes());
    let (status, headers, text) = call(addr, method, path, Some(&bearer), body).await;
    if !text.is_empty() {
        assert_eq!(
            headers["content-type"], "application/scim+json",
            "{method} {path}"
        );
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn assert_scim_error(body: &Value, status: u16, scim_type: Option<&str>) {
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
        "{body}"
    );
    assert_eq!(body["status"], status.to_string(), "{body}");
    assert_eq!(body["scimType"].as_str(), scim_type, "{body}");
}

/// The conformance run: every check of `scim2 test` must be a SUCCESS (none failed, none
/// skipped for a missing feature). The CLI's whole output is printed on any other status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_cli_conformance_run_passes_every_check() {
    require_tool(
        "scim2",
        "install scim2-cli 0.6 with `pip install 'scim2-cli>=0.6,<0.7'` (scripts/install-deps does)",
    );
    let app = app().await;
    let out = tokio::process::Command::new("scim2")
        .args([
            "--url",
            &format!("http://{}/scim/v2", app.addr),
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "test",
        ])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("scim2 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ansi = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap();
    let text = ansi.replace_all(&text, "").into_owned();
    let statuses = [
        "SUCCESS",
        "COMPLIANT",
        "ACCEPTABLE",
        "DEVIATION",
        "ERROR",
        "CRITICAL",
        "SKIPPED",
    ];
    let results: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| statuses.contains(w))
        .collect();
    let successes = results.iter().filter(|s| **s == "SUCCESS").count();
    assert!(
        out.status.success() && successes == results.len() && successes >= 100,
        "scim2 test: {successes} of {} checks succeeded (exit {}):\n{text}",
        results.len(),
        out.status
    );
    println!("scim2 test: all {successes} checks succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_routes_answer_404_without_a_token() {
    let app = TestApp::start().await;
    let addr = app.addr.to_string();
    for path in ["/Users", "/ServiceProviderConfig", "/Groups/x"] {
        let (status, _, _) = call(&addr, "GET", path, Some("Bearer anything-at-all"), None).await;
        assert_eq!(status, 404, "{path}");
    }
    assert!(!app.dir.path().join("state/directory.redb").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_missing_or_empty_bearer_token_is_401() {
    let app = app().await;
    let addr = app.addr.to_string();
    let wrong = format!("Bearer {}x", &TOKEN[..TOKEN.len() - 1]);
    let basic = format!("Basic {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    for auth in [
        None,
        Some("Bearer "),
        Some("Bearer"),
        Some(wrong.as_str()),
        Some(basic.as_str()),
    ] {
        for (method, path) in [
            ("GET", "/Users"),
            ("GET", "/ServiceProviderConfig"),
            ("DELETE", "/Users/x"),
        ] {
            let (status, headers, body) = call(&addr, method, path, auth, None).await;
            assert_eq!(status, 401, "{auth:?} {method} {path}");
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{headers:?}"
            );
            assert_eq!(headers["content-type"], "application/scim+json");
            assert_scim_error(&serde_json::from_str(&body).unwrap(), 401, None);
            assert!(!body.contains(TOKEN));
        }
    }
    let (status, _, _) = call(&addr, "GET", "/Users", Some(&lower), None).await;
    assert_eq!(status, 200, "the scheme is case-insensitive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_scim_body_is_413_and_unauthenticated_ones_are_not_read() {
    let app = app().await;
    let addr = app.addr.to_string();
    let big = format!(
        "{{\"userName\":\"big\",\"title\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, body) = call(
        &addr,
        "POST",
        "/Users",
        Some(&bearer),
        Some(big.clone().into_bytes()),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_scim_error(&serde_json::from_str(&body).unwrap(), 413, None);
    let (status, _, _) = call(&addr, "POST", "/Users", None, Some(big.into_bytes())).await;
    assert_eq!(status, 401);
    let (status, body) = scim(&addr, "GET", "/Users", None).await;
    assert_eq!((status, body["totalResults"].clone()), (200, json!(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_scim_json_filters_and_paths_are_400_never_a_panic() {
    let app = app().await;
    let addr = app.addr.to_string();
    let bearer = format!("Bearer {TOKEN}");
    let raw: [(&str, &str, &[u8], &str); 5] = [
        ("POST", "/Users", b"{not json", "invalidSyntax"),
        ("POST", "/Users", b"[1,2]", "invalidSyntax"),
        ("POST", "/Users", &[0xff, 0xfe, 0x00], "invalidSyntax"),
        ("POST", "/Users", b"{\"userName\": 12}", "invalidValue"),
        (
            "POST",
            "/.search",
            b"{\"filter\": \"userName eq\"}",
            "invalidFilter",
        ),
    ];
    for (method, path, body, scim_type) in raw {
        let (status, _, text) = call(&addr, method, path, Some(&bearer), Some(body.to_vec())).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert_scim_error(&serde_json::from_str(&text).unwrap(), 400, Some(scim_type));
    }
    for (query, scim_type) in [
        ("filter=userName%20eq", "invalidFilter"),
        (
            "filter=userName%20eq%20%22x%22%20and%20((((((((((((((((((a%20pr))))))))))))))))))",
            "invalidFilter",
        ),
        ("filter=%22x%22%20eq%20userName", "invalidFilter"),
        ("startIndex=abc", "invalidValue"),
        ("attributes=a%20b", "invalidPath"),
    ] {
        let (status, body) = scim(&addr, "GET", &format!("/Users?{query}"), None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_scim_error(&body, 400, Some(scim_type));
    }
    let (status, user) = scim(&addr, "POST", "/Users", Some(json!({"userName": "ada"}))).await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap();
    for (op, scim_type) in [
        (
            json!({"op": "replace", "path": "emails[type eq", "value": "x"}),
            "invalidPath",
        ),
        (
            json!({"op": "replace", "path": "meta.created", "value": "x"}),
            "invalidPath",
        ),
        (
            json!({"op": "replace", "path": "id", "value": "x"}),
            "mutability",
        ),
        (json!({"op": "remove"}), "noTarget"),
    ] {
        let (status, body) = scim(
            &addr,
            "PATCH",
            &format!("/Users/{id}"),
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [op]})),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_scim_error(&body, 400, Some(scim_type));
    }
    assert_eq!(app.get("/healthz").await, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_user_name_or_group_name_is_409_uniqueness() {
    let app = app().await;
    let addr = app.addr.to_string();
    let (status, _) = scim(
        &addr,
        "POST",
        "/Users",
        Some(json!({"userName": "ada@example.com"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = scim(
        &addr,
        "POST",
        "/Users",
        Some(json!({"userName": "ADA@example.com"})),
    )
    .await;
    assert_eq!(status, 409);
    assert_scim_error(&body, 409, Some("uniqueness"));
    let (status, _) = scim(
        &addr,
        "POST",
        "/Groups",
        Some(json!({"displayName": "ops"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = scim(
        &addr,
        "POST",
        "/Groups",
        Some(json!({"displayName": "Ops"})),
    )
    .await;
    assert_eq!(status, 409);
    assert_scim_error(&body, 409, Some("uniqueness"));
}

/// Entra's deprovisioning (PATCH `active` "False", members by filter) and Okta's (replace with a
/// value object), as the lead's identity resolution reads them back from the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_and_entra_flows_land_in_the_directory_and_the_audit_trail() {
    let app = app().await;
    let addr = app.addr.to_string();
    let (status, ada) = scim(
        &addr,
        "POST",
        "/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:slipway:2.0:User"],
            "userName": "ada@example.com", "externalId": "00u1",
            "emails": [{"value": "Ada@Example.com", "type": "work", "primary": true}],
            "active": true,
            "urn:ietf:params:scim:schemas:extension:slipway:2.0:User": {"githubLogin": "ada-l"},
        })),
    )
    .await;
    assert_eq!(status, 201, "{ada}");
    let ada_id = ada["id"].as_str().unwrap().to_string();
    let (_, group) = scim(
        &addr,
        "POST",
        "/Groups",
        Some(json!({"displayName": "sre"})),
    )
    .await;
    let group_id = group["id"].as_str().unwrap().to_string();
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let (status, _) = scim(
        &addr,
        "PATCH",
        &format!("/Groups/{group_id}"),
        Some(patch(
            json!([{"op": "Add", "path": "members", "value": [{"value": ada_id}]}]),
        )),
    )
    .await;
    assert_eq!(status, 200);

    let directory = app.state.directory.clone().expect("the directory is open");
    let found = directory.user_by_email("ada@example.com").unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.active), (ada_id.as_str(), true));
    assert_eq!(
        directory.user_by_github("ADA-L").unwrap().unwrap().id,
        ada_id
    );
    assert_eq!(directory.groups_of(&ada_id).unwrap()[0].display_name, "sre");
    let (_, listed) = scim(
        &addr,
        "GET",
        "/Users?filter=userName%20eq%20%22ADA%40example.com%22",
        None,
    )
    .await;
    assert_eq!(listed["totalResults"], 1);
    assert_eq!(listed["Resources"][0]["groups"][0]["display"], "sre");

    // Entra: unassignment is a PATCH of `active`, with the boolean as a string.
    let (status, body) = scim(
        &addr,
        "PATCH",
        &format!("/Users/{ada_id}"),
        Some(patch(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    )
    .await;
    assert_eq!((status, body["active"].clone()), (200, json!(false)));
    assert!(!directory.user(&ada_id).unwrap().unwrap().active);
    // Okta: reactivation is a replace with a value object.
    scim(
        &addr,
        "PATCH",
        &format!("/Users/{ada_id}"),
        Some(patch(json!([{"op": "replace", "value": {"active": true}}]))),
    )
    .await;
    assert!(directory.user(&ada_id).unwrap().unwrap().active);
    let (status, _) = scim(
        &addr,
        "PATCH",
        &format!("/Groups/{group_id}"),
        Some(patch(
            json!([{"op": "Remove", "path": format!("members[value eq \"{ada_id}\"]")}]),
        )),
    )
    .await;
    assert_eq!(status, 200);
    assert!(directory.groups_of(&ada_id).unwrap().is_empty());
    let (status, _) = scim(&addr, "DELETE", &format!("/Users/{ada_id}"), None).await;
    assert_eq!(status, 204);
    let (status, body) = scim(&addr, "GET", &format!("/Users/{ada_id}"), None).await;
    assert_eq!(status, 404);
    assert_scim_error(&body, 404, None);

    let actions: Vec<String> = app
        .audit()
        .iter()
        .filter(|r| r.kind == EventKind::Provisioning)
        .map(|r| {
            let d = r.details.as_ref().unwrap();
            format!(
                "{}:{}",
                d["resource_type"].as_str().unwrap(),
                d["action"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "User:create",
            "Group:create",
            "Group:patch",
            "User:patch",
            "User:patch",
            "Group:patch",
            "User:delete"
        ]
    );
    let sync = directory
        .sync_state(slipway_bridge::identity::Source::Scim)
        .unwrap();
    assert_eq!(sync.changes, 7);
}

/// `slipway serve` with a SCIM token, on `state`.
pub(crate) fn serve(state: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_slipway-under-test"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", state.parent().unwrap())
        .env(
            "SLIPWAY_SLACK_SIGNING_SECRET",
            "scim-restart-signing-secret",
        )
        .env("SLIPWAY_POLICY", slipway_tests::example_policy())
        .env("SLIPWAY_STATE_DIR", state)
        .env("SLIPWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "SLIPWAY_AUDIT_SIGNING_KEY_FILE",
            write_audit_key(state.parent().unwrap()),
        )
        .env("SLIPWAY_SCIM_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slipway serve starts")
}

/// Stops the bridge by its own PID.
pub(crate) struct Bridge(pub(crate) Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn ready(addr: &str) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the bridge on {addr} did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_user_survives_a_bridge_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let id = {
        let _bridge = Bridge(serve(&state, port));
        ready(&addr).await;
        let (status, user) = scim(
            &addr,
            "POST",
            "/Users",
            Some(json!({"userName": "grace@example.com", "active": true})),
        )
        .await;
        assert_eq!(status, 201, "{user}");
        user["id"].as_str().unwrap().to_string()
    };
    let _bridge = Bridge(serve(&state, port));
    ready(&addr).await;
    let (status, user) = scim(&addr, "GET", &format!("/Users/{id}"), None).await;
    assert_eq!(
        (status, user["userName"].clone()),
        (200, json!("grace@example.com"))
    );
    let (status, body) = scim(
        &addr,
        "POST",
        "/Users",
        Some(json!({"userName": "grace@example.com"})),
    )
    .await;
    assert_eq!(status, 409, "the user name is still taken: {body}");
}
