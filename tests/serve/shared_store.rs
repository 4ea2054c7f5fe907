//! Several `weft serve` processes sharing one PostgreSQL store: what one records, the others
//! read; a schedule's ticks fire once whichever processes are up.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use weft_tests::postgres::TestDatabase;
use weft_tests::serve::Served;
use weft_tests::server::TestServer;

use super::{HASH_SECRET, HOOK_SECRET, SECRET, admin_token, env, finished};

fn serve_on(env: &weft_tests::TestEnv, db: &TestDatabase) -> Served {
    Served::start(
        env.path(),
        &[],
        &[
            ("WEFT_STORE", db.url()),
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_TEST_HASH_SECRET", HASH_SECRET),
            ("WEFT_TEST_HOOK_SECRET", HOOK_SECRET),
        ],
    )
}

#[test]
fn three_processes_share_records_and_fire_each_schedule_tick_once() {
    let server = TestServer::start();
    let env = env(
        &server,
        r#"
[[flows]]
name = "every_second"
trigger = { schedule = "* * * * * *" }
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"
"#,
    );
    let db = TestDatabase::new();
    let mut processes: Vec<Served> = (0..3).map(|_| serve_on(&env, &db)).collect();

    // A run started through one process is read through another.
    let reply = processes[0].call(
        "POST",
        &processes[0].webhook("globex-sync", "paths"),
        &[("content-type", "application/json")],
        br#"{"region": "eu"}"#,
    );
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["run_id"].as_str().unwrap().to_string();
    let run = finished(&processes[0], &id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let elsewhere = processes[2].get(&format!("/api/v1/runs/{id}"), &admin_token());
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.text());
    assert_eq!(elsewhere.json()["status"], "succeeded");

    std::thread::sleep(Duration::from_millis(5_500));
    for process in &mut processes {
        assert!(process.stop().is_some_and(|s| s.success()));
    }
    // Every tick ran once, by whichever process claimed it.
    let runs = env.weft_with(
        &[
            "runs",
            "list",
            "--flow",
            "every_second",
            "--limit",
            "1000",
            "--json",
        ],
        &[("WEFT_STORE", db.url())],
        None,
    );
    assert!(runs.success, "{}", runs.stderr);
    let runs: Vec<Value> = serde_json::from_str(&runs.stdout).unwrap();
    let mut per_tick: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run:#}");
        let tick = run["trigger"]["scheduled_at"].as_str().unwrap();
        *per_tick
            .entry(format!("{} {tick}", run["instance"].as_str().unwrap()))
            .or_default() += 1;
    }
    // Two instances have the flow, each with its own schedule.
    assert!(per_tick.len() >= 8, "{} ticks in 5.5 s", per_tick.len());
    assert!(
        per_tick.values().all(|n| *n == 1),
        "a tick fired more than once: {per_tick:#?}"
    );
}
