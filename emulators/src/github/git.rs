//! Git plumbing on the bare repositories, through the real `git` CLI (argv only, no shell, with
//! the user's and the system's git config ignored).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeZone as _, Utc};

pub(crate) const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The `update` hook every repository gets: it refuses the refs the emulator names in
/// `SLIPWAY_REJECT_REFS` (newline-separated full ref names; decided by `reject_pushes` globs),
/// so receive-pack reports a per-ref `ng <ref> hook declined`.
const UPDATE_HOOK: &str = r#"#!/bin/sh
# Installed by the Slipway GitHub emulator: a per-ref pre-receive policy.
set -f
IFS='
'
for r in $SLIPWAY_REJECT_REFS; do
  if [ "$r" = "$1" ]; then
    echo "error: GH013: Repository rule violations found for $1." >&2
    echo "- Pushes to this ref are refused by the emulator's reject_pushes rule." >&2
    exit 1
  fi
done
exit 0
"#;

/// A `git` command with an isolated configuration.
pub(crate) fn command(git_dir: Option<&Path>) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear();
    for key in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0");
    if let Some(dir) = git_dir {
        cmd.arg("--git-dir").arg(dir);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Output of a finished git command.
pub(crate) struct Out {
    pub(crate) ok: bool,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
}

impl Out {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim_end().to_string()
    }
}

pub(crate) fn run(mut cmd: Command, input: Option<&[u8]>) -> Out {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Out {
                ok: false,
                stdout: Vec::new(),
                stderr: format!("cannot run git: {e}"),
            };
        }
    };
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(data);
    }
    match child.wait_with_output() {
        Ok(o) => Out {
            ok: o.status.success(),
            stdout: o.stdout,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        Err(e) => Out {
            ok: false,
            stdout: Vec::new(),
            stderr: e.to_string(),
        },
    }
}

fn git(dir: &Path, args: &[&str]) -> Out {
    let mut cmd = command(Some(dir));
    cmd.args(args);
    run(cmd, None)
}

/// A commit's author or committer line.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) date: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct CommitInfo {
    pub(crate) sha: String,
    pub(crate) tree: String,
    pub(crate) parents: Vec<String>,
    pub(crate) author: Person,
    pub(crate) committer: Person,
    pub(crate) message: String,
}

/// One `ls-tree -l` entry: `(mode, type, sha, size, name)`.
pub(crate) type TreeEntry = (String, String, String, u64, String);

/// The bare repository at `dir`.
#[derive(Debug, Clone)]
pub(crate) struct Repo {
    pub(crate) dir: PathBuf,
}

