//! Flow control: branches, loops, `if`, stop and call steps, checked before anything runs,
//! recorded step by step, resumable in the middle of a loop. Real plugins, the real store,
//! a real HTTP server on loopback.

use serde_json::{Value, json};
use weft::runner::RunRequest;
use weft::store::Status;
use weft_tests::TestEnv;
use weft_tests::server::TestServer;

/// A workspace whose `http-request` may reach `server`, with integration `test` made of
/// `flows` (TOML), for instance `acme-test`.
fn workspace(server: &TestServer, flows: &str) -> TestEnv {
    let env = TestEnv::new();
    env.workspace(
        &format!(
            r#"integrations = ["integration.toml"]
[plugins.http-request]
source = "builtin:http-request"
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}
[[customers]]
id = "acme"
name = "Acme"
[[instances]]
id = "acme-test"
customer = "acme"
integration = "test"
"#,
            port = server.port()
        ),
        &format!("name = \"test\"\n{flows}"),
    );
    env
}

async fn run_flow(env: &TestEnv, flow: &str, trigger: Value) -> weft::store::RunWithSteps {
    let ws = env.load();
    let runner = env.runner();
    runner
        .run(RunRequest {
            workspace: &ws,
            instance: "acme-test",
            flow: Some(flow),
            trigger,
        })
        .await
        .expect("the run starts")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_loop_with_concurrency_runs_that_many_at_once_and_keeps_item_order() {
    let server = TestServer::start();
    let url = server.url("/inflight");
    let env = workspace(
        &server,
        &format!(
            r#"
[limits]
iterations = 1000

[[flows]]
name = "fan-out"
[[flows.steps]]
id = "each"
type = "loop"
items = "{{{{ trigger.items }}}}"
concurrency = 8
[[flows.steps.steps]]
id = "call"
plugin = "http-request"
inputs = {{ url = "{url}", query = {{ ms = "5", n = "{{{{ loop.item }}}}" }} }}
"#
        ),
    );
    let items: Vec<u32> = (0..1000).collect();
    let run = rt().block_on(run_flow(&env, "fan-out", json!({ "items": items })));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    assert_eq!(server.seen_at("/inflight").len(), 1000);
    assert_eq!(
        server.most_in_flight(),
        8,
        "the server saw at most {} requests at once",
        server.most_in_flight()
    );
    let results = match &run.run.result {
        Some(weft_model::value::RecordedValue::Json(Value::Array(results))) => results.clone(),
        other => panic!("the loop's result is its iterations' results: {other:?}"),
    };
    let order: Vec<i64> = results.iter().map(|r| r["n"].as_i64().unwrap()).collect();
    assert_eq!(
        order,
        (0..1000).collect::<Vec<i64>>(),
        "results in item order"
    );
    // Every iteration's step is in the store with its place.
    let stored = env
        .runner()
        .store()
        .get_run(&run.run.id)
        .unwrap()
        .expect("the run is stored");
    let inner: Vec<_> = stored.steps.iter().filter(|s| s.id == "call").collect();
    assert_eq!(inner.len(), 1000);
    assert!(inner.iter().all(|s| s.scope[0].step == "each"));
    let mut iterations: Vec<u64> = inner
        .iter()
        .map(|s| s.scope[0].iteration.unwrap())
        .collect();
    iterations.sort_unstable();
    assert_eq!(iterations, (0..1000).collect::<Vec<u64>>());
}

#[test]
fn failed_items_under_continue_are_listed_and_the_run_succeeds_with_errors() {
    let server = TestServer::start();
    let base = server.url("");
    let env = workspace(
        &server,
        &format!(
            r#"
[[flows]]
name = "tolerant"
[[flows.steps]]
id = "each"
type = "loop"
items = "{{{{ trigger.codes }}}}"
concurrency = 3
on_item_error = "continue"
[[flows.steps.steps]]
id = "call"
plugin = "http-request"
inputs = {{ url = "{base}/status/{{{{ loop.item }}}}" }}
[[flows.steps]]
id = "report"
type = "stop"
result = {{ errors = "{{{{ steps.each.errors }}}}" }}
"#
        ),
    );
    let codes = [200, 500, 200, 404, 200, 200, 503];
    let run = rt().block_on(run_flow(&env, "tolerant", json!({ "codes": codes })));
    assert_eq!(
        run.run.status,
        Status::SucceededWithErrors,
        "{:?}",
        run.run.error
    );
    let Some(weft_model::value::RecordedValue::Json(result)) = &run.run.result else {
        panic!("the stop step's result is the run's: {:?}", run.run.result);
    };
    let failed: Vec<u64> = result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, [1, 3, 6]);
    let message = result["errors"][1]["error"].as_str().unwrap();
    assert!(
        message.contains("step `call`") && message.contains("404"),
        "{message}"
    );
    assert_eq!(server.seen().len(), codes.len(), "every item ran once");
}

