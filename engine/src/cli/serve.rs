//! `weft serve`: applies the workspace file to the store, then serves the HTTP API, webhooks
//! and schedules until interrupted (Ctrl-C or SIGTERM), finishing the runs in flight.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use jsonwebtoken::Algorithm;

use weft::auth::AuthConfig;
use weft::runner::Runner;
use weft::serve::{Role, ServeOptions, Server, schedule};
use weft::store::Durability;
use weft_model::spec::AuthSpec;

/// What `weft serve` was asked.
#[derive(Debug)]
pub struct Args {
    pub workspace: std::path::PathBuf,
    pub listen: SocketAddr,
    pub body_limit: usize,
    pub grace: Duration,
    pub durability: Durability,
    pub sandbox_replies: bool,
    pub role: RoleArg,
}

/// `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Run what this process accepts (one process does everything).
    All,
    /// Queue what it accepts in the PostgreSQL store for `weft worker` processes.
    Front,
}

/// The workspace's `[auth]` table as a verifier, or why there is none.
fn auth_config(
    spec: Option<&AuthSpec>,
    base_dir: &Path,
) -> anyhow::Result<Result<AuthConfig, String>> {
    let Some(spec) = spec else {
        return Ok(Err(
            "this workspace has no [auth] table, so no token or user hash can be verified; add `[auth] key = \"…\"` with `secret = \"env:…\"` (or `public_key = \"file:…\"`) to the workspace file".into(),
        ));
    };
    let algorithms = |default: Algorithm| -> anyhow::Result<Vec<Algorithm>> {
        if spec.algorithms.is_empty() {
            return Ok(vec![default]);
        }
        spec.algorithms
            .iter()
            .map(|a| {
                a.parse::<Algorithm>()
                    .map_err(|_| anyhow::anyhow!("[auth] algorithms: `{a}` is not a JWT algorithm (HS256, HS512, RS256, RS384, RS512, PS256, ES256, ES384)"))
            })
            .collect()
    };
    let mut config = match (&spec.secret, &spec.public_key) {
        (Some(secret), None) => {
            let secret =
                weft::secrets::load_reference(secret, base_dir).context("[auth] secret")?;
            AuthConfig::with_secret(&spec.key, secret.as_bytes(), &algorithms(Algorithm::HS256)?)
                .map_err(|e| anyhow::anyhow!("[auth]: {e}"))?
        }
        (None, Some(key)) => {
            let pem = weft::secrets::load_reference(key, base_dir).context("[auth] public_key")?;
            AuthConfig::with_public_key(&spec.key, pem.as_bytes(), &algorithms(Algorithm::RS256)?)
                .map_err(|e| anyhow::anyhow!("[auth]: {e}"))?
        }
        (Some(_), Some(_)) => bail!(
            "[auth] has both `secret` and `public_key`; a workspace verifies tokens with one of them"
        ),
        (None, None) => bail!(
            "[auth] needs `secret = \"env:…\"` (HS256/HS512 tokens) or `public_key = \"file:….pem\"` (RS/PS/ES tokens)"
        ),
    };
    if let Some(audience) = &spec.audience {
        config = config.with_audience(audience);
    }
    if let Some(secret) = &spec.user_hash_secret {
        let secret =
            weft::secrets::load_reference(secret, base_dir).context("[auth] user_hash_secret")?;
        config = config
            .with_user_hashes(secret.as_bytes())
            .map_err(|e| anyhow::anyhow!("[auth]: {e}"))?;
    }
    Ok(Ok(config))
}

