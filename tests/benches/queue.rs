//! Draining the PostgreSQL store's queue with 1, 2 and 4 workers, on this machine's cores with
//! PostgreSQL on the same cores.
//!
//! Each worker is a [`Worker`] with a store of its own (its own connections, writer and
//! heartbeat, as a separate `weft worker` process has) in this process, on one shared runtime.
//! - (a) no-op runs: N one-step Path Helper runs are queued, then the workers drain them; prints
//!   runs/s and PostgreSQL transactions per run (`pg_stat_database.xact_commit`, which counts
//!   every commit in the database: the queue's, the records', the heartbeats').
//! - (b) runs whose one step waits 100 ms on a loopback upstream, 32 slots per worker: runs/s
//!   against the ideal (slots × workers / 0.1 s).
//! - (c) sync webhooks (`?wait=true`, 16 keep-alive connections, `WEFT_BENCH_SECONDS` each,
//!   default 5) of the one-step flow: a front end and 2 workers on PostgreSQL against one
//!   process on sled (today's default), both at the default durability: runs/s and latency
//!   (p50, p90, p99, max), and for the front end the time each run waited in the queue
//!   before a worker took it (its record's `queued_us`). Every request's run is counted in
//!   the store afterwards.
//!
//! Each contender of (a) and (b) is preceded by a few runs not measured, so that compiling
//! the plugins is not counted against the first.
//!
//! The server is the tests' (`WEFT_TEST_POSTGRES`, default what `tests/tools/postgres` sets up;
//! its role must be allowed to create databases: each contender gets a fresh one);
//! `WEFT_BENCH_RUNS` sets N for (a) (default 10,000); `WEFT_BENCH_ONLY` (`a`, `b`, `c`,
//! comma-separated) picks parts, for profiling one alone.
//! `cargo bench -p weft-tests --bench queue`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::plugin::{HostOptions, PluginHost};
use weft::runner::Runner;
use weft::serve::{Role, ServeOptions, Server};
use weft::store::{PgStore, RunFilter, RunStore, SledStore, Status, Store, StoreLocation};
use weft::worker::{Worker, WorkerOptions};
use weft_model::workspace::Workspace;
use weft_tests::load::{Outcome, load, post_json, quantile};
use weft_tests::postgres::TestDatabase;
use weft_tests::server::TestServer;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn workspace(dir: &std::path::Path, slow_url: &str) -> anyhow::Result<Workspace> {
    std::fs::write(
        dir.join("weft.toml"),
        format!(
            r#"integrations = ["integration.toml"]
[workspace]
name = "queue-bench"
[plugins.http-get]
source = "builtin:http-get"
http = {{ allow = ["{slow_url}"], allow_loopback = true }}
[[customers]]
id = "acme"
name = "Acme"
config = {{ customerName = "Acme Rockets", pokemonAvatar = "onix" }}
[[instances]]
id = "acme"
customer = "acme"
integration = "bench"
"#
        ),
    )?;
    std::fs::write(
        dir.join("integration.toml"),
        format!(
            r#"name = "bench"
[config_vars]
customerName = {{ required = true }}
pokemonAvatar = {{ required = true }}
[[flows]]
name = "noop"
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"
[[flows]]
name = "wait"
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow_url}/slow?ms=100" }}
"#
        ),
    )?;
    Workspace::load(&dir.join("weft.toml")).map_err(|e| anyhow::anyhow!("{e}"))
}

fn open(db: &TestDatabase, local: &std::path::Path) -> anyhow::Result<Arc<Store>> {
    Ok(Arc::new(Store::open(&StoreLocation::Postgres {
        url: db.url().to_string(),
        local: local.to_path_buf(),
    })?))
}

/// What every contender shares.
struct Setup {
    rt: tokio::runtime::Runtime,
    ws: Workspace,
    local: std::path::PathBuf,
    host: Arc<PluginHost>,
}