const BRANCHES: &str = r#"
[[flows]]
name = "route"
[[flows.steps]]
id = "kind"
type = "branch"
[[flows.steps.branches]]
name = "big"
when = "trigger.amount > 100"
[[flows.steps.branches.steps]]
id = "big_label"
type = "call"
flow = "label"
inputs = { text = "big {{ trigger.amount }}" }
[[flows.steps.branches]]
name = "vip"
when = "trigger.customer == 'vip'"
[[flows.steps.branches.steps]]
id = "vip_label"
type = "call"
flow = "label"
inputs = { text = "vip" }
[[flows.steps.branches]]
name = "other"
[[flows.steps.branches.steps]]
id = "other_label"
type = "call"
flow = "label"
inputs = { text = "other" }
[[flows.steps]]
id = "note"
if = "has(trigger.note)"
type = "call"
flow = "label"
inputs = { text = "{{ trigger.note }}" }
[[flows.steps]]
id = "done"
type = "stop"
result = { branch = "{{ steps.kind.branch }}", label = "{{ steps.kind.results }}", note = "{{ steps.note.results }}" }

[[flows]]
name = "label"
[[flows.steps]]
id = "make"
type = "stop"
result = "label: {{ trigger.text }}"

[[flows]]
name = "forever"
[[flows.steps]]
id = "again"
type = "call"
flow = "forever"
"#;

#[test]
fn branches_pick_by_value_and_expression_with_an_else_and_if_skips() {
    let server = TestServer::start();
    let env = workspace(&server, BRANCHES);
    let rt = rt();
    let result = |trigger: Value| {
        let run = rt.block_on(run_flow(&env, "route", trigger));
        assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
        assert_eq!(run.run.stopped_by.as_deref(), Some("done"));
        match run.run.result {
            Some(weft_model::value::RecordedValue::Json(v)) => (v, run.steps),
            other => panic!("{other:?}"),
        }
    };
    let (big, steps) = result(json!({ "amount": 250 }));
    assert_eq!(
        big,
        json!({ "branch": "big", "label": "label: big 250", "note": null })
    );
    let note = steps.iter().find(|s| s.id == "note").unwrap();
    assert_eq!(note.status, Status::Skipped, "`if` false skips the step");
    let (vip, _) = result(json!({ "amount": 5, "customer": "vip", "note": "hi" }));
    assert_eq!(
        vip,
        json!({ "branch": "vip", "label": "label: vip", "note": "label: hi" })
    );
    let (other, _) = result(json!({ "amount": 5, "customer": "x" }));
    assert_eq!(other["branch"], "other");

    // A condition that reads a missing field fails the run, naming the step and expression.
    let run = rt.block_on(run_flow(&env, "route", json!({ "customer": "x" })));
    assert_eq!(run.run.status, Status::Failed);
    let error = run.run.error.unwrap();
    assert!(
        error.contains("step `kind`")
            && error.contains("branch `big`")
            && error.contains("trigger.amount > 100")
            && error.contains("has("),
        "{error}"
    );
}

#[test]
fn a_call_that_recurses_stops_at_the_depth_limit() {
    let server = TestServer::start();
    let env = workspace(&server, BRANCHES);
    let run = rt().block_on(run_flow(&env, "forever", Value::Null));
    assert_eq!(run.run.status, Status::Failed);
    let error = run.run.error.unwrap();
    assert!(
        error.contains("calls deep; the most is 8 (`call_depth`"),
        "{error}"
    );
}

