//! `weft serve`, black box: the real binary on loopback, called over HTTP as an embedding app
//! would, with tokens made the way such an app makes them.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::Sha256;
use weft_tests::serve::Served;
use weft_tests::server::TestServer;
use weft_tests::{TestEnv, plugin};

mod across_workers;
mod auth;
mod browser;
mod contract;
mod data_source;
mod embedded;
pub(crate) mod marketplace;
mod metrics;
mod oauth;
mod payloads;
mod scale_out;
mod shared_store;
mod webhooks;

const KEY: &str = "rocket-avatars";
const SECRET: &str = "an-hs256-workspace-secret-of-40-bytes-ok";
const HASH_SECRET: &str = "the-app-secret-for-user-hashes-32-bytes+";
const HOOK_SECRET: &str = "signing-secret-for-acme-webhooks";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token_with(header: Header, claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn customer_token(id: &str) -> String {
    token_with(
        Header::default(),
        json!({ "iss": KEY, "id": id, "name": format!("{id} Inc."), "exp": now() + 300 }),
        SECRET,
    )
}

fn admin_token() -> String {
    token_with(
        Header::default(),
        json!({ "iss": KEY, "isAdmin": "yes", "name": "ops", "exp": now() + 300 }),
        SECRET,
    )
}

/// Two customers with an instance each of an integration whose flows are all Path Helper
/// steps, plus `slow` (an HTTP call to `server`'s `/slow`) under several concurrency modes.
fn env(server: &TestServer, extra_flows: &str) -> TestEnv {
    let env = TestEnv::new();
    env.workspace(
        &format!(
            r#"integrations = ["integration.toml"]
[workspace]
name = "rocket-avatars"

[auth]
key = "{KEY}"
secret = "env:WEFT_TEST_SECRET"
user_hash_secret = "env:WEFT_TEST_HASH_SECRET"

[plugins.http-get]
source = "builtin:http-get"
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}

[plugins.hostile]
source = {hostile:?}
state = true
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}

[[customers]]
id = "acme"
name = "Acme"
config = {{ customerName = "Acme Rockets", pokemonAvatar = "onix" }}

[[customers]]
id = "globex"
name = "Globex"
config = {{ customerName = "Globex", pokemonAvatar = "pikachu" }}

[[instances]]
id = "acme-sync"
customer = "acme"
integration = "avatars"
webhook_secret = "env:WEFT_TEST_HOOK_SECRET"

[[instances]]
id = "globex-sync"
customer = "globex"
integration = "avatars"
"#,
            port = server.port(),
            hostile = plugin("testing_hostile"),
        ),
        &format!(
            r#"name = "avatars"
[config_vars]
customerName = {{ required = true }}
pokemonAvatar = {{ required = true }}
secretToken = {{ secret = true }}

[[flows]]
name = "paths"
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"
inputs = {{ api_base = "https://api.example/{{{{ trigger.body.region }}}}" }}

[[flows]]
name = "reply"
webhook = {{ sync = true, response_step = "path_helper" }}
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"

[[flows]]
name = "slow_fifo"
concurrency = {{ mode = "fifo", queue = 2 }}
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}" }}

[[flows]]
name = "slow_throttled"
concurrency = {{ mode = "throttled", limit = 2 }}
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}" }}

[[flows]]
name = "slow"
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}" }}
{extra_flows}"#,
            slow = server.url("/slow?ms=400"),
        ),
    );
    env
}

fn serve(env: &TestEnv, args: &[&str]) -> Served {
    Served::start(
        env.path(),
        args,
        &[
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_TEST_HASH_SECRET", HASH_SECRET),
            ("WEFT_TEST_HOOK_SECRET", HOOK_SECRET),
        ],
    )
}

