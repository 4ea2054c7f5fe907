//! Write a Weft step in Rust.
//!
//! This crate holds the bindings for the `weft:step` world (generated from the repository's
//! `wit/` directory, never a copy of it) and a few helpers so a step reads like what it does:
//!
//! ```ignore
//! use weft_step::{Guest, Inputs, StepError, Value, config};
//!
//! struct Hello;
//!
//! impl Guest for Hello {
//!     fn run(inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
//!         let inputs = Inputs::new(inputs);
//!         let who = inputs.text("who")?;
//!         let greeting = config::get("greeting").unwrap_or_else(|| "Hello".into());
//!         Ok(weft_step::json(&serde_json::json!({ "message": format!("{greeting}, {who}!") })))
//!     }
//! }
//!
//! weft_step::export!(Hello);
//! ```

/// The generated bindings for the `weft:step` world.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "step",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "weft_step::bindings",
    });
}

pub use bindings::weft::step::types::{Blob, ErrorKind};
pub use bindings::weft::step::{config, http, log, s3, state};
pub use bindings::{Guest, StepError, Value, export};

/// Wraps a JSON value as a step result.
pub fn json(value: &serde_json::Value) -> Value {
    Value::Json(value.to_string())
}

impl StepError {
    /// An error the step's caller can fix by changing its inputs; not retried.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
            retryable: false,
        }
    }

    /// A missing config var or refused capability; not retried.
    pub fn denied(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Denied,
            message: message.into(),
            retryable: false,
        }
    }

    /// An error from a service the step called.
    pub fn upstream(message: impl Into<String>, retryable: bool) -> Self {
        Self {
            kind: ErrorKind::Upstream,
            message: message.into(),
            retryable,
        }
    }

    /// A bug or unexpected state inside the step.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.into(),
            retryable: false,
        }
    }
}

/// A step's inputs by name, with typed accessors whose errors name the input.
#[derive(Debug)]
pub struct Inputs(Vec<(String, Value)>);

impl Inputs {
    /// Wraps the inputs `run` received.
    pub fn new(inputs: Vec<(String, Value)>) -> Self {
        Self(inputs)
    }

    /// The raw value of input `name`, if it was given.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Input `name` as JSON, or `None` when absent. Bytes are an error.
    pub fn json(&self, name: &str) -> Result<Option<serde_json::Value>, StepError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Json(text)) => serde_json::from_str(text).map(Some).map_err(|e| {
                StepError::invalid_input(format!("input `{name}` is not valid JSON: {e}"))
            }),
            Some(Value::Bytes(blob)) => Err(StepError::invalid_input(format!(
                "input `{name}` is binary ({}, {} bytes) but text or JSON was expected",
                blob.content_type,
                blob.data.len()
            ))),
        }
    }

    /// Input `name` as text: a JSON string as-is, any other JSON value as its JSON text.
    pub fn optional_text(&self, name: &str) -> Result<Option<String>, StepError> {
        Ok(self.json(name)?.map(|value| match value {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }))
    }

    /// Input `name` as text; an error naming the input when it is missing.
    pub fn text(&self, name: &str) -> Result<String, StepError> {
        self.optional_text(name)?
            .ok_or_else(|| StepError::invalid_input(format!("input `{name}` is required")))
    }
}
