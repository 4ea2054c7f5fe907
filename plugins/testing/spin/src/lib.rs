//! Loops forever without calling the host: only the epoch deadline can stop it.

use weft_step::{Guest, StepError, Value};

struct Spin;

impl Guest for Spin {
    fn run(_inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

weft_step::export!(Spin);
