//! Plugins that misbehave on purpose: each fails its step with the limit named, about when the
//! limit says, and the same process runs a normal step right after.

use std::time::{Duration, Instant};

use serde_json::json;
use weft::store::Status;
use weft_model::value::RecordedValue;
use weft_tests::{TestEnv, one_instance_workspace, plugin, run};

/// A workspace whose flow `test` runs `plugin_name` with `step_options`, then the path helper.
fn env_with(plugin_name: &str, stem: &str, step_options: &str) -> TestEnv {
    let env = TestEnv::new();
    env.workspace(
        &one_instance_workspace(&[(plugin_name, plugin(stem))]),
        &format!(
            r#"name = "test"
[config_vars]
customerName = {{}}
pokemonAvatar = {{}}

[[flows]]
name = "bad"
[[flows.steps]]
id = "misbehave"
plugin = "{plugin_name}"
{step_options}

[[flows]]
name = "good"
[[flows.steps]]
id = "paths"
plugin = "path-helper"
"#
        ),
    );
    env
}

async fn bad_then_good(env: &TestEnv) -> (weft::store::RunWithSteps, Duration) {
    let ws = env.load();
    let runner = env.runner();
    let started = Instant::now();
    let bad = run(&runner, &ws, "acme-test").await;
    let took = started.elapsed();
    assert_eq!(bad.run.status, Status::Failed);
    assert_eq!(bad.steps[0].status, Status::Failed);

    let good = runner
        .run(weft::runner::RunRequest {
            workspace: &ws,
            instance: "acme-test",
            flow: Some("good"),
            trigger: serde_json::Value::Null,
        })
        .await
        .unwrap();
    assert_eq!(good.run.status, Status::Succeeded, "{:?}", good.run.error);
    assert_eq!(
        good.run.result,
        Some(RecordedValue::Json(json!({
            "pokemonUrl": "https://pokeapi.co/api/v2/pokemon/onix",
            "s3ObjectPath": "Acme Rockets.png"
        })))
    );
    (bad, took)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_infinite_loop_stops_at_its_time_limit() {
    let env = env_with("spin", "testing_spin", "timeout = \"1s\"");
    let (bad, took) = bad_then_good(&env).await;
    assert_eq!(
        bad.run.error.as_deref(),
        Some("step `misbehave` (plugin `spin`) exceeded its 1 s time limit")
    );
    assert!(
        took >= Duration::from_millis(990),
        "stopped early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "stopped late: {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unbounded_allocation_stops_at_its_memory_limit() {
    let env = env_with("hog", "testing_hog", "limits = { memory = \"32 MiB\" }");
    let (bad, _) = bad_then_good(&env).await;
    let error = bad.run.error.unwrap();
    assert!(
        error.starts_with(
            "step `misbehave` (plugin `hog`) exceeded its 32 MiB memory limit (it asked for 3"
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_output_is_refused() {
    let env = env_with(
        "bloat",
        "testing_bloat",
        "inputs = { size = 2097152 }\nlimits = { output = \"1 MiB\", memory = \"64 MiB\" }",
    );
    let (bad, _) = bad_then_good(&env).await;
    assert_eq!(
        bad.run.error.as_deref(),
        Some(
            "step `misbehave` (plugin `bloat`) returned 2.0 MiB of output, over its 1 MiB output limit"
        )
    );
    assert_eq!(bad.steps[0].output, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_fails_the_step_with_what_the_plugin_said() {
    let env = env_with("trap", "testing_trap", "");
    let (bad, _) = bad_then_good(&env).await;
    let error = bad.run.error.unwrap();
    assert!(
        error.starts_with("step `misbehave` (plugin `trap`) crashed: "),
        "{error}"
    );
    assert!(error.contains("unreachable"), "{error}");
}

#[test]
fn the_binary_reports_a_limit_and_exits_non_zero() {
    let env = env_with("spin", "testing_spin", "timeout = \"300ms\"");
    let out = env.weft(&["run", "weft.toml", "--instance", "acme-test"]);
    assert!(!out.success);
    assert!(
        out.stdout.contains("misbehave  spin    failed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("error: step `misbehave` (plugin `spin`) exceeded its 300 ms time limit"),
        "{}",
        out.stderr
    );
}
