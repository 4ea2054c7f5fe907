//! Returns a result of `size` bytes (default 64 MiB) to exceed the host's output cap.

use weft_step::{Blob, Guest, Inputs, StepError, Value};

struct Bloat;

impl Guest for Bloat {
    fn run(inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
        let size = match Inputs::new(inputs).json("size")? {
            Some(v) => v
                .as_u64()
                .ok_or_else(|| StepError::invalid_input("input `size` must be a whole number"))?,
            None => 64 << 20,
        };
        let size = usize::try_from(size)
            .map_err(|_| StepError::invalid_input("input `size` is too large"))?;
        Ok(Value::Bytes(Blob {
            content_type: "application/octet-stream".into(),
            data: vec![b'x'; size],
        }))
    }
}

weft_step::export!(Bloat);