#[test]
fn a_while_loop_pages_until_there_is_no_next_page_and_break_if_ends_early() {
    let server = TestServer::start();
    let url = server.url("/inflight");
    let env = workspace(
        &server,
        &format!(
            r#"
[[flows]]
name = "pages"
[[flows.steps]]
id = "page"
type = "loop"
while = "index == 0 || previous.fetch.n < 4"
max_iterations = 10
[[flows.steps.steps]]
id = "fetch"
plugin = "http-request"
inputs = {{ url = "{url}", query = {{ ms = "0", n = "{{{{ loop.index }}}}" }} }}

[[flows]]
name = "until"
[[flows.steps]]
id = "count"
type = "loop"
count = 100
break_if = "previous.fetch.n == 2"
[[flows.steps.steps]]
id = "fetch"
plugin = "http-request"
inputs = {{ url = "{url}", query = {{ ms = "0", n = "{{{{ loop.index }}}}" }} }}

[[flows]]
name = "runaway"
[[flows.steps]]
id = "spin"
type = "loop"
while = "true"
max_iterations = 3
[[flows.steps.steps]]
id = "fetch"
plugin = "http-request"
inputs = {{ url = "{url}", query = {{ ms = "0" }} }}
"#
        ),
    );
    let rt = rt();
    let run = rt.block_on(run_flow(&env, "pages", Value::Null));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    let loop_record = &run.steps[0];
    assert_eq!(loop_record.detail.as_ref().unwrap()["iterations"], 5);

    let run = rt.block_on(run_flow(&env, "until", Value::Null));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    assert_eq!(run.steps[0].detail.as_ref().unwrap()["iterations"], 3);

    let run = rt.block_on(run_flow(&env, "runaway", Value::Null));
    assert_eq!(run.run.status, Status::Failed);
    let error = run.run.error.unwrap();
    assert!(error.contains("still held after 3 iterations"), "{error}");
    assert_eq!(server.seen().len(), 5 + 3 + 3);
}

#[test]
fn nested_loops_reach_the_outer_item_by_its_name() {
    let server = TestServer::start();
    let url = server.url("/echo");
    let env = workspace(
        &server,
        &format!(
            r#"
[[flows]]
name = "orders"
[[flows.steps]]
id = "orders"
type = "loop"
items = "{{{{ trigger.orders }}}}"
as = "order"
[[flows.steps.steps]]
id = "lines"
type = "loop"
items = "{{{{ order.lines }}}}"
[[flows.steps.steps.steps]]
id = "post"
if = "item.qty > 0"
plugin = "http-request"
inputs = {{ url = "{url}", method = "POST", body = {{ order = "{{{{ order.id }}}}", sku = "{{{{ loop.item.sku }}}}" }} }}
"#
        ),
    );
    let trigger = json!({ "orders": [
        { "id": "o1", "lines": [{ "sku": "a", "qty": 1 }, { "sku": "b", "qty": 0 }] },
        { "id": "o2", "lines": [{ "sku": "c", "qty": 2 }] },
    ]});
    let run = rt().block_on(run_flow(&env, "orders", trigger));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    let bodies: Vec<Value> = server
        .seen_at("/echo")
        .iter()
        .map(|s| serde_json::from_slice(&s.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            json!({ "order": "o1", "sku": "a" }),
            json!({ "order": "o2", "sku": "c" })
        ]
    );
}

