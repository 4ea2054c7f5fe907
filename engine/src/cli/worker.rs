//! `weft worker`: claims runs from the PostgreSQL store's queue and runs them.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use weft::runner::Runner;
use weft::store::Durability;
use weft::worker::{Worker, WorkerOptions};

/// `weft worker`'s arguments.
#[derive(Debug)]
pub struct Args {
    pub workspace: std::path::PathBuf,
    pub slots: usize,
    pub lease: Duration,
    pub grace: Duration,
    pub durability: Durability,
    pub metrics_listen: Option<std::net::SocketAddr>,
}

pub fn main(args: Args, store: Option<&str>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.slots > 0, "`--slots` must be at least 1");
    anyhow::ensure!(
        args.lease >= Duration::from_secs(1),
        "`--lease` must be at least 1 second"
    );
    let ws = super::load_workspace(&args.workspace)?;
    let location = super::store_location(store, Some(&args.workspace));
    let store = Arc::new(super::open_store(&location)?);
    let host = super::plugin_host(&store)?;
    super::prepare_code(&host, &ws)?;
    // The same managed state as the front ends: applying an unchanged file changes nothing.
    for change in store.registry()?.apply(&ws, false)? {
        println!("  {change}");
    }
    let vault = super::credentials::open_vault_if_configured(&store, ws.name())?;
    let runner = Runner::new(host, store.clone())
        .with_vault(vault)
        .with_durability(args.durability);
    let worker = Worker::new(
        store.clone(),
        runner,
        WorkerOptions {
            slots: args.slots,
            lease: args.lease,
            grace: args.grace,
            ..WorkerOptions::default()
        },
    )?;
    let rt = super::runtime()?;
    rt.block_on(async move {
        println!(
            "Weft worker for workspace `{}` on `{}`: {} slot(s), lease {:?}",
            ws.name(),
            store.shown(),
            args.slots,
            args.lease
        );
        if let Some(addr) = args.metrics_listen {
            weft::observe::metrics::install()?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("failed to listen on {addr} for `--metrics-listen`"))?;
            println!("Metrics on http://{}/metrics", listener.local_addr()?);
            tokio::spawn(async move { axum::serve(listener, metrics_router()).await });
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let (stop, stopping) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            super::serve::shutdown_signal().await;
            let _ = stop.send(true);
        });
        let finished = worker.run(stopping).await.context("the worker stopped")?;
        println!("Stopped; {finished} run(s) finished here");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `/metrics` (every metric in the Prometheus text format) and `/health`.
fn metrics_router() -> axum::Router {
    use axum::http::header;
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|| async {
                (
                    [(header::CONTENT_TYPE, weft::observe::metrics::CONTENT_TYPE)],
                    weft::observe::metrics::render().unwrap_or_default(),
                )
            }),
        )
        .route(
            "/health",
            axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
}
