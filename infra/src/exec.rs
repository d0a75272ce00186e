//! Running a catalog argv: never a shell, a cleared environment, a working directory the user
//! can't influence, its own process group, a timeout, a cancel token, capped output, and
//! redaction as the bytes arrive, so nothing unredacted is ever held where it could leak.
//!
//! Shared by the bridge (read commands) and the runner (merged changes).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};
use slipway_core::redact::{StreamRedactor, redactor};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// The `PATH` children get unless the config says otherwise.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Set in every child's environment, whatever its spec says. An AWS SDK or CLI that finds no
/// other credentials asks the instance metadata service, which would hand any child the host's
/// own role; with this set it finds nothing and fails instead.
pub const NO_INSTANCE_METADATA: (&str, &str) = ("AWS_EC2_METADATA_DISABLED", "true");

/// Lines of recent output kept for progress messages.
const TAIL_LINES: usize = 8;

/// What to run and how. `Debug` names the environment's variables, never their values (they
/// carry the run's credentials).
#[derive(Clone)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// The complete environment: nothing is inherited from the bridge.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub timeout: Duration,
    /// Bytes of (redacted) output kept; the rest is counted and digested, not kept.
    pub output_cap: usize,
    /// Time between SIGTERM and SIGKILL when stopping the group.
    pub kill_grace: Duration,
}

impl std::fmt::Debug for ExecSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ExecSpec")
            .field("argv", &self.argv)
            .field("env", &names)
            .field("cwd", &self.cwd)
            .field("timeout", &self.timeout)
            .field("output_cap", &self.output_cap)
            .field("kill_grace", &self.kill_grace)
            .finish()
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEnd {
    Exited(i32),
    /// Killed by a signal it didn't get from us.
    Signalled(i32),
    TimedOut,
    Cancelled,
    /// The program could not start (not installed, not executable…).
    SpawnFailed(String),
}

impl ExecEnd {
    pub fn success(&self) -> bool {
        *self == ExecEnd::Exited(0)
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ExecEnd::Exited(c) => Some(*c),
            _ => None,
        }
    }

    /// A short human description.
    pub fn describe(&self, timeout: Duration) -> String {
        match self {
            ExecEnd::Exited(0) => "finished".into(),
            ExecEnd::Exited(c) => format!("exited with code {c}"),
            ExecEnd::Signalled(s) => format!("was killed by signal {s}"),
            ExecEnd::TimedOut => format!(
                "timed out after {} and was stopped (its whole process group was killed)",
                humantime_secs(timeout)
            ),
            ExecEnd::Cancelled => "was cancelled (its whole process group was killed)".into(),
            ExecEnd::SpawnFailed(e) => format!("could not start: {e}"),
        }
    }
}

fn humantime_secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The result of a finished run. All text here is already redacted.
#[derive(Debug, Clone)]
pub struct ExecResult {
    pub end: ExecEnd,
    /// The first `output_cap` bytes of redacted output.
    pub output: String,
    pub truncated: bool,
    /// Bytes of redacted output produced in total.
    pub total_bytes: u64,
    /// sha256 (hex) of the full redacted output.
    pub digest: String,
    pub duration: Duration,
}

/// Live progress, for the "running…" message.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub bytes: u64,
    /// The last few lines, redacted.
    pub tail: Vec<String>,
}

/// A started run.
#[derive(Debug)]
pub struct Running {
    pub progress: watch::Receiver<Progress>,
    pub cancel: CancellationToken,
    pub done: tokio::task::JoinHandle<ExecResult>,
}

/// Start a run. Returns at once; the result arrives on `done`.
pub fn start(spec: ExecSpec) -> Running {
    let (tx, rx) = watch::channel(Progress::default());
    let cancel = CancellationToken::new();
    let done = tokio::spawn(run(spec, tx, cancel.clone()));
    Running {
        progress: rx,
        cancel,
        done,
    }
}

/// Run to completion (for callers that don't need progress or cancel).
pub async fn run_to_end(spec: ExecSpec) -> ExecResult {
    let (tx, _rx) = watch::channel(Progress::default());
    run(spec, tx, CancellationToken::new()).await
}

/// Collects redacted output: the kept head, a digest of everything, and the recent tail.
struct Collector {
    redactor: StreamRedactor<'static>,
    kept: String,
    cap: usize,
    truncated: bool,
    total: u64,
    hasher: Sha256,
    tail: Vec<String>,
    partial: String,
    pending_bytes: Vec<u8>,
}