#[test]
fn every_flow_control_mistake_is_reported_at_once() {
    let env = TestEnv::new();
    env.workspace(
        r#"integrations = ["integration.toml"]
[[customers]]
id = "acme"
name = "Acme"
[[instances]]
id = "acme-test"
customer = "acme"
integration = "test"
"#,
        r#"name = "test"
[[flows]]
name = "main"
[[flows.steps]]
id = "guarded"
plugin = "path-helper"
if = "trigger.a =="
[[flows.steps]]
id = "each"
type = "loop"
items = "{{ trigger.items }}"
[[flows.steps.steps]]
id = "inner"
plugin = "path-helper"
[[flows.steps]]
id = "peek"
plugin = "path-helper"
inputs = { api_base = "{{ steps.inner.results.pokemonUrl }}" }
[[flows.steps]]
id = "spin"
type = "loop"
while = "true"
[[flows.steps.steps]]
id = "spun"
plugin = "path-helper"
[[flows.steps]]
id = "odd"
type = "fork"
[[flows.steps]]
id = "both"
type = "stop"
plugin = "path-helper"
"#,
    );
    let out = env.weft(&["validate", "weft.toml"]);
    assert!(!out.success);
    let errors = out.stderr;
    for expected in [
        // A bad expression, with where it goes wrong.
        "step `guarded`, field `if`",
        "does not parse: line 1, column 13",
        // A reference into another scope.
        "`steps.inner.results.pokemonUrl` refers to step `inner`, which is inside step `each`",
        // `while` without `max_iterations`.
        "a `while` loop needs `max_iterations`",
        // An unknown step kind.
        "unknown step type `fork`",
        // Both `plugin` and `type`.
        "the step has both `plugin` and `type`",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
}

/// Runs `weft run --events` for `flow` and kills it (SIGKILL) once `acks` steps with id
/// `step` are acknowledged; returns the iterations acknowledged.
fn run_until_acknowledged(env: &TestEnv, flow: &str, step: &str, acks: usize) -> Vec<u64> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(weft_tests::weft_bin())
        .args([
            "run",
            "weft.toml",
            "-i",
            "acme-test",
            "-f",
            flow,
            "--events",
        ])
        .current_dir(env.path())
        .env_remove("WEFT_STORE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("weft starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut acknowledged = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["event"] == "step_recorded" && event["step"]["id"] == step {
            acknowledged.push(event["step"]["scope"][0]["iteration"].as_u64().unwrap());
            if acknowledged.len() == acks {
                child.kill().expect("SIGKILL");
                break;
            }
        }
    }
    child.wait().expect("reaped");
    acknowledged
}

#[test]
fn a_run_killed_inside_a_loop_resumes_without_running_acknowledged_iterations_again() {
    for (round, acks) in [2, 5, 9].into_iter().enumerate() {
        let server = TestServer::start();
        let url = server.url("/inflight");
        let env = workspace(
            &server,
            &format!(
                r#"
[[flows]]
name = "items"
[[flows.steps]]
id = "each"
type = "loop"
count = 12
[[flows.steps.steps]]
id = "post"
plugin = "http-request"
inputs = {{ url = "{url}", method = "POST", query = {{ ms = "30", n = "{{{{ loop.index }}}}" }} }}
"#
            ),
        );
        let acknowledged = run_until_acknowledged(&env, "items", "post", acks);
        assert_eq!(acknowledged.len(), acks, "round {round}");

        let out = env.weft(&["runs", "list", "-w", "weft.toml", "--json"]);
        let runs: Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert_eq!(runs[0]["status"], "interrupted", "round {round}: {runs:#}");
        let id = runs[0]["id"].as_str().unwrap();
        let out = env.weft(&["runs", "resume", id, "-w", "weft.toml", "--json"]);
        assert!(out.success, "round {round}: {out:?}");
        let resumed: Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert_eq!(resumed["status"], "succeeded", "{resumed:#}");
        let order: Vec<i64> = resumed["result"]["json"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["n"].as_i64().unwrap())
            .collect();
        assert_eq!(order, (0..12).collect::<Vec<i64>>(), "round {round}");

        let seen = server.seen_at("/inflight");
        for n in 0..12u64 {
            let requests: Vec<_> = seen
                .iter()
                .filter(|s| s.query.get("n") == Some(&n.to_string()))
                .collect();
            if acknowledged.contains(&n) {
                assert_eq!(
                    requests.len(),
                    1,
                    "round {round}: acknowledged iteration {n} ran again"
                );
            } else {
                assert!(
                    (1..=2).contains(&requests.len()),
                    "round {round}: iteration {n} reached the server {} times",
                    requests.len()
                );
            }
            let keys: Vec<&str> = requests
                .iter()
                .map(|s| s.headers["idempotency-key"].as_str())
                .collect();
            assert!(
                keys.iter().all(|k| *k == keys[0] && k.starts_with(id)),
                "round {round}: iteration {n} was sent with keys {keys:?}"
            );
            assert!(keys[0].ends_with(&format!("each[{n}]/post/1")), "{keys:?}");
        }
    }
}

