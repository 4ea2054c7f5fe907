//! The hostile-plugin suite: each misbehaving plugin fails its own step with the limit or
//! capability named, and nothing else is affected — also under load, concurrently with normal
//! runs in one process.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use weft::runner::RunRequest;
use weft::store::Status;
use weft::value::RecordedValue;
use weft_tests::server::TestServer;
use weft_tests::{TestEnv, plugin};

/// One flow per kind of misbehaviour, plus `ok`, a normal Path Helper flow.
fn hostile_env(server: &TestServer) -> TestEnv {
    let env = TestEnv::new();
    let flows: &[(&str, &str, &str)] = &[
        ("ok", "path-helper", ""),
        ("spin", "spin", "timeout = \"200ms\""),
        ("hog", "hog", "limits = { memory = \"32 MiB\" }"),
        ("recurse", "hostile", "inputs = { mode = \"recurse\" }"),
        (
            "bloat",
            "bloat",
            "inputs = { size = 2000000 }\nlimits = { output = \"1 MiB\" }",
        ),
        ("trap", "trap", ""),
        ("log_flood", "hostile", "inputs = { mode = \"log-flood\" }"),
        (
            "state_flood",
            "hostile",
            "inputs = { mode = \"state-flood\" }",
        ),
        (
            "forbidden_host",
            "hostile",
            "inputs = { mode = \"forbidden-host\", url = \"http://203.0.113.7/\" }",
        ),
        (
            "block",
            "hostile",
            "timeout = \"300ms\"\ninputs = { mode = \"block\", url = \"SLOW\" }",
        ),
        (
            "unbound_var",
            "hostile",
            "inputs = { mode = \"unbound-var\", name = \"apiToken\" }",
        ),
    ];
    let mut integration =
        String::from("name = \"test\"\n[config_vars]\ncustomerName = {}\npokemonAvatar = {}\n");
    for (flow, plugin_name, options) in flows {
        integration.push_str(&format!(
            "\n[[flows]]\nname = \"{flow}\"\n[[flows.steps]]\nid = \"{flow}\"\nplugin = \"{plugin_name}\"\n{}\n",
            options.replace("SLOW", &server.url("/slow?ms=5000"))
        ));
    }
    env.workspace(
        &format!(
            r#"integrations = ["integration.toml"]
[plugins.hostile]
source = {hostile:?}
state = true
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}
[plugins.spin]
source = {spin:?}
[plugins.hog]
source = {hog:?}
[plugins.bloat]
source = {bloat:?}
[plugins.trap]
source = {trap:?}
[[customers]]
id = "acme"
name = "Acme"
config = {{ customerName = "Acme Rockets", pokemonAvatar = "onix" }}
[[instances]]
id = "acme-test"
customer = "acme"
integration = "test"
"#,
            port = server.port(),
            hostile = plugin("testing_hostile"),
            spin = plugin("testing_spin"),
            hog = plugin("testing_hog"),
            bloat = plugin("testing_bloat"),
            trap = plugin("testing_trap"),
        ),
        &integration,
    );
    env
}

/// What each hostile flow's step error must say.
fn expected() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("spin", "exceeded its 200 ms time limit"),
        ("hog", "exceeded its 32 MiB memory limit"),
        ("recurse", "exhausted its stack"),
        ("bloat", "over its 1 MiB output limit"),
        ("trap", "crashed"),
        ("state_flood", "over its 1 MiB limit"),
        ("forbidden_host", "may not reach `http://203.0.113.7/`"),
        // The blocked host call and the step share one deadline: either the call gives up
        // ("did not answer in time", the step sees the error) or the step's timer fires first.
        (
            "block",
            "did not answer in time|exceeded its 300 ms time limit",
        ),
        (
            "unbound_var",
            "config var `apiToken` is not bound for this instance",
        ),
    ])
}

fn run_flow(env: &TestEnv, flow: &str) -> Value {
    let out = env.weft(&[
        "run",
        "weft.toml",
        "-i",
        "acme-test",
        "--flow",
        flow,
        "--json",
    ]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[test]
fn each_hostile_plugin_fails_its_step_with_the_reason_named() {
    let server = TestServer::start();
    let env = hostile_env(&server);
    for (flow, reason) in expected() {
        let run = run_flow(&env, flow);
        assert_eq!(run["status"], "failed", "{flow}: {run:#}");
        let error = run["steps"][0]["error"].as_str().unwrap_or_default();
        assert!(
            reason.split('|').any(|r| error.contains(r)),
            "{flow}: expected {reason:?} in {error:?}"
        );
        assert!(error.contains(&format!("step `{flow}`")), "{flow}: {error}");
    }
    // A log flood is capped, not fatal: the record keeps the first lines and says what it dropped.
    let run = run_flow(&env, "log_flood");
    let logs = run["steps"][0]["logs"].as_array().unwrap();
    assert!(logs.len() <= 1001, "{}", logs.len());
    assert!(
        logs.last().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("dropped"),
        "{:?}",
        logs.last()
    );
    // The state flood kept nothing.
    let run = run_flow(&env, "ok");
    assert_eq!(run["status"], "succeeded");
}

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
