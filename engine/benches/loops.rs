//! The cost of a loop iteration against a step of a straight flow, measured in the same
//! process, interleaved: every iteration of a 10,000-iteration loop of the Rust Path Helper,
//! and every step of a 100-step straight flow of it. Each step (and iteration) is recorded in
//! the sled store as it ends, flushed in the background; a cost is the time between one
//! record and the next, so it covers the condition checks, the scope, rendering, instantiate
//! and call, and the record.
//!
//! Then resident memory after a 1,000-iteration loop and after a 100,000-iteration one: a
//! loop's step records go to the store as they end, so memory must not grow with iterations
//! (beyond the loop's own results array).
//!
//! `cargo bench -p weft --bench loops` (set `WEFT_BENCH_ROUNDS` for a shorter or longer run).

#[path = "common/memory.rs"]
mod memory;
#[path = "common/samples.rs"]
mod samples;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use memory::rss_kib;
use samples::Samples;
use weft::plugin::{HostOptions, PluginHost};
use weft::runner::{RunRequest, Runner};
use weft::store::{Durability, SledStore, Status};
use weft_model::workspace::Workspace;

/// The allocator the `weft` binary uses, so that memory is measured as it would be there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// When each step record was acknowledged, and whether it was inside flow control.
type Marks = Arc<Mutex<Vec<(Instant, bool)>>>;

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("WEFT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let mut integration = String::from(
        r#"name = "loops"
[config_vars]
customerName = {}
pokemonAvatar = {}
[limits]
iterations = 100000
step_executions = 200000
"#,
    );
    for (name, count) in [
        ("loop-1k", 1_000),
        ("loop-10k", 10_000),
        ("loop-100k", 100_000),
    ] {
        integration.push_str(&format!(
            "[[flows]]\nname = \"{name}\"\n[[flows.steps]]\nid = \"each\"\ntype = \"loop\"\ncount = {count}\n[[flows.steps.steps]]\nid = \"path_helper\"\nplugin = \"path-helper\"\n"
        ));
    }
    integration.push_str("[[flows]]\nname = \"straight\"\n");
    for i in 0..100 {
        integration.push_str(&format!(
            "[[flows.steps]]\nid = \"p{i}\"\nplugin = \"path-helper\"\n"
        ));
    }
    std::fs::write(dir.path().join("integration.toml"), integration)?;
    std::fs::write(
        dir.path().join("weft.toml"),
        "integrations = [\"integration.toml\"]\n[[customers]]\nid = \"ftl\"\nname = \"FTL Rockets\"\nconfig = { customerName = \"FTL Rockets\", pokemonAvatar = \"onix\" }\n[[instances]]\nid = \"ftl-sync\"\ncustomer = \"ftl\"\nintegration = \"loops\"\n",
    )?;
    let ws = Workspace::load(&dir.path().join("weft.toml"))?;
    let host = Arc::new(PluginHost::new(HostOptions::default())?);
    let store = Arc::new(SledStore::open(&dir.path().join(".weft"))?);
    let marks: Marks = Arc::default();
    let runner = {
        let marks = marks.clone();
        Runner::new(host, store)
            .with_durability(Durability::Background)
            .with_observer(Arc::new(move |_, step| {
                marks
                    .lock()
                    .unwrap()
                    .push((Instant::now(), !step.scope.is_empty()));
            }))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let request = |flow: &'static str| RunRequest {
        workspace: &ws,
        instance: "ftl-sync",
        flow: Some(flow),
        trigger: serde_json::Value::Null,
    };
    // The gaps between consecutive records of the kind asked for (inner or top-level).
    let gaps = |inner: bool| -> Vec<Duration> {
        let marks = std::mem::take(&mut *marks.lock().unwrap());
        marks
            .windows(2)
            .filter(|w| w[0].1 == inner && w[1].1 == inner)
            .map(|w| w[1].0 - w[0].0)
            .collect()
    };

    let mut iteration = Samples::new("loop iteration");
    let mut step = Samples::new("step of a straight flow");
    rt.block_on(async {
        // Warm-up: first instantiations fault in the pool's pages.
        runner.run(request("loop-1k")).await.expect("run starts");
        gaps(true);
        for round in 0..rounds {
            for _ in 0..10 {
                let run = runner.run(request("straight")).await.expect("run starts");
                assert_eq!(run.run.status, Status::Succeeded);
                step.times.extend(gaps(false));
            }
            let run = runner.run(request("loop-10k")).await.expect("run starts");
            assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
            iteration.times.extend(gaps(true));
            eprint!("\rround {}/{rounds}", round + 1);
        }
        eprintln!();
    });
    println!(
        "a loop iteration against a step of a straight flow (Rust Path Helper, recorded, background flush; {} and {} samples, interleaved)",
        iteration.times.len(),
        step.times.len()
    );
    let step_median = step.quantile(0.5);
    for s in [&mut step, &mut iteration] {
        let (median, p99, max) = (s.quantile(0.5), s.quantile(0.99), s.quantile(1.0));
        println!(
            "  {:<26} median {:>8.2} µs   p99 {:>8.2} µs   max {:>9.2} µs   median ratio to a step {:>5.2}×",
            s.name,
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            max.as_secs_f64() * 1e6,
            median.as_secs_f64() / step_median.as_secs_f64()
        );
    }

    let (after_1k, after_100k) = rt.block_on(async {
        let run = runner.run(request("loop-1k")).await.expect("run starts");
        assert_eq!(run.run.status, Status::Succeeded);
        gaps(true);
        let after_1k = rss_kib();
        let started = Instant::now();
        let run = runner.run(request("loop-100k")).await.expect("run starts");
        assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
        gaps(true);
        let took = started.elapsed();
        let after_100k = rss_kib();
        let read = Instant::now();
        let stored = runner
            .store()
            .get_run(&run.run.id)
            .expect("the store reads")
            .expect("the run is stored");
        println!(
            "100,000 iterations in {took:?}; reading the run back ({} step records, as `weft runs show` does) took {:?}",
            stored.steps.len(),
            read.elapsed()
        );
        (after_1k, after_100k)
    });
    println!(
        "resident memory after a 1,000-iteration loop {after_1k} KiB, after a 100,000-iteration loop {after_100k} KiB ({:+.1}%)",
        (after_100k as f64 / after_1k as f64 - 1.0) * 100.0
    );
    Ok(())
}
