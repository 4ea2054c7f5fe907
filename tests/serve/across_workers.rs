//! What holds once across processes when runs go through the queue: two front ends and three
//! workers on one PostgreSQL store keep a FIFO flow one at a time in arrival order, a throttled
//! flow to its limit, a FIFO flow's queue bound, and fire each schedule tick once.

use std::collections::BTreeMap;
use std::time::Duration;

use weft_tests::postgres::TestDatabase;
use weft_tests::serve::Served;
use weft_tests::server::TestServer;

use super::scale_out::{WorkerProcess, front, until};
use prometheus_parse::{Scrape, Value};

use super::metrics::scrape;
use super::{env, step_windows};

/// Calls `flow`'s webhook of `globex-sync` on `front`; the run's id.
fn fire(front: &Served, flow: &str) -> String {
    let reply = front.call("POST", &front.webhook("globex-sync", flow), &[], b"");
    assert_eq!(reply.status, 202, "{}", reply.text());
    reply.json()["run_id"].as_str().unwrap().to_string()
}

/// The most windows (start, end) open at any moment.
fn most_at_once(windows: &[(u64, u64)]) -> usize {
    windows
        .iter()
        .map(|(start, _)| {
            windows
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The sum of `metric` over its labels in `scraped`; for a histogram, of its counts.
fn total(scraped: &Scrape, metric: &str) -> f64 {
    scraped
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => panic!("{metric} is a summary"),
        })
        .sum()
}

#[test]
fn two_front_ends_and_three_workers_keep_limits_order_and_schedule_ticks_once() {
    let server = TestServer::start();
    let env = env(
        &server,
        &format!(
            r#"
[[flows]]
name = "every_second"
# Every tick runs, even while the workers are still busy with the previous one (by default a
# tick is skipped then, which would make the count below depend on the machine's load).
trigger = {{ schedule = "* * * * * *", overlap = true }}
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"

[[flows]]
name = "in_order"
concurrency = {{ mode = "fifo" }}
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}" }}
"#,
            slow = server.url("/slow?ms=150"),
        ),
    );
    let db = TestDatabase::new();
    let started = std::time::Instant::now();
    // The first worker serves its metrics.
    let metrics_addr = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().to_string()
    };
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|n| {
            let mut args = vec!["--slots", "4"];
            if n == 0 {
                args.extend(["--metrics-listen", metrics_addr.as_str()]);
            }
            WorkerProcess::start(&env, &db, &args)
        })
        .collect();
    let fronts = [front(&env, &db), front(&env, &db)];

    // FIFO: runs arriving at either front end, one at a time, in the order they arrived.
    let in_order: Vec<String> = (0..8).map(|n| fire(&fronts[n % 2], "in_order")).collect();
    // Throttled to two: never more at once, whichever workers take them.
    let throttled: Vec<String> = (0..6)
        .map(|n| fire(&fronts[n % 2], "slow_throttled"))
        .collect();

    let windows = step_windows(&fronts[0], &in_order);
    for pair in windows.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "FIFO runs overlap or ran out of arrival order: {windows:?}"
        );
    }
    let windows = step_windows(&fronts[1], &throttled);
    assert_eq!(
        most_at_once(&windows),
        2,
        "a throttled flow with limit 2: {windows:?}"
    );
    // Taken by more than one worker (each run's record names the process that wrote it).
    let owners = db.query(&format!(
        "SELECT count(DISTINCT owner) FROM weft_runs WHERE id IN ('{}')",
        in_order
            .iter()
            .chain(&throttled)
            .cloned()
            .collect::<Vec<_>>()
            .join("','")
    ));
    assert_ne!(owners, vec!["1"], "one worker ran everything");

    // A FIFO flow's queue bound (2) counts the runs waiting in the store, queued by either
    // front end.
    let first = fire(&fronts[0], "slow_fifo");
    until(
        &db,
        &format!("SELECT (owner IS NOT NULL)::text FROM weft_queue WHERE run_id = '{first}'"),
        "true",
    );
    fire(&fronts[1], "slow_fifo");
    fire(&fronts[0], "slow_fifo");
    let refused = fronts[1].call(
        "POST",
        &fronts[1].webhook("globex-sync", "slow_fifo"),
        &[],
        b"",
    );
    assert_eq!(
        (refused.status, refused.code()),
        (429, "queue_full".into()),
        "{}",
        refused.text()
    );

    // The schedule ran all along; ten seconds of it.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    // Operators see the shared queue from a front end, and each worker's waits from it.
    until(
        &db,
        "SELECT count(*) FROM weft_queue WHERE owner IS NULL",
        "0",
    );
    let front_metrics = scrape(&fronts[0]);
    assert_eq!(total(&front_metrics, "weft_shared_queue_waiting"), 0.0);
    assert!(
        front_metrics
            .samples
            .iter()
            .any(|s| s.metric == "weft_shared_queue_running")
    );
    let reply = weft_tests::serve::request(&metrics_addr, "GET", "/metrics", &[], b"");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let worker_metrics = Scrape::parse(reply.text().lines().map(|l| Ok(l.to_string())))
        .expect("the worker's scrape parses");
    let started = total(&worker_metrics, "weft_runs_started_total");
    assert!(
        started >= 1.0,
        "the first worker ran nothing: {}",
        reply.text()
    );
    // Every run it started from the queue was counted with the time it waited there.
    assert_eq!(
        total(&worker_metrics, "weft_queue_wait_seconds"),
        started,
        "{}",
        reply.text()
    );

    // The front ends stop firing; the workers finish what was queued.
    let mut fronts = fronts;
    for front in &mut fronts {
        assert!(front.stop().is_some_and(|s| s.success()));
    }
    until(&db, "SELECT count(*) FROM weft_queue", "0");
    drop(workers);
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
    let runs: Vec<serde_json::Value> = serde_json::from_str(&runs.stdout).unwrap();
    let mut per_tick: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run:#}");
        let tick = run["trigger"]["scheduled_at"].as_str().unwrap();
        *per_tick
            .entry(format!("{} {tick}", run["instance"].as_str().unwrap()))
            .or_default() += 1;
    }
    // Two instances have the flow, each with its own schedule: up to 20 ticks in 10 s, fewer
    // only where a front end's schedule loop itself was late on this two-core machine.
    assert!(
        per_tick.len() >= 12,
        "{} ticks in 10 s: {per_tick:#?}",
        per_tick.len()
    );
    assert!(
        per_tick.values().all(|n| *n == 1),
        "a tick fired more than once: {per_tick:#?}"
    );
}
