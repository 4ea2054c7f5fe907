//! Crash recovery under test: the `weft` process is killed (SIGKILL) at random points during
//! runs, started again, and the store is checked against what the process acknowledged before
//! it died. `tests/crash.rs` runs 50 cycles in CI; the `crash_soak` bench runs 1,000.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::server::TestServer;
use crate::{TestEnv, plugin, weft_bin};
use serde_json::Value;

/// The steps of the crash flow.
pub const STEPS: usize = 8;

/// A small deterministic generator, so a failing sequence of kills can be reproduced.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn workspace(server: &TestServer) -> TestEnv {
    let env = TestEnv::new();
    let slow = server.url("/slow?ms=40");
    let png = server.url("/png");
    let echo = server.url("/echo");
    env.workspace(
        &format!(
            r#"integrations = ["integration.toml"]
[plugins.http-get]
source = "builtin:http-get"
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}
[plugins.http-request]
source = "builtin:http-request"
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}
[plugins.counter]
source = {counter:?}
state = true
[[customers]]
id = "acme"
name = "Acme"
config = {{ customerName = "Acme", pokemonAvatar = "onix" }}
[[instances]]
id = "acme-sync"
customer = "acme"
integration = "crash"
"#,
            port = server.port(),
            counter = plugin("testing_counter"),
        ),
        &format!(
            r#"name = "crash"
[config_vars]
customerName = {{}}
pokemonAvatar = {{}}
[[flows]]
name = "sync"
[[flows.steps]]
id = "paths"
plugin = "path-helper"
[[flows.steps]]
id = "slow1"
plugin = "http-get"
inputs = {{ url = "{slow}" }}
[[flows.steps]]
id = "count"
plugin = "counter"
[[flows.steps]]
id = "slow2"
plugin = "http-get"
inputs = {{ url = "{slow}" }}
[[flows.steps]]
id = "avatar"
plugin = "http-get"
inputs = {{ url = "{png}", response_type = "binary" }}
[[flows.steps]]
id = "slow3"
plugin = "http-get"
inputs = {{ url = "{slow}" }}
[[flows.steps]]
id = "uses_avatar"
plugin = "http-request"
inputs = {{ url = "{echo}", method = "POST", body = "{{{{ steps.avatar.results }}}}" }}
[[flows.steps]]
id = "paths_again"
plugin = "path-helper"
"#
        ),
    );
    env
}

/// Runs `weft run --events` and kills it after `after`; returns the acknowledged step
/// records (run id, record) and whether the process finished by itself.
fn run_and_kill(env: &TestEnv, after: Duration) -> (Vec<(String, Value)>, bool) {
    let mut child = Command::new(weft_bin())
        .args(["run", "weft.toml", "--instance", "acme-sync", "--events"])
        .current_dir(env.path())
        .env_remove("WEFT_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("weft starts");
    let stdout = child.stdout.take().expect("stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        })
    };
    let deadline = Instant::now() + after;
    let mut finished = false;
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            finished = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if !finished {
        child.kill().expect("SIGKILL");
    }
    child.wait().expect("reaped");
    reader.join().expect("reader");
    let acknowledged = lines
        .lock()
        .unwrap()
        .iter()
        // A line cut short by the kill is not an acknowledgement.
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "step_recorded")
        .map(|e| (e["run"].as_str().unwrap().to_string(), e["step"].clone()))
        .collect();
    (acknowledged, finished)
}

fn weft_json(env: &TestEnv, args: &[&str]) -> Value {
    let out = env.weft(args);
    assert!(out.success, "weft {args:?}: {out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// What a soak found: every count a reader checks.
#[derive(Debug, Clone, Copy)]
pub struct Soak {
    /// Kill/restart cycles run.
    pub cycles: usize,
    /// The seed of the kill times.
    pub seed: u64,
    /// How long one whole run takes, process start included.
    pub whole: Duration,
    /// How long its steps take.
    pub steps_span: Duration,
    /// Steps acknowledged before a kill and found intact after it.
    pub acknowledged: usize,
    /// Runs found interrupted after a restart and resumed to completion.
    pub interrupted: usize,
    /// Runs that finished before their kill.
    pub finished: usize,
    /// Kills that came before the run was recorded.
    pub no_record: usize,
    /// Runs in the store at the end, all succeeded.
    pub runs: usize,
    /// Acknowledged steps that were lost or differ (always 0: the soak panics on the first).
    pub lost: usize,
}

impl std::fmt::Display for Soak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} kill/restart cycles (seed {:#x}; a run takes {:?}, its steps {:?}): {} acknowledged steps checked, {} lost; {} interrupted runs found and resumed to completion; {} runs finished before their kill; {} kills before the run was recorded; {} runs in the store, all succeeded, state count matches",
            self.cycles,
            self.seed,
            self.whole,
            self.steps_span,
            self.acknowledged,
            self.lost,
            self.interrupted,
            self.finished,
            self.no_record,
            self.runs
        )
    }
}

