//! Load on `weft serve`: 16 keep-alive connections (`WEFT_BENCH_CONNECTIONS`) firing webhook runs of the Path Helper flow
//! over loopback, on this machine's cores, with every run recorded in the sled store.
//!
//! Contenders, one after another in one process (the server on its own 2-thread runtime, the
//! load generator on another):
//! - `HTTP floor`: the same server stack answering a fixed JSON body without running anything,
//!   the ceiling of the HTTP layer here (the baseline the others are divided by);
//! - `sync webhook`: `POST /webhooks/{token}?wait=true`, answered with the step's
//!   result when the run ends;
//! - `async webhook`: answered 202 with the run id; the bench then waits for every run to end.
//!
//! Each is run with records flushed in the background (`--durability background`) and with the
//! default fsync after every step (`step`). After each, the store is counted: every request
//! must have its recorded, succeeded run. At `step`, each webhook contender also prints the
//! store flushes made while it ran, from `weft_store_flush_seconds` (how many, their mean, how
//! many took over 50 ms): a sync answer waits for its run's flush, so a disk that stalls shows
//! there as well as in the tail. Two references without HTTP are printed beside them:
//! the runner alone running one run after another (with its records kept, and discarded), and
//! as many runs at once as there are connections.
//!
//! Then, when `wrk` is installed (`apt-get install wrk`) and the release binary is built
//! (`cargo build --release -p weft`), the same three contenders against the real `weft serve`
//! process, loaded by `wrk -t1 -c16` (the floor there is `GET /health`); at `step`, the server's
//! store flushes during each are read from its `/metrics` the same way; then the server is
//! stopped and its store counted.
//!
//! `cargo bench -p weft-tests --bench serve_load` (`WEFT_BENCH_SECONDS`, default 5 per contender;
//! `WEFT_BENCH_ONLY` and `WEFT_BENCH_DURABILITY` pick contenders, see below).

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_tests::load::{Outcome, post_json};

/// The allocator the `weft` binary uses, so the server in this process behaves as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use weft::plugin::{HostOptions, PluginHost};
use weft::runner::Runner;
use weft::serve::{ServeOptions, Server};
use weft::store::{DiscardStore, Durability, RunFilter, RunStore, SledStore, Status, Store};
use weft_model::workspace::Workspace;

