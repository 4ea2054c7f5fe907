//! The platform layer: retries, `on_error`, persisted step state, config layering across
//! runs, replay and retention — through the real `weft` binary and its sled store.

use serde_json::Value;
use weft_tests::server::TestServer;
use weft_tests::{TestEnv, plugin};

fn run_json(env: &TestEnv, instance: &str) -> (bool, Value) {
    let out = env.weft(&["run", "weft.toml", "--instance", instance, "--json"]);
    let run = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    (out.success, run)
}

/// Two customers with one instance each of integration `test`, `http-get` granted `server`.
fn two_customers(server: &TestServer, integration: &str) -> TestEnv {
    let env = TestEnv::new();
    env.workspace(
        &format!(
            r#"integrations = ["integration.toml"]
config = {{ greeting = "workspace" }}

[plugins.http-get]
source = "builtin:http-get"
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}

[plugins.counter]
source = {counter:?}
state = true

[[customers]]
id = "acme"
name = "Acme"
config = {{ customerName = "Acme" }}

[[customers]]
id = "globex"
name = "Globex"
config = {{ customerName = "Globex" }}

[[instances]]
id = "acme-test"
customer = "acme"
integration = "test"

[[instances]]
id = "globex-test"
customer = "globex"
integration = "test"
"#,
            port = server.port(),
            counter = plugin("testing_counter"),
        ),
        integration,
    );
    env
}

#[test]
fn a_flaky_upstream_succeeds_on_the_third_attempt_with_backoff() {
    let server = TestServer::start();
    let env = two_customers(
        &server,
        &format!(
            r#"name = "test"
[[flows]]
name = "sync"
[[flows.steps]]
id = "fetch"
plugin = "http-get"
retry = {{ attempts = 4, delay = "100ms", backoff = 2.0, jitter = false }}
inputs = {{ url = "{}" }}
"#,
            server.url("/flaky/a?fails=2")
        ),
    );
    let (ok, run) = run_json(&env, "acme-test");
    assert!(ok, "{run:#}");
    assert_eq!(run["status"], "succeeded");
    let step = &run["steps"][0];
    assert_eq!(step["output"]["json"]["attempt"], 3);
    let attempts = step["attempts"].as_array().expect("attempts are recorded");
    assert_eq!(attempts.len(), 3, "{step:#}");
    for failed in &attempts[..2] {
        assert!(
            failed["error"].as_str().unwrap().contains("503"),
            "{failed}"
        );
    }
    assert!(attempts[2]["error"].is_null());
    // Waits of 100 ms and then 200 ms between the attempts' starts.
    let start = |i: usize| attempts[i]["started_at_ms"].as_u64().unwrap();
    assert!(start(1) - start(0) >= 100, "{attempts:?}");
    assert!(start(2) - start(1) >= 200, "{attempts:?}");
    assert_eq!(server.seen_at("/flaky/a").len(), 3);
}

#[test]
fn a_non_retryable_error_is_not_retried() {
    let server = TestServer::start();
    let env = two_customers(
        &server,
        &format!(
            r#"name = "test"
[[flows]]
name = "sync"
[[flows.steps]]
id = "fetch"
plugin = "http-get"
retry = {{ attempts = 5, delay = "10ms" }}
inputs = {{ url = "{}" }}
"#,
            server.url("/status/404")
        ),
    );
    let (ok, run) = run_json(&env, "acme-test");
    assert!(!ok);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"][0]["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(server.seen_at("/status/404").len(), 1);
}