impl Collector {
    fn new(cap: usize) -> Self {
        Self {
            redactor: redactor().stream(),
            kept: String::new(),
            cap,
            truncated: false,
            total: 0,
            hasher: Sha256::new(),
            tail: Vec::new(),
            partial: String::new(),
            pending_bytes: Vec::new(),
        }
    }

    /// Decode as much valid UTF-8 as possible; keep an incomplete trailing sequence for later.
    fn decode(&mut self, bytes: &[u8]) -> String {
        self.pending_bytes.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending_bytes) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending_bytes.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending_bytes[..valid]));
                    let Some(bad) = e.error_len() else {
                        // An incomplete character at the end: keep it for the next chunk.
                        self.pending_bytes.drain(..valid);
                        return out;
                    };
                    out.push('\u{fffd}');
                    self.pending_bytes.drain(..valid + bad);
                }
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let text = self.decode(bytes);
        let clean = self.redactor.push(&text);
        self.absorb(&clean);
    }

    fn absorb(&mut self, clean: &str) {
        if clean.is_empty() {
            return;
        }
        self.total += clean.len() as u64;
        self.hasher.update(clean.as_bytes());
        if self.kept.len() < self.cap {
            let room = self.cap - self.kept.len();
            if clean.len() <= room {
                self.kept.push_str(clean);
            } else {
                let mut cut = room;
                while !clean.is_char_boundary(cut) {
                    cut -= 1;
                }
                self.kept.push_str(&clean[..cut]);
                self.truncated = true;
            }
        } else {
            self.truncated = true;
        }
        self.partial.push_str(clean);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            self.tail.push(line.trim_end().to_string());
            if self.tail.len() > TAIL_LINES {
                self.tail.remove(0);
            }
        }
        if self.partial.len() > 4096 {
            self.partial.clear();
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            bytes: self.total,
            tail: self.tail.clone(),
        }
    }

    fn finish(mut self) -> (String, bool, u64, String) {
        if !self.pending_bytes.is_empty() {
            let rest =
                String::from_utf8_lossy(&std::mem::take(&mut self.pending_bytes)).into_owned();
            let clean = self.redactor.push(&rest);
            self.absorb(&clean);
        }
        let redactor = std::mem::replace(&mut self.redactor, redactor().stream());
        let clean = redactor.finish();
        self.absorb(&clean);
        (
            self.kept,
            self.truncated,
            self.total,
            hex::encode(self.hasher.finalize()),
        )
    }
}

fn signal_group(pgid: i32, signal: Signal) {
    // ESRCH (group already gone) is the normal case after a clean exit.
    let _ = killpg(Pid::from_raw(pgid), signal);
}

/// One process from spawn to a stopped group: spawn, pump its pipes into the collector until
/// it ends (or times out, or is cancelled), stop its group, then keep what was buffered.
async fn run(
    spec: ExecSpec,
    progress: watch::Sender<Progress>,
    cancel: CancellationToken,
) -> ExecResult {
    let started = Instant::now();
    let (mut child, pgid) = match spawn(&spec) {
        Ok(spawned) => spawned,
        Err(e) => {
            return ExecResult {
                end: ExecEnd::SpawnFailed(e),
                output: String::new(),
                truncated: false,
                total_bytes: 0,
                digest: hex::encode(Sha256::digest(b"")),
                duration: started.elapsed(),
            };
        }
    };
    let mut chunks = pump(&mut child);
    let mut collector = Collector::new(spec.output_cap);
    let end = watch_child(
        &mut child,
        &mut chunks,
        &mut collector,
        spec.timeout,
        &progress,
        &cancel,
    )
    .await;
    stop_group(pgid, &end, &mut child, spec.kill_grace).await;
    // Whatever output is already buffered is still worth keeping (it explains the timeout).
    while let Ok(bytes) = chunks.try_recv() {
        collector.feed(&bytes);
    }
    let (output, truncated, total_bytes, digest) = collector.finish();
    ExecResult {
        end,
        output,
        truncated,
        total_bytes,
        digest,
        duration: started.elapsed(),
    }
}

/// Start the argv (never a shell) with only the spec's environment, no stdin and its own
/// process group; the child and its group id (0 if unknown).
fn spawn(spec: &ExecSpec) -> Result<(Child, i32), String> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| "empty command".to_string())?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(NO_INSTANCE_METADATA.0, NO_INSTANCE_METADATA.1)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .unwrap_or(0);
    Ok((child, pgid))
}

