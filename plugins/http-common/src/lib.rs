//! The shared part of the `http-get` and `http-request` steps.
//!
//! Inputs: `url` (required), `method` (http-request), `headers` and `query` (objects of
//! strings), `body` (http-request: bytes as-is, a string as text, anything else as JSON),
//! `response_type` (`json`, the default, `text` or `binary`), `include_response` (return
//! `{ status, headers, body }` instead of the body alone), `follow_redirects` (default true),
//! `timeout_ms`, `allow_status` (statuses outside 2xx that are answers rather than failures,
//! like `[404]` for a lookup; read the status with `include_response`). Any other response
//! outside 2xx fails the step with the status and the start of the body; 429 and 5xx are
//! marked retryable.

use weft_step::http::{self, HttpError, Request};
use weft_step::{Blob, Inputs, StepError, Value};

/// Runs one request described by `inputs`; `method` is fixed for http-get, read from the
/// inputs for http-request.
pub fn run(inputs: Vec<(String, Value)>, fixed_method: Option<&str>) -> Result<Value, StepError> {
    let inputs = Inputs::new(inputs);
    let method = match fixed_method {
        Some(m) => m.to_string(),
        None => inputs
            .optional_text("method")?
            .unwrap_or_else(|| "GET".into()),
    };
    let mut url = inputs.text("url")?;
    if let Some(query) = inputs.json("query")? {
        let pairs = string_map(&query, "query")?;
        if !pairs.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            let encoded: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            url.push_str(&encoded.join("&"));
        }
    }
    let mut headers = match inputs.json("headers")? {
        Some(h) => string_map(&h, "headers")?,
        None => Vec::new(),
    };
    let body = match (fixed_method, inputs.get("body")) {
        (Some(_), _) | (None, None) => None,
        (None, Some(Value::Bytes(blob))) => {
            set_default_header(&mut headers, "content-type", &blob.content_type);
            Some(blob.data.clone())
        }
        (None, Some(Value::Json(text))) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::String(s)) => {
                set_default_header(&mut headers, "content-type", "text/plain; charset=utf-8");
                Some(s.into_bytes())
            }
            _ => {
                set_default_header(&mut headers, "content-type", "application/json");
                Some(text.clone().into_bytes())
            }
        },
    };
    let response_type = inputs
        .optional_text("response_type")?
        .unwrap_or_else(|| "json".into());
    if !matches!(response_type.as_str(), "json" | "text" | "binary") {
        return Err(StepError::invalid_input(format!(
            "input `response_type` is `{response_type}`; use `json`, `text` or `binary`"
        )));
    }
    let follow_redirects = match inputs.json("follow_redirects")? {
        None => true,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => {
            return Err(StepError::invalid_input(
                "input `follow_redirects` must be true or false",
            ));
        }
    };
    let timeout_ms = match inputs.json("timeout_ms")? {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    StepError::invalid_input(
                        "input `timeout_ms` must be a whole number of milliseconds",
                    )
                })?,
        ),
    };
    let include_response = matches!(
        inputs.json("include_response")?,
        Some(serde_json::Value::Bool(true))
    );
    let allowed: Vec<u16> = match inputs.json("allow_status")? {
        None => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_u64().and_then(|n| u16::try_from(n).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                StepError::invalid_input(
                    "input `allow_status` must be a list of HTTP statuses, like [404]",
                )
            })?,
        Some(_) => {
            return Err(StepError::invalid_input(
                "input `allow_status` must be a list of HTTP statuses, like [404]",
            ));
        }
    };

    let response = http::send(&Request {
        method: method.clone(),
        url: url.clone(),
        headers,
        body,
        timeout_ms,
        follow_redirects,
    })
    .map_err(|e| match e {
        HttpError::Denied(m) => StepError::denied(m),
        HttpError::Timeout(m) => StepError {
            kind: weft_step::ErrorKind::Timeout,
            message: m,
            retryable: true,
        },
        HttpError::Connection(m) => StepError::upstream(m, true),
        HttpError::TooLarge(m) => StepError::upstream(m, false),
        HttpError::Invalid(m) => StepError::invalid_input(m),
    })?;

    let answered = (200..300).contains(&response.status) || allowed.contains(&response.status);
    if !answered {
        let start: String = String::from_utf8_lossy(&response.body)
            .chars()
            .take(300)
            .collect();
        return Err(StepError::upstream(
            format!(
                "{method} {url} answered {}: {}",
                response.status,
                start.trim()
            ),
            response.status == 429 || response.status >= 500,
        ));
    }
    let content_type = response
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "application/octet-stream".into());
    let body = match response_type.as_str() {
        "binary" => Value::Bytes(Blob {
            content_type,
            data: response.body,
        }),
        "text" => weft_step::json(&serde_json::Value::String(
            String::from_utf8_lossy(&response.body).into_owned(),
        )),
        _ => {
            let parsed: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| {
                StepError::upstream(
                    format!("{method} {url} did not return JSON ({content_type}): {e}; use `response_type = \"text\"` or `\"binary\"`"),
                    false,
                )
            })?;
            weft_step::json(&parsed)
        }
    };
    if !include_response {
        return Ok(body);
    }
    let body_json = match body {
        Value::Json(text) => serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        Value::Bytes(blob) => {
            serde_json::json!({ "content_type": blob.content_type, "size": blob.data.len() })
        }
    };
    let headers: serde_json::Map<String, serde_json::Value> = response
        .headers
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    Ok(weft_step::json(&serde_json::json!({
        "status": response.status,
        "headers": headers,
        "body": body_json,
    })))
}

fn set_default_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
        headers.push((name.to_string(), value.to_string()));
    }
}

fn string_map(value: &serde_json::Value, input: &str) -> Result<Vec<(String, String)>, StepError> {
    let object = value.as_object().ok_or_else(|| {
        StepError::invalid_input(format!(
            "input `{input}` must be an object of names to values"
        ))
    })?;
    Ok(object
        .iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect())
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