/// Queues `runs` runs of `flow`, then drains them with `workers` workers of 32 slots;
/// (seconds, transactions committed in the database meanwhile).
fn drain(setup: &Setup, flow: &str, runs: usize, workers: usize) -> anyhow::Result<(f64, f64)> {
    let Setup { rt, ws, host, .. } = setup;
    let local = setup.local.as_path();
    let slots = 32;
    let db = TestDatabase::new();
    let front = open(&db, local)?;
    front.registry()?.apply(ws, false)?;
    let queue: &PgStore = front.queue().expect("a PostgreSQL store");
    for _ in 0..runs {
        let id = uuid::Uuid::now_v7().to_string();
        queue.enqueue(
            &id,
            "acme",
            flow,
            &serde_json::json!({ "trigger": null }),
            None,
        )?;
    }
    let stores: Vec<Arc<Store>> = (0..workers)
        .map(|_| open(&db, local))
        .collect::<anyhow::Result<_>>()?;
    let commits = |db: &TestDatabase| -> f64 {
        db.query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0]
            .parse()
            .unwrap_or(0.0)
    };
    // Statistics reach pg_stat_database with a delay; the figure is read after a pause.
    std::thread::sleep(Duration::from_millis(700));
    let before = commits(&db);
    let started = Instant::now();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = stores
        .iter()
        .map(|store| {
            let worker = Worker::new(
                store.clone(),
                Runner::new(host.clone(), store.clone()),
                WorkerOptions {
                    slots,
                    ..WorkerOptions::default()
                },
            )
            .expect("a PostgreSQL store");
            let stopping = stopping.clone();
            rt.spawn(async move { worker.run(stopping).await })
        })
        .collect();
    loop {
        let depth = queue.queue_depth()?;
        if depth.waiting == 0 && depth.running == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    for task in tasks {
        rt.block_on(task)??;
    }
    drop(stores);
    std::thread::sleep(Duration::from_millis(700));
    let transactions = commits(&db) - before;
    let done = front.list_runs(&RunFilter {
        status: Some(Status::Succeeded),
        ..RunFilter::default()
    })?;
    anyhow::ensure!(
        done.len() == runs,
        "{} of {runs} runs succeeded",
        done.len()
    );
    Ok((took, transactions))
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("WEFT_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = TestServer::start();
    let dir = tempfile::tempdir()?;
    let slow = server.url("");
    let setup = Setup {
        ws: workspace(dir.path(), slow.trim_end_matches('/'))?,
        host: Arc::new(PluginHost::new(HostOptions::default())?),
        local: dir.path().to_path_buf(),
        rt,
    };

    if selected("a") {
        drain_noop(&setup, runs)?;
    }
    if selected("b") {
        drain_waiting(&setup)?;
    }
    if selected("c") {
        compare_sync_webhooks(&setup)?;
    }
    Ok(())
}

/// Whether part `name` runs: all of them unless `WEFT_BENCH_ONLY` lists some.
fn selected(name: &str) -> bool {
    std::env::var("WEFT_BENCH_ONLY")
        .map(|only| only.split(',').any(|n| n.trim() == name))
        .unwrap_or(true)
}

/// (a)
fn drain_noop(setup: &Setup, runs: usize) -> anyhow::Result<()> {
    println!("(a) {runs} queued one-step runs drained; PostgreSQL on the same 2 cores\n");
    println!(
        "{:<10} {:>10} {:>10} {:>16}",
        "workers", "seconds", "runs/s", "transactions/run"
    );
    // Compiles the plugin, which the first contender would otherwise pay for.
    drain(setup, "noop", 64, 1)?;
    let mut one = None;
    for workers in [1, 2, 4] {
        let (took, transactions) = drain(setup, "noop", runs, workers)?;
        let per_second = runs as f64 / took;
        one.get_or_insert(per_second);
        println!(
            "{workers:<10} {took:>10.2} {per_second:>10.0} {:>16.2}   ({:.2}× one worker)",
            transactions / runs as f64,
            per_second / one.unwrap_or(per_second)
        );
    }

    Ok(())
}

/// (b)
fn drain_waiting(setup: &Setup) -> anyhow::Result<()> {
    let waiting = 640;
    println!("\n(b) {waiting} runs whose step waits 100 ms, 32 slots per worker\n");
    println!(
        "{:<10} {:>10} {:>10} {:>10} {:>10}",
        "workers", "seconds", "runs/s", "ideal", "of ideal"
    );
    drain(setup, "wait", 64, 1)?;
    let mut one = None;
    for workers in [1, 2, 4] {
        let (took, _) = drain(setup, "wait", waiting, workers)?;
        let per_second = waiting as f64 / took;
        let ideal = (32 * workers) as f64 / 0.1;
        one.get_or_insert(per_second);
        println!(
            "{workers:<10} {took:>10.2} {per_second:>10.0} {ideal:>10.0} {:>9.0}%   ({:.2}× one worker)",
            100.0 * per_second / ideal,
            per_second / one.unwrap_or(per_second)
        );
    }

    Ok(())
}

/// (c)
fn compare_sync_webhooks(setup: &Setup) -> anyhow::Result<()> {
    let seconds: f64 = std::env::var("WEFT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    println!(
        "\n(c) sync webhooks, {CONNECTIONS} keep-alive connections, {seconds} s each, default durability\n"
    );
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8} {:>8}   queued before a worker took it",
        "contender", "runs/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let (mut sled, _) = sync_webhooks(setup, false, seconds)?;
    let (mut shared, waits) = sync_webhooks(setup, true, seconds)?;
    let baseline = sled.rate();
    for (name, outcome, waits) in [
        ("one process on sled", &mut sled, None),
        (
            "front end + 2 workers, PostgreSQL",
            &mut shared,
            Some(waits),
        ),
    ] {
        let rate = outcome.rate();
        let [p50, p90, p99, _, max] = outcome.tail().map(|d| d.as_secs_f64() * 1e3);
        let waits = waits.map_or(String::new(), |mut w: Vec<f64>| {
            w.sort_by(f64::total_cmp);
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                quantile(&w, 0.5),
                quantile(&w, 0.99),
                quantile(&w, 1.0)
            )
        });
        println!(
            "{name:<34} {rate:>8.0} {p50:>8.2} {p90:>8.2} {p99:>8.2} {max:>8.2}   {waits}   ({:.2}× one process)",
            rate / baseline
        );
    }
    Ok(())
}

