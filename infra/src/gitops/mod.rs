//! The GitOps repository through git2: a local bare mirror fetched incrementally, commits built in
//! memory (no working tree, only the touched subtrees rewritten, so a 100k-file repo costs what
//! a 10-file one does), and pushes whose per-ref rejections are reported, not swallowed (libgit2's
//! push returns Ok on a rejected ref; the verdict arrives in the update-reference callback).
//!
//! Everything here blocks: callers run it on `spawn_blocking`, never on the async runtime.

mod history;

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use git2::build::TreeUpdateBuilder;
use git2::{
    Cred, FetchOptions, FileMode, ObjectType, Oid, PushOptions, RemoteCallbacks, Repository,
    Signature, Time,
};

/// What went wrong with git, said plainly.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("the remote rejected the push of {refname}: {reason}")]
    Rejected { refname: String, reason: String },
    #[error("{0}")]
    Other(String),
}

type Result<T> = std::result::Result<T, GitError>;

/// HTTP credentials for the remote (for GitHub: `x-access-token` and an installation token).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: *** }}",
            self.username
        )
    }
}

/// A file change in a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    Upsert { path: String, content: Vec<u8> },
    Delete { path: String },
}

/// Who a commit is by, and when (injected, so tests control it).
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    pub email: String,
    pub unix_time: i64,
}

/// The local bare mirror of one remote repository.
pub struct Mirror {
    repo: Repository,
    url: String,
    /// The remote as people may see it: a relay URL carries a secret path, which never goes
    /// into `Debug`, errors or files.
    shown_url: String,
    default_branch: String,
    path: PathBuf,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("path", &self.path)
            .field("url", &self.shown_url)
            .field("default_branch", &self.default_branch)
            .finish_non_exhaustive()
    }
}

fn callbacks(creds: Option<&Credentials>) -> RemoteCallbacks<'_> {
    let mut cb = RemoteCallbacks::new();
    if let Some(c) = creds {
        cb.credentials(move |_url, _user, _allowed| {
            Cred::userpass_plaintext(&c.username, &c.password)
        });
    }
    cb
}

impl Mirror {
    /// Open the mirror at `path`, creating an empty bare repository if there is none. Nothing is
    /// fetched yet.
    pub fn open(path: &Path, url: &str, default_branch: &str) -> Result<Mirror> {
        let repo = if let Ok(r) = Repository::open_bare(path) {
            r
        } else {
            std::fs::create_dir_all(path)
                .map_err(|e| GitError::Other(format!("creating {}: {e}", path.display())))?;
            Repository::init_bare(path)?
        };
        Ok(Mirror {
            repo,
            url: url.to_string(),
            shown_url: url.to_string(),
            default_branch: default_branch.to_string(),
            path: path.to_path_buf(),
        })
    }

    /// Open an existing repository (a CI checkout or a bare mirror) read-only, without a remote:
    /// nothing is created, fetched or pushed. For the runner, which reads the merged commit from
    /// the Actions checkout.
    pub fn open_local(path: &Path, default_branch: &str) -> Result<Mirror> {
        let repo = Repository::open(path).map_err(|e| {
            GitError::Other(format!(
                "{} is not a git checkout: {}",
                path.display(),
                e.message()
            ))
        })?;
        Ok(Mirror {
            repo,
            url: path.display().to_string(),
            shown_url: path.display().to_string(),
            default_branch: default_branch.to_string(),
            path: path.to_path_buf(),
        })
    }

    /// Show `shown` instead of the URL actually fetched (a loopback relay's, whose path is a
    /// secret) in `Debug` and in errors.
    #[must_use]
    pub fn showing_url(mut self, shown: &str) -> Mirror {
        self.shown_url = shown.to_string();
        self
    }

    /// A git error with the real URL replaced by the shown one.
    fn scrub(&self, e: git2::Error) -> GitError {
        let msg = e.message().replace(&self.url, &self.shown_url);
        if msg == e.message() {
            return GitError::Git(e);
        }
        GitError::Other(format!("git: {msg}"))
    }

    /// The commit `HEAD` points at (for a checkout: what is in the working tree).
    pub fn head_commit(&self) -> Result<Oid> {
        Ok(self.repo.head()?.peel_to_commit()?.id())
    }

    pub fn default_branch(&self) -> &str {
        &self.default_branch
    }

    /// Fetch every branch (incrementally: only objects the mirror lacks travel) and return the
    /// default branch's head.
    pub fn fetch(&self, creds: Option<&Credentials>) -> Result<Oid> {
        let mut remote = self.repo.remote_anonymous(&self.url)?;
        let mut opts = FetchOptions::new();
        opts.remote_callbacks(callbacks(creds));
        opts.download_tags(git2::AutotagOption::None);
        // FETCH_HEAD would record the remote's URL in a world-readable file.
        opts.update_fetchhead(false);
        remote
            .fetch(&["+refs/heads/*:refs/heads/*"], Some(&mut opts), None)
            .map_err(|e| self.scrub(e))?;
        self.head()
    }

