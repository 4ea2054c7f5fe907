//! Misbehaves as its `mode` input says:
//! - `recurse`: unbounded recursion;
//! - `log-flood`: a million log lines;
//! - `state-flood`: fills its persisted state until refused;
//! - `forbidden-host`: a request to `url`, which its grant does not allow;
//! - `block`: a request to `url` (a server that answers slowly) and waits for it;
//! - `unbound-var`: reads config var `name`, which the instance does not have, and insists;
//! - `reply`: returns its `reply` input (JSON) as its result: a webhook reply with whatever
//!   status, headers and body a test wants a server to refuse or contain;
//! - `ok`: returns `{ "ok": true }`.

use weft_step::http::{self, Request};
use weft_step::log::{self, Level};
use weft_step::state::{self, Scope};
use weft_step::{Guest, Inputs, StepError, Value, config};

struct Hostile;

#[inline(never)]
#[expect(unconditional_recursion, reason = "exhausting the stack is the point")]
fn recurse(depth: u64, trail: &mut [u64; 64]) -> u64 {
    trail[(depth % 64) as usize] = depth;
    // The work after the call keeps it from becoming a loop.
    recurse(depth + 1, trail).wrapping_add(trail[(depth % 7) as usize])
}

fn get(url: String, timeout_ms: Option<u32>) -> Result<Value, StepError> {
    let response = http::send(&Request {
        method: "GET".into(),
        url,
        headers: Vec::new(),
        body: None,
        timeout_ms,
        follow_redirects: false,
    })
    .map_err(|e| StepError::denied(format!("{e:?}")))?;
    Ok(weft_step::json(
        &serde_json::json!({ "status": response.status }),
    ))
}

impl Guest for Hostile {
    fn run(inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
        let inputs = Inputs::new(inputs);
        match inputs.text("mode")?.as_str() {
            "recurse" => {
                let mut trail = [0u64; 64];
                let n = recurse(0, &mut trail);
                Ok(weft_step::json(&serde_json::json!({ "never": n })))
            }
            "log-flood" => {
                for i in 0..1_000_000u32 {
                    log::log(Level::Info, &format!("flood line {i} {}", "x".repeat(100)));
                }
                Ok(weft_step::json(&serde_json::json!({ "logged": 1_000_000 })))
            }
            "state-flood" => {
                let value = vec![b'x'; 60 << 10];
                for i in 0.. {
                    if let Err(e) = state::set(Scope::Instance, &format!("k{i}"), &value) {
                        return Err(StepError::invalid_input(format!("{e:?}")));
                    }
                }
                unreachable!()
            }
            "forbidden-host" | "block" => get(inputs.text("url")?, None),
            "unbound-var" => {
                let name = inputs.text("name")?;
                match config::get(&name) {
                    Some(v) => Ok(weft_step::json(&serde_json::json!({ "value": v }))),
                    None => Err(StepError::denied(format!(
                        "config var `{name}` is not bound for this instance"
                    ))),
                }
            }
            "reply" => {
                let reply = inputs.json("reply")?.unwrap_or(serde_json::Value::Null);
                Ok(weft_step::json(&reply))
            }
            "ok" => Ok(weft_step::json(&serde_json::json!({ "ok": true }))),
            other => Err(StepError::invalid_input(format!("unknown mode `{other}`"))),
        }
    }
}

weft_step::export!(Hostile);
