//! Conditions (CEL): any text must parse to a condition or an error, and a condition must
//! evaluate to a decision or an error against a small context, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use weft_model::condition::Condition;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(condition) = Condition::compile(text) else {
        return;
    };
    let _ = condition.roots();
    let _ = condition.step_references();
    let trigger = json!({ "amount": 250, "email": "a@b.c", "items": [1, 2, { "x": null }] });
    let steps = json!({ "get": { "results": { "status": 404, "body": "not found" }, "branch": "b" } });
    let item = json!({ "id": "c1", "qty": 0.5 });
    let _ = condition.decide(&[("trigger", &trigger), ("steps", &steps), ("item", &item)]);
});
