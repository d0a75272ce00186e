//! ServiceAccount tokens (`POST …/serviceaccounts/{name}/token`, TokenRequest in
//! `authentication.k8s.io/v1`) and what each token may do. An issued token is bound to its
//! ServiceAccount, its audiences and its expiry, and is refused (401) once expired or when none
//! of its audiences is one the server accepts. ServiceAccounts have one of two fixed roles, as
//! the manifests in `deploy/kubernetes/target-cluster/` grant them: read-only (get/list/watch,
//! no secrets), or dry-run only, whose writes are admitted only as dry runs, as the shipped
//! `ValidatingAdmissionPolicy` would.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// What a ServiceAccount may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRole {
    /// get, list, watch on everything but secrets.
    ReadOnly,
    /// Reads like [`AccountRole::ReadOnly`]; writes only with `dryRun=All`.
    DryRunOnly,
}

/// The name of the admission policy and binding the emulator plays.
pub const DRY_RUN_POLICY: &str = "slipway-dry-run-only";
/// The API server's audiences when none are set (the default service-account issuer).
pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// The shortest token TokenRequest grants (`MinTokenAgeSec`).
const MIN_SECONDS: i64 = 600;

/// One issued token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The bearer token itself (tests check it was never kept or shown).
    pub token: String,
    /// `namespace/name` of its ServiceAccount.
    pub account: String,
    pub audiences: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub expiration_seconds: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Tokens {
    pub(crate) accounts: BTreeMap<(String, String), AccountRole>,
    pub(crate) issued: HashMap<String, IssuedToken>,
    /// Audiences the server accepts; empty means [`DEFAULT_AUDIENCE`].
    pub(crate) api_audiences: Vec<String>,
}

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A fixed token (the bridge's own identity): may do anything, and mint tokens.
    Admin,
    Account {
        username: String,
        role: AccountRole,
    },
}

impl Tokens {
    fn audiences(&self) -> Vec<String> {
        if self.api_audiences.is_empty() {
            vec![DEFAULT_AUDIENCE.to_string()]
        } else {
            self.api_audiences.clone()
        }
    }

    /// The caller behind an issued token: `None` if it isn't one, `Some(Err(()))` if it is
    /// expired or for another audience.
    pub(crate) fn authenticate(&self, token: &str) -> Option<Result<Caller, ()>> {
        let t = self.issued.get(token)?;
        let accepted = self.audiences();
        if t.expires_at <= Utc::now() || !t.audiences.iter().any(|a| accepted.contains(a)) {
            return Some(Err(()));
        }
        let (ns, name) = t.account.split_once('/').unwrap_or_default();
        let role = self.accounts.get(&(ns.to_string(), name.to_string()))?;
        Some(Ok(Caller::Account {
            username: format!("system:serviceaccount:{ns}:{name}"),
            role: *role,
        }))
    }

    /// TokenReview (`authentication.k8s.io/v1`): who an issued token is, as an API server
    /// answers a delegated authenticator (Vault's Kubernetes auth). An unknown, expired or
    /// wrong-audience token is `authenticated: false` with an error, never a failure status.
    pub(crate) fn review(&self, body: &Bytes) -> (StatusCode, Value) {
        let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        // The API server takes the kind from the path when the body leaves it out (Vault's
        // client sends a bare object); a different one is refused.
        let field = |k: &str, want: &str| req[k].is_null() || req[k] == want;
        if !req.is_object()
            || !field("kind", "TokenReview")
            || !field("apiVersion", "authentication.k8s.io/v1")
        {
            let msg = "the body must be a TokenReview of authentication.k8s.io/v1";
            return failure(StatusCode::BAD_REQUEST, "BadRequest", msg, None);
        }
        let token = req["spec"]["token"].as_str().unwrap_or_default();
        let status = match (self.issued.get(token), self.authenticate(token)) {
            (Some(t), Some(Ok(_))) => {
                let (ns, name) = t.account.split_once('/').unwrap_or_default();
                json!({
                    "authenticated": true,
                    "user": {
                        "username": format!("system:serviceaccount:{ns}:{name}"),
                        "uid": account_uid(ns, name),
                        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
                    },
                    "audiences": t.audiences,
                })
            }
            _ => {
                json!({"authenticated": false, "error": "[invalid bearer token, token lookup failed]"})
            }
        };
        let answer = json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": req["spec"],
            "status": status,
        });
        (StatusCode::CREATED, answer)
    }

    /// TokenRequest: `(status, body)`.
    pub(crate) fn request(&mut self, ns: &str, name: &str, body: &Bytes) -> (StatusCode, Value) {
        if !self
            .accounts
            .contains_key(&(ns.to_string(), name.to_string()))
        {
            let msg = format!("serviceaccounts \"{name}\" not found");
            let details = json!({"name": name, "kind": "serviceaccounts"});
            return failure(StatusCode::NOT_FOUND, "NotFound", &msg, Some(details));
        }
        let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if req["kind"] != "TokenRequest" || req["apiVersion"] != "authentication.k8s.io/v1" {
            let msg = "the body must be a TokenRequest of authentication.k8s.io/v1";
            return failure(StatusCode::BAD_REQUEST, "BadRequest", msg, None);
        }
        let seconds = req["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
        if seconds < MIN_SECONDS {
            let msg = format!(
                "TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.expirationSeconds: \
                 Invalid value: {seconds}: may not specify a duration less than 10 minutes"
            );
            return failure(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &msg, None);
        }
        let audiences: Vec<String> = match req["spec"]["audiences"].as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => self.audiences(),
        };
        let expires_at = Utc::now() + chrono::Duration::seconds(seconds);
        let token = jwt_like(ns, name, &audiences, expires_at);
        self.issued.insert(
            token.clone(),
            IssuedToken {
                token: token.clone(),
                account: format!("{ns}/{name}"),
                audiences: audiences.clone(),
                expires_at,
                expiration_seconds: seconds,
            },
        );
        let answer = json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
            "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": null},
            "status": {
                "token": token,
                "expirationTimestamp": expires_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            },
        });
        (StatusCode::CREATED, answer)
    }
}