#[test]
fn the_contacts_example_creates_and_updates_exactly_what_changed() {
    use weft::demo::contacts::{ContactStandIns, write_workspace};
    let rt = rt();
    let stand_ins = rt
        .block_on(ContactStandIns::start(3, 250))
        .expect("the stand-ins start");
    let env = TestEnv::new();
    write_workspace(env.path(), &stand_ins).expect("the workspace is written");

    let out = env.weft(&[
        "run",
        "weft.toml",
        "-i",
        "acme-contacts",
        "-f",
        "sync",
        "--json",
    ]);
    assert!(out.success, "{out:?}");
    let run: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(run["status"], "succeeded", "{}", run["error"]);
    assert_eq!(run["stopped_by"], "summary");

    // Contacts n % 3 == 2 are new, n % 3 == 1 changed, the rest unchanged: each new one
    // created once, each changed one updated once, nothing else sent.
    let log = stand_ins.log();
    let ids = |rest: usize| -> Vec<String> {
        (0..750)
            .filter(|n| n % 3 == rest)
            .map(|n| format!("c{n:05}"))
            .collect()
    };
    let mut created = log.created.clone();
    created.sort();
    let mut updated = log.updated.clone();
    updated.sort();
    assert_eq!(created, ids(2));
    assert_eq!(updated, ids(1));

    // The run's tree: the pages loop with its three iterations, none failed.
    let id = run["id"].as_str().unwrap();
    let out = env.weft(&["runs", "show", id, "-w", "weft.toml"]);
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains("Step 1 `pages` (loop): succeeded")
            && out.stdout.contains("3 iteration(s), 0 failed")
            && out.stdout.contains("Stopped by   step `summary`"),
        "{}",
        out.stdout
    );
    // One iteration opened: its page branch and the contacts loop of that page.
    let out = env.weft(&["runs", "show", id, "-w", "weft.toml", "--iteration", "1"]);
    assert!(
        out.stdout.contains("Iteration 1")
            && out.stdout.contains("(branch): succeeded")
            && out.stdout.contains(", branch `next`")
            && out.stdout.contains("250 iteration(s), 0 failed"),
        "{}",
        out.stdout
    );

    // `weft demo contacts-sync` runs the same against stand-ins of its own.
    let demo = env.weft(&["demo", "contacts-sync", "--dir", "demo"]);
    assert!(demo.success, "{demo:?}");
    assert!(
        demo.stdout
            .contains("250 created, 250 updated, 250 skipped (unchanged) of 750 contacts"),
        "{}",
        demo.stdout
    );
}

