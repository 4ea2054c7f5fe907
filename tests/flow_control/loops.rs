//! Loops: concurrency and item order, failures let through, `while` and `break_if`, nested loops.

use super::*;

#[test]
fn a_loop_with_concurrency_runs_that_many_at_once_and_keeps_item_order() {
    let server = TestServer::start();
    let url = server.url("/inflight");
    let env = workspace(
        &server,
        &format!(
            r#"
[limits]
iterations = 1000

[[flows]]
name = "fan-out"
[[flows.steps]]
id = "each"
type = "loop"
items = "{{{{ trigger.items }}}}"
concurrency = 8
[[flows.steps.steps]]
id = "call"
plugin = "http-request"
inputs = {{ url = "{url}", query = {{ ms = "5", n = "{{{{ loop.item }}}}" }} }}
"#
        ),
    );
    let items: Vec<u32> = (0..1000).collect();
    let run = rt().block_on(run_flow(&env, "fan-out", json!({ "items": items })));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    assert_eq!(server.seen_at("/inflight").len(), 1000);
    assert_eq!(
        server.most_in_flight(),
        8,
        "the server saw at most {} requests at once",
        server.most_in_flight()
    );
    let results = match &run.run.result {
        Some(weft_model::value::RecordedValue::Json(Value::Array(results))) => results.clone(),
        other => panic!("the loop's result is its iterations' results: {other:?}"),
    };
    let order: Vec<i64> = results.iter().map(|r| r["n"].as_i64().unwrap()).collect();
    assert_eq!(
        order,
        (0..1000).collect::<Vec<i64>>(),
        "results in item order"
    );
    // Every iteration's step is in the store with its place.
    let stored = env
        .runner()
        .store()
        .get_run(&run.run.id)
        .unwrap()
        .expect("the run is stored");
    let inner: Vec<_> = stored.steps.iter().filter(|s| s.id == "call").collect();
    assert_eq!(inner.len(), 1000);
    assert!(inner.iter().all(|s| s.scope[0].step == "each"));
    let mut iterations: Vec<u64> = inner
        .iter()
        .map(|s| s.scope[0].iteration.unwrap())
        .collect();
    iterations.sort_unstable();
    assert_eq!(iterations, (0..1000).collect::<Vec<u64>>());
}

#[test]
fn failed_items_under_continue_are_listed_and_the_run_succeeds_with_errors() {
    let server = TestServer::start();
    let base = server.url("");
    let env = workspace(
        &server,
        &format!(
            r#"
[[flows]]
name = "tolerant"
[[flows.steps]]
id = "each"
type = "loop"
items = "{{{{ trigger.codes }}}}"
concurrency = 3
on_item_error = "continue"
[[flows.steps.steps]]
id = "call"
plugin = "http-request"
inputs = {{ url = "{base}/status/{{{{ loop.item }}}}" }}
[[flows.steps]]
id = "report"
type = "stop"
result = {{ errors = "{{{{ steps.each.errors }}}}" }}
"#
        ),
    );
    let codes = [200, 500, 200, 404, 200, 200, 503];
    let run = rt().block_on(run_flow(&env, "tolerant", json!({ "codes": codes })));
    assert_eq!(
        run.run.status,
        Status::SucceededWithErrors,
        "{:?}",
        run.run.error
    );
    let Some(weft_model::value::RecordedValue::Json(result)) = &run.run.result else {
        panic!("the stop step's result is the run's: {:?}", run.run.result);
    };
    let failed: Vec<u64> = result["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(failed, [1, 3, 6]);
    let message = result["errors"][1]["error"].as_str().unwrap();
    assert!(
        message.contains("step `call`") && message.contains("404"),
        "{message}"
    );
    assert_eq!(server.seen().len(), codes.len(), "every item ran once");
}

#[test]
fn a_while_loop_pages_until_there_is_no_next_page_and_break_if_ends_early() {
    let server = TestServer::start();
    let url = server.url("/inflight");
    let env = workspace(
        &server,
        &format!(
            r#"
[[flows]]
name = "pages"
[[flows.steps]]
id = "page"
type = "loop"
while = "index == 0 || previous.fetch.n < 4"
max_iterations = 10
[[flows.steps.steps]]
id = "fetch"
plugin = "http-request"
inputs = {{ url = "{url}", query = {{ ms = "0", n = "{{{{ loop.index }}}}" }} }}

[[flows]]
name = "until"
[[flows.steps]]
id = "count"
type = "loop"
count = 100
break_if = "previous.fetch.n == 2"
[[flows.steps.steps]]
id = "fetch"
plugin = "http-request"
inputs = {{ url = "{url}", query = {{ ms = "0", n = "{{{{ loop.index }}}}" }} }}

[[flows]]
name = "runaway"
[[flows.steps]]
id = "spin"
type = "loop"
while = "true"
max_iterations = 3
[[flows.steps.steps]]
id = "fetch"
plugin = "http-request"
inputs = {{ url = "{url}", query = {{ ms = "0" }} }}
"#
        ),
    );
    let rt = rt();
    let run = rt.block_on(run_flow(&env, "pages", Value::Null));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    let loop_record = &run.steps[0];
    assert_eq!(loop_record.detail.as_ref().unwrap()["iterations"], 5);

    let run = rt.block_on(run_flow(&env, "until", Value::Null));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    assert_eq!(run.steps[0].detail.as_ref().unwrap()["iterations"], 3);

    let run = rt.block_on(run_flow(&env, "runaway", Value::Null));
    assert_eq!(run.run.status, Status::Failed);
    let error = run.run.error.unwrap();
    assert!(error.contains("still held after 3 iterations"), "{error}");
    assert_eq!(server.seen().len(), 5 + 3 + 3);
}

#[test]
fn nested_loops_reach_the_outer_item_by_its_name() {
    let server = TestServer::start();
    let url = server.url("/echo");
    let env = workspace(
        &server,
        &format!(
            r#"
[[flows]]
name = "orders"
[[flows.steps]]
id = "orders"
type = "loop"
items = "{{{{ trigger.orders }}}}"
as = "order"
[[flows.steps.steps]]
id = "lines"
type = "loop"
items = "{{{{ order.lines }}}}"
[[flows.steps.steps.steps]]
id = "post"
if = "item.qty > 0"
plugin = "http-request"
inputs = {{ url = "{url}", method = "POST", body = {{ order = "{{{{ order.id }}}}", sku = "{{{{ loop.item.sku }}}}" }} }}
"#
        ),
    );
    let trigger = json!({ "orders": [
        { "id": "o1", "lines": [{ "sku": "a", "qty": 1 }, { "sku": "b", "qty": 0 }] },
        { "id": "o2", "lines": [{ "sku": "c", "qty": 2 }] },
    ]});
    let run = rt().block_on(run_flow(&env, "orders", trigger));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    let bodies: Vec<Value> = server
        .seen_at("/echo")
        .iter()
        .map(|s| serde_json::from_slice(&s.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            json!({ "order": "o1", "sku": "a" }),
            json!({ "order": "o2", "sku": "c" })
        ]
    );
}