/// Runs `cycles` kill/restart cycles with kill times drawn from `seed`, checking after each
/// restart that every acknowledged step is stored exactly as acknowledged, that no run is left
/// `running`, and that every interrupted run resumes to completion; at the end, that state
/// written with a step was committed with it. Panics with the cycle and seed on the first
/// difference.
pub fn soak(cycles: usize, seed: u64) -> Soak {
    let server = TestServer::start();
    let env = workspace(&server);

    // A first run fills the compile cache, so the runs after it start as a restarted
    // process does; then how long one whole run takes, process start included.
    let (_, finished) = run_and_kill(&env, Duration::from_secs(120));
    assert!(finished);
    let started = Instant::now();
    let (first, finished) = run_and_kill(&env, Duration::from_secs(120));
    assert!(finished);
    assert_eq!(first.len(), STEPS);
    assert!(
        first.iter().all(|(_, s)| s["status"] == "succeeded"),
        "{first:?}"
    );
    let whole = started.elapsed();
    // The steps take the end of that; starting the process (compiling the plugins) the rest.
    let first_ms = first[0].1["started_at_ms"].as_u64().unwrap();
    let last = &first[STEPS - 1].1;
    let last_ms =
        last["started_at_ms"].as_u64().unwrap() + last["duration_us"].as_u64().unwrap() / 1000;
    let steps_span = Duration::from_millis(last_ms - first_ms);
    let startup = whole.saturating_sub(steps_span);

    let mut rng = XorShift(seed);
    let mut acknowledged_total = 0;
    let mut interrupted_total = 0;
    let mut finished_total = 2;
    let mut no_record = 0;
    for cycle in 0..cycles {
        // Most kills land while steps run; one in five anywhere, start-up included.
        let after = if cycle % 5 == 0 {
            Duration::from_micros(rng.below(whole.as_micros() as u64 * 11 / 10))
        } else {
            startup.saturating_sub(Duration::from_millis(20))
                + Duration::from_micros(rng.below(steps_span.as_micros() as u64 + 40_000))
        };
        let (acknowledged, finished) = run_and_kill(&env, after);
        finished_total += usize::from(finished);
        acknowledged_total += acknowledged.len();

        // Restart: the store opens, and the killed run is found interrupted.
        let runs = weft_json(
            &env,
            &[
                "runs",
                "list",
                "-w",
                "weft.toml",
                "--limit",
                "1000",
                "--json",
            ],
        );
        let runs = runs.as_array().unwrap();
        assert!(
            runs.iter().all(|r| r["status"] != "running"),
            "cycle {cycle} (seed {seed:#x}): a run is still `running` after a restart"
        );
        // Every acknowledged step is there, exactly as acknowledged.
        for (run_id, step) in &acknowledged {
            let run = weft_json(&env, &["runs", "show", run_id, "-w", "weft.toml", "--json"]);
            let stored = &run["steps"][step["index"].as_u64().unwrap() as usize];
            assert_eq!(
                stored, step,
                "cycle {cycle} (seed {seed:#x}, killed after {after:?}): acknowledged step differs in the store"
            );
        }
        let newest = &runs[0];
        if acknowledged.is_empty() && !finished && newest["status"] != "interrupted" {
            no_record += 1;
        }
        // Resume every interrupted run to completion.
        for run in runs.iter().filter(|r| r["status"] == "interrupted") {
            interrupted_total += 1;
            let id = run["id"].as_str().unwrap();
            let resumed = weft_json(&env, &["runs", "resume", id, "-w", "weft.toml", "--json"]);
            assert_eq!(resumed["status"], "succeeded", "cycle {cycle}: {resumed:#}");
            let steps = resumed["steps"].as_array().unwrap();
            assert_eq!(steps.len(), STEPS);
            assert!(steps.iter().all(|s| s["status"] == "succeeded"));
            // The resumed run kept what it had acknowledged before the kill.
            for (run_id, step) in acknowledged.iter().filter(|(r, _)| r == id) {
                assert_eq!(run_id, id);
                assert_eq!(&steps[step["index"].as_u64().unwrap() as usize], step);
            }
        }
    }

    // State was written atomically with the counter step: the count equals the number of
    // counter steps that succeeded, across every run, whatever the kills interrupted.
    let runs = weft_json(
        &env,
        &[
            "runs",
            "list",
            "-w",
            "weft.toml",
            "--limit",
            "1000",
            "--json",
        ],
    );
    let runs = runs.as_array().unwrap();
    assert!(
        runs.iter().all(|r| r["status"] == "succeeded"),
        "every run completed"
    );
    let mut counted = 0;
    for run in runs {
        let run = weft_json(
            &env,
            &[
                "runs",
                "show",
                run["id"].as_str().unwrap(),
                "-w",
                "weft.toml",
                "--json",
            ],
        );
        let steps = run["steps"].as_array().unwrap();
        // The avatar's bytes reached the step after it, resumed or not.
        assert_eq!(
            steps[6]["output"]["json"]["body"],
            String::from_utf8_lossy(crate::server::PNG).as_ref(),
            "{run:#}"
        );
        counted += steps
            .iter()
            .filter(|s| s["id"] == "count" && s["status"] == "succeeded")
            .count();
    }
    let last = run_and_kill(&env, Duration::from_secs(120));
    assert!(last.1);
    let count_step = last
        .0
        .iter()
        .find(|(_, s)| s["id"] == "count")
        .expect("the counter step ran")
        .1
        .clone();
    assert_eq!(count_step["output"]["json"]["count"], counted as u64 + 1);

    Soak {
        cycles,
        seed,
        whole,
        steps_span,
        acknowledged: acknowledged_total,
        interrupted: interrupted_total,
        finished: finished_total - 2,
        no_record,
        runs: runs.len(),
        lost: 0,
    }
}
