//! `slipway demo`: the whole flow on one machine, with no Slack, GitHub or AWS account.
//!
//! It starts the emulators (`slipway-emulators`: Slack's Web API, GitHub with real bare git
//! repositories, the Kubernetes API the real kubectl talks to, the Actions OIDC issuer, and
//! Jira, ServiceNow and Loki as the audit trail's sinks), moto
//! for S3 with Object Lock when it is installed, and the real bridge (`slipway serve`) as a
//! child process. The terminal is the Slack channel: everything a person does goes to the bridge
//! as a signed HTTP request, exactly as Slack would send it. When `main` moves, the real runner
//! executes, as the example Actions workflow would run it.
//!
//! This module is the only production-crate code that uses the emulators, and it exists only
//! with the `demo` feature (default on; `--no-default-features` builds a binary without it).
//!
//! Exit codes: 0 the walkthrough worked (or the interactive session ended), 1 a scripted step
//! failed, 2 the demo could not be set up (what was missing is printed), 130 interrupted.

mod actions;
mod channel;
mod http;
pub mod plain;
mod repl;
mod screen;
mod script;
pub mod sinks;
mod surface;
mod world;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use actions::Actions;
use channel::Channel;
use screen::Screen;
use world::World;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Run the whole walkthrough non-interactively and print its transcript; exit 0 only if
    /// every step worked.
    #[arg(long)]
    pub scripted: bool,
    /// The person you type as at first (switch with `:as`).
    #[arg(long = "as", value_name = "SLACK_USER", default_value = "U0OPERATOR")]
    pub user: String,
    /// Keep everything (the emulated GitHub's repositories, the audit spool, logs) in this
    /// new or empty directory; by default a temporary directory is used and removed at the end.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Don't start moto: audit records stay in the local spool.
    #[arg(long)]
    pub no_s3: bool,
}

pub fn run(args: &DemoArgs) -> ExitCode {
    let (dir, _temp) = match &args.dir {
        Some(d) => {
            // Each run is a new world (an empty GitHub, a new audit trail): an old run's files
            // would contradict it, and the demo never deletes what it did not create.
            if std::fs::read_dir(d).is_ok_and(|mut entries| entries.next().is_some()) {
                eprintln!(
                    "error: {} is not empty: every demo starts a fresh world, so give --dir a new or empty directory",
                    d.display()
                );
                return ExitCode::from(2);
            }
            if let Err(e) = std::fs::create_dir_all(d) {
                eprintln!("error: creating {}: {e}", d.display());
                return ExitCode::from(2);
            }
            (d.clone(), None)
        }
        None => match tempfile::Builder::new().prefix("slipway-demo-").tempdir() {
            Ok(t) => (t.path().to_path_buf(), Some(t)),
            Err(e) => {
                eprintln!("error: creating a temporary directory: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if world::person(&args.user).is_none() {
        eprintln!(
            "error: --as {}: not one of the example people; use one of {}",
            args.user,
            world::PEOPLE
                .iter()
                .map(|p| p.slack)
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::from(2);
    }
    let entry = slipway_infra::runtime::Entry {
        prefix: "error",
        workers: Some(2),
        no_runtime: 2,
    };
    // Children (bridge, moto, runner jobs) are killed as their handles drop.
    entry.block_on(demo(args, dir))
}

async fn demo(args: &DemoArgs, dir: PathBuf) -> ExitCode {
    let screen = Arc::new(Screen::default());
    screen.line(format!(
        "Starting Slipway's demo in {} (emulated Slack, GitHub and Kubernetes; the real bridge, kubectl, git and runner)…",
        dir.display()
    ));
    let world = match World::start(&dir, !args.no_s3).await {
        Ok(w) => Arc::new(w),
        Err(e) => {
            eprintln!("error: the demo could not start: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = actions::write_config(&world) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    screen.print(&banner(&world));
    let channel = Arc::new(Channel::new(world.clone(), screen.clone()));
    let actions = Arc::new(Actions::new(world.clone(), screen.clone()));
    let stop = CancellationToken::new();
    tokio::spawn(actions.clone().watch(stop.clone()));
    let session = async {
        if args.scripted {
            let script = script::Script {
                world: world.clone(),
                screen: screen.clone(),
                channel,
                actions,
            };
            if script.run().await {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        } else {
            interactive(args, &world, &screen, channel, stop.clone()).await
        }
    };
    // Ctrl-C reaches the whole process group; stop in order, so the directory is cleaned up.
    let code = tokio::select! {
        code = session => code,
        _ = tokio::signal::ctrl_c() => {
            screen.line("Interrupted: stopping the bridge, the emulators and moto.");
            ExitCode::from(130)
        }
    };
    stop.cancel();
    if args.dir.is_some() {
        screen.line(format!("Everything is kept in {}.", dir.display()));
    }
    code
}

/// Where everything runs and where its logs are, so a visitor can look behind the channel;
/// says why S3 is off when it is.
fn banner(world: &World) -> Vec<String> {
    let mut banner = vec![format!(
        "  bridge      {} (log: {})",
        world.bridge_url,
        world.bridge.log.display()
    )];
    banner.push(format!(
        "  GitHub      {}  (acme/gitops: {})",
        world.github.base_url(),
        world
            .gitops_dir()
            .map_or_else(String::new, |d| d.display().to_string())
    ));
    banner.push(format!(
        "  Kubernetes  {}  (the first rollout of api/api fails, so Roll back can be shown)",
        world.kube.https_url()
    ));
    banner.push(format!(
        "  sinks       Jira {}, ServiceNow {}, Loki {}",
        world.sinks.jira.base_url(),
        world.sinks.servicenow.base_url(),
        world.sinks.loki.base_url()
    ));
    match (&world.moto, &world.s3_warning) {
        (Some(m), _) => banner.push(format!(
            "  audit       {} → s3://{}/slipway on moto {} (Object Lock, COMPLIANCE)",
            world.spool_dir().display(),
            world::BUCKET,
            m.url
        )),
        (None, warning) => banner.push(format!(
            "  audit       {} (local spool only) — warning: {}",
            world.spool_dir().display(),
            warning.as_deref().unwrap_or("S3 is off")
        )),
    }
    banner
}

async fn interactive(
    args: &DemoArgs,
    world: &Arc<World>,
    screen: &Arc<Screen>,
    channel: Arc<Channel>,
    stop: CancellationToken,
) -> ExitCode {
    channel.set_muted(true);
    let people: Vec<&str> = world::PEOPLE.iter().map(|p| p.slack).collect();
    screen.line(
        "Linking everyone's GitHub account (the device flow, answered on the emulated github.com)…",
    );
    if let Err(e) = script::link_accounts(&channel, &people).await {
        screen.line(format!(
            "warning: {e}; approvals need `/slipway link github` first"
        ));
    }
    channel
        .settle(Duration::from_millis(300), Duration::from_secs(5))
        .await;
    channel.set_muted(false);
    let mut intro = vec![String::new()];
    intro.extend(repl::users());
    intro.push(String::new());
    intro.extend(repl::help());
    screen.print(&intro);
    let repl = repl::Repl {
        world: world.clone(),
        screen: screen.clone(),
        channel,
        user: world::person(&args.user)
            .map_or("U0OPERATOR", |p| p.slack)
            .to_string(),
    };
    repl.run(stop).await;
    screen.line("Stopping the bridge, the emulators and moto.");
    ExitCode::SUCCESS
}
