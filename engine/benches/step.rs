//! Per-step cost of the Rust Path Helper, against a native Rust function doing the same work,
//! measured in the same process and interleaved so that machine noise hits all three alike.
//!
//! - `native`: the Path Helper's work as a plain Rust function (read two vars, build the JSON).
//! - `execute`: a fresh store + instance of the component and a call of `run` (no recording).
//! - `step of a 10-step flow`: a run of ten Path Helper steps through the runner, divided by
//!   ten: per step, inputs rendered, instantiate, call and the step record written to sled (the
//!   run's own two records are shared by the ten steps).
//! - `1-step run`: a whole one-step run: config resolution, instantiate, call, and the run
//!   (twice: started and finished) and step records written to the sled store.
//!
//! Then resident memory after 100 and after 10,000 one-step runs, once with a store that
//! keeps nothing (the engine alone) and once with the sled store.
//!
//! `cargo bench -p weft --bench step` (set `WEFT_BENCH_ROUNDS` for a shorter or longer run).

#[path = "common/memory.rs"]
mod memory;
#[path = "common/samples.rs"]
mod samples;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use memory::rss_kib;
use samples::Samples;
use weft::host::config::ConfigVars;
use weft::plugin::{HostOptions, PluginHost, StepCall};
use weft::runner::{RunRequest, Runner};
use weft::store::{DiscardStore, Durability, RunStore, SledStore, Status};
use weft_model::value::Val;
use weft_model::workspace::{PluginSource, Workspace};

const BATCH: usize = 500;

fn native_path_helper(vars: &BTreeMap<String, String>) -> String {
    let avatar = &vars["pokemonAvatar"];
    let customer = &vars["customerName"];
    serde_json::json!({
        "pokemonUrl": format!("https://pokeapi.co/api/v2/pokemon/{avatar}"),
        "s3ObjectPath": format!("{customer}.png"),
    })
    .to_string()
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("WEFT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir()?;
    let mut integration = String::from(
        "name = \"avatar\"\n[config_vars]\ncustomerName = {}\npokemonAvatar = {}\n[[flows]]\nname = \"sync\"\n[[flows.steps]]\nid = \"path_helper\"\nplugin = \"path-helper\"\n[[flows]]\nname = \"ten\"\n",
    );
    for i in 0..10 {
        integration.push_str(&format!(
            "[[flows.steps]]\nid = \"p{i}\"\nplugin = \"path-helper\"\n"
        ));
    }
    std::fs::write(dir.path().join("integration.toml"), integration)?;
    std::fs::write(
        dir.path().join("weft.toml"),
        "integrations = [\"integration.toml\"]\n[[customers]]\nid = \"ftl\"\nname = \"FTL Rockets\"\nconfig = { customerName = \"FTL Rockets\", pokemonAvatar = \"onix\" }\n[[instances]]\nid = \"ftl-sync\"\ncustomer = \"ftl\"\nintegration = \"avatar\"\n",
    )?;
    let ws = Workspace::load(&dir.path().join("weft.toml"))?;
    let host = Arc::new(PluginHost::new(HostOptions::default())?);
    let plugin = host.load("path-helper", &PluginSource::Builtin("path-helper".into()))?;
    let store = Arc::new(SledStore::open(&dir.path().join(".weft"))?);
    // Records are written but flushed in the background: this measures the engine, not fsync
    // (see the pokemon benchmark for the default, durable per step).
    let runner = Runner::new(host.clone(), store).with_durability(Durability::Background);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let vars: BTreeMap<String, String> = [
        ("customerName".to_string(), "FTL Rockets".to_string()),
        ("pokemonAvatar".to_string(), "onix".to_string()),
    ]
    .into();
    let config: ConfigVars = vars.clone().into_iter().collect();
    let limits = ws.integrations["avatar"].flows[0].steps[0].limits;
    let request = RunRequest {
        workspace: &ws,
        instance: "ftl-sync",
        flow: None,
        trigger: serde_json::Value::Null,
    };

    let mut native = Samples::new("native function");
    let mut execute = Samples::new("instantiate + call");
    let mut per_step = Samples::new("step of a 10-step flow");
    let mut full = Samples::new("1-step run");
    let ten = RunRequest {
        flow: Some("ten"),
        ..request.clone()
    };

    rt.block_on(async {
        // Warm-up: first instantiations fault in the pool's pages.
        for _ in 0..200 {
            let run = runner.run(request.clone()).await.expect("run starts");
            assert_eq!(run.run.status, Status::Succeeded);
        }
        for round in 0..rounds {
            for _ in 0..BATCH {
                let t = Instant::now();
                black_box(native_path_helper(black_box(&vars)));
                native.times.push(t.elapsed());
            }
            for _ in 0..BATCH {
                let t = Instant::now();
                let outcome = host
                    .execute(
                        &plugin,
                        StepCall {
                            step_id: "path_helper",
                            inputs: Vec::<(String, Val)>::new(),
                            config: config.clone(),
                            limits,
                            http: None,
                            s3: None,
                            state: None,
                            concurrency: None,
                        },
                    )
                    .await;
                execute.times.push(t.elapsed());
                assert!(outcome.result.is_ok());
            }
            for _ in 0..BATCH / 10 {
                let t = Instant::now();
                let run = runner.run(ten.clone()).await.expect("run starts");
                let took = t.elapsed() / 10;
                assert_eq!(run.steps.len(), 10);
                per_step.times.extend([took; 10]);
            }
            for _ in 0..BATCH {
                let t = Instant::now();
                let run = runner.run(request.clone()).await.expect("run starts");
                full.times.push(t.elapsed());
                assert_eq!(run.run.status, Status::Succeeded);
            }
            eprint!("\rround {}/{rounds}", round + 1);
        }
        eprintln!();
    });

    println!(
        "per-step cost of the Path Helper ({} samples each, interleaved)",
        native.times.len()
    );
    let native_median = native.quantile(0.5);
    for s in [&mut native, &mut execute, &mut per_step, &mut full] {
        let (median, p99) = (s.quantile(0.5), s.quantile(0.99));
        println!(
            "  {:<28} median {:>9.2} µs   p99 {:>9.2} µs   median ratio to native {:>7.1}×",
            s.name,
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            median.as_secs_f64() / native_median.as_secs_f64()
        );
    }

    // Memory: a fresh runner per store kind, 100 runs, then on to 10,000.
    let sinks: [(&str, Arc<dyn RunStore>); 2] = [
        ("engine alone (store keeps nothing)", Arc::new(DiscardStore)),
        (
            "with the sled store",
            Arc::new(SledStore::open(&dir.path().join(".weft-memory"))?),
        ),
    ];
    println!("resident memory, 100 runs vs 10,000 runs:");
    for (name, sink) in sinks {
        let runner = Runner::new(host.clone(), sink).with_durability(Durability::Background);
        let mut rss_after_100 = 0;
        rt.block_on(async {
            for n in 1..=10_000 {
                let run = runner.run(request.clone()).await.expect("run starts");
                assert_eq!(run.run.status, Status::Succeeded);
                if n == 100 {
                    rss_after_100 = rss_kib();
                }
            }
        });
        let rss_after_10k = rss_kib();
        println!(
            "  {name:<36} {rss_after_100} KiB -> {rss_after_10k} KiB ({:+.1}%)",
            (rss_after_10k as f64 / rss_after_100 as f64 - 1.0) * 100.0
        );
    }
    Ok(())
}