/// Connections of the load in (c).
const CONNECTIONS: usize = 16;

/// (c): sync webhook load on one process on sled, or (`shared`) on a front end with two
/// workers on a fresh PostgreSQL database; the outcome and, when shared, how long each run
/// waited in the queue (ms). Checks that every request's run is recorded as succeeded.
fn sync_webhooks(setup: &Setup, shared: bool, seconds: f64) -> anyhow::Result<(Outcome, Vec<f64>)> {
    let Setup { rt, ws, host, .. } = setup;
    let dir = tempfile::tempdir()?;
    let db = TestDatabase::new();
    let open_front = || -> anyhow::Result<Arc<Store>> {
        if shared {
            open(&db, &setup.local)
        } else {
            Ok(Arc::new(Store::from(SledStore::open(
                &dir.path().join(".weft"),
            )?)))
        }
    };
    let store = open_front()?;
    store.registry()?.apply(ws, false)?;
    let server = Server::new(
        store.clone(),
        Runner::new(host.clone(), store.clone()),
        Err("no auth in this benchmark".into()),
        None,
        setup.local.clone(),
        ServeOptions {
            role: if shared { Role::Front } else { Role::All },
            ..ServeOptions::default()
        },
    )?;
    let hook = format!("{}?wait=true", server.webhook_path("acme", "noop")?);
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let router = server.router();
    let serving = rt.spawn(async move { axum::serve(listener, router).await });
    // The workers: each with its connections, as separate processes would have.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for _ in 0..if shared { 2 } else { 0 } {
        let store = open(&db, &setup.local)?;
        let worker = Worker::new(
            store.clone(),
            Runner::new(host.clone(), store),
            WorkerOptions::default(),
        )?;
        let stopping = stopping.clone();
        workers.push(rt.spawn(async move { worker.run(stopping).await }));
    }
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let request = post_json(&hook, "{}");
    // Warm-up: connections, caches; not counted.
    let warm = client.block_on(load(
        addr,
        request.clone(),
        "HTTP/1.1 200",
        1.0,
        CONNECTIONS,
    ));
    let outcome = client.block_on(load(addr, request, "HTTP/1.1 200", seconds, CONNECTIONS));
    let _ = stop.send(true);
    for worker in workers {
        rt.block_on(worker)??;
    }
    serving.abort();
    let runs = store.list_runs(&RunFilter::default())?;
    let succeeded = runs
        .iter()
        .filter(|r| r.status == Status::Succeeded)
        .count();
    anyhow::ensure!(
        succeeded == warm.requests + outcome.requests,
        "{succeeded} runs succeeded for {} requests",
        warm.requests + outcome.requests
    );
    let waits = runs
        .iter()
        .filter_map(|r| r.queued_us)
        .map(|us| us as f64 / 1e3)
        .collect();
    Ok((outcome, waits))
}
