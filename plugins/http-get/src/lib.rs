//! `http-get`: fetches a URL and returns the body as JSON (default), text or bytes.
//! See `http-common` for the inputs.

use weft_step::{Guest, StepError, Value};

struct HttpGet;

impl Guest for HttpGet {
    fn run(inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
        http_common::run(inputs, Some("GET"))
    }
}

weft_step::export!(HttpGet);
