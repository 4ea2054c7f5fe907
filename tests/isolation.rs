//! Hostile plugins under load: 200 hostile runs interleaved with 200 normal ones, concurrently,
//! in one process; every normal run gives the exact output and resident memory stays put.
//!
//! A test binary of its own, so that no other test allocates in this process while it measures.

use serde_json::{Value, json};
use weft::runner::RunRequest;
use weft::store::Status;
use weft_model::value::RecordedValue;
use weft_tests::hostile::{env as hostile_env, expected};
use weft_tests::server::TestServer;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

#[test]
fn hostile_runs_under_load_leave_normal_runs_and_memory_alone() {
    let server = TestServer::start();
    let env = hostile_env(&server);
    let ws = std::sync::Arc::new(env.load());
    let runner = env.runner();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hostile: Vec<&str> = expected().into_keys().filter(|f| *f != "block").collect();
    let batch = |n: usize| {
        let mut tasks = Vec::new();
        for i in 0..n {
            for flow in ["ok", hostile[i % hostile.len()]] {
                let ws = ws.clone();
                let runner = runner.clone();
                tasks.push(rt.spawn(async move {
                    let run = runner
                        .run(RunRequest {
                            workspace: &ws,
                            instance: "acme-test",
                            flow: Some(flow),
                            trigger: Value::Null,
                        })
                        .await
                        .unwrap();
                    (flow, run)
                }));
            }
        }
        rt.block_on(async {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        })
    };
    // Warm up with a batch of the same size: plugins compiled, the instance pool and the
    // store's cache filled to their steady state.
    batch(200);
    let before = rss_kib();
    let results = batch(200);
    let after = rss_kib();

    let reasons = expected();
    let (mut normal, mut failed) = (0, 0);
    for (flow, run) in &results {
        if *flow == "ok" {
            assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
            assert_eq!(
                run.run.result,
                Some(RecordedValue::Json(json!({
                    "pokemonUrl": "https://pokeapi.co/api/v2/pokemon/onix",
                    "s3ObjectPath": "Acme Rockets.png"
                })))
            );
            normal += 1;
        } else {
            assert_eq!(run.run.status, Status::Failed, "{flow}");
            let error = run.steps[0].error.as_deref().unwrap_or_default();
            assert!(error.contains(reasons[flow]), "{flow}: {error}");
            failed += 1;
        }
    }
    assert_eq!((normal, failed), (200, 200));
    let growth = after as f64 / before as f64;
    eprintln!(
        "hostile load: 200 normal + 200 hostile runs; RSS {before} KiB before, {after} KiB after ({growth:.2}×)"
    );
    assert!(
        growth < 1.2,
        "resident memory grew from {before} KiB to {after} KiB"
    );
}
