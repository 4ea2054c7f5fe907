//! Allocates 1 MiB blocks and keeps them until the host's memory cap stops it.

use weft_step::{Guest, StepError, Value};

struct Hog;

impl Guest for Hog {
    fn run(_inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch every page so the allocation is real, not just reserved.
            kept.push(std::hint::black_box(vec![0xA5; 1 << 20]));
        }
    }
}

weft_step::export!(Hog);