/// Read stdout and stderr as they come, into one channel that closes when both have.
fn pump(child: &mut Child) -> mpsc::Receiver<Vec<u8>> {
    let (chunks_tx, chunks) = mpsc::channel::<Vec<u8>>(64);
    for stream in [
        child.stdout.take().map(Pipe::Out),
        child.stderr.take().map(Pipe::Err),
    ]
    .into_iter()
    .flatten()
    {
        let tx = chunks_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut reader = stream;
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    chunks
}

/// Collect output until the child has exited and its pipes are closed (or quiet), the timeout
/// passes, or `cancel` fires.
async fn watch_child(
    child: &mut Child,
    chunks: &mut mpsc::Receiver<Vec<u8>>,
    collector: &mut Collector,
    timeout: Duration,
    progress: &watch::Sender<Progress>,
    cancel: &CancellationToken,
) -> ExecEnd {
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut streams_open = true;
    let mut exit = None;
    loop {
        tokio::select! {
            chunk = chunks.recv(), if streams_open => match chunk {
                Some(bytes) => {
                    collector.feed(&bytes);
                    let _ = progress.send(collector.progress());
                }
                None => streams_open = false,
            },
            status = child.wait(), if exit.is_none() => {
                exit = Some(status);
            },
            // The command exited but something it started still holds the pipes: stop reading
            // after a quiet moment instead of waiting for the timeout.
            () = tokio::time::sleep(Duration::from_millis(500)), if exit.is_some() && streams_open => {
                streams_open = false;
            },
            () = &mut deadline => return ExecEnd::TimedOut,
            () = cancel.cancelled() => return ExecEnd::Cancelled,
        }
        if let (Some(status), false) = (&exit, streams_open) {
            return exit_end(status);
        }
    }
}

/// How an exited child ended.
fn exit_end(status: &std::io::Result<std::process::ExitStatus>) -> ExecEnd {
    match status {
        Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(s)) {
            (Some(c), _) => ExecEnd::Exited(c),
            (None, Some(sig)) => ExecEnd::Signalled(sig),
            (None, None) => ExecEnd::Exited(-1),
        },
        Err(e) => ExecEnd::SpawnFailed(e.to_string()),
    }
}

/// Stop the whole group: on timeout/cancel the command itself (SIGTERM, then SIGKILL after the
/// grace), after a normal exit any children it left behind.
async fn stop_group(pgid: i32, end: &ExecEnd, child: &mut Child, grace: Duration) {
    if pgid <= 0 {
        return;
    }
    if matches!(end, ExecEnd::TimedOut | ExecEnd::Cancelled) {
        signal_group(pgid, Signal::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            signal_group(pgid, Signal::SIGKILL);
        }
    }
    signal_group(pgid, Signal::SIGKILL);
    let _ = child.wait().await;
}

/// stdout or stderr, read the same way.
enum Pipe {
    Out(tokio::process::ChildStdout),
    Err(tokio::process::ChildStderr),
}

impl tokio::io::AsyncRead for Pipe {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Pipe::Out(p) => std::pin::Pin::new(p).poll_read(cx, buf),
            Pipe::Err(p) => std::pin::Pin::new(p).poll_read(cx, buf),
        }
    }
}

/// Whether any process of a group is still alive (for tests and the runner's cleanup check).
pub fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_the_environment_but_shows_no_value() {
        let spec = ExecSpec {
            argv: vec!["terraform".into()],
            env: vec![("GOOGLE_OAUTH_ACCESS_TOKEN".into(), "ya29.secret".into())],
            cwd: std::env::temp_dir(),
            timeout: Duration::from_secs(1),
            output_cap: 1,
            kill_grace: Duration::from_secs(1),
        };
        let shown = format!("{spec:?}");
        assert!(shown.contains("GOOGLE_OAUTH_ACCESS_TOKEN"), "{shown}");
        assert!(!shown.contains("ya29.secret"), "{shown}");
    }

    /// Even a spec that tries to turn it off gets the metadata service disabled.
    #[tokio::test]
    async fn every_child_has_instance_metadata_disabled() {
        let r = run_to_end(ExecSpec {
            argv: vec!["/usr/bin/env".into()],
            env: vec![("AWS_EC2_METADATA_DISABLED".into(), "false".into())],
            cwd: std::env::temp_dir(),
            timeout: Duration::from_secs(10),
            output_cap: 4096,
            kill_grace: Duration::from_secs(1),
        })
        .await;
        assert!(r.end.success(), "{:?}: {}", r.end, r.output);
        let lines: Vec<&str> = r.output.lines().collect();
        assert!(
            lines.contains(&"AWS_EC2_METADATA_DISABLED=true"),
            "{}",
            r.output
        );
        assert!(
            !lines.contains(&"AWS_EC2_METADATA_DISABLED=false"),
            "{}",
            r.output
        );
    }
}