    /// The default branch's head, as last fetched.
    pub fn head(&self) -> Result<Oid> {
        self.branch(&self.default_branch)?.ok_or_else(|| {
            GitError::Other(format!(
                "branch {} does not exist in {}",
                self.default_branch, self.shown_url
            ))
        })
    }

    /// A branch's head, if it exists in the mirror.
    pub fn branch(&self, name: &str) -> Result<Option<Oid>> {
        match self.repo.refname_to_id(&format!("refs/heads/{name}")) {
            Ok(oid) => Ok(Some(oid)),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A file's content at a commit, `None` if absent.
    pub fn read_file(&self, commit: Oid, path: &str) -> Result<Option<Vec<u8>>> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        match tree.get_path(Path::new(path)) {
            Ok(entry) => {
                let obj = entry.to_object(&self.repo)?;
                Ok(obj.as_blob().map(|b| b.content().to_vec()))
            }
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the mirror holds `commit`.
    pub fn has_commit(&self, commit: Oid) -> bool {
        self.repo.find_commit(commit).is_ok()
    }

    /// Paths of files under `dir` at a commit (recursively).
    pub fn list_files(&self, commit: Oid, dir: &str) -> Result<Vec<String>> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        let sub = match tree.get_path(Path::new(dir)) {
            Ok(e) if e.kind() == Some(ObjectType::Tree) => self.repo.find_tree(e.id())?,
            Ok(_) => return Ok(Vec::new()),
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        sub.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                out.push(format!("{dir}/{root}{}", entry.name().unwrap_or_default()));
            }
            git2::TreeWalkResult::Ok
        })?;
        Ok(out)
    }

