//! The test-facing side of pull requests: open, review and merge them as a given user, and read
//! back what the REST API would return. Each goes through the same `ops` as the HTTP routes, so a
//! scripted review obeys GitHub's rules (and fires the same webhooks) as a real one.

use serde_json::Value;

use super::{GitHubEmulator, json, ops, routes};

impl GitHubEmulator {
    /// Opens a PR as `login` from the existing branch `head` into `base`; returns its number.
    ///
    /// # Panics
    /// If GitHub would refuse it (see the message).
    pub fn open_pr(
        &self,
        owner: &str,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
        login: &str,
    ) -> u64 {
        ops::pulls::open(
            &mut self.state(),
            owner,
            repo,
            head,
            base,
            title,
            None,
            false,
            login,
        )
        .unwrap_or_else(|e| panic!("github emulator: open_pr: {e}"))
    }

    /// Submits a review as `login` (`APPROVE`, `REQUEST_CHANGES` or `COMMENT`) on the PR's
    /// current head, with the same rules as the REST API; returns the review id.
    ///
    /// # Panics
    /// If GitHub would refuse it (for example the author approving their own PR).
    pub fn review(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        login: &str,
        event: &str,
        body: &str,
    ) -> u64 {
        self.try_review(owner, repo, number, login, event, body)
            .unwrap_or_else(|e| panic!("github emulator: review: {e}"))
    }

    /// [`GitHubEmulator::review`], returning GitHub's refusal instead of panicking.
    pub fn try_review(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        login: &str,
        event: &str,
        body: &str,
    ) -> Result<u64, String> {
        ops::pulls::review(
            &mut self.state(),
            owner,
            repo,
            number,
            login,
            Some(event),
            body,
            None,
        )
        .map_err(|e| e.to_string())
    }

    /// Merges (merge commit) through the same logic as `PUT /pulls/{n}/merge`, as `login`.
    /// Returns the merge commit's sha, or GitHub's refusal (`"405 Pull Request is not mergeable"`).
    pub fn merge(
        &self,
        owner: &str,
        repo: &str,
        number: u64,
        login: &str,
    ) -> Result<String, String> {
        let req = ops::pulls::MergeRequest::default();
        ops::pulls::merge(&mut self.state(), owner, repo, number, login, &req)
            .map_err(|e| e.to_string())
    }

    /// Every PR of the repository (oldest first), as `GET /pulls/{n}` returns it.
    pub fn pulls(&self, owner: &str, repo: &str) -> Vec<Value> {
        let st = self.state();
        let numbers: Vec<u64> = st
            .repo(owner, repo)
            .map(|r| r.pulls.keys().copied().collect())
            .unwrap_or_default();
        numbers
            .into_iter()
            .filter_map(|n| routes::render_pull(&st, owner, repo, n).ok())
            .collect()
    }

    /// The PR's reviews (pending ones included), as `GET /pulls/{n}/reviews` returns them.
    pub fn reviews(&self, owner: &str, repo: &str, number: u64) -> Vec<Value> {
        let st = self.state();
        let Some(r) = st.repo(owner, repo) else {
            return Vec::new();
        };
        let Some(p) = r.pulls.get(&number) else {
            return Vec::new();
        };
        p.reviews
            .iter()
            .map(|x| json::review(&st, r, p, x, false))
            .collect()
    }

    /// The statuses of commit `sha` (newest first), as `GET /commits/{sha}/statuses` returns them.
    pub fn statuses(&self, owner: &str, repo: &str, sha: &str) -> Vec<Value> {
        let st = self.state();
        let Some(r) = st.repo(owner, repo) else {
            return Vec::new();
        };
        r.statuses
            .iter()
            .rev()
            .filter(|s| s.sha == sha)
            .map(|s| json::status(&st, r, s))
            .collect()
    }

    /// Sets commit status `context` on `sha` as `login` (a CI reporting), through the same
    /// logic as `POST /statuses/{sha}`; the `status` webhook follows.
    pub fn set_status(
        &self,
        owner: &str,
        repo: &str,
        sha: &str,
        context: &str,
        state: &str,
        login: &str,
    ) {
        ops::create_status(
            &mut self.state(),
            owner,
            repo,
            sha,
            state,
            Some(context),
            None,
            None,
            login,
        )
        .unwrap_or_else(|e| panic!("github emulator: status: {e}"));
    }

    /// The newest status of `context` on commit `sha` (what branch protection looks at).
    pub fn status(&self, owner: &str, repo: &str, sha: &str, context: &str) -> Option<Value> {
        self.statuses(owner, repo, sha)
            .into_iter()
            .filter(|s| s["context"] == context)
            .max_by_key(|s| s["id"].as_u64().unwrap_or(0))
    }

    /// The comments on issue/PR `number`, oldest first.
    pub fn comments(&self, owner: &str, repo: &str, number: u64) -> Vec<Value> {
        let st = self.state();
        let Some(r) = st.repo(owner, repo) else {
            return Vec::new();
        };
        r.comments
            .iter()
            .filter(|c| c.issue == number)
            .map(|c| json::comment(&st, r, c))
            .collect()
    }
}
