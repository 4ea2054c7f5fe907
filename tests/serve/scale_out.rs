//! `weft serve --role front` and `weft worker` processes on one PostgreSQL store: runs taken by
//! the front end are run once by one of the workers, and a worker killed in the middle of a run
//! loses it to another, which resumes it.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use weft::demo::BUCKET;
use weft_tests::postgres::TestDatabase;
use weft_tests::serve::Served;
use weft_tests::server::TestServer;
use weft_tests::{TestEnv, pokemon_example, weft_bin};

use super::{HASH_SECRET, HOOK_SECRET, SECRET, env};

/// `weft worker weft.toml` in `env` on `db`, with `args`; killed when dropped.
pub(super) struct WorkerProcess(Child);

impl WorkerProcess {
    pub(super) fn start(env: &TestEnv, db: &TestDatabase, args: &[&str]) -> Self {
        Self::start_logging(env, db, args, Stdio::inherit())
    }

    fn start_logging(env: &TestEnv, db: &TestDatabase, args: &[&str], stderr: Stdio) -> Self {
        Self::spawn(env, db.url(), args, &[], stderr)
    }

    /// `weft worker` on store `store`, with `extra` in its environment.
    pub(super) fn spawn(
        env: &TestEnv,
        store: &str,
        args: &[&str],
        extra: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        let child = Command::new(weft_bin())
            .args(["worker", "weft.toml"])
            .args(args)
            .current_dir(env.path())
            .env("WEFT_STORE", store)
            .envs(extra.iter().copied())
            .env("WEFT_TEST_SECRET", SECRET)
            .env("WEFT_TEST_HASH_SECRET", HASH_SECRET)
            .env("WEFT_TEST_HOOK_SECRET", HOOK_SECRET)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("weft worker starts");
        Self(child)
    }

    fn kill(&mut self) {
        self.signal("KILL");
        let _ = self.0.wait();
    }

    fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.0.id().to_string()])
            .status();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

pub(super) fn front(env: &TestEnv, db: &TestDatabase) -> Served {
    Served::start(
        env.path(),
        &["--role", "front"],
        &[
            ("WEFT_STORE", db.url()),
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_TEST_HASH_SECRET", HASH_SECRET),
            ("WEFT_TEST_HOOK_SECRET", HOOK_SECRET),
        ],
    )
}