/// A ServiceAccount's uid: stable per account, as the API server keeps it.
pub(crate) fn account_uid(ns: &str, name: &str) -> String {
    let d = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{ns}/{name}").as_bytes(),
    );
    let h = d.as_ref().iter().fold(String::new(), |mut h, b| {
        let _ = std::fmt::Write::write_fmt(&mut h, format_args!("{b:02x}"));
        h
    });
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A token shaped like a projected ServiceAccount token (a JWT whose signature is random).
fn jwt_like(ns: &str, name: &str, audiences: &[String], exp: DateTime<Utc>) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let header = json!({"alg": "RS256", "kid": "emulator"});
    let claims = json!({
        "aud": audiences,
        "exp": exp.timestamp(),
        "iat": Utc::now().timestamp(),
        "iss": DEFAULT_AUDIENCE,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io": {
            "namespace": ns,
            "serviceaccount": {"name": name, "uid": account_uid(ns, name)},
        },
    });
    let mut sig = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut sig);
    format!(
        "{}.{}.{}",
        b64(&header),
        b64(&claims),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    )
}

/// A `Status` failure body, as kube-apiserver sends it (every refusal of the emulator's).
pub(crate) fn failure(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> (StatusCode, Value) {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    (code, s)
}

/// What RBAC and the dry-run admission policy say to a ServiceAccount's request, if they
/// refuse it. `resource` and `ns` come from the path; `dry_run` is `dryRun=All`.
pub(crate) fn authorize(
    caller: &Caller,
    method: &Method,
    path: &str,
    dry_run: bool,
) -> Option<(StatusCode, Value)> {
    let Caller::Account { username, role } = caller else {
        return None;
    };
    let (resource, ns, name) = describe(path);
    let verb = match *method {
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "use",
    };
    let forbidden = |why: String| {
        let msg = format!("{resource} \"{name}\" is forbidden: {why}");
        let details = json!({"name": name, "kind": resource});
        Some(failure(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &msg,
            Some(details),
        ))
    };
    let rbac = || {
        let scope = ns.map_or_else(String::new, |n| format!(" in the namespace \"{n}\""));
        forbidden(format!(
            "User \"{username}\" cannot {verb} resource \"{resource}\"{scope}"
        ))
    };
    let token_request = path.ends_with("/token") && path.contains("/serviceaccounts/");
    if resource == "secrets" || token_request {
        return rbac();
    }
    match (role, *method == Method::GET) {
        (_, true) => None,
        (AccountRole::ReadOnly, false) => rbac(),
        (AccountRole::DryRunOnly, false) if dry_run => None,
        (AccountRole::DryRunOnly, false) => forbidden(format!(
            "ValidatingAdmissionPolicy '{DRY_RUN_POLICY}' with binding '{DRY_RUN_POLICY}' denied \
             request: the dry-run ServiceAccount may only make dry-run requests (request.dryRun)"
        )),
    }
}

/// `(resource, namespace, name)` of an API path, for messages.
fn describe(path: &str) -> (String, Option<String>, String) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segs.as_slice() {
        ["api", "v1", rest @ ..] | ["apis", _, "v1", rest @ ..] => rest,
        _ => &segs[..],
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_string()), rest),
        _ => (None, rest),
    };
    let resource = rest.first().copied().unwrap_or_default().to_string();
    let name = rest.get(1).copied().unwrap_or_default().to_string();
    (resource, ns, name)
}
