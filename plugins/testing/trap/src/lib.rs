//! Executes `unreachable`, the way a Rust panic ends in a component.

use weft_step::{Guest, StepError, Value};

struct Trap;

impl Guest for Trap {
    fn run(_inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
        std::process::abort()
    }
}

weft_step::export!(Trap);
