//! Commands of the `weft` binary.

mod credentials;
mod demo;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use weft::integration::Workspace;
use weft::plugin::{HostOptions, PluginHost};
use weft::runner::{RunRequest, Runner};
use weft::store::{RunFilter, RunStore, SledStore, Status};

/// Weft runs integration flows whose steps are sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about)]
struct Cli {
    /// The store directory (run records). Defaults to `.weft/` beside the workspace file.
    #[arg(long, global = true, env = "WEFT_STORE", value_name = "DIR")]
    store: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Pokemon Avatar Sync example end to end, offline: local stand-ins for the Pokemon
    /// API and S3, both customers' instances, and where the avatars landed.
    Demo {
        /// Where to keep the demo's workspace, bucket and run records.
        #[arg(long, value_name = "DIR", default_value = ".weft/demo")]
        dir: PathBuf,
    },
    /// Check a workspace file and every integration it lists, reporting all problems at once.
    Validate {
        /// The workspace file (`weft.toml` or `.json`).
        workspace: PathBuf,
    },
    /// Run a flow of an instance and record the run.
    Run {
        /// The workspace file.
        workspace: PathBuf,
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
    /// List runs, newest first.
    List {
        /// The workspace whose store to read (instead of `--store`).
        #[arg(long, short)]
        workspace: Option<PathBuf>,
        /// Only runs of this instance.
        #[arg(long, short)]
        instance: Option<String>,
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
    },
}

pub fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { workspace } => {
            let ws = load_workspace(&workspace)?;
            let steps: usize = ws
                .integrations
                .values()
                .flat_map(|i| &i.flows)
                .map(|f| f.steps.len())
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
        } => {
            let trigger = match trigger {
                Some(text) => {
                    serde_json::from_str(&text).context("`--trigger` is not valid JSON")?
                }
                None => serde_json::Value::Null,
            };
            let ws = load_workspace(&workspace)?;
            let store_dir = store_dir(cli.store.as_deref(), Some(&workspace));
            let store = Arc::new(SledStore::open(&store_dir)?);
            let vault = credentials::open_vault_if_configured(&store, ws.name())?;
            let host = Arc::new(PluginHost::new(HostOptions::default())?);
            let runner = Runner::new(host, store.clone()).with_vault(vault);
            let rt = runtime()?;
            if !json {
                output::announce(&ws, &instance, flow.as_deref());
            }
            let run = rt.block_on(runner.run(RunRequest {
                workspace: &ws,
                instance: &instance,
                flow: flow.as_deref(),
                trigger,
            }))?;
            store.flush()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                output::run_summary(&run, &store_dir, &workspace);
            }
            Ok(if run.run.status == Status::Succeeded {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Demo { dir } => demo::main(dir),
        Command::Credentials { command } => credentials::main(command, cli.store.as_deref()),
        Command::Runs { command } => match command {
            RunsCommand::List {
                workspace,
                instance,
                limit,
                json,
            } => {
                let store = open_existing_store(cli.store.as_deref(), workspace.as_deref())?;
                let runs = store.list_runs(&RunFilter {
                    instance,
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
            } => {
                let store = open_existing_store(cli.store.as_deref(), workspace.as_deref())?;
                let Some(run) = store.get_run(&run_id)? else {
                    bail!(
                        "no run `{run_id}` in the store at `{}`; `weft runs list` shows the runs it has",
                        store.path().display()
                    );
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&run)?);
                } else {
                    output::run_details(&run);
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

/// `--store`, else `.weft/` beside the workspace file, else `.weft/` here.
pub(crate) fn store_dir(store: Option<&Path>, workspace: Option<&Path>) -> PathBuf {
    match (store, workspace) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(ws)) => ws.parent().unwrap_or(Path::new(".")).join(".weft"),
        (None, None) => PathBuf::from(".weft"),
    }
}

fn open_existing_store(
    store: Option<&Path>,
    workspace: Option<&Path>,
) -> anyhow::Result<SledStore> {
    let dir = store_dir(store, workspace);
    if !dir.join("db").exists() {
        bail!(
            "no store at `{}`: nothing has run there yet; pass `--workspace WEFT_TOML` or `--store DIR` to read another",
            dir.display()
        );
    }
    SledStore::open(&dir)
}
