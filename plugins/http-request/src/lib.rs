//! `http-request`: any method, with a body given as bytes, text or JSON.
//! See `http-common` for the inputs.

use weft_step::{Guest, StepError, Value};

struct HttpRequest;

impl Guest for HttpRequest {
    fn run(inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
        http_common::run(inputs, None)
    }
}

weft_step::export!(HttpRequest);
