//! Schema checking for `github_schema.rs`: the extracted OpenAPI response schemas and webhook
//! schemas under `tests/fixtures/github/`, and a checker that drives the emulator through
//! octocrab's raw request API or plain reqwest and validates every answer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use http_body_util::BodyExt as _;
use octocrab::Octocrab;
use serde_json::{Value, json};
use slipway_emulators::github::GitHubEmulator;

use super::{OWNER, REPO};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/github")
}

pub fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Up to 20 validation errors, with where they are.
pub fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(20)
        .collect()
}

/// What GitHub documents for an operation answering a status.
pub enum Documented {
    No,
    /// Documented, without a JSON body schema.
    WithoutSchema,
    Schema(Box<jsonschema::Validator>),
}

/// The response schema of `operation` (`pulls/get`) for `status`, with the file's `$defs`.
pub fn response_validator(operation: &str, status: u16) -> Documented {
    let name = operation.replace('/', ".");
    let file = load(&fixtures().join(format!("openapi/{name}.json")));
    let Some(schema) = file["responses"].get(status.to_string()) else {
        return Documented::No;
    };
    if schema.is_null() {
        return Documented::WithoutSchema;
    }
    let mut root = schema.clone();
    root["$defs"] = file["$defs"].clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    Documented::Schema(Box::new(
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("{operation} {status}: bad schema: {e}")),
    ))
}

/// The webhook schema of `event` / `action` (draft-07, formats checked).
pub fn webhook_validator(event: &str, action: Option<&str>) -> jsonschema::Validator {
    let name = format!("{event}.{}", action.unwrap_or("event"));
    let schema = load(&fixtures().join(format!("webhooks/{name}.json")));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name}: bad schema: {e}"))
}

/// Drives the emulator and checks each answer against its operation's schema. Requests are
/// written `"METHOD path"`; a path without a leading `/` is relative to `/repos/acme/gitops/`.
pub struct Checker {
    pub gh: GitHubEmulator,
    pub octo: Octocrab,
    pub token: String,
    /// `(operation, status)` pairs validated.
    pub seen: Mutex<BTreeSet<(String, u16)>>,
}

fn split(req: &str) -> (&str, String) {
    let (method, path) = req.split_once(' ').unwrap();
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/repos/{OWNER}/{REPO}/{path}")
    };
    (method, path)
}

impl Checker {
    pub fn new(gh: &GitHubEmulator, octo: Octocrab, token: &str) -> Checker {
        Checker {
            gh: gh.clone(),
            octo,
            token: token.to_string(),
            seen: Mutex::default(),
        }
    }

    pub fn check(&self, operation: &str, status: u16, body: &Value) {
        match response_validator(operation, status) {
            Documented::No => panic!("{operation}: status {status} is not documented; {body}"),
            Documented::WithoutSchema if status == 204 => {
                assert!(body.is_null(), "{operation}: 204 with a body");
            }
            // Documented without a body schema: GitHub's usual error body.
            Documented::WithoutSchema => {
                assert!(body["message"].is_string(), "{operation} {status}: {body}");
            }
            Documented::Schema(validator) => {
                let errs = errors(&validator, body);
                assert!(
                    errs.is_empty(),
                    "{operation} {status} does not match its schema:\n{}\nbody: {body:#}",
                    errs.join("\n")
                );
            }
        }
        let key = (operation.to_string(), status);
        self.seen.lock().unwrap().insert(key);
    }

    /// Through octocrab's raw request API (error bodies come back unmapped).
    pub async fn o(&self, operation: &str, req: &str, body: Option<Value>, expect: u16) -> Value {
        let (method, path) = split(req);
        let body = body.as_ref();
        let resp = match method {
            "GET" => self.octo._get(path.as_str()).await,
            "POST" => self.octo._post(path.as_str(), body).await,
            "PATCH" => self.octo._patch(path.as_str(), body).await,
            "PUT" => self.octo._put(path.as_str(), body).await,
            "DELETE" => self.octo._delete(path.as_str(), body).await,
            _ => unreachable!(),
        }
        .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        assert_eq!(status, expect, "{req}: {value}");
        self.check(operation, status, &value);
        value
    }

    /// Through plain HTTP (reqwest), with `Authorization: token …`.
    pub async fn r(&self, operation: &str, req: &str, body: Option<Value>, expect: u16) -> Value {
        let (method, path) = split(req);
        let url = format!("{}{path}", self.gh.base_url());
        let mut request = reqwest::Client::new()
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
            .header("authorization", format!("token {}", self.token))
            .header("accept", "application/vnd.github+json");
        if let Some(b) = body {
            request = request.json(&b);
        }
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        assert_eq!(status, expect, "{req}: {value}");
        self.check(operation, status, &value);
        value
    }
}
