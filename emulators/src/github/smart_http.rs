//! Git over smart HTTP at `/git/{owner}/{repo}.git/…`, served by the real `git http-backend`
//! (run as a CGI, argv only). Fetches are anonymous; pushes need HTTP Basic credentials whose
//! password is an installation or user token. Refs matching a `reject_pushes` glob are refused
//! by the repository's `update` hook, so receive-pack reports them one by one
//! (`ng <ref> hook declined`) while the other refs of the push go through. Accepted ref updates
//! fire the same webhooks as REST changes.

use std::io::Read as _;
use std::process::Stdio;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use globset::Glob;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::auth;
use super::git::ZERO_SHA;
use super::ops;
use super::state::{Identity, Shared, lock};

/// One ref update a push asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) old: String,
    pub(crate) new: String,
    pub(crate) refname: String,
}

/// The commands at the start of a receive-pack request (pkt-lines up to the first flush).
pub(crate) fn parse_commands(body: &[u8]) -> Vec<Command> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= body.len() {
        let Some(len) = std::str::from_utf8(&body[pos..pos + 4])
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
        else {
            break;
        };
        if len == 0 || len < 4 || pos + len > body.len() {
            break;
        }
        let line = &body[pos + 4..pos + len];
        pos += len;
        let line = line.split(|b| *b == 0).next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut parts = line.trim_end_matches('\n').split(' ');
        if let (Some(old), Some(new), Some(refname)) = (parts.next(), parts.next(), parts.next())
            && old.len() == 40
            && new.len() == 40
        {
            {
                out.push(Command {
                    old: old.to_string(),
                    new: new.to_string(),
                    refname: refname.to_string(),
                });
            }
        }
    }
    out
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Basic realm=\"GitHub\""),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "Invalid username or token. Password authentication is not supported for Git operations.\n",
    )
        .into_response()
}

/// Whether a ref is refused by any of `globs` (matched against the full name and, for branches,
/// the branch name).
pub(crate) fn rejected(globs: &[String], refname: &str) -> bool {
    let short = refname.strip_prefix("refs/heads/");
    globs.iter().any(|g| {
        Glob::new(g).is_ok_and(|g| {
            let m = g.compile_matcher();
            m.is_match(refname) || short.is_some_and(|s| m.is_match(s))
        })
    })
}

fn decoded(headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip"));
    if !gzip {
        return body.to_vec();
    }
    let mut out = Vec::new();
    let _ = flate2::read::GzDecoder::new(body)
        .take(64 << 20)
        .read_to_end(&mut out);
    out
}