#[test]
fn on_error_continue_runs_later_steps_and_ends_succeeded_with_errors() {
    let server = TestServer::start();
    let env = two_customers(
        &server,
        &format!(
            r#"name = "test"
[config_vars]
customerName = {{}}
[[flows]]
name = "sync"
[[flows.steps]]
id = "optional"
plugin = "http-get"
on_error = "continue"
inputs = {{ url = "{}" }}
[[flows.steps]]
id = "after"
plugin = "http-get"
inputs = {{ url = "{}" }}
"#,
            server.url("/status/500"),
            server.url("/json")
        ),
    );
    let out = env.weft(&["run", "weft.toml", "--instance", "acme-test"]);
    assert!(
        out.success,
        "a run with errors it was told to continue past exits 0: {out:?}"
    );
    let (_, run) = run_json(&env, "acme-test");
    assert_eq!(run["status"], "succeeded_with_errors");
    assert_eq!(run["steps"][0]["status"], "failed");
    assert_eq!(run["steps"][1]["status"], "succeeded");
    assert_eq!(run["result"]["json"]["hello"], "world");
    let listed = env.weft(&[
        "runs",
        "list",
        "-w",
        "weft.toml",
        "--status",
        "succeeded_with_errors",
    ]);
    assert_eq!(listed.stdout.lines().count(), 3, "{}", listed.stdout);
}

#[test]
fn state_persists_across_processes_and_is_isolated_per_instance() {
    let server = TestServer::start();
    let env = two_customers(
        &server,
        r#"name = "test"
[[flows]]
name = "sync"
[[flows.steps]]
id = "count"
plugin = "counter"
[[flows]]
name = "other"
[[flows.steps]]
id = "count"
plugin = "counter"
"#,
    );
    // Every `weft run` is a new process: state survives between them.
    for expected in 1..=3 {
        let (ok, run) = run_json(&env, "acme-test");
        assert!(ok, "{run:#}");
        assert_eq!(run["result"]["json"]["count"], expected);
        assert_eq!(run["result"]["json"]["total"], expected);
    }
    // Another customer's instance starts from nothing.
    let (_, run) = run_json(&env, "globex-test");
    assert_eq!(run["result"]["json"]["count"], 1);
    assert_eq!(run["result"]["json"]["total"], 1);
    // Another flow of the same instance: its own flow state, the instance's shared state.
    let out = env.weft(&[
        "run",
        "weft.toml",
        "-i",
        "acme-test",
        "--flow",
        "other",
        "--json",
    ]);
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(run["result"]["json"]["count"], 1);
    assert_eq!(run["result"]["json"]["total"], 4);
}

#[test]
fn a_failed_step_keeps_no_state_and_limits_are_named() {
    let server = TestServer::start();
    let integration = |inputs: &str| {
        format!(
            "name = \"test\"\n[[flows]]\nname = \"sync\"\n[[flows.steps]]\nid = \"count\"\nplugin = \"counter\"\ninputs = {inputs}\n"
        )
    };
    let env = two_customers(&server, &integration("{}"));
    let (_, run) = run_json(&env, "acme-test");
    assert_eq!(run["result"]["json"]["count"], 1);

    env.write("integration.toml", &integration("{ fail = true }"));
    let (ok, _) = run_json(&env, "acme-test");
    assert!(!ok);

    env.write("integration.toml", &integration("{ blob = 70000 }"));
    let (ok, run) = run_json(&env, "acme-test");
    assert!(!ok);
    let error = run["steps"][0]["error"].as_str().unwrap();
    assert!(
        error
            .contains("the value of state key `blob` is 68.4 KiB, over the 64 KiB limit per value"),
        "{error}"
    );

    env.write("integration.toml", &integration("{}"));
    let (_, run) = run_json(&env, "acme-test");
    assert_eq!(
        run["result"]["json"]["count"], 2,
        "the failed runs' writes were not kept"
    );
}

