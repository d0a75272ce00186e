//! The terminal: output blocks printed whole, so lines from the background watcher and the
//! prompt never interleave mid-line.

use std::io::Write as _;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Screen {
    /// The prompt to show again after background output (interactive mode only).
    prompt: Mutex<Option<String>>,
}

impl Screen {
    /// Print `lines`, and the prompt again if one is showing.
    pub fn print(&self, lines: &[String]) {
        let prompt = slipway_infra::sync::lock(&self.prompt).clone();
        let mut out = std::io::stdout().lock();
        if prompt.is_some() {
            let _ = writeln!(out);
        }
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        if let Some(p) = prompt {
            let _ = write!(out, "{p}");
        }
        let _ = out.flush();
    }

    pub fn line(&self, line: impl Into<String>) {
        self.print(&[line.into()]);
    }

    /// Show `prompt` and keep showing it after background output until the next `prompt`.
    pub fn prompt(&self, prompt: &str) {
        *slipway_infra::sync::lock(&self.prompt) = Some(prompt.to_string());
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{prompt}");
        let _ = out.flush();
    }

    /// The user answered: no prompt is showing until the next one.
    pub fn answered(&self) {
        *slipway_infra::sync::lock(&self.prompt) = None;
    }
}