/// Handles one smart-HTTP request; `path` is what follows `/git/`.
pub(crate) async fn handle(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> (Response, Option<Identity>) {
    let Some((owner, rest)) = path.split_once('/') else {
        return (text(StatusCode::NOT_FOUND, "Repository not found.\n"), None);
    };
    let (repo_name, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let repo_name = repo_name.strip_suffix(".git").unwrap_or(repo_name);
    let query = uri.query().unwrap_or("");
    let receive = sub == "git-receive-pack"
        || (sub == "info/refs" && query.contains("service=git-receive-pack"));
    let credential = auth::parse_authorization(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let (root, path_info, identity, globs) = {
        let st = lock(state);
        let Some(repo) = st.repo(owner, repo_name) else {
            return (text(StatusCode::NOT_FOUND, "Repository not found.\n"), None);
        };
        let identity = match auth::identify(&st, &credential) {
            Ok(Some(Identity::App(_))) | Err(_) => return (unauthorized(), None),
            Ok(i) => i,
        };
        if receive {
            let Some(who) = &identity else {
                return (unauthorized(), None);
            };
            if !st.can_access(who, owner, repo_name) {
                let msg = format!(
                    "remote: Permission to {}.git denied to {}.\n",
                    repo.full_name(),
                    who.login().unwrap_or("unknown")
                );
                return (text(StatusCode::FORBIDDEN, &msg), identity.clone());
            }
        } else if identity
            .as_ref()
            .is_some_and(|who| !st.can_access(who, owner, repo_name))
        {
            return (
                text(StatusCode::NOT_FOUND, "Repository not found.\n"),
                identity,
            );
        }
        let path_info = format!("/{}/{}.git/{sub}", repo.owner, repo.name);
        (
            st.repos_root.clone(),
            path_info,
            identity,
            repo.reject_globs.clone(),
        )
    };
    let (repo_owner, repo_name) = {
        let mut it = path_info.trim_start_matches('/').split('/');
        (
            it.next().unwrap_or_default().to_string(),
            it.next()
                .unwrap_or_default()
                .trim_end_matches(".git")
                .to_string(),
        )
    };
    let commands = if receive && method == Method::POST {
        parse_commands(&decoded(headers, body))
    } else {
        Vec::new()
    };
    let reject: Vec<&str> = commands
        .iter()
        .filter(|c| rejected(&globs, &c.refname))
        .map(|c| c.refname.as_str())
        .collect();

    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend").env_clear();
    for key in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    let header_str = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &path_info)
        .env("REQUEST_METHOD", method.as_str())
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_TYPE", header_str(header::CONTENT_TYPE))
        .env("SLIPWAY_REJECT_REFS", reject.join("\n"));
    if let Some(login) = identity.as_ref().and_then(Identity::login) {
        cmd.env("REMOTE_USER", login);
    }
    if !body.is_empty() {
        cmd.env("CONTENT_LENGTH", body.len().to_string());
    }
    let encoding = header_str(header::CONTENT_ENCODING);
    if !encoding.is_empty() {
        cmd.env("HTTP_CONTENT_ENCODING", encoding);
    }
    if let Some(p) = headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
        cmd.env("GIT_PROTOCOL", p);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let Ok(mut child) = cmd.spawn() else {
        return (
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot run git http-backend\n",
            ),
            identity,
        );
    };
    let mut stdin = child.stdin.take();
    let input = body.to_vec();
    let writer = tokio::spawn(async move {
        if let Some(stdin) = stdin.as_mut() {
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }
    });
    let mut stderr = child.stderr.take();
    let err_reader = tokio::spawn(async move {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s).await;
        }
        s
    });
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_end(&mut out).await;
    }
    let _ = writer.await;
    let _ = child.wait().await;
    let errors = err_reader.await.unwrap_or_default();
    if !errors.trim().is_empty() {
        tracing::debug!(target: "github_emulator", "git http-backend: {}", errors.trim());
    }
    let response = cgi_response(&out);

    if !commands.is_empty() {
        let pusher = identity
            .as_ref()
            .and_then(Identity::login)
            .unwrap_or("unknown")
            .to_string();
        let mut st = lock(state);
        if let Ok(g) = ops::git_of(&st, &repo_owner, &repo_name) {
            let applied: Vec<&Command> = commands
                .iter()
                .filter(|c| {
                    let now = g.ref_value(&c.refname);
                    if c.new == ZERO_SHA {
                        now.is_none() && c.old != ZERO_SHA
                    } else {
                        now.as_deref() == Some(c.new.as_str())
                    }
                })
                .collect();
            for c in applied {
                ops::ref_updated(
                    &mut st,
                    &repo_owner,
                    &repo_name,
                    &c.refname,
                    &c.old,
                    &c.new,
                    &pusher,
                );
            }
        }
    }
    (response, identity)
}

/// Turns a CGI reply (headers, blank line, body) into an HTTP response.
fn cgi_response(out: &[u8]) -> Response {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else {
        return text(
            StatusCode::BAD_GATEWAY,
            "malformed reply from git http-backend\n",
        );
    };
    let head = String::from_utf8_lossy(&out[..at]);
    let mut builder = Response::builder().status(StatusCode::OK);
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            builder = builder.status(code);
        } else {
            builder = builder.header(name.trim(), value);
        }
    }
    builder
        .body(Body::from(out[at + sep..].to_vec()))
        .unwrap_or_else(|_| {
            text(
                StatusCode::BAD_GATEWAY,
                "bad header from git http-backend\n",
            )
        })
}
