//! `s3-put-object`: writes one object to S3, or to an S3-compatible store.
//!
//! Inputs: `region` (default `us-east-1`), `bucket`, `key`, `body` (bytes are written as-is with
//! their content type; a JSON string as UTF-8 text; any other JSON value as JSON), optional
//! `content_type` (defaults to the body's), `tags` and `metadata` (objects of strings),
//! `endpoint` (an S3-compatible store's URL; empty or absent for Amazon S3) and `path_style`
//! (default: true with an endpoint, false without). The host signs the request with the step's
//! `api-key-secret` credential. Returns `{ bucket, key, location, etag, version_id, size,
//! content_type }`.

use serde_json::json;
use weft_step::s3::{self, PutObjectRequest, S3Error};
use weft_step::{Guest, Inputs, StepError, Value};

struct S3PutObject;

impl Guest for S3PutObject {
    fn run(inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
        let inputs = Inputs::new(inputs);
        let region = inputs
            .optional_text("region")?
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "us-east-1".into());
        let bucket = inputs.text("bucket")?;
        let key = inputs.text("key")?;
        let (body, body_type) = match inputs.get("body") {
            None => return Err(StepError::invalid_input("input `body` is required")),
            Some(Value::Bytes(blob)) => (blob.data.clone(), blob.content_type.clone()),
            Some(Value::Json(text)) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::String(s)) => {
                    (s.into_bytes(), "text/plain; charset=utf-8".to_string())
                }
                _ => (text.clone().into_bytes(), "application/json".to_string()),
            },
        };
        let content_type = inputs
            .optional_text("content_type")?
            .filter(|t| !t.trim().is_empty())
            .unwrap_or(body_type);
        let endpoint = inputs
            .optional_text("endpoint")?
            .filter(|e| !e.trim().is_empty());
        let path_style = match inputs.json("path_style")? {
            None => endpoint.is_some(),
            Some(serde_json::Value::Bool(b)) => b,
            Some(other) => {
                return Err(StepError::invalid_input(format!(
                    "input `path_style` must be true or false, not {other}"
                )));
            }
        };
        let size = body.len();
        let request = PutObjectRequest {
            region,
            bucket: bucket.clone(),
            key: key.clone(),
            body,
            content_type: content_type.clone(),
            tags: string_map(&inputs, "tags")?,
            metadata: string_map(&inputs, "metadata")?,
            endpoint,
            path_style,
        };
        let output = s3::put_object(&request).map_err(to_step_error)?;
        Ok(weft_step::json(&json!({
            "bucket": bucket,
            "key": key,
            "location": output.location,
            "etag": output.etag,
            "version_id": output.version_id,
            "size": size,
            "content_type": content_type,
        })))
    }
}

/// Input `name` as a list of string pairs; it must be an object whose values are strings,
/// numbers or booleans.
fn string_map(inputs: &Inputs, name: &str) -> Result<Vec<(String, String)>, StepError> {
    let Some(value) = inputs.json(name)? else {
        return Ok(Vec::new());
    };
    let serde_json::Value::Object(map) = value else {
        return Err(StepError::invalid_input(format!(
            "input `{name}` must be an object of strings, like {{ \"team\": \"rockets\" }}"
        )));
    };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok((k, v.to_string())),
            other => Err(StepError::invalid_input(format!(
                "input `{name}`: the value of `{k}` must be a string, not {other}"
            ))),
        })
        .collect()
}

fn to_step_error(error: S3Error) -> StepError {
    match error {
        S3Error::Denied(m) => StepError::denied(m),
        S3Error::Invalid(m) => StepError::invalid_input(m),
        S3Error::Timeout(m) => StepError {
            kind: weft_step::ErrorKind::Timeout,
            message: m,
            retryable: true,
        },
        S3Error::Connection(m) => StepError::upstream(m, true),
        S3Error::Service(e) => {
            // Throttling and server-side failures may pass; a wrong key or a missing bucket will not.
            let retryable = e.status >= 500 || e.status == 429 || e.code == "SlowDown";
            StepError::upstream(e.message, retryable)
        }
    }
}

weft_step::export!(S3PutObject);