#[test]
fn config_changes_reach_the_next_run_at_every_level() {
    let server = TestServer::start();
    let env = two_customers(
        &server,
        &format!(
            r#"name = "test"
[config_vars]
greeting = {{ default = "integration" }}
[[flows]]
name = "sync"
[[flows.steps]]
id = "echo"
plugin = "http-get"
inputs = {{ url = "{}", query = {{ greeting = "{{{{ config.greeting }}}}" }} }}
"#,
            server.url("/echo")
        ),
    );
    let greeting = |env: &TestEnv| {
        let (ok, run) = run_json(env, "acme-test");
        assert!(ok, "{run:#}");
        (
            run["result"]["json"]["query"]["greeting"]
                .as_str()
                .unwrap()
                .to_string(),
            run["config"]["greeting"]["level"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let ws = std::fs::read_to_string(env.path().join("weft.toml")).unwrap();
    assert_eq!(greeting(&env), ("workspace".into(), "workspace".into()));

    let with_customer = ws.replace(
        "config = { customerName = \"Acme\" }",
        "config = { customerName = \"Acme\", greeting = \"customer\" }",
    );
    env.write("weft.toml", &with_customer);
    assert_eq!(greeting(&env), ("customer".into(), "customer".into()));

    // The customer's var changes after deployment: the next run sees the new value.
    env.write(
        "weft.toml",
        &with_customer.replace(
            "greeting = \"customer\"",
            "greeting = \"customer, changed\"",
        ),
    );
    assert_eq!(
        greeting(&env),
        ("customer, changed".into(), "customer".into())
    );

    let with_instance = with_customer.replace(
        "id = \"acme-test\"\ncustomer = \"acme\"\nintegration = \"test\"",
        "id = \"acme-test\"\ncustomer = \"acme\"\nintegration = \"test\"\nconfig = { greeting = \"instance\" }",
    );
    env.write("weft.toml", &with_instance);
    assert_eq!(greeting(&env), ("instance".into(), "instance".into()));

    env.write(
        "weft.toml",
        &ws.replace("config = { greeting = \"workspace\" }\n", ""),
    );
    assert_eq!(greeting(&env), ("integration".into(), "default".into()));
}

#[test]
fn a_replay_reuses_the_trigger_and_config_and_prune_removes_old_runs() {
    let server = TestServer::start();
    let env = two_customers(
        &server,
        &format!(
            r#"name = "test"
[config_vars]
greeting = {{}}
[[flows]]
name = "sync"
[[flows.steps]]
id = "echo"
plugin = "http-get"
inputs = {{ url = "{}", query = {{ order = "{{{{ trigger.order }}}}", greeting = "{{{{ config.greeting }}}}" }} }}
"#,
            server.url("/echo")
        ),
    );
    let out = env.weft(&[
        "run",
        "weft.toml",
        "-i",
        "acme-test",
        "--trigger",
        r#"{"order": "A-17"}"#,
        "--json",
    ]);
    assert!(out.success, "{out:?}");
    let first: Value = serde_json::from_str(&out.stdout).unwrap();
    let first_id = first["id"].as_str().unwrap();

    // The workspace var changes; the replay uses what the run saw.
    let ws = std::fs::read_to_string(env.path().join("weft.toml")).unwrap();
    env.write(
        "weft.toml",
        &ws.replace("greeting = \"workspace\"", "greeting = \"changed\""),
    );
    let out = env.weft(&["runs", "replay", first_id, "-w", "weft.toml", "--json"]);
    assert!(out.success, "{out:?}");
    let replay: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_ne!(replay["id"], first["id"]);
    assert_eq!(replay["replay_of"], first["id"]);
    assert_eq!(replay["trigger"]["order"], "A-17");
    assert_eq!(replay["result"]["json"]["query"]["order"], "A-17");
    assert_eq!(replay["result"]["json"]["query"]["greeting"], "workspace");

    let show = env.weft(&[
        "runs",
        "show",
        replay["id"].as_str().unwrap(),
        "-w",
        "weft.toml",
    ]);
    assert!(
        show.stdout.contains(&format!("Replay of    {first_id}")),
        "{}",
        show.stdout
    );

    let out = env.weft(&["runs", "prune", "-w", "weft.toml", "--keep", "1"]);
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("Pruned 1 run(s)"), "{}", out.stdout);
    let listed = env.weft(&["runs", "list", "-w", "weft.toml", "--json"]);
    let runs: Vec<Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], replay["id"]);
}