/// Waits until `sql` answers `want` (first column of the first row).
pub(super) fn until(db: &TestDatabase, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = db.query(sql);
        if got.first().map(String::as_str) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{sql}` is {got:?}, never {want}; queue: {:?}; runs: {:?}",
            db.query(
                "SELECT run_id || ' ' || coalesce(owner, '-') || ' ' || claims FROM weft_queue"
            ),
            db.query("SELECT id || ' ' || status || ' ' || coalesce(owner, '-') FROM weft_runs")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_example_through_a_front_end_and_two_workers_runs_each_run_once() {
    let (env, stand_ins) = pokemon_example();
    let db = TestDatabase::new();
    // The workers apply the workspace as they start; the front end too.
    let workers = [
        WorkerProcess::start(&env, &db, &["--slots", "4"]),
        WorkerProcess::start(&env, &db, &["--slots", "4"]),
    ];
    let front = front(&env, &db);
    let hooks = [
        front.webhook("smith-rocket-avatar-sync", "sync"),
        front.webhook("ftl-rockets-avatar-sync", "sync"),
    ];
    let mut accepted = Vec::new();
    for n in 0..20 {
        let reply = front.call("POST", &hooks[n % 2], &[], b"");
        assert_eq!(reply.status, 202, "{}", reply.text());
        accepted.push(reply.json()["run_id"].as_str().unwrap().to_string());
    }
    // A caller that waits is answered by the front end once a worker has run it.
    let waited = front.call("POST", &format!("{}?wait=true", hooks[1]), &[], b"");
    assert_eq!(waited.status, 200, "{}", waited.text());

    until(&db, "SELECT count(*) FROM weft_queue", "0");
    until(
        &db,
        "SELECT count(*) FROM weft_runs WHERE status = 'succeeded'",
        "21",
    );
    // Each run once: four step records each, every one of them succeeded.
    let per_run = db.query(
        "SELECT count(*) || ' ' || bool_and(convert_from(record, 'UTF8')::json ->> 'status' = 'succeeded') \
         FROM weft_steps GROUP BY run_id",
    );
    assert_eq!(per_run, vec!["4 true"; 21]);
    for id in &accepted {
        assert_eq!(
            db.query(&format!("SELECT status FROM weft_runs WHERE id = '{id}'")),
            vec!["succeeded"]
        );
    }
    // Both workers took part (each run's record names the process that wrote it last).
    let owners = db.query("SELECT count(DISTINCT owner) FROM weft_runs");
    assert_eq!(owners, vec!["2"], "runs were not shared by the two workers");
    let (avatar, _) = stand_ins.get_object(BUCKET, "FTL Rockets.png");
    assert!(avatar.starts_with(b"\x89PNG"));
    drop(workers);
}

#[test]
fn the_contacts_example_through_a_front_end_and_two_workers_sends_each_change_once() {
    use weft::demo::contacts::{ContactStandIns, write_workspace};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stand_ins = rt
        .block_on(ContactStandIns::start(3, 100))
        .expect("the stand-ins start");
    let env = TestEnv::new();
    write_workspace(env.path(), &stand_ins).expect("the workspace is written");
    let db = TestDatabase::new();
    let workers = [
        WorkerProcess::start(&env, &db, &["--slots", "4"]),
        WorkerProcess::start(&env, &db, &["--slots", "4"]),
    ];
    let front = Served::start(
        env.path(),
        &["--role", "front"],
        &[("WEFT_STORE", db.url())],
    );
    let reply = front.call(
        "POST",
        &format!("{}?wait=true", front.webhook("acme-contacts", "sync")),
        &[],
        b"",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    until(&db, "SELECT count(*) FROM weft_queue", "0");
    assert_eq!(
        db.query("SELECT status FROM weft_runs"),
        vec!["succeeded"],
        "one run, run once"
    );
    // Contacts n % 3 == 2 are new, n % 3 == 1 changed: each sent to the CRM exactly once.
    let log = stand_ins.log();
    let ids = |rest: usize| -> Vec<String> {
        (0..300)
            .filter(|n| n % 3 == rest)
            .map(|n| format!("c{n:05}"))
            .collect()
    };
    let (mut created, mut updated) = (log.created.clone(), log.updated.clone());
    created.sort();
    updated.sort();
    assert_eq!(created, ids(2));
    assert_eq!(updated, ids(1));
    // The run's records are complete: the pages loop with its three iterations.
    let run: Value =
        serde_json::from_str(&db.query("SELECT convert_from(record, 'UTF8') FROM weft_runs")[0])
            .unwrap();
    assert_eq!(run["stopped_by"], "summary", "{run:#}");
    assert!(
        db.query("SELECT count(*) FROM weft_steps")[0]
            .parse::<usize>()
            .unwrap()
            >= 3,
        "the step records are missing"
    );
    drop(workers);
}

#[test]
fn a_worker_cut_off_from_the_database_keeps_going_and_runs_what_was_queued_meanwhile() {
    let server = TestServer::start();
    let env = env(&server, "");
    let db = TestDatabase::new();
    // The worker reaches the database through a proxy the test cuts; the front end directly.
    let mut url = url::Url::parse(db.url()).unwrap();
    let target: std::net::SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap();
    let proxy = weft_tests::proxy::CutProxy::start(target);
    url.set_port(Some(proxy.addr.port())).unwrap();
    let log = env.path().join("worker.log");
    let mut worker = WorkerProcess::spawn(
        &env,
        url.as_str(),
        &["--lease", "2"],
        &[],
        std::fs::File::create(&log).unwrap().into(),
    );
    let front = front(&env, &db);
    let hook = front.webhook("globex-sync", "paths");
    let json = [("content-type", "application/json")];
    let body = br#"{"region": "eu"}"#;
    let before = front.call("POST", &format!("{hook}?wait=true"), &json, body);
    assert_eq!(before.status, 200, "{}", before.text());

    proxy.cut();
    let reply = front.call("POST", &hook, &json, body);
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["run_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the worker stopped when the database went away:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(
        db.query(&format!("SELECT status FROM weft_runs WHERE id = '{id}'")),
        vec!["running"],
        "queued while the worker was cut off"
    );

    proxy.restore();
    until(
        &db,
        &format!("SELECT status FROM weft_runs WHERE id = '{id}'"),
        "succeeded",
    );
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(said.contains("failed to claim queued runs"), "{said}");
    assert!(worker.0.try_wait().unwrap().is_none());
}

/// Kill-and-resume cycles.
const CYCLES: usize = 20;

#[test]
fn a_worker_killed_in_a_loop_loses_the_run_to_another_which_resumes_it() {
    let server = TestServer::start();
    let slow = server.url("/slow");
    let env = env(
        &server,
        &format!(
            r#"
[[flows]]
name = "slow_loop"
[[flows.steps]]
id = "each"
type = "loop"
count = 8
[[flows.steps.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}?ms=250&i={{{{ loop.index }}}}" }}
"#
        ),
    );
    let db = TestDatabase::new();
    let front = front(&env, &db);
    let hook = front.webhook("globex-sync", "slow_loop");
    let mut cycles = 0;
    for cycle in 0..CYCLES {
        let mut doomed = WorkerProcess::start(&env, &db, &["--lease", "1"]);
        let reply = front.call("POST", &hook, &[], b"");
        let id = match reply.status {
            202 => reply.json()["run_id"].as_str().unwrap().to_string(),
            other => panic!("cycle {cycle}: {other} {}", reply.text()),
        };
        // Killed once three iterations are committed.
        until(
            &db,
            &format!("SELECT (count(*) >= 3)::text FROM weft_steps WHERE run_id = '{id}'"),
            "true",
        );
        let before: BTreeMap<String, String> = db
            .query(&format!(
                "SELECT idx || '=' || convert_from(record, 'UTF8') FROM weft_steps WHERE run_id = '{id}'"
            ))
            .into_iter()
            .filter_map(|row| row.split_once('=').map(|(i, r)| (i.to_string(), r.to_string())))
            .collect();
        doomed.kill();
        let _rescuer = WorkerProcess::start(&env, &db, &["--lease", "1"]);
        until(
            &db,
            &format!("SELECT status FROM weft_runs WHERE id = '{id}'"),
            "succeeded",
        );
        // What was committed before the kill is as it was: not run or written again.
        for (idx, record) in &before {
            assert_eq!(
                db.query(&format!(
                    "SELECT convert_from(record, 'UTF8') FROM weft_steps WHERE run_id = '{id}' AND idx = {idx}"
                )),
                vec![record.clone()]
            );
        }
        let run: Value = serde_json::from_str(
            &db.query(&format!(
                "SELECT convert_from(record, 'UTF8') FROM weft_runs WHERE id = '{id}'"
            ))[0],
        )
        .unwrap();
        assert_eq!(run["resumed"], 1, "{run:#}");
        cycles += 1;
    }
    assert_eq!(cycles, CYCLES);
    // Every iteration of every run was asked for once, but the one in flight at each kill.
    let mut asked: BTreeMap<String, usize> = BTreeMap::new();
    for seen in server.seen_at("/slow") {
        *asked
            .entry(seen.query.get("i").cloned().unwrap_or_default())
            .or_default() += 1;
    }
    let total: usize = asked.values().sum();
    assert!(
        (8 * CYCLES..=9 * CYCLES).contains(&total),
        "8 iterations a run, plus at most the one in flight at each kill: {asked:?}"
    );
}

#[test]
fn a_worker_paused_past_its_lease_cannot_write_and_abandons_the_run() {
    let server = TestServer::start();
    let slow = server.url("/slow");
    let env = env(
        &server,
        &format!(
            r#"
[[flows]]
name = "slow_loop"
[[flows.steps]]
id = "each"
type = "loop"
count = 6
[[flows.steps.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}?ms=400&i={{{{ loop.index }}}}" }}
"#
        ),
    );
    let db = TestDatabase::new();
    let front = front(&env, &db);
    let log = env.path().join("paused.log");
    let paused = WorkerProcess::start_logging(
        &env,
        &db,
        &["--lease", "1"],
        std::fs::File::create(&log).unwrap().into(),
    );
    let reply = front.call("POST", &front.webhook("globex-sync", "slow_loop"), &[], b"");
    assert_eq!(reply.status, 202, "{}", reply.text());
    let id = reply.json()["run_id"].as_str().unwrap().to_string();
    until(
        &db,
        &format!("SELECT (count(*) >= 2)::text FROM weft_steps WHERE run_id = '{id}'"),
        "true",
    );
    let paused_owner = db.query(&format!("SELECT owner FROM weft_runs WHERE id = '{id}'"));
    paused.signal("STOP");
    let _other = WorkerProcess::start(&env, &db, &["--lease", "1"]);
    until(
        &db,
        &format!("SELECT status FROM weft_runs WHERE id = '{id}'"),
        "succeeded",
    );
    let finished: Vec<String> = db.query(&format!(
        "SELECT idx || ' ' || convert_from(record, 'UTF8') FROM weft_steps WHERE run_id = '{id}' ORDER BY idx"
    ));
    // Woken up: whatever it was doing, its records are refused and it gives the run up.
    paused.signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("abandoned here")
    {
        assert!(
            Instant::now() < deadline,
            "the paused worker never said it abandoned the run:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        db.query(&format!(
            "SELECT idx || ' ' || convert_from(record, 'UTF8') FROM weft_steps WHERE run_id = '{id}' ORDER BY idx"
        )),
        finished,
        "the paused worker wrote over the run's new owner"
    );
    assert_eq!(
        db.query(&format!("SELECT status FROM weft_runs WHERE id = '{id}'")),
        vec!["succeeded"]
    );
    assert_ne!(
        db.query(&format!("SELECT owner FROM weft_runs WHERE id = '{id}'")),
        paused_owner
    );
}
