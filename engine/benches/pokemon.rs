//! The whole Pokemon Avatar Sync flow (Path Helper → Get Pokemon Data → Get Pokemon Avatar →
//! Save to S3) against the demo's loopback stand-ins, side by side with a plain Rust program
//! doing the same four operations directly with reqwest and aws-sdk-s3.
//!
//! - `native`: build the URL and key, GET the JSON, GET the PNG, PutObject: one reqwest client
//!   and one S3 client reused across runs, as a hand-written program would.
//! - `weft`: `Runner::run` of the example's instance: config resolution, four fresh sandboxes,
//!   the host making the same calls, every step recorded in the sled store on disk at the
//!   default durability: a step that changed something outside is flushed (fsync) before the
//!   next starts, steps that only read with the next flush — here the S3 upload, which ends
//!   the run, flushed with the run's final record: one fsync per run.
//! - `weft (background flush)`: the same, records flushed by sled in the background.
//! - `weft (no records)`: the same with a store that keeps nothing, to show what recording costs.
//! - `weft (PostgreSQL)`: the default durability on the PostgreSQL store (a step that changed
//!   something committed before the next starts), when `WEFT_BENCH_POSTGRES` names a database URL (its
//!   tables are created if missing; runs are added to it).
//!
//! Batches of each are interleaved so machine noise hits all alike; both sides talk to the
//! same servers in the same process. Prints time per run (median, p99), runs per second and
//! the ratio to native.
//!
//! `cargo bench -p weft --bench pokemon` (set `WEFT_BENCH_ROUNDS` for a shorter or longer run,
//! `WEFT_BENCH_FSYNC=0` to leave out the default-durability contender, whose flushes disturb
//! the others on a shared disk, and `WEFT_BENCH_ONLY=native|default|background|bare|postgres` to
//! time one contender alone, for profiling it with `perf` or `strace`).

#[path = "common/samples.rs"]
mod samples;

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use samples::Samples;
use weft::demo::{self, StandIns};
use weft::plugin::{HostOptions, PluginHost};
use weft::runner::{RunRequest, Runner};
use weft::store::{DiscardStore, Durability, PgStore, SledStore, Status};
use weft_model::workspace::Workspace;

const BATCH: usize = 25;

/// The allocator the `weft` binary uses, so the runner here allocates as it does there; the
/// native contender, in the same process, gets it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The four operations, written directly.
struct Native {
    http: reqwest::Client,
    s3: aws_sdk_s3::Client,
    api_base: String,
}

