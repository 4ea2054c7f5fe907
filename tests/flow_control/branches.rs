//! Branches, `if`, `stop` and `call`, and the limits that bound them.

use super::*;

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
