//! The hostile-plugin suite: each misbehaving plugin fails its own step with the limit or
//! capability named, and nothing else is affected. (The same under load, with memory measured,
//! is `tests/isolation.rs`, a test binary of its own.)

use weft_tests::hostile::{env as hostile_env, expected, run_flow};
use weft_tests::server::TestServer;

#[test]
fn each_hostile_plugin_fails_its_step_with_the_reason_named() {
    let server = TestServer::start();
    let env = hostile_env(&server);
    for (flow, reason) in expected() {
        let run = run_flow(&env, flow);
        assert_eq!(run["status"], "failed", "{flow}: {run:#}");
        let error = run["steps"][0]["error"].as_str().unwrap_or_default();
        assert!(
            reason.split('|').any(|r| error.contains(r)),
            "{flow}: expected {reason:?} in {error:?}"
        );
        assert!(error.contains(&format!("step `{flow}`")), "{flow}: {error}");
    }
    // A log flood is capped, not fatal: the record keeps the first lines and says what it dropped.
    let run = run_flow(&env, "log_flood");
    let logs = run["steps"][0]["logs"].as_array().unwrap();
    assert!(logs.len() <= 1001, "{}", logs.len());
    assert!(
        logs.last().unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("dropped"),
        "{:?}",
        logs.last()
    );
    // The state flood kept nothing.
    let run = run_flow(&env, "ok");
    assert_eq!(run["status"], "succeeded");
}