impl Native {
    async fn run(&self, customer: &str, avatar: &str) -> anyhow::Result<()> {
        let url = format!("{}/{avatar}", self.api_base);
        let key = format!("{customer}.png");
        let body = self
            .http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let data: serde_json::Value = serde_json::from_slice(&body)?;
        let sprite = data["sprites"]["front_default"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no sprite"))?;
        let response = self.http.get(sprite).send().await?.error_for_status()?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let png = response.bytes().await?;
        self.s3
            .put_object()
            .bucket(demo::BUCKET)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(png))
            .send()
            .await?;
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    // The default-durability contender's disk flushes also slow the others down on a shared disk;
    // `WEFT_BENCH_FSYNC=0` leaves it out to measure them undisturbed.
    let with_fsync = std::env::var("WEFT_BENCH_FSYNC").map_or(true, |v| v != "0");
    let only = std::env::var("WEFT_BENCH_ONLY").ok();
    let batch = |contender: &str| {
        if only.as_deref().is_none_or(|o| o == contender) {
            BATCH
        } else {
            0
        }
    };
    let rounds: usize = std::env::var("WEFT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let secret = demo::random_secret();
    let stand_ins = rt.block_on(StandIns::start(&dir.path().join("s3"), &secret))?;
    let ws_path = demo::write_workspace(dir.path(), &stand_ins)?;
    let ws = Workspace::load(&ws_path)?;
    let host = Arc::new(PluginHost::new(HostOptions::default())?);
    let recorded = Runner::new(
        host.clone(),
        Arc::new(SledStore::open(&dir.path().join("store"))?),
    );
    let background = Runner::new(
        host.clone(),
        Arc::new(SledStore::open(&dir.path().join("store-background"))?),
    )
    .with_durability(Durability::Background);
    let on_postgres = match std::env::var("WEFT_BENCH_POSTGRES") {
        Ok(url) => Some(Runner::new(host.clone(), Arc::new(PgStore::connect(&url)?))),
        Err(_) => {
            println!("(set WEFT_BENCH_POSTGRES=postgres://… to add the PostgreSQL store)\n");
            None
        }
    };
    let unrecorded = Runner::new(host, Arc::new(DiscardStore));
    let native = Native {
        http: reqwest::Client::builder().no_proxy().build()?,
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(format!("http://{}", stand_ins.s3))
                .force_path_style(true)
                .credentials_provider(Credentials::new(
                    demo::ACCESS_KEY,
                    secret.clone(),
                    None,
                    None,
                    "bench",
                ))
                .build(),
        ),
        api_base: format!("http://{}/api/v2/pokemon", stand_ins.pokeapi),
    };
    let request = RunRequest {
        workspace: &ws,
        instance: "smith-rocket-avatar-sync",
        flow: None,
        trigger: serde_json::Value::Null,
    };

    let mut native_t = Samples::new("native (reqwest + aws-sdk-s3)");
    let mut weft_t = Samples::new("weft run (recorded, default durability)");
    let mut background_t = Samples::new("weft run (recorded, background flush)");
    let mut bare_t = Samples::new("weft run (4 steps, no records)");
    let mut postgres_t = Samples::new("weft run (PostgreSQL, commit per step)");
    let default_batch = if with_fsync { batch("default") } else { 0 };
    let postgres_batch = if on_postgres.is_some() {
        batch("postgres")
    } else {
        0
    };
    rt.block_on(async {
        // Warm up: connections, compiled plugins, SDK clients.
        for _ in 0..10 {
            native.run("Smith Rocket Company", "pikachu").await?;
            let run = recorded.run(request.clone()).await?;
            anyhow::ensure!(
                run.run.status == Status::Succeeded,
                "the warm-up run failed: {:?}",
                run.run.error
            );
            unrecorded.run(request.clone()).await?;
            background.run(request.clone()).await?;
            if let Some(runner) = &on_postgres {
                runner.run(request.clone()).await?;
            }
        }
        for _ in 0..rounds {
            for _ in 0..batch("native") {
                let t = Instant::now();
                native.run("Smith Rocket Company", "pikachu").await?;
                native_t.times.push(t.elapsed());
            }
            for _ in 0..default_batch {
                let t = Instant::now();
                let run = recorded.run(request.clone()).await?;
                weft_t.times.push(t.elapsed());
                anyhow::ensure!(run.run.status == Status::Succeeded, "{:?}", run.run.error);
            }
            for _ in 0..batch("background") {
                let t = Instant::now();
                let run = background.run(request.clone()).await?;
                background_t.times.push(t.elapsed());
                anyhow::ensure!(run.run.status == Status::Succeeded, "{:?}", run.run.error);
            }
            for _ in 0..batch("bare") {
                let t = Instant::now();
                let run = unrecorded.run(request.clone()).await?;
                bare_t.times.push(t.elapsed());
                anyhow::ensure!(run.run.status == Status::Succeeded, "{:?}", run.run.error);
            }
            for _ in 0..postgres_batch {
                let runner = on_postgres.as_ref().expect("checked above");
                let t = Instant::now();
                let run = runner.run(request.clone()).await?;
                postgres_t.times.push(t.elapsed());
                anyhow::ensure!(run.run.status == Status::Succeeded, "{:?}", run.run.error);
            }
        }
        anyhow::Ok(())
    })?;

    if native_t.times.is_empty() {
        // One contender alone (`WEFT_BENCH_ONLY`): its times, with nothing to compare them to.
        for s in [&mut weft_t, &mut background_t, &mut bare_t, &mut postgres_t] {
            if !s.times.is_empty() {
                let (median, p99) = (s.quantile(0.5), s.quantile(0.99));
                println!("{}: median {median:?}, p99 {p99:?}", s.name);
            }
        }
        return Ok(());
    }
    let base_median = native_t.quantile(0.5);
    let base_mean = native_t.mean();
    println!(
        "Pokemon Avatar Sync, one run = 4 operations against loopback stand-ins; {} runs each, interleaved\n",
        rounds * BATCH
    );
    println!(
        "{:<40} {:>10} {:>10} {:>9} {:>16}",
        "", "median", "p99", "runs/s", "median ÷ native"
    );
    for s in [
        &mut native_t,
        &mut weft_t,
        &mut background_t,
        &mut bare_t,
        &mut postgres_t,
    ] {
        if s.times.is_empty() {
            continue;
        }
        let median = s.quantile(0.5);
        let p99 = s.quantile(0.99);
        let per_second = 1.0 / s.mean().as_secs_f64();
        println!(
            "{:<40} {:>8.0}µs {:>8.0}µs {:>9.0} {:>15.2}×",
            s.name,
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            per_second,
            median.as_secs_f64() / base_median.as_secs_f64()
        );
    }
    if weft_t.times.is_empty() {
        return Ok(());
    }
    println!(
        "\nmean per run: native {:.0}µs, weft {:.0}µs at the default durability ({:.2}×), {:.0}µs with background flush ({:.2}×); goals ≤ 1.2× at the default durability, ≤ 1.1× with no records",
        base_mean.as_secs_f64() * 1e6,
        weft_t.mean().as_secs_f64() * 1e6,
        weft_t.mean().as_secs_f64() / base_mean.as_secs_f64(),
        background_t.mean().as_secs_f64() * 1e6,
        background_t.mean().as_secs_f64() / base_mean.as_secs_f64()
    );
    Ok(())
}