static INDEX_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Repo {
    pub(crate) fn new(dir: &Path) -> Repo {
        Repo {
            dir: dir.to_path_buf(),
        }
    }

    /// `git init --bare` with `default_branch`, smart-HTTP push enabled and the update hook.
    pub(crate) fn init(dir: &Path, default_branch: &str) -> Result<Repo, String> {
        let mut cmd = command(None);
        cmd.args(["init", "--quiet", "--bare"])
            .arg(format!("--initial-branch={default_branch}"))
            .arg(dir);
        let out = run(cmd, None);
        if !out.ok {
            return Err(out.stderr);
        }
        Repo::configure(dir)
    }

    /// A bare copy of the existing repository `src` (objects hard-linked where the filesystem
    /// allows; every branch and tag), configured like [`Repo::init`]. Returns it and its default
    /// branch (the source's `HEAD`).
    pub(crate) fn clone_bare(src: &Path, dir: &Path) -> Result<(Repo, String), String> {
        let mut cmd = command(None);
        cmd.args(["clone", "--quiet", "--bare", "--local"])
            .arg(src)
            .arg(dir);
        let out = run(cmd, None);
        if !out.ok {
            return Err(out.stderr);
        }
        let head = git(dir, &["symbolic-ref", "--short", "HEAD"]);
        if !head.ok {
            return Err(head.stderr);
        }
        Ok((Repo::configure(dir)?, head.text()))
    }

    /// Smart-HTTP push enabled, non-fast-forward pushes allowed, and the update hook.
    fn configure(dir: &Path) -> Result<Repo, String> {
        let repo = Repo::new(dir);
        for (k, v) in [
            ("http.receivepack", "true"),
            ("receive.denyNonFastForwards", "false"),
            ("core.logAllRefUpdates", "false"),
        ] {
            let out = git(dir, &["config", k, v]);
            if !out.ok {
                return Err(out.stderr);
            }
        }
        let hooks = dir.join("hooks");
        std::fs::create_dir_all(&hooks).map_err(|e| e.to_string())?;
        let hook = hooks.join("update");
        std::fs::write(&hook, UPDATE_HOOK).map_err(|e| e.to_string())?;
        set_executable(&hook)?;
        Ok(repo)
    }

    /// The commit `rev` names (branch, full ref, sha, `sha^`…), if any.
    pub(crate) fn resolve(&self, rev: &str) -> Option<String> {
        if rev.starts_with('-') || rev.is_empty() {
            return None;
        }
        let out = git(
            &self.dir,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{commit}}"),
            ],
        );
        out.ok.then(|| out.text())
    }

    /// The value of exactly `refname` (no DWIM), if it exists.
    pub(crate) fn ref_value(&self, refname: &str) -> Option<String> {
        self.refs(refname)
            .into_iter()
            .find(|(name, _, _)| name == refname)
            .map(|(_, sha, _)| sha)
    }

    /// `(refname, object sha, object type)` of every ref under `prefix` (a full ref prefix, like
    /// `refs/heads/` or `refs/heads/ma`), sorted by name.
    pub(crate) fn refs(&self, prefix: &str) -> Vec<(String, String, String)> {
        let out = git(
            &self.dir,
            &[
                "for-each-ref",
                "--format=%(refname) %(objectname) %(objecttype)",
            ],
        );
        out.text()
            .lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, ' ');
                Some((
                    it.next()?.to_string(),
                    it.next()?.to_string(),
                    it.next()?.to_string(),
                ))
            })
            .filter(|(name, _, _)| name.starts_with(prefix))
            .collect()
    }

    /// Atomically sets `refname` to `new` if it currently is `old` (`None`: must not exist).
    pub(crate) fn update_ref(
        &self,
        refname: &str,
        new: &str,
        old: Option<&str>,
    ) -> Result<(), String> {
        let out = git(
            &self.dir,
            &["update-ref", refname, new, old.unwrap_or(ZERO_SHA)],
        );
        if out.ok { Ok(()) } else { Err(out.stderr) }
    }

    /// Deletes `refname` if it currently is `old`.
    pub(crate) fn delete_ref(&self, refname: &str, old: &str) -> Result<(), String> {
        let out = git(&self.dir, &["update-ref", "-d", refname, old]);
        if out.ok { Ok(()) } else { Err(out.stderr) }
    }

    pub(crate) fn commit_info(&self, sha: &str) -> Option<CommitInfo> {
        let sha = self.resolve(sha)?;
        let out = git(&self.dir, &["cat-file", "commit", &sha]);
        if !out.ok {
            return None;
        }
        parse_commit(&sha, &String::from_utf8_lossy(&out.stdout))
    }

    /// The type of object `sha` (a full 40-hex object id; anything else is `None`).
    pub(crate) fn object_type(&self, sha: &str) -> Option<String> {
        if !is_sha(sha) {
            return None;
        }
        let out = git(&self.dir, &["cat-file", "-t", sha]);
        out.ok.then(|| out.text())
    }

    /// The blob at `rev:path`: `(blob sha, content)`.
    pub(crate) fn file(&self, rev: &str, path: &str) -> Option<(String, Vec<u8>)> {
        let commit = self.resolve(rev)?;
        let spec = format!("{commit}:{}", path.trim_start_matches('/'));
        let sha = git(&self.dir, &["rev-parse", "--verify", "--quiet", &spec]);
        if !sha.ok {
            return None;
        }
        let sha = sha.text();
        if self.object_type(&sha).as_deref() != Some("blob") {
            return None;
        }
        let out = git(&self.dir, &["cat-file", "blob", &sha]);
        out.ok.then_some((sha, out.stdout))
    }

    /// The entries of the directory at `rev:path` (`""` = root): `(mode, type, sha, size, name)`.
    pub(crate) fn dir_entries(&self, rev: &str, path: &str) -> Option<Vec<TreeEntry>> {
        let commit = self.resolve(rev)?;
        let path = path.trim_matches('/');
        let spec = format!("{commit}:{path}");
        let sha = git(&self.dir, &["rev-parse", "--verify", "--quiet", &spec]);
        if !sha.ok || self.object_type(&sha.text()).as_deref() != Some("tree") {
            return None;
        }
        let out = git(&self.dir, &["ls-tree", "-l", "-z", &sha.text()]);
        if !out.ok {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Some(
            text.split('\0')
                .filter(|l| !l.is_empty())
                .filter_map(|l| {
                    let (meta, name) = l.split_once('\t')?;
                    let mut it = meta.split_whitespace();
                    let mode = it.next()?.to_string();
                    let kind = it.next()?.to_string();
                    let sha = it.next()?.to_string();
                    let size = it.next()?.parse().unwrap_or(0);
                    Some((mode, kind, sha, size, name.to_string()))
                })
                .collect(),
        )
    }

    /// Commits reachable from `rev` (touching `path` if given), newest first.
    pub(crate) fn log(&self, rev: &str, path: Option<&str>, max: usize) -> Vec<String> {
        let Some(commit) = self.resolve(rev) else {
            return Vec::new();
        };
        let max = format!("--max-count={max}");
        let mut args = vec!["rev-list", &max, &commit];
        if let Some(p) = path {
            args.push("--");
            args.push(p);
        }
        git(&self.dir, &args)
            .text()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Commits in `to` but not in `from` (`from` may be absent), oldest first.
    pub(crate) fn range(&self, from: Option<&str>, to: &str, max: usize) -> Vec<String> {
        let max = format!("--max-count={max}");
        let not = from.map(|f| format!("^{f}"));
        let mut args = vec!["rev-list", "--reverse", &max, to];
        if let Some(n) = &not {
            args.push(n);
        }
        git(&self.dir, &args)
            .text()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(crate) fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        git(
            &self.dir,
            &["merge-base", "--is-ancestor", ancestor, descendant],
        )
        .ok
    }

    /// `(added, removed, modified)` paths of `sha` against its first parent.
    pub(crate) fn changed_paths(&self, sha: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
        let out = git(
            &self.dir,
            &[
                "diff-tree",
                "-r",
                "--root",
                "--no-commit-id",
                "--name-status",
                "-z",
                "--first-parent",
                sha,
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut parts = text.split('\0').filter(|s| !s.is_empty());
        let (mut added, mut removed, mut modified) = (Vec::new(), Vec::new(), Vec::new());
        while let (Some(status), Some(path)) = (parts.next(), parts.next()) {
            match status.chars().next() {
                Some('A') => added.push(path.to_string()),
                Some('D') => removed.push(path.to_string()),
                _ => modified.push(path.to_string()),
            }
        }
        (added, removed, modified)
    }

    /// `(additions, deletions, changed files)` from `base` to `head`.
    pub(crate) fn diff_stat(&self, base: &str, head: &str) -> (u64, u64, u64) {
        let out = git(&self.dir, &["diff", "--numstat", base, head]);
        let (mut add, mut del, mut files) = (0, 0, 0);
        for line in out.text().lines() {
            let mut it = line.split('\t');
            add += it.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            del += it.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            files += 1;
        }
        (add, del, files)
    }

    pub(crate) fn merge_base(&self, a: &str, b: &str) -> Option<String> {
        let out = git(&self.dir, &["merge-base", a, b]);
        out.ok.then(|| out.text())
    }

    /// The tree of merging `head` into `base`, or `Err` on conflicts.
    pub(crate) fn merge_tree(&self, base: &str, head: &str) -> Result<String, String> {
        let out = git(
            &self.dir,
            &[
                "merge-tree",
                "--write-tree",
                "--no-messages",
                "--allow-unrelated-histories",
                base,
                head,
            ],
        );
        let tree = out.text().lines().next().unwrap_or_default().to_string();
        if out.ok {
            Ok(tree)
        } else {
            Err("Merge conflict".to_string())
        }
    }

    /// Writes a commit of `tree` with `parents`; returns its sha.
    pub(crate) fn commit_tree(
        &self,
        tree: &str,
        parents: &[&str],
        message: &str,
        author: (&str, &str),
        committer: (&str, &str),
    ) -> Result<String, String> {
        let mut cmd = command(Some(&self.dir));
        cmd.args(["commit-tree", tree]);
        for p in parents {
            cmd.args(["-p", p]);
        }
        cmd.env("GIT_AUTHOR_NAME", author.0)
            .env("GIT_AUTHOR_EMAIL", author.1)
            .env("GIT_COMMITTER_NAME", committer.0)
            .env("GIT_COMMITTER_EMAIL", committer.1);
        let out = run(cmd, Some(message.as_bytes()));
        if out.ok {
            Ok(out.text())
        } else {
            Err(out.stderr)
        }
    }

    /// A commit on top of `parent` (or a root commit) that writes `files`; returns its sha.
    pub(crate) fn commit_files(
        &self,
        parent: Option<&str>,
        files: &[(&str, &str)],
        message: &str,
        author: (&str, &str),
    ) -> Result<String, String> {
        let index = self.dir.join(format!(
            "slipway-index-{}-{}",
            std::process::id(),
            INDEX_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.commit_files_with_index(&index, parent, files, message, author);
        let _ = std::fs::remove_file(&index);
        result
    }

    fn commit_files_with_index(
        &self,
        index: &Path,
        parent: Option<&str>,
        files: &[(&str, &str)],
        message: &str,
        author: (&str, &str),
    ) -> Result<String, String> {
        let with_index = |args: &[&str], input: Option<&[u8]>| {
            let mut cmd = command(Some(&self.dir));
            cmd.env("GIT_INDEX_FILE", index).args(args);
            run(cmd, input)
        };
        let out = match parent {
            Some(p) => with_index(&["read-tree", p], None),
            None => with_index(&["read-tree", "--empty"], None),
        };
        if !out.ok {
            return Err(out.stderr);
        }
        for (path, content) in files {
            let blob = with_index(&["hash-object", "-w", "--stdin"], Some(content.as_bytes()));
            if !blob.ok {
                return Err(blob.stderr);
            }
            let info = format!("100644,{},{}", blob.text(), path.trim_start_matches('/'));
            let out = with_index(&["update-index", "--add", "--cacheinfo", &info], None);
            if !out.ok {
                return Err(out.stderr);
            }
        }
        let tree = with_index(&["write-tree"], None);
        if !tree.ok {
            return Err(tree.stderr);
        }
        let parents: Vec<&str> = parent.into_iter().collect();
        self.commit_tree(&tree.text(), &parents, message, author, author)
    }
}

/// A full SHA-1 object id.
pub(crate) fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn set_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())
}

fn parse_person(rest: &str) -> Option<Person> {
    let lt = rest.find('<')?;
    let gt = rest.find('>')?;
    let name = rest[..lt].trim().to_string();
    let email = rest[lt + 1..gt].to_string();
    let mut it = rest[gt + 1..].split_whitespace();
    let secs: i64 = it.next()?.parse().ok()?;
    let date = Utc.timestamp_opt(secs, 0).single()?;
    Some(Person { name, email, date })
}

fn parse_commit(sha: &str, text: &str) -> Option<CommitInfo> {
    let (headers, message) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut tree = None;
    let mut parents = Vec::new();
    let mut author = None;
    let mut committer = None;
    for line in headers.lines() {
        if let Some(v) = line.strip_prefix("tree ") {
            tree = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("parent ") {
            parents.push(v.to_string());
        } else if let Some(v) = line.strip_prefix("author ") {
            author = parse_person(v);
        } else if let Some(v) = line.strip_prefix("committer ") {
            committer = parse_person(v);
        }
    }
    Some(CommitInfo {
        sha: sha.to_string(),
        tree: tree?,
        parents,
        author: author?,
        committer: committer?,
        message: message.to_string(),
    })
}