/// Waits until run `id` is no longer `running`; its record.
fn finished(served: &Served, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = served.get(&format!("/api/v1/runs/{id}"), &admin_token());
        assert_eq!(run.status, 200, "{}", run.text());
        let run = run.json();
        if run["status"] != "running" {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `(first step start, end)` in ms of each run, in the order given.
fn step_windows(served: &Served, ids: &[String]) -> Vec<(u64, u64)> {
    ids.iter()
        .map(|id| {
            let run = finished(served, id);
            assert_eq!(run["status"], "succeeded", "{run:#}");
            let step = &run["steps"][0];
            let start = step["started_at_ms"].as_u64().unwrap();
            (start, start + step["duration_us"].as_u64().unwrap() / 1000)
        })
        .collect()
}

#[test]
fn fifo_runs_one_at_a_time_in_order_throttled_two_and_a_full_queue_is_429() {
    let server = TestServer::start();
    let env = env(&server, "");
    let served = serve(&env, &[]);
    let fire = |flow: &str, n: usize| {
        served.call(
            "POST",
            &served.webhook("globex-sync", flow),
            &[("content-type", "application/json")],
            format!("{{\"n\":{n}}}").as_bytes(),
        )
    };

    // FIFO with a queue of 2: one runs, two wait, the fourth is refused.
    let mut ids = Vec::new();
    for n in 0..3 {
        let reply = fire("slow_fifo", n);
        assert_eq!(reply.status, 202, "{}", reply.text());
        ids.push(reply.json()["run_id"].as_str().unwrap().to_string());
    }
    let refused = fire("slow_fifo", 3);
    assert_eq!(
        (refused.status, refused.code()),
        (429, "queue_full".into()),
        "{}",
        refused.text()
    );
    let windows = step_windows(&served, &ids);
    for pair in windows.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "FIFO runs overlap or ran out of order: {windows:?}"
        );
    }

    // Throttled to 2: four at once never have more than two steps going.
    let ids: Vec<String> = (0..4)
        .map(|n| {
            let reply = fire("slow_throttled", n);
            assert_eq!(reply.status, 202, "{}", reply.text());
            reply.json()["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    let windows = step_windows(&served, &ids);
    for (start, _) in &windows {
        let overlapping = windows
            .iter()
            .filter(|(s, e)| s <= start && start < e)
            .count();
        assert!(overlapping <= 2, "more than two at once: {windows:?}");
    }
    // Parallel (the default) really runs together: four 400 ms calls well under 1.6 s.
    let started = Instant::now();
    let ids: Vec<String> = (0..4)
        .map(|n| {
            fire("slow", n).json()["run_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    step_windows(&served, &ids);
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn schedules_fire_do_not_overlap_and_catch_up_once_after_downtime() {
    let server = TestServer::start();
    let slow = server.url("/slow?ms=2500");
    let env = env(
        &server,
        &format!(
            r#"
[[flows]]
name = "every_second"
trigger = {{ schedule = "* * * * * *", timezone = "Europe/Paris" }}
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"

[[flows]]
name = "slow_every_second"
trigger = {{ schedule = "* * * * * *" }}
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}" }}
"#
        ),
    );
    let runs_of = |served: &Served, flow: &str| -> Vec<Value> {
        served
            .get(
                &format!("/api/v1/runs?instance=acme-sync&flow={flow}&limit=1000"),
                &admin_token(),
            )
            .json()
            .as_array()
            .unwrap()
            .clone()
    };

    let mut served = serve(&env, &[]);
    assert!(
        served.banner.contains("schedule `every_second`"),
        "{}",
        served.banner
    );
    std::thread::sleep(Duration::from_millis(5500));
    let fired = runs_of(&served, "every_second");
    assert!(fired.len() >= 3, "{} runs in 5.5 s", fired.len());
    assert_eq!(fired[0]["trigger"]["timezone"], "Europe/Paris");
    // 2.5 s runs on a 1 s schedule: at most one at a time, so at most three in 5.5 s.
    let slow_runs = runs_of(&served, "slow_every_second");
    assert!(
        (1..=3).contains(&slow_runs.len()),
        "{} slow runs",
        slow_runs.len()
    );
    assert!(served.stop().is_some_and(|s| s.success()));

    // Down for 3 s: the schedule missed about three ticks, and runs once for them at start.
    std::thread::sleep(Duration::from_secs(3));
    let served = serve(&env, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let catch_ups: Vec<Value> = runs_of(&served, "every_second")
        .into_iter()
        .filter(|r| r["trigger"]["catch_up"] == true)
        .collect();
    assert_eq!(catch_ups.len(), 1, "{catch_ups:#?}");
    assert!(catch_ups[0]["trigger"]["missed_ticks"].as_u64().unwrap() >= 2);
}

#[test]
fn stopping_lets_runs_in_flight_finish_or_records_them_interrupted() {
    let server = TestServer::start();
    let env = env(&server, "");
    let mut served = serve(&env, &[]);
    let reply = served.call("POST", &served.webhook("globex-sync", "slow"), &[], b"");
    let finishing = reply.json()["run_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(100));
    assert!(served.stop().is_some_and(|s| s.success()));
    let show = env.weft(&[
        "runs",
        "show",
        &finishing,
        "--workspace",
        "weft.toml",
        "--json",
    ]);
    assert!(show.success, "{}", show.stderr);
    let run: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(run["status"], "succeeded", "the run in flight finished");

    // With no grace, the run in flight is recorded as interrupted, and can be resumed.
    let mut served = serve(&env, &["--grace", "0"]);
    let reply = served.call("POST", &served.webhook("globex-sync", "slow"), &[], b"");
    let cut = reply.json()["run_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(100));
    served.stop();
    let show = env.weft(&["runs", "show", &cut, "--workspace", "weft.toml", "--json"]);
    let run: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(run["status"], "interrupted", "{run:#}");
    let resumed = env.weft(&["runs", "resume", &cut, "--workspace", "weft.toml"]);
    assert!(resumed.success, "{}\n{}", resumed.stdout, resumed.stderr);
}

/// The runs of flow `flow` the API lists with `status`.
fn runs_with(served: &Served, flow: &str, status: &str) -> Vec<Value> {
    let reply = served.get(
        &format!("/api/v1/runs?flow={flow}&status={status}"),
        &admin_token(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json().as_array().cloned().unwrap_or_default()
}

#[test]
fn a_sync_run_is_seen_running_while_it_goes_on_and_recorded_interrupted_if_cut_short() {
    let server = TestServer::start();
    let env = env(&server, "");
    let mut served = serve(&env, &["--grace", "0"]);
    // A sync run of 400 ms writes its record only when it needs to (a run that ends sooner is
    // written once, whole): after a short while it is listed as running, with its config.
    let addr = served.addr.clone();
    let slow = served.webhook("globex-sync", "slow");
    let waiting = std::thread::spawn({
        let slow = slow.clone();
        move || weft_tests::serve::request(&addr, "POST", &format!("{slow}?wait=true"), &[], b"")
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let running = loop {
        let running = runs_with(&served, "slow", "running");
        if !running.is_empty() || Instant::now() > deadline {
            break running;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        running.len(),
        1,
        "the run in progress is listed: {running:#?}"
    );
    assert_eq!(running[0]["config"]["customerName"]["value"], "Globex");
    let reply = waiting.join().expect("the sync call returns");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply
        .header("x-weft-run-id")
        .expect("the run id")
        .to_string();
    assert_eq!(id, running[0]["id"], "the same run");
    let run = served
        .get(&format!("/api/v1/runs/{id}"), &admin_token())
        .json();
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["steps"].as_array().map(Vec::len), Some(1), "{run:#}");
    assert_eq!(run["steps"][0]["id"], "wait");
    assert_eq!(run["steps"][0]["status"], "succeeded");

    // A short sync run (one Path Helper step) is written once, whole, and reads the same.
    let reply = served.call("POST", &served.webhook("globex-sync", "reply"), &[], b"");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply
        .header("x-weft-run-id")
        .expect("the run id")
        .to_string();
    let run = served
        .get(&format!("/api/v1/runs/{id}"), &admin_token())
        .json();
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["steps"][0]["id"], "path_helper", "{run:#}");
    assert_eq!(run["steps"][0]["output"], run["result"], "{run:#}");

    // A sync run stopped (no grace) before it needed to write anything is found at the stop
    // and recorded as interrupted, like any run in flight.
    let mut stream = std::net::TcpStream::connect(&served.addr).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!("POST {slow}?wait=true HTTP/1.1\r\nhost: weft\r\ncontent-length: 0\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(40));
    served.stop();
    let list = env.weft(&[
        "runs",
        "list",
        "--workspace",
        "weft.toml",
        "--flow",
        "slow",
        "--status",
        "interrupted",
        "--json",
    ]);
    assert!(list.success, "{}", list.stderr);
    let interrupted: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(interrupted.len(), 1, "{interrupted:#?}");
    assert_eq!(interrupted[0]["instance"], "globex-sync");
    drop(stream);
}

#[test]
fn credentials_are_write_only_through_the_api() {
    let server = TestServer::start();
    let env = env(&server, "");
    let key = "78d9184c5c26f0d853128890a7ff307862cdb5a3a9890a2aa7db51ece95b2869";
    let served = Served::start(
        env.path(),
        &[],
        &[
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_TEST_HASH_SECRET", HASH_SECRET),
            ("WEFT_TEST_HOOK_SECRET", HOOK_SECRET),
            ("WEFT_MASTER_KEY", key),
        ],
    );
    let admin = format!("Bearer {}", admin_token());
    let put = served.call(
        "PUT",
        "/api/v1/customers/acme/credentials/crm",
        &[("authorization", &admin)],
        br#"{"kind": "bearer", "token": "tok-very-secret-123"}"#,
    );
    assert_eq!(put.status, 200, "{}", put.text());
    assert!(
        !put.text().contains("tok-very-secret-123"),
        "{}",
        put.text()
    );
    let listed = served.get("/api/v1/credentials", &admin_token());
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json()[0]["name"], "crm");
    assert!(!listed.text().contains("tok-very-secret-123"));

    // A reference would read the server's own environment or files: refused.
    let sneaky = served.call(
        "PUT",
        "/api/v1/credentials/leak",
        &[("authorization", &admin)],
        br#"{"kind": "bearer", "token": "env:WEFT_TEST_SECRET"}"#,
    );
    assert_eq!((sneaky.status, sneaky.code()), (400, "bad_request".into()));
    let customer = served.call(
        "PUT",
        "/api/v1/credentials/mine",
        &[(
            "authorization",
            &format!("Bearer {}", customer_token("acme")),
        )],
        br#"{"kind": "bearer", "token": "x"}"#,
    );
    assert_eq!(customer.status, 403);
    let deleted = served.call(
        "DELETE",
        "/api/v1/customers/acme/credentials/crm",
        &[("authorization", &admin)],
        b"",
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text());

    // Without a master key there is nowhere to keep them.
    drop(served);
    let served = serve(&env, &[]);
    let put = served.call(
        "PUT",
        "/api/v1/credentials/crm",
        &[("authorization", &admin)],
        br#"{"kind": "bearer", "token": "x"}"#,
    );
    assert_eq!(
        (put.status, put.code()),
        (409, "vault_not_configured".into())
    );
}
