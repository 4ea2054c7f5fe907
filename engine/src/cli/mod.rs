//! Commands of the `weft` binary.

mod args;
#[cfg(feature = "demo")]
mod contacts_demo;
mod credentials;
#[cfg(feature = "demo")]
mod demo;
mod manage;
mod output;
mod plugins;
mod replay;
mod serve;
mod store;
mod worker;

use args::{parse_age, parse_durability, parse_log_format, parse_status};
use replay::again;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
pub(crate) use store::{
    local_dir, migrate, open_existing_store, open_managed_store, open_store, plugin_host,
    prepare_code, store_location,
};
use weft::model::records::now_ms;
use weft::observe::logs::{self, LogFormat};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use weft::runner::{RunRequest, Runner};
use weft::store::{Durability, RunFilter, RunStore, Status};
use weft_model::workspace::Workspace;

/// Weft runs integration flows whose steps are sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    /// The store: a directory (the embedded store, for one process) or a PostgreSQL URL
    /// (`postgres://user:password@host/database`, shared by any number of processes).
    /// Defaults to `.weft/` beside the workspace file.
    #[arg(long, global = true, env = "WEFT_STORE", value_name = "DIR|URL")]
    store: Option<String>,

    /// How diagnostics are written to stderr: `text` or `json` (one object per line, for log
    /// collectors). Which are written is set by `WEFT_LOG` (default `info` for `weft serve`,
    /// `warn` otherwise): a level, or directives such as `weft=debug,warn`.
    #[arg(
        long,
        global = true,
        env = "WEFT_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text",
        value_parser = parse_log_format
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an example end to end, offline, against local stand-ins: Pokemon Avatar Sync (a
    /// Pokemon API and S3; both customers' instances, and where the avatars landed) or Contacts
    /// Sync (a contacts API and a CRM; what was created, updated and skipped).
    #[cfg(feature = "demo")]
    Demo {
        /// The example to run: `pokemon-avatar-sync` (the default) or `contacts-sync`.
        #[arg(value_enum, default_value = "pokemon-avatar-sync")]
        example: demo::Example,
        /// Where to keep the demo's workspace, bucket and run records (default
        /// `.weft/demo`, or `.weft/demo-contacts` for contacts-sync).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Which Path Helper to use: the built-in Rust one, or the example's code step in
        /// JavaScript (built on QuickJS by `weft` itself) or Python (built with
        /// componentize-py).
        #[arg(long, value_enum, default_value = "rust")]
        path_helper: demo::PathHelperArg,
    },
    /// Compile a JavaScript or Python code step into a `weft:step` component: JavaScript on
    /// QuickJS by `weft` itself (or on SpiderMonkey with componentize-js from npm), Python
    /// with componentize-py (PyPI). A manifest `NAME.plugin.toml` beside the source decides
    /// which host interfaces it imports (config and log always).
    Build {
        /// The step's source: `STEP.js`, `STEP.mjs` or `STEP.py`, exporting
        /// `run(context, inputs)` (or, in JavaScript, Prismatic's
        /// `module.exports = async ({ configVars }, params) => ({ data })`).
        source: PathBuf,
        /// Where to write the component (default: the source with `.wasm`).
        #[arg(short, long, value_name = "OUT.wasm")]
        output: Option<PathBuf>,
        /// The JavaScript engine: `quickjs` (built by `weft` itself; small, fast to start) or
        /// `spidermonkey` (componentize-js from npm; a fuller web API).
        #[arg(long, default_value = "quickjs", value_parser = weft::build::JsEngine::parse)]
        engine: weft::build::JsEngine,
    },
    /// Apply the workspace file to the store, then serve the HTTP API (`/api/v1`, described
    /// at `/openapi.json`), webhooks (each flow at a secret `/webhooks/TOKEN`, printed at start)
    /// and schedules until Ctrl-C or SIGTERM; runs in flight then finish (or, after `--grace`,
    /// are recorded as interrupted).
    Serve {
        /// The workspace file; its `[auth]` table says how apps authenticate.
        workspace: PathBuf,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The largest webhook body accepted, in bytes.
        #[arg(long, default_value_t = weft::serve::DEFAULT_BODY_LIMIT)]
        body_limit: usize,
        /// How long to wait for runs in flight when stopping, in seconds.
        #[arg(long, default_value_t = 30)]
        grace: u64,
        /// When records are made durable: `step` (after every step, the default), `run` or
        /// `background`.
        #[arg(long, default_value = "step", value_parser = parse_durability)]
        durability: Durability,
        /// Serve webhook replies without `Content-Security-Policy: sandbox`, letting an HTML
        /// reply from a step run script on this server's origin. Only for plugins you trust.
        #[arg(long)]
        allow_reply_scripts: bool,
        /// `all`: run what this process accepts; `front`: queue it in the PostgreSQL store for
        /// `weft worker` processes (a sync webhook is answered when a worker has run it).
        #[arg(long, value_enum, default_value = "all")]
        role: serve::RoleArg,
    },
    /// Claim runs from the PostgreSQL store's queue and run them, beside `weft serve --role
    /// front` processes taking the requests. Any number of workers share the queue; a run
    /// whose worker stops is resumed by another once its lease runs out.
    Worker {
        /// The workspace file (applied to the store at start, as `weft serve` does).
        workspace: PathBuf,
        /// Runs at once.
        #[arg(long, default_value_t = 32)]
        slots: usize,
        /// Seconds a claimed run stays held without a renewal (renewed every third of it);
        /// a worker stopped for longer loses its runs to the others.
        #[arg(long, default_value_t = 15)]
        lease: u64,
        /// How long to wait for runs in flight when stopping, in seconds (those still going
        /// are left to their leases, and another worker resumes them).
        #[arg(long, default_value_t = 30)]
        grace: u64,
        /// When records are made durable: `step` (after every step, the default), `run` or
        /// `background`.
        #[arg(long, default_value = "step", value_parser = parse_durability)]
        durability: Durability,
        /// Serve `/metrics` (Prometheus text, unauthenticated: bind it to an address only your
        /// monitoring reaches) and `/health` on this address, e.g. `127.0.0.1:9091`.
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Check a workspace file and every integration it lists, reporting all problems at once.
    Validate {
        /// The workspace file (`weft.toml` or `.json`).
        workspace: PathBuf,
    },
    /// Make the store match a workspace file: publish changed integrations as new versions,
    /// create, update and remove customers and instances. Prints what changed.
    Apply {
        /// The workspace file.
        workspace: PathBuf,
        /// Move every instance to the newest version of its integration.
        #[arg(long)]
        upgrade: bool,
    },
    /// Bring a PostgreSQL store's schema up to date (every `weft` process also does so when it
    /// opens the store; this does it on its own, before rolling out a new version).
    Migrate,
    /// Inspect a plugin component, or print the policy entry to add it to a workspace.
    Plugins {
        #[command(subcommand)]
        command: plugins::Command,
    },
    /// Customers in the store.
    Customers {
        #[command(subcommand)]
        command: manage::Customers,
    },
    /// Instances in the store: list, show, upgrade, enable, disable.
    Instances {
        #[command(subcommand)]
        command: manage::Instances,
    },
    /// Integrations in the store and their versions.
    Integrations {
        #[command(subcommand)]
        command: manage::Integrations,
    },
    /// Config vars in the store, at the workspace, customer or instance level.
    Config {
        #[command(subcommand)]
        command: manage::Config,
    },
    /// Run a flow of an instance and record the run. With a workspace file, runs what the
    /// files say; without one, runs what `weft apply` stored (the instance's pinned version).
    Run {
        /// The workspace file; omit it to run from the store.
        workspace: Option<PathBuf>,
        /// The instance to run.
        #[arg(long, short)]
        instance: String,
        /// The flow to run (default: the integration's first flow).
        #[arg(long, short)]
        flow: Option<String>,
        /// Trigger payload as JSON, reachable as `{{ trigger.… }}`.
        #[arg(long, value_name = "JSON")]
        trigger: Option<String>,
        /// Print the run record as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Print a JSON line to stdout as each step is recorded (after it is durable), for
        /// tools that follow a run.
        #[arg(long)]
        events: bool,
        /// When records are made durable: `step` (after every step, the default), `run`
        /// (at the end of the run) or `background` (left to the store, within 500 ms).
        #[arg(long, default_value = "step", value_parser = parse_durability)]
        durability: Durability,
    },
    /// Inspect recorded runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Manage credentials: stored encrypted in the store under `WEFT_MASTER_KEY`.
    Credentials {
        #[command(subcommand)]
        command: credentials::Command,
    },
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// Run a recorded run again, as a new run linked to it: its instance, flow, trigger input
    /// and config snapshot (secret vars are resolved again).
    Replay {
        /// The run to replay.
        run_id: String,
        /// The workspace file; without it, the run's instance and integration version as
        /// stored by `weft apply`.
        #[arg(long, short)]
        workspace: Option<PathBuf>,
        /// Print the new run as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Continue an interrupted run from its last completed step.
    Resume {
        /// The interrupted run.
        run_id: String,
        /// The workspace file; without it, the run's instance and integration version as
        /// stored by `weft apply`.
        #[arg(long, short)]
        workspace: Option<PathBuf>,
        /// Print the run as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete old runs: those older than `--older-than`, and all but the newest `--keep`.
    Prune {
        /// The workspace whose store to prune (instead of `--store`).
        #[arg(long, short)]
        workspace: Option<PathBuf>,
        /// Delete runs started longer ago than this (`30d`, `12h`).
        #[arg(long, value_name = "DURATION", value_parser = parse_age)]
        older_than: Option<Duration>,
        /// Keep at most this many runs, the newest.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
    },
    /// List runs, newest first.
    List {
        /// The workspace whose store to read (instead of `--store`).
        #[arg(long, short)]
        workspace: Option<PathBuf>,
        /// Only runs of this instance.
        #[arg(long, short)]
        instance: Option<String>,
        /// Only runs for this customer.
        #[arg(long, short)]
        customer: Option<String>,
        /// Only runs of this flow.
        #[arg(long, short)]
        flow: Option<String>,
        /// Only runs with this status: running, succeeded, failed, succeeded_with_errors,
        /// interrupted.
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
        /// Only runs started within this long before now (`90s`, `2h`, `7d`).
        #[arg(long, value_name = "DURATION", value_parser = parse_age)]
        since: Option<Duration>,
        /// At most this many runs.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: every step's inputs, output, logs, timing and error.
    Show {
        /// The run's id.
        run_id: String,
        /// The workspace whose store to read (instead of `--store`).
        #[arg(long, short)]
        workspace: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Show iteration N of the run's loops in full (failed iterations are always shown).
        #[arg(long, value_name = "N")]
        iteration: Option<u64>,
    },
}

pub fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    // A server's log says what it does; a command's output is its tables, so only problems.
    let level = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    logs::init(cli.log_format, level)?;
    match cli.command {
        Command::Validate { workspace } => {
            let ws = load_workspace(&workspace)?;
            if ws.file.plugins.values().any(|p| p.code.is_some()) {
                // Code steps are built to be checked, into the store's compile cache so that
                // `apply` and `serve` find them built.
                let location = store_location(cli.store.as_deref(), Some(&workspace));
                let host = plugin_host(&open_store(&location)?)?;
                prepare_code(&host, &ws)?;
            }
            let steps: usize = ws
                .integrations
                .values()
                .flat_map(|i| &i.flows)
                .map(|f| f.all_steps().len())
                .sum();
            println!(
                "{} is valid: {} integration(s), {} step(s), {} customer(s), {} instance(s)",
                workspace.display(),
                ws.integrations.len(),
                steps,
                ws.file.customers.len(),
                ws.file.instances.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            workspace,
            instance,
            flow,
            trigger,
            json,
            events,
            durability,
        } => {
            let trigger = match trigger {
                Some(text) => {
                    serde_json::from_str(&text).context("`--trigger` is not valid JSON")?
                }
                None => serde_json::Value::Null,
            };
            let location = store_location(cli.store.as_deref(), workspace.as_deref());
            let (ws, store) = match &workspace {
                Some(path) => {
                    let ws = load_workspace(path)?;
                    (ws, Arc::new(open_store(&location)?))
                }
                None => {
                    let store = Arc::new(open_managed_store(&location)?);
                    let ws = store.registry()?.workspace_for(&instance, None)?;
                    (ws, store)
                }
            };
            let vault = credentials::open_vault_if_configured(&store, ws.name())?;
            let host = plugin_host(&store)?;
            let mut runner = Runner::new(host, store.clone())
                .with_vault(vault)
                .with_durability(durability);
            if events {
                runner = runner.with_observer(Arc::new(|run, step| {
                    let line = serde_json::json!({
                        "event": "step_recorded",
                        "run": run.id,
                        "step": step,
                    });
                    println!("{line}");
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                }));
            }
            let rt = runtime()?;
            if !json && !events {
                output::announce(&ws, &instance, flow.as_deref());
            }
            let run = rt.block_on(runner.run(RunRequest {
                workspace: &ws,
                instance: &instance,
                flow: flow.as_deref(),
                trigger,
            }))?;
            store.flush()?;
            if events {
                let line = serde_json::json!({ "event": "run_ended", "run": run.run });
                println!("{line}");
            } else if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                output::run_summary(&run, &location, workspace.as_deref());
            }
            Ok(exit_code(&run.run))
        }
        Command::Apply { workspace, upgrade } => {
            manage::apply(cli.store.as_deref(), &workspace, upgrade)
        }
        Command::Build {
            source,
            output,
            engine,
        } => plugins::build(&source, output.as_deref(), engine),
        Command::Migrate => migrate(cli.store.as_deref()),
        Command::Serve {
            workspace,
            listen,
            body_limit,
            grace,
            durability,
            allow_reply_scripts,
            role,
        } => serve::main(
            serve::Args {
                workspace,
                listen,
                body_limit,
                grace: Duration::from_secs(grace),
                durability,
                sandbox_replies: !allow_reply_scripts,
                role,
            },
            cli.store.as_deref(),
        ),
        Command::Worker {
            workspace,
            slots,
            lease,
            grace,
            durability,
            metrics_listen,
        } => worker::main(
            worker::Args {
                workspace,
                slots,
                lease: Duration::from_secs(lease),
                grace: Duration::from_secs(grace),
                durability,
                metrics_listen,
            },
            cli.store.as_deref(),
        ),
        Command::Plugins { command } => plugins::main(command),
        Command::Customers { command } => manage::customers(cli.store.as_deref(), command),
        Command::Instances { command } => manage::instances(cli.store.as_deref(), command),
        Command::Integrations { command } => manage::integrations(cli.store.as_deref(), command),
        Command::Config { command } => manage::config(cli.store.as_deref(), command),
        #[cfg(feature = "demo")]
        Command::Demo {
            example,
            dir,
            path_helper,
        } => match example {
            demo::Example::PokemonAvatarSync => demo::main(
                dir.unwrap_or_else(|| PathBuf::from(".weft/demo")),
                path_helper.into(),
            ),
            demo::Example::ContactsSync => {
                contacts_demo::main(dir.unwrap_or_else(|| PathBuf::from(".weft/demo-contacts")))
            }
        },
        Command::Credentials { command } => credentials::main(command, cli.store.as_deref()),
        Command::Runs { command } => match command {
            RunsCommand::Replay {
                run_id,
                workspace,
                json,
            } => again(
                cli.store.as_deref(),
                workspace.as_deref(),
                &run_id,
                json,
                false,
            ),
            RunsCommand::Resume {
                run_id,
                workspace,
                json,
            } => again(
                cli.store.as_deref(),
                workspace.as_deref(),
                &run_id,
                json,
                true,
            ),
            RunsCommand::Prune {
                workspace,
                older_than,
                keep,
            } => {
                if older_than.is_none() && keep.is_none() {
                    bail!("say what to prune: `--older-than DURATION`, `--keep N`, or both");
                }
                let store = open_existing_store(cli.store.as_deref(), workspace.as_deref())?;
                let before = older_than.map(|age| now_ms().saturating_sub(age.as_millis() as u64));
                let pruned = store.prune(before, keep)?;
                println!(
                    "Pruned {} run(s) and {} stored binary value(s) from {}.",
                    pruned.runs,
                    pruned.blobs,
                    store.shown()
                );
                Ok(ExitCode::SUCCESS)
            }
            RunsCommand::List {
                workspace,
                instance,
                customer,
                flow,
                status,
                since,
                limit,
                json,
            } => {
                let store = open_existing_store(cli.store.as_deref(), workspace.as_deref())?;
                let runs = store.list_runs(&RunFilter {
                    instance,
                    customer,
                    flow,
                    status,
                    since_ms: since.map(|age| now_ms().saturating_sub(age.as_millis() as u64)),
                    until_ms: None,
                    limit: Some(limit),
                })?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&runs)?);
                } else {
                    output::runs_table(&runs);
                }
                Ok(ExitCode::SUCCESS)
            }
            RunsCommand::Show {
                run_id,
                workspace,
                json,
                iteration,
            } => {
                let store = open_existing_store(cli.store.as_deref(), workspace.as_deref())?;
                let Some(run) = store.get_run(&run_id)? else {
                    bail!(
                        "no run `{run_id}` in the store at `{}`; `weft runs list` shows the runs it has",
                        store.shown()
                    );
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&run)?);
                } else {
                    output::run_details(&run, iteration);
                }
                Ok(ExitCode::SUCCESS)
            }
        },
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

pub(crate) fn load_workspace(path: &Path) -> anyhow::Result<Workspace> {
    if !path.is_file() {
        bail!(
            "workspace file `{}` does not exist; pass the path of a `weft.toml` (or `.json`)",
            path.display()
        );
    }
    Workspace::load(path).map_err(|errors| anyhow::anyhow!("{}: {errors}", path.display()))
}

fn exit_code(run: &weft::store::RunRecord) -> ExitCode {
    if run.status == Status::Succeeded || run.status == Status::SucceededWithErrors {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
