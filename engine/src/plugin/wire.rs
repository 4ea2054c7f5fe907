//! Values between the host and a plugin: JSON text or bytes with a content type on the WIT side.

use weft_model::value::Val;

use super::StepFailure;
use crate::host::{Blob, Value};

/// A value as the host holds it, in its WIT form.
pub(super) fn to_wit(value: Val) -> Value {
    match value {
        Val::Json(v) => Value::Json(v.to_string()),
        Val::Bytes { content_type, data } => Value::Bytes(Blob { content_type, data }),
    }
}

/// A step's result from its WIT form, refused when over `limit` bytes or not valid JSON.
pub(super) fn from_wit(value: Value, limit: u64) -> Result<Val, StepFailure> {
    let size = match &value {
        Value::Json(text) => text.len(),
        Value::Bytes(blob) => blob.data.len() + blob.content_type.len(),
    } as u64;
    if size > limit {
        return Err(StepFailure::OutputLimit { limit, size });
    }
    match value {
        Value::Json(text) => serde_json::from_str(&text).map(Val::Json).map_err(|e| {
            StepFailure::BadOutput(format!("returned a result that is not valid JSON: {e}"))
        }),
        Value::Bytes(Blob { content_type, data }) => Ok(Val::Bytes { content_type, data }),
    }
}