/// The `toml` blocks of the README's flow-control section, joined: one integration's flows.
fn readme_flows() -> String {
    let readme = std::fs::read_to_string(weft_tests::repo().join("README.md")).expect("README");
    let start = readme
        .find("## Flow control")
        .expect("the README has a flow-control section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut flows = String::new();
    for block in section.split("```toml\n").skip(1) {
        flows.push_str(&block[..block.find("```").expect("a closed block")]);
        flows.push('\n');
    }
    flows
}

#[test]
fn the_readme_flow_control_snippets_validate_and_run_as_written() {
    let server = TestServer::start();
    let env = TestEnv::new();
    env.workspace(
        &format!(
            r#"integrations = ["integration.toml"]
[plugins.http-request]
source = "builtin:http-request"
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}
[[customers]]
id = "acme"
name = "Acme"
[[instances]]
id = "acme-test"
customer = "acme"
integration = "readme"
config = {{ api = "{api}" }}
"#,
            port = server.port(),
            api = server.url("")
        ),
        &format!("name = \"readme\"\n{}", readme_flows()),
    );
    let rt = rt();
    let json = |run: &weft::store::RunWithSteps| match &run.run.result {
        Some(weft_model::value::RecordedValue::Json(v)) => v.clone(),
        other => panic!("{other:?}"),
    };

    let run = rt.block_on(run_flow(
        &env,
        "route-order",
        json!({ "id": "o1", "total": 5000, "gift": true }),
    ));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    assert_eq!(json(&run), json!({ "branch": "large" }));
    assert_eq!(server.seen_at("/echo").len(), 2);
    let run = rt.block_on(run_flow(
        &env,
        "route-order",
        json!({ "id": "o2", "total": 5 }),
    ));
    assert_eq!(json(&run), json!({ "branch": "small" }));
    assert_eq!(
        server.seen_at("/echo").len(),
        2,
        "a small order without a gift sends nothing"
    );

    let run = rt.block_on(run_flow(&env, "ping-all", json!({ "ids": [7, 8, 9] })));
    assert_eq!(json(&run), json!([{ "n": 7 }, { "n": 8 }, { "n": 9 }]));

    let run = rt.block_on(run_flow(&env, "all-pages", Value::Null));
    assert_eq!(run.steps[0].detail.as_ref().unwrap()["iterations"], 4);

    let run = rt.block_on(run_flow(&env, "signup", json!({ "email": "a@b.c" })));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    assert_eq!(
        json(&run),
        json!({ "status": 201, "body": { "welcome": "a@b.c" } })
    );
    let run = rt.block_on(run_flow(&env, "signup", json!({})));
    assert_eq!(run.run.status, Status::Failed);
    let error = run.run.error.unwrap();
    assert!(
        error.contains(
            "flow `require-email` stopped failed at step `missing`: an email is required"
        ),
        "{error}"
    );
}

#[test]
fn a_run_over_its_step_executions_limit_fails_naming_the_limit() {
    let server = TestServer::start();
    let env = workspace(
        &server,
        r#"
[limits]
step_executions = 5

[[flows]]
name = "many"
[[flows.steps]]
id = "each"
type = "loop"
count = 10
[[flows.steps.steps]]
id = "stop_inside"
if = "index > 100"
type = "stop"
"#,
    );
    let run = rt().block_on(run_flow(&env, "many", Value::Null));
    assert_eq!(run.run.status, Status::Failed);
    let error = run.run.error.unwrap();
    assert!(
        error.contains("iteration 4 failed")
            && error.contains("limit of 5 step executions (`step_executions`, `[limits]` of"),
        "{error}"
    );
}

#[test]
fn every_step_record_is_acknowledged_once_whatever_ends_the_run() {
    let server = TestServer::start();
    let base = server.url("");
    let env = workspace(
        &server,
        &format!(
            r#"
[[flows]]
name = "mixed"
[[flows.steps]]
id = "each"
type = "loop"
items = "{{{{ trigger.codes }}}}"
on_item_error = "continue"
[[flows.steps.steps]]
id = "call"
plugin = "http-request"
inputs = {{ url = "{base}/status/{{{{ loop.item }}}}" }}
[[flows.steps.steps]]
id = "early"
if = "item == 201"
type = "stop"
result = "stopped at 201"
"#
        ),
    );
    for (codes, ends) in [
        ("[200, 500, 200]", "succeeded_with_errors"),
        ("[200, 500, 201, 200]", "succeeded_with_errors"),
    ] {
        let trigger = format!(r#"{{"codes": {codes}}}"#);
        let out = env.weft(&[
            "run",
            "weft.toml",
            "-i",
            "acme-test",
            "-f",
            "mixed",
            "--trigger",
            &trigger,
            "--events",
        ]);
        let events: Vec<Value> = out
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "step_recorded")
            .collect();
        let run_id = events[0]["run"].as_str().unwrap().to_string();
        let stored = env.weft(&["runs", "show", &run_id, "-w", "weft.toml", "--json"]);
        let stored: Value = serde_json::from_str(&stored.stdout).expect("JSON");
        assert_eq!(stored["status"], ends, "{stored:#}");
        let mut acknowledged: Vec<u64> = events
            .iter()
            .map(|e| e["step"]["index"].as_u64().unwrap())
            .collect();
        acknowledged.sort_unstable();
        let records: Vec<u64> = stored["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["index"].as_u64().unwrap())
            .collect();
        assert_eq!(
            acknowledged, records,
            "each record acknowledged exactly once ({codes})"
        );
    }
}
