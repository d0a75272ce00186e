//! Repository metadata and the git database: refs, commits, contents.

use base64::Engine as _;
use serde_json::{Value, json};

use super::super::git::ZERO_SHA;
use super::super::json;
use super::super::ops::{self, ApiError, git_of, repo_of};
use super::super::state::State;
use super::{Ctx, Outcome, Reply, paginate};

pub(super) fn get_repo(st: &mut State, cx: &Ctx<'_>) -> Outcome {
    let repo = repo_of(st, cx.owner, cx.repo)?;
    Ok(Reply::ok(json::full_repo(st, repo, true)))
}

/// `heads/main` → `refs/heads/main`.
fn full_ref(r: &str) -> String {
    if r.starts_with("refs/") {
        r.to_string()
    } else {
        format!("refs/{r}")
    }
}

pub(super) fn get_ref(st: &mut State, cx: &Ctx<'_>, r: &str) -> Outcome {
    let g = git_of(st, cx.owner, cx.repo)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let name = full_ref(r);
    let (name, sha, kind) = g
        .refs(&name)
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::ok(json::git_ref(st, repo, &name, &sha, &kind)))
}

pub(super) fn matching_refs(st: &mut State, cx: &Ctx<'_>, r: &str) -> Outcome {
    let g = git_of(st, cx.owner, cx.repo)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let prefix = if r.is_empty() {
        "refs/".to_string()
    } else {
        full_ref(r)
    };
    let refs: Vec<Value> = g
        .refs(&prefix)
        .into_iter()
        .map(|(n, sha, kind)| json::git_ref(st, repo, &n, &sha, &kind))
        .collect();
    Ok(Reply::ok(Value::Array(refs)))
}

fn valid_ref_name(name: &str) -> bool {
    name.starts_with("refs/")
        && name.matches('/').count() >= 2
        && !name.ends_with('/')
        && !name.contains("..")
        && !name.contains("//")
        && !std::path::Path::new(name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("lock"))
        && !name
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c))
}

pub(super) fn create_ref(st: &mut State, cx: &Ctx<'_>) -> Outcome {
    let g = git_of(st, cx.owner, cx.repo)?;
    let name = cx.required("Reference", "ref")?.to_string();
    let sha = cx.required("Reference", "sha")?.to_string();
    if !valid_ref_name(&name) {
        return Err(ApiError::new(
            422,
            "Reference name must start with 'refs/' and have at least two slashes.",
        ));
    }
    let Some(kind) = g.object_type(&sha) else {
        return Err(ApiError::new(422, "Object does not exist"));
    };
    if g.ref_value(&name).is_some() || g.update_ref(&name, &sha, None).is_err() {
        return Err(ApiError::new(422, "Reference already exists"));
    }
    let login = cx.login().to_string();
    ops::ref_updated(st, cx.owner, cx.repo, &name, ZERO_SHA, &sha, &login);
    let repo = repo_of(st, cx.owner, cx.repo)?;
    Ok(Reply::created(json::git_ref(st, repo, &name, &sha, &kind)))
}

pub(super) fn update_ref(st: &mut State, cx: &Ctx<'_>, r: &str) -> Outcome {
    let g = git_of(st, cx.owner, cx.repo)?;
    let name = full_ref(r);
    let sha = cx.required("Reference", "sha")?.to_string();
    let force = cx
        .body
        .get("force")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(old) = g.ref_value(&name) else {
        return Err(ApiError::new(422, "Reference does not exist"));
    };
    let Some(kind) = g.object_type(&sha) else {
        return Err(ApiError::new(422, "Object does not exist"));
    };
    if !force && old != sha && !g.is_ancestor(&old, &sha) {
        return Err(ApiError::new(422, "Update is not a fast forward"));
    }
    if g.update_ref(&name, &sha, Some(&old)).is_err() {
        return Err(ApiError::new(
            409,
            "Reference update failed: the reference moved",
        ));
    }
    if old != sha {
        let login = cx.login().to_string();
        ops::ref_updated(st, cx.owner, cx.repo, &name, &old, &sha, &login);
    }
    let repo = repo_of(st, cx.owner, cx.repo)?;
    Ok(Reply::ok(json::git_ref(st, repo, &name, &sha, &kind)))
}