pub fn main(args: Args, store: Option<&str>) -> anyhow::Result<ExitCode> {
    let ws = super::load_workspace(&args.workspace)?;
    let base_dir = args
        .workspace
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let auth = auth_config(ws.file.auth.as_ref(), &base_dir)?;
    if let Err(why) = &auth {
        tracing::warn!("{why}");
    }
    weft::observe::metrics::install()?;
    let location = super::store_location(store, Some(&args.workspace));
    let store = Arc::new(super::open_store(&location)?);
    let host = super::plugin_host(&store)?;
    super::prepare_code(&host, &ws)?;
    let registry = store.registry()?;
    for change in registry.apply(&ws, false)? {
        println!("  {change}");
    }
    store.prune_webhook_tokens()?;
    let vault = super::credentials::open_vault_if_configured(&store, ws.name())?;
    let runner = Runner::new(host, store.clone())
        .with_vault(vault.clone())
        .with_durability(args.durability);
    let server = Server::new(
        store.clone(),
        runner,
        auth,
        vault,
        base_dir,
        ServeOptions {
            body_limit: args.body_limit,
            grace: args.grace,
            sandbox_replies: args.sandbox_replies,
            role: match args.role {
                RoleArg::All => Role::All,
                RoleArg::Front => {
                    anyhow::ensure!(
                        store.queue().is_some(),
                        "`--role front` queues runs for `weft worker` processes in a store they share, which needs a PostgreSQL store: pass `--store postgres://…` (or set WEFT_STORE)"
                    );
                    Role::Front
                }
            },
        },
    )?;
    let webhooks = server.webhooks()?;
    let (schedules, problems) = schedule::collect(&server)?;
    if !problems.is_empty() {
        bail!("schedules that cannot run:\n  {}", problems.join("\n  "));
    }

    let rt = super::runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("failed to listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        for s in &schedules {
            println!(
                "  schedule `{}` of `{}`: `{}` ({}), next {}",
                s.flow,
                s.instance,
                s.expression,
                s.timezone.name(),
                s.next_after(chrono::Utc::now())
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "never".into())
            );
        }
        print_webhooks(&webhooks, addr);
        let instances = server.registry().instances()?.len();
        println!(
            "Weft serving workspace `{}` on http://{addr} ({instances} instance(s), {} schedule(s)); API at /api/v1, OpenAPI at /openapi.json",
            ws.name(),
            schedules.len()
        );
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut stopping = stop_rx.clone();
        let scheduler = tokio::spawn(schedule::run(server.clone(), schedules, stop_rx));
        let signalled = Arc::new(std::sync::OnceLock::new());
        let serving = axum::serve(listener, server.router()).with_graceful_shutdown({
            let signalled = signalled.clone();
            let server = server.clone();
            async move {
                shutdown_signal().await;
                // First of all, so that a load balancer asking `/ready` sends no more work.
                server.begin_shutdown();
                tracing::info!("stopping: no new connections; finishing the requests and runs in flight");
                let _ = signalled.set(tokio::time::Instant::now());
                let _ = stop_tx.send(true);
            }
        });
        // After the signal, requests still open (sync webhooks waiting for their runs) get
        // `--grace` too; past it the server stops waiting for them, and their runs are
        // recorded as interrupted below like any other run in flight.
        let grace = args.grace;
        tokio::select! {
            served = serving => served.context("the server stopped")?,
            () = async {
                let _ = stopping.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => {}
        }
        let _ = scheduler.await;
        let waiting = server.in_flight();
        if waiting > 0 {
            println!("Stopping: waiting up to {:?} for {waiting} run(s) in flight", args.grace);
        }
        // `--grace` counts from the signal, for open requests and runs in flight together.
        let deadline = signalled.get().map_or_else(tokio::time::Instant::now, |at| *at) + grace;
        let interrupted = server.drain_until(deadline).await?;
        if interrupted > 0 {
            println!("Stopped; {interrupted} run(s) recorded as interrupted (`weft runs resume RUN_ID` continues one)");
        } else {
            println!("Stopped; no run was left unfinished");
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The most webhook addresses printed at start; `weft instances show` has every one.
const WEBHOOKS_PRINTED: usize = 20;

/// The secret address of each instance flow's webhook.
fn print_webhooks(webhooks: &[(String, String, String)], addr: SocketAddr) {
    if webhooks.is_empty() {
        return;
    }
    println!(
        "  webhooks (secret addresses; `weft instances rotate-webhook INSTANCE FLOW` replaces one):"
    );
    for (instance, flow, path) in webhooks.iter().take(WEBHOOKS_PRINTED) {
        println!("    {instance}/{flow}  http://{addr}{path}");
    }
    if webhooks.len() > WEBHOOKS_PRINTED {
        println!(
            "    … and {} more (`weft instances show INSTANCE` lists an instance's)",
            webhooks.len() - WEBHOOKS_PRINTED
        );
    }
}

pub(super) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM can be watched");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
