//! What operators see: `/metrics` read back with a Prometheus text-format parser and checked
//! against the runs the API lists, JSON logs carrying each run's id, and `/ready` through a
//! shutdown.

use std::collections::BTreeMap;

use prometheus_parse::{LineInfo, Scrape, Value as Metric};

use super::*;

/// Beside the test integration's flows: one whose plugin step fails (an upstream 404), one
/// that fails before its first step (its credential exists nowhere), and a FIFO flow whose
/// runs take long enough to be seen waiting.
fn observed_env(server: &TestServer) -> TestEnv {
    env(
        server,
        &format!(
            r#"
[[flows]]
name = "broken"
[[flows.steps]]
id = "lookup"
plugin = "http-get"
inputs = {{ url = "{missing}" }}

[[flows]]
name = "unbound"
[[flows.steps]]
id = "call"
plugin = "http-get"
credential = "nowhere"
inputs = {{ url = "{missing}" }}

[[flows]]
name = "queued"
concurrency = {{ mode = "fifo" }}
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}" }}
"#,
            missing = server.url("/status/404"),
            slow = server.url("/slow?ms=1500"),
        ),
    )
}

/// A trigger body the Path Helper flows read (`trigger.body.region`).
const REGION: &[u8] = br#"{"region":"eu"}"#;

fn serve_logging_json(env: &TestEnv) -> Served {
    Served::start_capturing_stderr(
        env.path(),
        &["--log-format", "json"],
        &[
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_TEST_HASH_SECRET", HASH_SECRET),
            ("WEFT_TEST_HOOK_SECRET", HOOK_SECRET),
        ],
    )
}

/// `GET /metrics` as an admin, every line checked to be a sample, a `# HELP` or a `# TYPE`
/// line (the parser skips what it cannot read), then parsed.
pub(super) fn scrape(served: &Served) -> Scrape {
    let reply = served.get("/metrics", &admin_token());
    assert_eq!(reply.status, 200, "{}", reply.text());
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = reply.text();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            !matches!(LineInfo::parse(line), LineInfo::Ignored),
            "not Prometheus text format: {line:?}"
        );
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the scrape parses")
}

/// The value of each sample of `metric` (a counter, gauge, or a histogram's `_count`) by the
/// values of `labels`.
pub(super) fn samples(
    scrape: &Scrape,
    metric: &str,
    labels: &[&str],
) -> BTreeMap<Vec<String>, f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| {
            let key = labels
                .iter()
                .map(|l| s.labels.get(l).unwrap_or_default().to_string())
                .collect();
            let value = match &s.value {
                Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
                other => panic!("{metric} is not a single value: {other:?}"),
            };
            (key, value)
        })
        .collect()
}

/// `(flow, instance) → runs` and `(flow, instance, status) → runs`, as the API lists them.
type Counts = (BTreeMap<Vec<String>, f64>, BTreeMap<Vec<String>, f64>);