/// Keep-alive connections of the load generator (`WEFT_BENCH_CONNECTIONS`, default 16).
fn connections() -> usize {
    std::env::var("WEFT_BENCH_CONNECTIONS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(16)
}

const WORKSPACE: &str = r#"integrations = ["integration.toml"]
[workspace]
name = "load"
[[customers]]
id = "acme"
name = "Acme"
config = { customerName = "Acme Rockets", pokemonAvatar = "onix" }
[[instances]]
id = "acme-sync"
customer = "acme"
integration = "avatars"
"#;

const INTEGRATION: &str = r#"name = "avatars"
[config_vars]
customerName = { required = true }
pokemonAvatar = { required = true }
[[flows]]
name = "paths"
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"
"#;

/// One run of the webhook's flow through the runner alone, as a request would start it.
async fn one_run(runner: &Runner, ws: &Workspace) {
    let run = runner
        .run(weft::runner::RunRequest {
            workspace: ws,
            instance: "acme-sync",
            flow: Some("paths"),
            trigger: serde_json::json!({ "body": { "region": "eu" } }),
        })
        .await
        .expect("the run starts");
    assert_eq!(run.run.status, Status::Succeeded);
}

fn request(path: &str) -> Vec<u8> {
    post_json(path, r#"{"region":"eu"}"#)
}

/// [`weft_tests::load::load`] on [`connections`] connections.
async fn load(
    addr: std::net::SocketAddr,
    request: Vec<u8>,
    expect_status: &'static str,
    seconds: f64,
) -> Outcome {
    weft_tests::load::load(addr, request, expect_status, seconds, connections()).await
}

/// Whether contender `name` runs: all of them unless `WEFT_BENCH_ONLY` lists some
/// (comma-separated: `floor`, `alone`, `parallel`, `sync`, `async`, and `wrk` for the real
/// process), for profiling one alone.
fn selected(name: &str) -> bool {
    std::env::var("WEFT_BENCH_ONLY")
        .map(|only| only.split(',').any(|n| n.trim() == name))
        .unwrap_or(true)
}

/// The durabilities measured: both unless `WEFT_BENCH_DURABILITY` names one.
fn durabilities() -> Vec<Durability> {
    match std::env::var("WEFT_BENCH_DURABILITY").as_deref() {
        Ok("background") => vec![Durability::Background],
        Ok("step") => vec![Durability::Step],
        Ok("run") => vec![Durability::Run],
        _ => vec![Durability::Background, Durability::Step],
    }
}

fn main() -> anyhow::Result<()> {
    let seconds: f64 = std::env::var("WEFT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    // The server's worker threads (`WEFT_BENCH_SERVER_THREADS`, default 2: the cores here).
    let server_threads: usize = std::env::var("WEFT_BENCH_SERVER_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let host = Arc::new(PluginHost::new(HostOptions::default())?);
    // The metrics `weft serve` records, so the in-process server's store flushes can be read.
    weft::observe::metrics::install()?;

    println!(
        "weft serve under load: {} keep-alive connections over loopback, {seconds} s per contender, this machine's {} cores shared by server and load generator",
        connections(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut floor_rate = None;
    let in_process = ["floor", "alone", "parallel", "sync", "async"]
        .into_iter()
        .any(selected);
    for durability in durabilities().into_iter().filter(|_| in_process) {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("weft.toml"), WORKSPACE)?;
        std::fs::write(dir.path().join("integration.toml"), INTEGRATION)?;
        let ws =
            Workspace::load(&dir.path().join("weft.toml")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = Arc::new(Store::from(SledStore::open(&dir.path().join(".weft"))?));
        store.registry()?.apply(&ws, false)?;
        let runner = Runner::new(host.clone(), store.clone()).with_durability(durability);
        let server = Server::new(
            store.clone(),
            runner,
            Err("no auth in this benchmark".into()),
            None,
            dir.path().to_path_buf(),
            ServeOptions::default(),
        )?;
        let router = server.router().route(
            "/floor",
            axum::routing::post(|| async {
                axum::Json(serde_json::json!({
                    "pokemonUrl": "https://pokeapi.co/api/v2/pokemon/onix",
                    "s3ObjectPath": "Acme Rockets.png"
                }))
            }),
        );
        let hook = server.webhook_path("acme-sync", "paths")?;
        let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        server_rt.spawn(async move { axum::serve(listener, router).await });

        // Warm-up: the plugin compiled, the pool and the store's cache filled.
        client_rt.block_on(load(
            addr,
            request(&format!("{hook}?wait=true")),
            "HTTP/1.1 200",
            1.0,
        ));

        // At `background` the store's own timer flushes it, which the metric does not time.
        let timed = |flushes: Flushes| (durability != Durability::Background).then_some(flushes);
        let mut contenders = Vec::new();
        if floor_rate.is_none() && selected("floor") {
            let mut floor =
                client_rt.block_on(load(addr, request("/floor"), "HTTP/1.1 200", seconds));
            floor_rate = Some(floor.rate());
            contenders.push(("HTTP floor (no run)", floor.rate(), floor.tail(), None));
        }
        println!("\ndurability `{durability:?}`:");
        // The same run without HTTP or the server: the runner alone, one run after another,
        // on the server's runtime (what a request costs beyond the HTTP floor), with its
        // records kept in this store and, for comparison, discarded.
        let ws = store.registry()?.workspace_for("acme-sync", None)?;
        if selected("alone") {
            let in_process = |store: Arc<dyn RunStore>| {
                let runner = Runner::new(host.clone(), store).with_durability(durability);
                let n = 2000;
                let started = Instant::now();
                server_rt.block_on(async {
                    for _ in 0..n {
                        one_run(&runner, &ws).await;
                    }
                });
                started.elapsed() / n
            };
            let unrecorded = in_process(Arc::new(DiscardStore));
            let in_process = in_process(store.clone());
            println!(
                "  the runner alone, in process, one run at a time: {:.1} µs per run ({:.1} µs with records discarded)",
                in_process.as_secs_f64() * 1e6,
                unrecorded.as_secs_f64() * 1e6
            );
        }
        // And as many at once as the load has connections, still without HTTP: what the
        // runner and the store sustain on these cores.
        if selected("parallel") {
            let runner = Runner::new(host.clone(), store.clone()).with_durability(durability);
            let ws = Arc::new(ws.clone());
            let per_task = 500;
            let started = Instant::now();
            server_rt.block_on(async {
                let tasks: Vec<_> = (0..connections())
                    .map(|_| {
                        let (runner, ws) = (runner.clone(), ws.clone());
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                one_run(&runner, &ws).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("the task ends");
                }
            });
            let parallel = (connections() * per_task) as f64 / started.elapsed().as_secs_f64();
            println!(
                "  the runner alone, in process, {} runs at a time: {parallel:.0} runs/s",
                connections()
            );
        }
        let before = store.list_runs(&RunFilter::default())?.len();
        let mut requests = 0;
        if selected("sync") {
            let flushed = Flushes::in_process();
            let mut sync = client_rt.block_on(load(
                addr,
                request(&format!("{hook}?wait=true")),
                "HTTP/1.1 200",
                seconds,
            ));
            requests += sync.requests;
            let flushes = Flushes::in_process().since(flushed);
            contenders.push(("sync webhook", sync.rate(), sync.tail(), timed(flushes)));
        }
        let mut drained = None;
        if selected("async") {
            let flushed = Flushes::in_process();
            let mut asynchronous =
                client_rt.block_on(load(addr, request(&hook), "HTTP/1.1 202", seconds));
            requests += asynchronous.requests;
            // Every accepted run ends and is recorded.
            let started = Instant::now();
            server_rt.block_on(async {
                while server.in_flight() > 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
            let drain = started.elapsed();
            let total = asynchronous.requests as f64 / (asynchronous.elapsed + drain).as_secs_f64();
            drained = Some((total, asynchronous.requests, drain));
            let flushes = Flushes::in_process().since(flushed);
            contenders.push((
                "async webhook (accepted)",
                asynchronous.rate(),
                asynchronous.tail(),
                timed(flushes),
            ));
        }
        store.flush()?;
        let runs = store.list_runs(&RunFilter::default())?;
        let recorded = runs.len() - before;
        let succeeded = runs
            .iter()
            .filter(|r| r.status == Status::Succeeded)
            .count();
        assert_eq!(recorded, requests, "every request has its recorded run");
        assert_eq!(succeeded, runs.len(), "every run succeeded");

        for (name, rate, tail, flushes) in contenders {
            let flushes = flushes.map(|f| format!("   {f}")).unwrap_or_default();
            println!(
                "  {name:<26} {rate:>9.0} req/s   {}   {:>5.2}× the floor's rate{flushes}",
                tail_text(tail.map(|d| d.as_secs_f64() * 1e3)),
                rate / floor_rate.unwrap_or(rate)
            );
        }
        if let Some((total, runs, drain)) = drained {
            println!(
                "  async runs completed incl. draining the backlog: {total:.0} runs/s ({runs} runs, drained in {:.2} s)",
                drain.as_secs_f64()
            );
        }
        println!("  recorded: {recorded} runs, all succeeded");
        let _ = std::io::stdout().flush();
    }
    if selected("wrk") {
        with_wrk(seconds)?;
    }
    Ok(())
}

/// What `wrk` measured.
struct WrkOutcome {
    requests: u64,
    rate: f64,
    /// p50, p90, p99, p99.9 and max, in milliseconds.
    tail_ms: [f64; 5],
}

/// A wrk `done` hook printing `tail: p50 p90 p99 p99.9 max` in microseconds (wrk's own
/// `--latency` table stops at p99).
const WRK_TAIL: &str = "done = function(summary, latency, requests)\n  io.write(string.format(\"tail: %d %d %d %d %d\\n\", latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))\nend\n";

/// Runs `wrk -t1 -c16 --latency` for `seconds` at `url` with `method` (and the JSON body of
/// the other contenders for a POST).
fn wrk(url: &str, method: &str, seconds: f64) -> anyhow::Result<WrkOutcome> {
    let script = tempfile::NamedTempFile::new()?;
    std::fs::write(
        script.path(),
        format!(
            "wrk.method = \"{method}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n{}{WRK_TAIL}",
            if method == "POST" {
                "wrk.body = '{\"region\":\"eu\"}'\n"
            } else {
                ""
            }
        ),
    )?;
    let out = std::process::Command::new("wrk")
        .args(["-t1", &format!("-c{}", connections()), "--latency"])
        .arg(format!("-d{}s", seconds.ceil() as u64))
        .arg("-s")
        .arg(script.path())
        .arg(url)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw failed requests:\n{text}"
    );
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let parsed = (|| {
        Some(WrkOutcome {
            requests: text
                .lines()
                .find(|l| l.contains("requests in"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?,
            rate: field("Requests/sec:")?.parse().ok()?,
            tail_ms: {
                let micros: Vec<f64> = field("tail:")?
                    .split_whitespace()
                    .map(|v| v.parse().ok())
                    .collect::<Option<_>>()?;
                [0, 1, 2, 3, 4].map(|i| micros.get(i).copied().unwrap_or(f64::NAN) / 1e3)
            },
        })
    })();
    parsed.ok_or_else(|| anyhow::anyhow!("could not read wrk's output:\n{text}"))
}

/// `p50 … p90 … p99 … p99.9 … max …`, in milliseconds.
fn tail_text(ms: [f64; 5]) -> String {
    format!(
        "p50 {:>6.2}  p90 {:>6.2}  p99 {:>6.2}  p99.9 {:>6.2}  max {:>6.2} ms",
        ms[0], ms[1], ms[2], ms[3], ms[4]
    )
}

/// Store flushes, from the `weft_store_flush_seconds` histogram: how many, their total time
/// and how many took over 50 ms. A disk that stalls delays every sync answer waiting for the
/// flush, which these tell apart from a stall of the server.
#[derive(Clone, Copy, Default)]
struct Flushes {
    count: f64,
    seconds: f64,
    slow: f64,
}

impl Flushes {
    /// The histogram's totals in a Prometheus text page (zero when it has none yet).
    fn parse(text: &str) -> Self {
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let count = value("weft_store_flush_seconds_count");
        Self {
            count,
            seconds: value("weft_store_flush_seconds_sum"),
            slow: count - value(r#"weft_store_flush_seconds_bucket{le="0.05"}"#),
        }
    }

    /// This process's flushes so far (the in-process contenders' server records into it).
    fn in_process() -> Self {
        weft::observe::metrics::render()
            .map(|text| Self::parse(&text))
            .unwrap_or_default()
    }

    /// The flushes since `earlier` was read.
    fn since(self, earlier: Self) -> Self {
        Self {
            count: self.count - earlier.count,
            seconds: self.seconds - earlier.seconds,
            slow: self.slow - earlier.slow,
        }
    }
}

impl std::fmt::Display for Flushes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mean_ms = if self.count > 0.0 {
            self.seconds / self.count * 1e3
        } else {
            0.0
        };
        write!(
            f,
            "{:.0} store flushes, mean {mean_ms:.2} ms, {:.0} over 50 ms",
            self.count, self.slow
        )
    }
}

/// The real server's store flushes so far, read from its `/metrics` with an admin token.
fn served_flushes(served: &weft_tests::serve::Served) -> anyhow::Result<Flushes> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let admin = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "iss": "load", "isAdmin": "yes", "exp": now.as_secs() + 600 }),
        &jsonwebtoken::EncodingKey::from_secret(BENCH_SECRET.as_bytes()),
    )?;
    let reply = served.get("/metrics", &admin);
    anyhow::ensure!(
        reply.status == 200,
        "GET /metrics answered {}",
        reply.status
    );
    Ok(Flushes::parse(&String::from_utf8(reply.body)?))
}

/// The workspace secret the wrk contenders' server signs its tokens with.
const BENCH_SECRET: &str = "a-workspace-secret-of-at-least-32-bytes";

/// The contenders against the real `weft serve` process, loaded by `wrk`.
fn with_wrk(seconds: f64) -> anyhow::Result<()> {
    let bin = std::env::current_exe()?
        .parent()
        .and_then(std::path::Path::parent)
        .map(|dir| dir.join("weft"))
        .filter(|bin| bin.is_file());
    let has_wrk = std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok();
    if bin.is_none() || !has_wrk {
        println!(
            "\n(the `weft serve` process under wrk is skipped: it needs `wrk` on PATH (apt-get install wrk) and `cargo build --release -p weft`)"
        );
        return Ok(());
    }
    println!(
        "\nthe real `weft serve` process, loaded by wrk -t1 -c{} over loopback:",
        connections()
    );
    let mut floor_rate = None;
    for durability in durabilities() {
        let name = format!("{durability:?}").to_lowercase();
        println!("  durability `{name}`:");
        for (contender, path, method) in [
            ("HTTP floor (GET /health)", "/health", "GET"),
            ("sync webhook", "{hook}?wait=true", "POST"),
            ("async webhook (accepted)", "{hook}", "POST"),
        ] {
            if path == "/health" && floor_rate.is_some() {
                continue;
            }
            let dir = tempfile::tempdir()?;
            // An [auth] table as a real deployment has (the webhooks need no token).
            let workspace = format!(
                "{WORKSPACE}\n[auth]\nkey = \"load\"\nsecret = \"env:WEFT_BENCH_SECRET\"\n"
            );
            std::fs::write(dir.path().join("weft.toml"), workspace)?;
            std::fs::write(dir.path().join("integration.toml"), INTEGRATION)?;
            let mut served = weft_tests::serve::Served::start(
                dir.path(),
                &["--durability", &name],
                &[("WEFT_BENCH_SECRET", BENCH_SECRET)],
            );
            let hook = served.webhook("acme-sync", "paths");
            let url = format!("http://{}{}", served.addr, path.replace("{hook}", &hook));
            // Warm-up: the plugin compiled and the pool filled.
            wrk(
                &format!("http://{}{hook}?wait=true", served.addr),
                "POST",
                1.0,
            )?;
            let before = served_flushes(&served)?;
            let outcome = wrk(&url, method, seconds)?;
            let flushes = served_flushes(&served)?.since(before);
            // A graceful stop lets every accepted run finish; then the store is counted.
            let stopped = served.stop();
            anyhow::ensure!(
                stopped.is_some_and(|s| s.success()),
                "weft serve did not stop cleanly"
            );
            let store = SledStore::open(&dir.path().join(".weft"))?;
            let runs = store.list_runs(&RunFilter::default())?;
            let succeeded = runs
                .iter()
                .filter(|r| r.status == Status::Succeeded)
                .count();
            anyhow::ensure!(succeeded == runs.len(), "every run succeeded");
            if path != "/health" {
                // wrk counts the answers it read; runs in flight when it stopped end too.
                let recorded = runs.len() as u64;
                anyhow::ensure!(
                    recorded >= outcome.requests,
                    "{recorded} runs recorded for {} requests",
                    outcome.requests
                );
            }
            let floor = *floor_rate.get_or_insert(outcome.rate);
            let recorded = match (path, durability) {
                ("/health", _) => String::new(),
                // The store's own timer flushes it, which the metric does not time.
                (_, Durability::Background) => format!(
                    "   {} runs recorded (with the warm-up's), all succeeded",
                    runs.len()
                ),
                _ => format!(
                    "   {} runs recorded (with the warm-up's), all succeeded; during the run {flushes}",
                    runs.len()
                ),
            };
            println!(
                "    {contender:<26} {:>9.0} req/s   {}   {:>5.2}× the floor's rate{recorded}",
                outcome.rate,
                tail_text(outcome.tail_ms),
                outcome.rate / floor,
            );
            let _ = std::io::stdout().flush();
        }
    }
    Ok(())
}