    /// Write the files under `dir` at `commit` into `dest` (a fresh directory the caller owns).
    pub fn export_dir(&self, commit: Oid, dir: &str, dest: &Path) -> Result<usize> {
        let files = self.list_files(commit, dir)?;
        for f in &files {
            let content = self.read_file(commit, f)?.unwrap_or_default();
            let rel = f.strip_prefix(dir).unwrap_or(f).trim_start_matches('/');
            let target = dest.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| GitError::Other(format!("{}: {e}", parent.display())))?;
            }
            std::fs::write(&target, content)
                .map_err(|e| GitError::Other(format!("{}: {e}", target.display())))?;
        }
        Ok(files.len())
    }

    /// Write every file at `commit` for which `keep(path)` holds into `dest` (a fresh directory the
    /// caller owns). Paths come from git, never from a user.
    pub fn export_filtered(
        &self,
        commit: Oid,
        dest: &Path,
        keep: impl Fn(&str) -> bool,
    ) -> Result<usize> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        let mut files = Vec::new();
        tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                let path = format!("{root}{}", entry.name().unwrap_or_default());
                if keep(&path) {
                    files.push((path, entry.id()));
                }
            }
            git2::TreeWalkResult::Ok
        })?;
        for (path, id) in &files {
            let blob = self.repo.find_blob(*id)?;
            let target = dest.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| GitError::Other(format!("{}: {e}", parent.display())))?;
            }
            std::fs::write(&target, blob.content())
                .map_err(|e| GitError::Other(format!("{}: {e}", target.display())))?;
        }
        Ok(files.len())
    }

    /// Build a commit on top of `parent` with `changes`, in memory. No ref moves.
    pub fn commit(
        &self,
        parent: Oid,
        changes: &[FileChange],
        message: &str,
        author: &Author,
    ) -> Result<Oid> {
        let parent = self.repo.find_commit(parent)?;
        let base = parent.tree()?;
        let mut builder = TreeUpdateBuilder::new();
        for change in changes {
            match change {
                FileChange::Upsert { path, content } => {
                    let blob = self.repo.blob(content)?;
                    builder.upsert(path.as_str(), blob, FileMode::Blob);
                }
                FileChange::Delete { path } => {
                    builder.remove(path.as_str());
                }
            }
        }
        let tree_oid = builder.create_updated(&self.repo, &base)?;
        let tree = self.repo.find_tree(tree_oid)?;
        let sig = Signature::new(&author.name, &author.email, &Time::new(author.unix_time, 0))?;
        Ok(self
            .repo
            .commit(None, &sig, &sig, message, &tree, &[&parent])?)
    }

    /// Push `commit` to `refs/heads/<branch>` on the remote. A rejection by the remote (hook,
    /// non-fast-forward, protection) is an error naming the reason.
    pub fn push(
        &self,
        commit: Oid,
        branch: &str,
        force: bool,
        creds: Option<&Credentials>,
    ) -> Result<()> {
        let local = format!("refs/slipway/push/{branch}");
        self.repo.reference(&local, commit, true, "slipway push")?;
        let mut remote = self.repo.remote_anonymous(&self.url)?;
        let rejection: RefCell<Option<(String, String)>> = RefCell::new(None);
        let mut cb = callbacks(creds);
        cb.push_update_reference(|refname, status| {
            if let Some(reason) = status {
                *rejection.borrow_mut() = Some((refname.to_string(), reason.to_string()));
            }
            Ok(())
        });
        let mut opts = PushOptions::new();
        opts.remote_callbacks(cb);
        let spec = format!(
            "{}{local}:refs/heads/{branch}",
            if force { "+" } else { "" }
        );
        let pushed = remote
            .push(&[spec.as_str()], Some(&mut opts))
            .map_err(|e| self.scrub(e));
        drop(opts);
        let _ = self
            .repo
            .find_reference(&local)
            .and_then(|mut r| r.delete());
        pushed?;
        if let Some((refname, reason)) = rejection.into_inner() {
            return Err(GitError::Rejected { refname, reason });
        }
        // Keep the mirror's view of the branch current.
        self.repo.reference(
            &format!("refs/heads/{branch}"),
            commit,
            true,
            "slipway pushed",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@e")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@e")
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    }

    /// A bare "remote" with one commit on main.
    fn remote(dir: &Path) -> PathBuf {
        let work = dir.join("work");
        std::fs::create_dir_all(work.join("apps/api/staging")).unwrap();
        std::fs::write(
            work.join("apps/api/staging/kustomization.yaml"),
            "images:\n- name: api\n  newTag: v1\n",
        )
        .unwrap();
        std::fs::write(work.join("README.md"), "gitops\n").unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "init"]);
        let bare = dir.join("remote.git");
        git(
            dir,
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        bare
    }

    fn author() -> Author {
        Author {
            name: "Slipway".into(),
            email: "slipway@example.com".into(),
            unix_time: 1_700_000_000,
        }
    }

    #[test]
    fn fetch_commit_in_memory_and_push() {
        let dir = tempfile::tempdir().unwrap();
        let bare = remote(dir.path());
        let m = Mirror::open(
            &dir.path().join("mirror.git"),
            bare.to_str().unwrap(),
            "main",
        )
        .unwrap();
        let head = m.fetch(None).unwrap();
        assert_eq!(
            m.read_file(head, "README.md").unwrap().unwrap(),
            b"gitops\n"
        );
        let c = m
            .commit(
                head,
                &[
                    FileChange::Upsert {
                        path: "apps/api/staging/kustomization.yaml".into(),
                        content: b"images:\n- name: api\n  newTag: v2\n".to_vec(),
                    },
                    FileChange::Upsert {
                        path: "changes/cr-1.yaml".into(),
                        content: b"id: cr-1\n".to_vec(),
                    },
                    FileChange::Delete {
                        path: "README.md".into(),
                    },
                ],
                "Deploy api v2",
                &author(),
            )
            .unwrap();
        m.push(c, "slipway/cr-1", false, None).unwrap();
        let remote_repo = Repository::open_bare(&bare).unwrap();
        let pushed = remote_repo
            .refname_to_id("refs/heads/slipway/cr-1")
            .unwrap();
        assert_eq!(pushed, c);
        assert_eq!(m.added_files(c, "changes").unwrap(), ["changes/cr-1.yaml"]);
        assert_eq!(m.read_file(c, "README.md").unwrap(), None);
        assert_eq!(
            m.list_files(c, "apps").unwrap(),
            ["apps/api/staging/kustomization.yaml"]
        );
        assert_eq!(m.last_commit_touching(c, "apps/api").unwrap(), Some(c));
        assert_eq!(m.last_commit_touching(c, "changes").unwrap(), Some(c));
        let out = dir.path().join("export");
        assert_eq!(m.export_dir(c, "apps/api", &out).unwrap(), 1);
        assert!(out.join("staging/kustomization.yaml").is_file());
    }

    // A rejection by a server-side hook needs a real remote transport (libgit2's local transport
    // runs no hooks); it is tested against the GitHub emulator's smart-HTTP endpoint.

    #[test]
    fn non_fast_forward_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let bare = remote(dir.path());
        let m = Mirror::open(
            &dir.path().join("mirror.git"),
            bare.to_str().unwrap(),
            "main",
        )
        .unwrap();
        let head = m.fetch(None).unwrap();
        let a = m
            .commit(
                head,
                &[FileChange::Upsert {
                    path: "a".into(),
                    content: b"a".to_vec(),
                }],
                "a",
                &author(),
            )
            .unwrap();
        m.push(a, "slipway/cr-3", false, None).unwrap();
        let b = m
            .commit(
                head,
                &[FileChange::Upsert {
                    path: "b".into(),
                    content: b"b".to_vec(),
                }],
                "b",
                &author(),
            )
            .unwrap();
        let err = m.push(b, "slipway/cr-3", false, None).unwrap_err();
        assert!(
            matches!(err, GitError::Rejected { .. } | GitError::Git(_)),
            "{err}"
        );
        m.push(b, "slipway/cr-3", true, None).unwrap();
    }
}