fn recorded(runs: &[Value]) -> Counts {
    let mut started = BTreeMap::new();
    let mut finished = BTreeMap::new();
    for run in runs {
        let text = |key: &str| run[key].as_str().unwrap().to_string();
        *started
            .entry(vec![text("flow"), text("instance")])
            .or_insert(0.0) += 1.0;
        *finished
            .entry(vec![text("flow"), text("instance"), text("status")])
            .or_insert(0.0) += 1.0;
    }
    (started, finished)
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_the_runs_the_api_lists() {
    let server = TestServer::start();
    let env = observed_env(&server);
    let served = serve_logging_json(&env);
    let admin = format!("Bearer {}", admin_token());

    // Probes answer anyone, and say nothing else.
    let ready = served.call("GET", "/ready", &[], b"");
    assert_eq!(
        (ready.status, ready.json()),
        (200, json!({ "ready": true }))
    );
    let health = served.call("GET", "/health", &[], b"");
    assert_eq!(
        (health.status, health.json()),
        (200, json!({ "status": "ok" }))
    );
    // Metrics name instances and flows: admins only.
    let anonymous = served.call("GET", "/metrics", &[], b"");
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (401, "missing_credentials".into())
    );
    let customer = served.get("/metrics", &customer_token("globex"));
    assert_eq!(
        (customer.status, customer.code()),
        (403, "admin_only".into())
    );

    // A FIFO flow: the first run goes, the second waits for it.
    let queued = served.webhook("globex-sync", "queued");
    let mut ids: Vec<String> = (0..2)
        .map(|_| {
            let reply = served.call("POST", &queued, &[], b"");
            assert_eq!(reply.status, 202, "{}", reply.text());
            reply.json()["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    let waiting = scrape(&served);
    let key = vec!["queued".to_string(), "globex-sync".to_string()];
    let depth = samples(&waiting, "weft_queue_depth", &["flow", "instance"]);
    assert_eq!(depth.get(&key), Some(&1.0), "{depth:?}");
    let oldest = samples(
        &waiting,
        "weft_queue_oldest_wait_seconds",
        &["flow", "instance"],
    );
    assert!(
        oldest
            .get(&key)
            .is_some_and(|age| (0.0..60.0).contains(age) && *age > 0.0),
        "{oldest:?}"
    );

    // Webhooks that succeed (answered at once, and waited for), one whose step fails, one
    // that fails before its first step; and runs through the API for the other instance.
    let mut fire = |flow: &str, query: &str, expected: u16| {
        let path = format!("{}{query}", served.webhook("globex-sync", flow));
        let reply = served.call(
            "POST",
            &path,
            &[("content-type", "application/json")],
            REGION,
        );
        assert_eq!(reply.status, expected, "{flow}: {}", reply.text());
        match reply.header("x-weft-run-id") {
            Some(id) => ids.push(id.to_string()),
            None => ids.push(reply.json()["run_id"].as_str().unwrap().to_string()),
        }
    };
    for _ in 0..3 {
        fire("paths", "", 202);
    }
    fire("paths", "?wait=true", 200);
    fire("reply", "", 200);
    fire("broken", "", 202);
    fire("unbound", "", 202);
    for flow in ["paths", "unbound"] {
        let reply = served.call(
            "POST",
            &format!("/api/v1/instances/acme-sync/flows/{flow}/runs?wait=true"),
            &[
                ("authorization", &admin),
                ("content-type", "application/json"),
            ],
            REGION,
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        ids.push(reply.json()["id"].as_str().unwrap().to_string());
    }
    let runs: Vec<Value> = ids.iter().map(|id| finished(&served, id)).collect();
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "failed").count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        runs.iter()
            .filter(|r| r["status"] == "failed" && r["steps"].as_array().unwrap().is_empty())
            .count(),
        2,
        "the unbound runs fail before any step: {runs:#?}"
    );

    // The counters match the runs the API lists, per flow, instance and status (a run's end
    // is counted just after its record is written: give it a moment).
    let listed = served.get("/api/v1/runs?limit=1000", &admin_token()).json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), ids.len());
    let (started, ended) = recorded(listed);
    let deadline = Instant::now() + Duration::from_secs(5);
    let scraped = loop {
        let scraped = scrape(&served);
        let counted = (
            samples(&scraped, "weft_runs_started_total", &["flow", "instance"]),
            samples(
                &scraped,
                "weft_runs_finished_total",
                &["flow", "instance", "status"],
            ),
        );
        if counted == (started.clone(), ended.clone()) || Instant::now() > deadline {
            assert_eq!(counted.0, started, "started");
            assert_eq!(counted.1, ended, "finished");
            break scraped;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        samples(&scraped, "weft_runs_resumed_total", &["flow"]).is_empty(),
        "nothing was resumed"
    );
    assert_eq!(
        samples(&scraped, "weft_queue_depth", &["flow", "instance"]).get(&key),
        Some(&0.0)
    );

    // One step duration per plugin step recorded, in the histogram of its plugin.
    let mut steps: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for run in &runs {
        for step in run["steps"].as_array().unwrap() {
            *steps
                .entry(vec![step["plugin"].as_str().unwrap().to_string()])
                .or_insert(0.0) += 1.0;
        }
    }
    assert_eq!(
        steps.get(&vec!["http-get".to_string()]),
        Some(&3.0),
        "{steps:?}"
    );
    assert_eq!(
        samples(&scraped, "weft_step_duration_seconds_count", &["plugin"]),
        steps
    );
    for sample in scraped
        .samples
        .iter()
        .filter(|s| s.metric == "weft_step_duration_seconds")
    {
        let Metric::Histogram(buckets) = &sample.value else {
            panic!("not a histogram: {sample:?}");
        };
        let plugin = sample.labels.get("plugin").unwrap_or_default();
        let all = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
        assert_eq!(Some(&all.count), steps.get(&vec![plugin.to_string()]));
        assert!(
            buckets.iter().any(|b| b.less_than == 0.000_05),
            "{buckets:?}"
        );
    }
    // Webhook answers, by flow and whether the caller waited (API runs are not webhooks).
    let webhooks = samples(
        &scraped,
        "weft_webhook_duration_seconds_count",
        &["flow", "wait"],
    );
    let expected: BTreeMap<Vec<String>, f64> = [
        (["queued", "false"], 2.0),
        (["paths", "false"], 3.0),
        (["paths", "true"], 1.0),
        (["reply", "true"], 1.0),
        (["broken", "false"], 1.0),
        (["unbound", "false"], 1.0),
    ]
    .into_iter()
    .map(|(labels, n)| (labels.map(String::from).to_vec(), n))
    .collect();
    assert_eq!(webhooks, expected);
    // The runs' records were flushed to disk (the default durability), each flush timed.
    let flushes = samples(&scraped, "weft_store_flush_seconds_count", &[]);
    assert!(
        flushes.get(&Vec::new()).is_some_and(|n| *n >= 1.0),
        "{flushes:?}"
    );

    // Every stderr line is JSON, and each run's start and end are logged inside its span.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stderr = served.stderr();
        let lines: Vec<Value> = stderr
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            })
            .collect();
        let logged = |run: &Value, message: &str| {
            lines.iter().any(|line| {
                line["fields"]["message"] == message
                    && line["span"]["run_id"] == run["id"]
                    && line["span"]["flow"] == run["flow"]
                    && line["span"]["instance"] == run["instance"]
            })
        };
        let all_logged = runs
            .iter()
            .all(|run| logged(run, "run started") && logged(run, "run finished"));
        if all_logged || Instant::now() > deadline {
            assert!(
                all_logged,
                "a run's start or end is not logged in its span:\n{stderr}"
            );
            // Nothing secret: no token, no webhook address, no workspace secret.
            let token = admin.trim_start_matches("Bearer ");
            for secret in [token, &queued["/webhooks/".len()..], SECRET] {
                assert!(!stderr.contains(secret), "{secret} is logged:\n{stderr}");
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Inside a run, a step's lines carry the step too.
    let failed = runs.iter().find(|r| r["flow"] == "broken").unwrap();
    assert!(
        served.stderr().lines().any(|line| {
            let line: Value = serde_json::from_str(line).unwrap();
            line["fields"]["message"] == "step failed"
                && line["span"]["step"] == "lookup"
                && line["spans"][0]["run_id"] == failed["id"]
        }),
        "{}",
        served.stderr()
    );
}

#[test]
fn on_sigterm_it_is_no_longer_ready_at_once_and_still_finishes_its_runs() {
    let server = TestServer::start();
    let env = observed_env(&server);
    let mut served = serve(&env, &[]);
    assert_eq!(served.call("GET", "/ready", &[], b"").status, 200);
    // A run of 1.5 s whose caller waits for it.
    let addr = served.addr.clone();
    let path = format!("{}?wait=true", served.webhook("globex-sync", "queued"));
    let waiting =
        std::thread::spawn(move || weft_tests::serve::request(&addr, "POST", &path, &[], b""));
    std::thread::sleep(Duration::from_millis(200));
    served.terminate();
    // A load balancer asking now hears 503, or finds nothing listening: either way, no work.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready = weft_tests::serve::try_request(&served.addr, "GET", "/ready", &[], b"");
        match ready {
            None => break,
            Some(reply) if reply.status == 503 => {
                assert_eq!(reply.json()["ready"], false);
                break;
            }
            Some(reply) => {
                assert_eq!(reply.status, 200, "{}", reply.text());
                assert!(Instant::now() < deadline, "still ready after SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    assert!(
        !waiting.is_finished(),
        "the run in flight was still going when readiness went"
    );
    let reply = waiting.join().expect("the waiting caller returns");
    assert_eq!(
        reply.status,
        200,
        "the run in flight finished: {}",
        reply.text()
    );
    assert!(served.stop().is_some_and(|s| s.success()));
}
