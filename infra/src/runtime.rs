//! The async runtime of each binary's entry point (`slipway serve`, `slipway demo`,
//! `slipway-runner`): built, run to an exit code, and shut down with a bound, so a stuck
//! background task (a blocking read, a hung upload) can't keep a process alive after its result
//! is decided.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

/// How long background tasks get once the entry point has its exit code.
const SHUTDOWN: Duration = Duration::from_secs(2);

/// One entry point's runtime.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// What starts an error line on stderr (`error`, `slipway-runner`).
    pub prefix: &'a str,
    /// Worker threads; `None`: one per core.
    pub workers: Option<usize>,
    /// The exit code when the runtime can't start.
    pub no_runtime: u8,
}

impl Entry<'_> {
    /// Run `main` to its exit code on a multi-thread runtime with I/O and timers.
    pub fn block_on<F: Future<Output = ExitCode>>(&self, main: F) -> ExitCode {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = self.workers {
            builder.worker_threads(n);
        }
        let runtime = match builder.enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: starting the async runtime: {e}", self.prefix);
                return ExitCode::from(self.no_runtime);
            }
        };
        let code = runtime.block_on(main);
        runtime.shutdown_timeout(SHUTDOWN);
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_future_decides_the_exit_code() {
        let entry = Entry {
            prefix: "test",
            workers: Some(1),
            no_runtime: 2,
        };
        let code = entry.block_on(async {
            tokio::task::yield_now().await;
            ExitCode::from(7)
        });
        assert_eq!(code, ExitCode::from(7));
    }
}
