//! `weft runs replay` and `weft runs resume`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use weft::runner::Runner;
use weft::store::RunStore as _;

use super::{
    credentials, exit_code, load_workspace, open_managed_store, open_store, output, plugin_host,
    runtime, store_location,
};

/// Replays run `run_id` as a new run, or with `resume` continues it under its own id.
pub(super) fn again(
    store: Option<&str>,
    workspace: Option<&Path>,
    run_id: &str,
    json: bool,
    resume: bool,
) -> anyhow::Result<ExitCode> {
    let location = store_location(store, workspace);
    let (ws, store) = match workspace {
        Some(path) => {
            let ws = load_workspace(path)?;
            (ws, Arc::new(open_store(&location)?))
        }
        None => {
            let store = Arc::new(open_managed_store(&location)?);
            let run = store.get_run(run_id)?.with_context(|| {
                format!("no run `{run_id}` in the store at `{}`", location.shown())
            })?;
            let ws = store
                .registry()?
                .workspace_for(&run.run.instance, Some(run.run.integration_version))?;
            (ws, store)
        }
    };
    let vault = credentials::open_vault_if_configured(&store, ws.name())?;
    let host = plugin_host(&store)?;
    let runner = Runner::new(host, store.clone()).with_vault(vault);
    let rt = runtime()?;
    let run = rt.block_on(async {
        if resume {
            runner.resume(&ws, run_id).await
        } else {
            runner.replay(&ws, run_id).await
        }
    })?;
    store.flush()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        if resume {
            println!("Resumed run {run_id}");
        } else {
            println!("Replaying run {run_id} as run {}", run.run.id);
        }
        output::run_summary(&run, &location, workspace);
    }
    Ok(exit_code(&run.run))
}
