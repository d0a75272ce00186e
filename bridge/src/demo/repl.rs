//! The interactive demo: the terminal is the `#ops` channel. Lines starting with `/` are slash
//! commands typed by the current person; a number clicks that button; `:` lines are the demo's
//! own commands (switch person, list and merge PRs). Modals the bridge opens prompt inline.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::channel::{Channel, Submitted};
use super::plain;
use super::screen::Screen;
use super::world::{OWNER, PEOPLE, REPO, World, person};

pub struct Repl {
    pub world: Arc<World>,
    pub screen: Arc<Screen>,
    pub channel: Arc<Channel>,
    pub user: String,
}

/// Lines typed on stdin, read on a thread of their own (stdin blocks).
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx
                        .send(line.trim_end_matches(['\r', '\n']).to_string())
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    rx
}

pub fn help() -> Vec<String> {
    [
        "You are in #ops. Type what you would type in Slack:",
        "  /kubectl get pods -n web           a read-only command: runs at once, with a Cancel button",
        "  /kubectl get secret db-credentials -n web -o yaml   refused: Secret contents never reach chat",
        "  /deploy api staging                a dry run with a diff and a Confirm button",
        "  /deploy api staging --apply        opens a pull request that needs two approvers",
        "  /tf plan network   /silence …   /slipway help",
        "  3                                  click the button shown as [3]",
        "  :as U0APPROVER1                    act as another person (:users lists them)",
        "  :prs                               the GitOps repo's pull requests and their approval status",
        "  :home                              the current person's App Home (Slipway's Home tab)",
        "  :merge 1                           merge PR #1 on GitHub as the current person (branch",
        "                                     protection requires slipway/approval); the runner follows",
        "  :review 1 approve|reject [text]    review PR #1 on GitHub itself; Slack mirrors it",
        "  :help   :quit",
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

pub fn users() -> Vec<String> {
    let mut lines = vec!["The example policy's people (policy/slipway.yaml):".to_string()];
    for p in PEOPLE {
        lines.push(format!(
            "  {:<13} {:<15} {:<36} GitHub: {}",
            p.slack, p.name, p.role, p.github
        ));
    }
    lines
}

impl Repl {
    fn prompt(&self) -> String {
        let who = person(&self.user).map_or("", |p| p.github);
        format!("{} ({who}) #ops › ", self.user)
    }

    /// Runs until `:quit` or end of input.
    pub async fn run(mut self, stop: CancellationToken) {
        let (modal_tx, mut modals) = mpsc::unbounded_channel::<Value>();
        let channel = self.channel.clone();
        let watch_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                for view in channel.poll() {
                    let _ = modal_tx.send(view);
                }
                tokio::select! {
                    () = watch_stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(150)) => {}
                }
            }
        });
        let mut lines = stdin_lines();
        loop {
            self.screen.prompt(&self.prompt());
            tokio::select! {
                line = lines.recv() => {
                    self.screen.answered();
                    let Some(line) = line else { break };
                    if !self.handle(line.trim(), &mut lines).await {
                        break;
                    }
                }
                Some(view) = modals.recv() => {
                    self.screen.answered();
                    self.modal(&view, &mut lines).await;
                }
            }
        }
        stop.cancel();
    }

    /// One typed line; false to quit.
    async fn handle(&mut self, line: &str, lines: &mut mpsc::UnboundedReceiver<String>) -> bool {
        if line.is_empty() {
            return true;
        }
        if line.starts_with('/') {
            if let Err(e) = self.channel.command(&self.user, line).await {
                self.screen.line(format!("(demo) {e}"));
            }
            // Give the answer a moment so it prints before the next prompt.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return true;
        }
        if let Ok(n) = line.parse::<usize>() {
            self.click(n, lines).await;
            return true;
        }
        let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
        let arg = arg.trim();
        match cmd {
            ":quit" | ":q" | ":exit" => return false,
            ":help" | ":h" | "help" => self.screen.print(&help()),
            ":users" => self.screen.print(&users()),
            ":as" => self.switch(arg),
            ":prs" => self.screen.print(&self.channel.pull_lines()),
            ":home" => self.home().await,
            ":merge" => self.merge(arg),
            ":review" => self.review(arg),
            _ => self.screen.line(format!(
                "(demo) `{line}` is not something I know. Type a slash command (/kubectl get pods), a button's number, or :help"
            )),
        }
        true
    }

    /// `:home`: the current person opens Slipway's Home tab.
    async fn home(&self) {
        let shown = super::surface::open_home(&self.channel, &self.world, &self.user, |_| true);
        match shown.await {
            Ok(home) => super::surface::print_home(&self.screen, &self.user, &home),
            Err(e) => self.screen.line(format!("(demo) {e}")),
        }
    }

    fn switch(&mut self, who: &str) {
        if let Some(p) = person(who) {
            self.user = p.slack.to_string();
            self.screen.line(format!(
                "(demo) you are now {} ({}, {})",
                p.slack, p.name, p.role
            ));
        } else {
            let mut out = vec![format!(
                "(demo) `{who}` is not one of the example people; try :as U0APPROVER1"
            )];
            out.extend(users());
            self.screen.print(&out);
        }
    }

    async fn click(&self, n: usize, lines: &mut mpsc::UnboundedReceiver<String>) {
        let Some(choice) = self.channel.choice(n) else {
            self.screen.line(format!(
                "(demo) there is no button [{n}] on screen (any more)"
            ));
            return;
        };
        if let Some(c) = &choice.button.confirm {
            self.screen.print(&[
                format!("┌─ {}", c.title),
                format!("│ {}", plain::mrkdwn(&c.text)),
                format!("└─ {} [y/N]", c.confirm),
            ]);
            self.screen.prompt("? ");
            let answer = lines.recv().await.unwrap_or_default();
            self.screen.answered();
            if !answer.trim().eq_ignore_ascii_case("y") {
                self.screen.line(format!("(demo) {}", c.deny));
                return;
            }
        }
        if let Err(e) = self.channel.click(&self.user, n).await {
            self.screen.line(format!("(demo) {e}"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    fn merge(&self, arg: &str) {
        let Ok(number) = arg.trim_start_matches('#').parse::<u64>() else {
            self.screen
                .line("(demo) say which PR: :merge 1 (:prs lists them)");
            return;
        };
        let login = person(&self.user).map_or("olga-owner", |p| p.github);
        match self.world.github.merge(OWNER, REPO, number, login) {
            Ok(sha) => self.screen.line(format!(
                "» {login} merges PR #{number} on GitHub: {}. The runner workflow starts on the push to main.",
                sha.get(..7).unwrap_or(&sha)
            )),
            Err(e) => self.screen.line(format!(
                "» {login} tries to merge PR #{number}; GitHub refuses: {e}"
            )),
        }
    }

    fn review(&self, arg: &str) {
        let mut words = arg.splitn(3, ' ');
        let number = words
            .next()
            .and_then(|n| n.trim_start_matches('#').parse::<u64>().ok());
        let event = match words.next() {
            Some("approve") => Some("APPROVE"),
            Some("reject" | "request-changes") => Some("REQUEST_CHANGES"),
            Some("comment") => Some("COMMENT"),
            _ => None,
        };
        let (Some(number), Some(event)) = (number, event) else {
            self.screen
                .line("(demo) say which PR and how: :review 1 approve (or reject, comment) [text]");
            return;
        };
        let body = words.next().unwrap_or_default();
        let login = person(&self.user).map_or("olga-owner", |p| p.github);
        match self
            .world
            .github
            .try_review(OWNER, REPO, number, login, event, body)
        {
            Ok(_) => self.screen.line(format!(
                "» {login} reviews PR #{number} on GitHub ({}); the webhook tells the bridge",
                event.to_lowercase()
            )),
            Err(e) => self.screen.line(format!(
                "» {login} tries to review PR #{number}; GitHub refuses: {e}"
            )),
        }
    }

    /// A modal the bridge opened: show it and ask for each input.
    async fn modal(&self, view: &Value, lines: &mut mpsc::UnboundedReceiver<String>) {
        let m = self.channel.show_modal(view, |m| {
            format!(
                "answer below; :cancel closes it{}",
                m.submit.as_ref().map_or(String::new(), |s| format!(
                    ", Enter on the last answer = {s}"
                ))
            )
        });
        let mut errors = std::collections::BTreeMap::new();
        for _attempt in 0..3 {
            let mut answers = Vec::new();
            for input in &m.inputs {
                if let Some(e) = errors.get(&input.block_id) {
                    self.screen.line(format!("  ! {e}"));
                }
                let mut label = input.label.clone();
                if input.optional {
                    label.push_str(" (optional)");
                }
                if let Some(h) = &input.hint {
                    self.screen.line(format!("  {h}"));
                }
                self.screen.prompt(&format!("  {label}: "));
                let Some(answer) = lines.recv().await else {
                    self.screen.answered();
                    return;
                };
                self.screen.answered();
                if answer.trim() == ":cancel" {
                    self.screen.line("(demo) dialog closed");
                    return;
                }
                answers.push(answer);
            }
            let values = plain::submission_values(&m.inputs, &answers);
            match self.channel.submit(&self.user, view, values).await {
                Ok(Submitted::Closed) => {
                    self.screen.line("(demo) submitted");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    return;
                }
                Ok(Submitted::Errors(e)) => errors = e,
                Err(e) => {
                    self.screen.line(format!("(demo) {e}"));
                    return;
                }
            }
        }
        self.screen.line("(demo) dialog closed after three tries");
    }
}