pub(super) fn delete_ref(st: &mut State, cx: &Ctx<'_>, r: &str) -> Outcome {
    let g = git_of(st, cx.owner, cx.repo)?;
    let name = full_ref(r);
    let Some(old) = g.ref_value(&name) else {
        return Err(ApiError::new(422, "Reference does not exist"));
    };
    if g.delete_ref(&name, &old).is_err() {
        return Err(ApiError::new(
            409,
            "Reference update failed: the reference moved",
        ));
    }
    let login = cx.login().to_string();
    ops::ref_updated(st, cx.owner, cx.repo, &name, &old, ZERO_SHA, &login);
    Ok(Reply::no_content())
}

pub(super) fn git_commit(st: &mut State, cx: &Ctx<'_>, sha: &str) -> Outcome {
    let g = git_of(st, cx.owner, cx.repo)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    if sha.len() < 4 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::not_found());
    }
    let info = g.commit_info(sha).ok_or_else(ApiError::not_found)?;
    Ok(Reply::ok(json::git_commit(st, repo, &info)))
}

/// Base64 in 60-character lines, as the contents API sends it.
fn wrapped_base64(data: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(b64.len() + b64.len() / 60 + 1);
    for chunk in b64.as_bytes().chunks(60) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out
}

pub(super) fn contents(st: &mut State, cx: &Ctx<'_>, path: &str) -> Outcome {
    let g = git_of(st, cx.owner, cx.repo)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let git_ref = cx
        .query("ref")
        .map_or_else(|| repo.default_branch.clone(), str::to_string);
    if g.resolve(&git_ref).is_none() {
        return Err(ApiError::new(
            404,
            format!("No commit found for the ref {git_ref}"),
        ));
    }
    let api = json::repo_api(st, repo);
    let html = json::repo_html(st, repo);
    let entry = |name: &str, p: &str, sha: &str, size: u64, kind: &str| {
        let url = format!("{api}/contents/{p}?ref={git_ref}");
        let git_url = if kind == "dir" {
            format!("{api}/git/trees/{sha}")
        } else {
            format!("{api}/git/blobs/{sha}")
        };
        let html_url = format!(
            "{html}/{}/{git_ref}/{p}",
            if kind == "dir" { "tree" } else { "blob" }
        );
        let download = (kind == "file").then(|| format!("{html}/raw/{git_ref}/{p}"));
        json!({
            "type": kind,
            "size": size,
            "name": name,
            "path": p,
            "sha": sha,
            "url": url.clone(),
            "git_url": git_url.clone(),
            "html_url": html_url.clone(),
            "download_url": download,
            "_links": { "self": url, "git": git_url, "html": html_url },
        })
    };
    let path = path.trim_matches('/');
    if let Some((sha, data)) = (!path.is_empty()).then(|| g.file(&git_ref, path)).flatten() {
        let name = path.rsplit('/').next().unwrap_or(path);
        let mut v = entry(name, path, &sha, data.len() as u64, "file");
        v["content"] = json!(wrapped_base64(&data));
        v["encoding"] = json!("base64");
        return Ok(Reply::ok(v));
    }
    let entries = g
        .dir_entries(&git_ref, path)
        .ok_or_else(ApiError::not_found)?;
    let list: Vec<Value> = entries
        .iter()
        .map(|(mode, kind, sha, size, name)| {
            let p = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}/{name}")
            };
            let kind = match (kind.as_str(), mode.as_str()) {
                ("tree", _) => "dir",
                ("commit", _) => "submodule",
                (_, "120000") => "symlink",
                _ => "file",
            };
            entry(name, &p, sha, if kind == "file" { *size } else { 0 }, kind)
        })
        .collect();
    Ok(Reply::ok(Value::Array(list)))
}

pub(super) fn list_commits(st: &mut State, cx: &Ctx<'_>) -> Outcome {
    let g = git_of(st, cx.owner, cx.repo)?;
    let repo = repo_of(st, cx.owner, cx.repo)?;
    let rev = cx
        .query("sha")
        .map_or_else(|| repo.default_branch.clone(), str::to_string);
    if g.resolve(&rev).is_none() {
        return Err(ApiError::new(
            404,
            format!("No commit found for SHA: {rev}"),
        ));
    }
    let path = cx.query("path").filter(|p| !p.is_empty());
    // Paginate the shas first: only the page's commits are read.
    let shas: Vec<Value> = g
        .log(&rev, path, 10_000)
        .into_iter()
        .map(Value::String)
        .collect();
    let mut reply = paginate(cx, &st.base_url, shas);
    if let Some(Value::Array(page)) = reply.body.take() {
        let commits: Vec<Value> = page
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|sha| g.commit_info(sha))
            .map(|c| json::commit(st, repo, &c))
            .collect();
        reply.body = Some(Value::Array(commits));
    }
    Ok(reply)
}
