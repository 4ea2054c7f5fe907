//! Where the store is and opening it: the directory or PostgreSQL URL `--store` names, the
//! local directory beside the workspace, the plugin host with the store's compile cache, and
//! `weft migrate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use weft::plugin::{CompileCache, HostOptions, PluginHost};
use weft::store::{RunStore, Store, StoreLocation};
use weft_model::workspace::Workspace;

/// `weft migrate`.
pub(crate) fn migrate(store: Option<&str>) -> anyhow::Result<ExitCode> {
    match store_location(store, None) {
        StoreLocation::Postgres { url, .. } => {
            let migrated = weft::store::PgStore::migrate(&url)?;
            let shown = weft::store::postgres::without_password(&url);
            if migrated.from == migrated.to {
                println!(
                    "The store at `{shown}` is at schema version {}; nothing to do.",
                    migrated.to
                );
            } else {
                println!(
                    "Migrated the store at `{shown}` from schema version {} to {}.",
                    migrated.from, migrated.to
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreLocation::Dir(dir) => bail!(
            "`weft migrate` is for a PostgreSQL store (`--store postgres://…` or WEFT_STORE); the store at `{}` is the embedded one, which needs no migration",
            dir.display()
        ),
    }
}

/// `.weft/` beside the workspace file, else `.weft/` here: the default store, and where a
/// PostgreSQL store keeps this machine's caches.
pub(crate) fn local_dir(workspace: Option<&Path>) -> PathBuf {
    match workspace {
        Some(ws) => ws.parent().unwrap_or(Path::new(".")).join(".weft"),
        None => PathBuf::from(".weft"),
    }
}

/// `--store` (a directory or a PostgreSQL URL), else [`local_dir`].
pub(crate) fn store_location(store: Option<&str>, workspace: Option<&Path>) -> StoreLocation {
    let local = local_dir(workspace);
    match store {
        Some(text) => StoreLocation::parse(text, &local),
        None => StoreLocation::Dir(local),
    }
}

pub(crate) fn open_existing_store(
    store: Option<&str>,
    workspace: Option<&Path>,
) -> anyhow::Result<Store> {
    let location = store_location(store, workspace);
    if !location.exists() {
        bail!(
            "no store at `{}`: nothing has run there yet; pass `--workspace WEFT_TOML` or `--store DIR|URL` to read another",
            location.shown()
        );
    }
    open_store(&location)
}

/// Opens the store and marks the runs a stopped process left `running` as `interrupted`
/// (sled locks the store to one process, so no other process can still be running them; on
/// PostgreSQL, only runs of processes that stopped heartbeating are).
pub(crate) fn open_store(location: &StoreLocation) -> anyhow::Result<Store> {
    let store = Store::open(location)?;
    let interrupted = store.mark_interrupted()?;
    if !interrupted.is_empty() {
        notice(&format!(
            "note: {} run(s) were interrupted by a stop of the process that ran them: {}; resume with `weft runs resume RUN_ID -w WEFT_TOML` or replay with `weft runs replay RUN_ID -w WEFT_TOML`",
            interrupted.len(),
            interrupted
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(store)
}

/// The plugin host, with the store's compile cache.
pub(crate) fn plugin_host(store: &Store) -> anyhow::Result<Arc<PluginHost>> {
    let cache = CompileCache::in_store(store)?;
    Ok(Arc::new(PluginHost::new(HostOptions {
        compile_cache: Some(cache),
        download_dir: Some(store.local_dir().join("plugins")),
        ..HostOptions::default()
    })?))
}

/// Builds the code steps of `ws` (or finds them built) before it is validated, applied or
/// served, and says how many were built.
pub(crate) fn prepare_code(host: &PluginHost, ws: &Workspace) -> anyhow::Result<()> {
    let before = host.cache_stats();
    let steps = host
        .prepare_code(ws)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", ws.path.display()))?;
    if steps > 0 {
        let after = host.cache_stats();
        notice(&format!(
            "code steps: {steps} ({} built, {} unchanged)",
            after.code_built - before.code_built,
            after.code_reused - before.code_reused
        ));
    }
    Ok(())
}

/// Opens a store that `weft apply` has written to.
pub(crate) fn open_managed_store(location: &StoreLocation) -> anyhow::Result<Store> {
    if !location.exists() {
        bail!(
            "no store at `{}`: pass the workspace file (`weft run weft.toml …`), or apply it first with `weft apply weft.toml` (or point at the store with `--store DIR|URL`)",
            location.shown()
        );
    }
    open_store(location)
}

/// Tells the user `message` on stderr: as a plain line, or as a log event when the logs are
/// JSON lines (which a plain line would break).
fn notice(message: &str) {
    if weft::observe::logs::json() {
        tracing::warn!("{message}");
    } else {
        eprintln!("{message}");
    }
}
