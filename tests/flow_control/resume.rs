//! Records under a kill: resume inside a loop, idempotency keys, each record acknowledged once.

use super::*;

/// Runs `weft run --events` for `flow`, handing each acknowledged step record to `killing`,
/// and kills the process (SIGKILL) as soon as `killing` returns true.
fn run_and_kill_when(env: &TestEnv, flow: &str, mut killing: impl FnMut(&Value) -> bool) {
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
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["event"] == "step_recorded" && killing(&event["step"]) {
            child.kill().expect("SIGKILL");
            break;
        }
    }
    child.wait().expect("reaped");
}

/// Runs `weft run --events` for `flow` and kills it (SIGKILL) once `acks` steps with id
/// `step` are acknowledged; returns the iterations acknowledged.
fn run_until_acknowledged(env: &TestEnv, flow: &str, step: &str, acks: usize) -> Vec<u64> {
    let mut acknowledged = Vec::new();
    run_and_kill_when(env, flow, |record| {
        if record["id"] == step {
            acknowledged.push(record["scope"][0]["iteration"].as_u64().unwrap());
        }
        acknowledged.len() == acks
    });
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

#[test]
fn a_step_that_only_read_is_acknowledged_with_the_next_change_and_a_change_never_runs_again() {
    let server = TestServer::start();
    let slow = server.url("/slow");
    let inflight = server.url("/inflight");
    let env = workspace(
        &server,
        &format!(
            r#"
[[flows]]
name = "effects"
[[flows.steps]]
id = "read"
plugin = "http-request"
inputs = {{ url = "{slow}", query = {{ ms = "1", n = "read" }} }}
[[flows.steps]]
id = "change"
plugin = "http-request"
inputs = {{ url = "{inflight}", method = "POST", query = {{ ms = "1", n = "change" }} }}
[[flows.steps]]
id = "read_again"
plugin = "http-request"
inputs = {{ url = "{slow}", query = {{ ms = "3000", n = "read_again" }} }}
"#
        ),
    );
    let mut acknowledged = Vec::new();
    run_and_kill_when(&env, "effects", |record| {
        let id = record["id"].as_str().unwrap().to_string();
        // The GET is flushed with the POST after it, not on its own: by the time it is
        // acknowledged the POST has reached the server.
        if id == "read" {
            assert_eq!(
                server.seen_at("/inflight").len(),
                1,
                "the read was acknowledged before the change after it was sent"
            );
        }
        acknowledged.push(id);
        // Killed while the last GET waits on the server.
        acknowledged.last().map(String::as_str) == Some("change")
    });
    assert_eq!(acknowledged, ["read", "change"]);

    let out = env.weft(&["runs", "list", "-w", "weft.toml", "--json"]);
    let runs: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(runs[0]["status"], "interrupted", "{runs:#}");
    let id = runs[0]["id"].as_str().unwrap();
    let out = env.weft(&["runs", "resume", id, "-w", "weft.toml", "--json"]);
    assert!(out.success, "{out:?}");
    let resumed: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(resumed["status"], "succeeded", "{resumed:#}");

    // The acknowledged change was not sent again; the read after it ran on resume (and before,
    // if the kill came after its request left).
    let sent = |path: &str, n: &str| {
        server
            .seen_at(path)
            .iter()
            .filter(|s| s.query.get("n").map(String::as_str) == Some(n))
            .count()
    };
    assert_eq!(sent("/slow", "read"), 1);
    assert_eq!(sent("/inflight", "change"), 1);
    assert!((1..=2).contains(&sent("/slow", "read_again")));
}
