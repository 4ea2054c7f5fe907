//! Counts its runs in persisted state: `count` in the flow's state, `total` in the instance's.
//! Inputs: `fail` (write, then fail: the writes must not be kept), `blob` (also store a value of
//! this many bytes under `blob`, to reach the size limits). Returns `{ count, total }`.

use weft_step::state::{self, Scope, StateError};
use weft_step::{Guest, Inputs, StepError, Value};

struct Counter;

fn read(scope: Scope, key: &str) -> u64 {
    state::get(scope, key)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0)
}

fn write(scope: Scope, key: &str, value: Vec<u8>) -> Result<(), StepError> {
    state::set(scope, key, &value).map_err(|e| match e {
        StateError::TooLarge(m) | StateError::Unavailable(m) => StepError::invalid_input(m),
    })
}

impl Guest for Counter {
    fn run(inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
        let inputs = Inputs::new(inputs);
        let count = read(Scope::Flow, "count") + 1;
        let total = read(Scope::Instance, "total") + 1;
        write(Scope::Flow, "count", count.to_string().into_bytes())?;
        write(Scope::Instance, "total", total.to_string().into_bytes())?;
        if let Some(size) = inputs.json("blob")?.and_then(|v| v.as_u64()) {
            write(Scope::Flow, "blob", vec![b'x'; size as usize])?;
        }
        if inputs.json("fail")?.and_then(|v| v.as_bool()) == Some(true) {
            return Err(StepError::upstream(
                "failing on purpose after writing state",
                false,
            ));
        }
        Ok(weft_step::json(
            &serde_json::json!({ "count": count, "total": total }),
        ))
    }
}

weft_step::export!(Counter);
