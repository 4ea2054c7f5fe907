//! Running a browser test script (`tests/browser/*.mjs`) against a served workspace: Node.js
//! drives Chromium and reports what it saw as one `WEFT-RESULT {json}` line.

use super::*;

/// A free loopback port (bound, then released for the browser test's own server).
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `tests/browser/{script}` with `WEFT_URL` (the served workspace), `WEFT_SCREENSHOTS`
/// (under the target directory) and `env`, and returns its result. Panics with everything the
/// script and the server said when it does not finish.
pub(super) fn run_script(script: &str, served: &Served, env: &[(&str, String)]) -> Value {
    let output = std::process::Command::new("node")
        .arg(weft_tests::repo().join("tests/browser").join(script))
        .env("WEFT_URL", format!("http://{}", served.addr))
        .env(
            "WEFT_SCREENSHOTS",
            weft_tests::repo().join("target/browser-screenshots"),
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("node runs (Node.js 18+; tests/tools/install sets up the browser tools)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("WEFT-RESULT "))
        .map(|json| serde_json::from_str(json).unwrap())
        .unwrap_or_else(|| {
            panic!(
                "the browser test {script} did not finish:\n{stdout}\n{}\n--- weft serve:\n{}",
                String::from_utf8_lossy(&output.stderr),
                served.stderr()
            )
        })
}

/// The event types in `result[key]`, in order.
pub(super) fn event_types<'r>(result: &'r Value, key: &str) -> Vec<&'r str> {
    result[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` in {result:#}"))
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect()
}
