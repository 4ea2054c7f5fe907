//! What a step may answer a synchronous webhook with: `{ status, headers, body }`, checked
//! before it is served, because the step may be a third party's plugin.
//!
//! - `status` must be a final status, 200–599.
//! - Header names must be HTTP tokens and values visible ASCII (with spaces and tabs): a CR or
//!   LF could otherwise split the response. Either fails the step that produced the reply.
//! - Headers that belong to the connection (hop-by-hop, `content-length`) or to the server's
//!   security (`set-cookie`, `strict-transport-security`, `content-security-policy`, CORS,
//!   `x-content-type-options`, `x-frame-options`, Weft's own `x-weft-*`) are not the step's to
//!   set: they are left out of the response, as a proxy leaves out hop-by-hop headers.
//!
//! Any other value is not a reply: the server answers it as a JSON body with status 200.

use serde_json::Value as Json;

/// A step's reply to a synchronous webhook, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The status code, 200–599.
    pub status: u16,
    /// Headers the step may set, in its order; names lowercased.
    pub headers: Vec<(String, String)>,
    /// Headers the step set that are not its to set (left out), lowercased.
    pub dropped: Vec<String>,
    /// The body: absent, text, or JSON.
    pub body: ReplyBody,
}

/// The body of a [`Reply`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    /// No body (`body` absent or null).
    Empty,
    /// A string body, served as it is.
    Text(String),
    /// Any other JSON value, served as `application/json`.
    Json(Json),
}

/// Headers a step may never set on a response.
const NOT_SETTABLE: &[&str] = &[
    // hop-by-hop (RFC 9110 §7.6.1) and framing, which the server decides
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    // the server's security, on the API's own origin
    "set-cookie",
    "set-cookie2",
    "strict-transport-security",
    "content-security-policy",
    "content-security-policy-report-only",
    "x-content-type-options",
    "x-frame-options",
    "clear-site-data",
    "alt-svc",
];

/// Whether a step may set response header `name` (lowercase).
pub fn settable(name: &str) -> bool {
    !(NOT_SETTABLE.contains(&name)
        || name.starts_with("access-control-")
        || name.starts_with("x-weft-"))
}

/// Whether `name` is an HTTP field name (RFC 9110 §5.1: a token).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` is a field value a response can carry: visible ASCII, spaces and tabs.
fn is_field_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// The reply in `value`, if it has the reply shape (an object with a numeric `status`);
/// `Ok(None)` for any other value. `Err` says what is wrong with a reply that cannot be served.
pub fn parse(value: &Json) -> Result<Option<Reply>, String> {
    let Some(status) = value.get("status").filter(|s| s.is_number()) else {
        return Ok(None);
    };
    let status = status
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (200..=599).contains(s))
        .ok_or_else(|| format!("its `status` {status} is not an HTTP status from 200 to 599"))?;
    let mut headers = Vec::new();
    let mut dropped = Vec::new();
    match value.get("headers") {
        None | Some(Json::Null) => {}
        Some(Json::Object(map)) => {
            for (name, value) in map {
                if !is_token(name) {
                    return Err(format!(
                        "its header name {name:?} is not a valid HTTP header name"
                    ));
                }
                let Some(text) = value.as_str() else {
                    return Err(format!("its header `{name}` is not a string"));
                };
                if !is_field_value(text) {
                    return Err(format!(
                        "its header `{name}` has a value with a character a header cannot carry (control characters such as CR or LF, or non-ASCII)"
                    ));
                }
                let name = name.to_ascii_lowercase();
                if settable(&name) {
                    headers.push((name, text.to_string()));
                } else {
                    dropped.push(name);
                }
            }
        }
        Some(_) => return Err("its `headers` is not an object of strings".into()),
    }
    let body = match value.get("body") {
        None | Some(Json::Null) => ReplyBody::Empty,
        Some(Json::String(text)) => ReplyBody::Text(text.clone()),
        Some(other) => ReplyBody::Json(other.clone()),
    };
    Ok(Some(Reply {
        status,
        headers,
        dropped,
        body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_reply_is_parsed_with_the_headers_it_may_set() {
        let reply = parse(&json!({
            "status": 201,
            "headers": { "Content-Type": "text/csv", "Set-Cookie": "a=b", "Transfer-Encoding": "chunked", "X-Weft-Run-Id": "x", "Access-Control-Allow-Origin": "*", "x-request": "1" },
            "body": "a,b"
        }))
        .unwrap()
        .unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(
            reply.headers,
            vec![
                ("content-type".to_string(), "text/csv".to_string()),
                ("x-request".to_string(), "1".to_string())
            ]
        );
        assert_eq!(
            reply.dropped,
            [
                "set-cookie",
                "transfer-encoding",
                "x-weft-run-id",
                "access-control-allow-origin"
            ]
        );
        assert_eq!(reply.body, ReplyBody::Text("a,b".into()));
    }

    #[test]
    fn values_without_a_status_are_not_replies() {
        assert_eq!(parse(&json!({ "id": 1 })).unwrap(), None);
        assert_eq!(parse(&json!({ "status": "ok" })).unwrap(), None);
        assert_eq!(parse(&json!([1, 2])).unwrap(), None);
    }

    #[test]
    fn a_reply_that_cannot_be_served_says_why() {
        let crlf =
            parse(&json!({ "status": 200, "headers": { "x-a": "1\r\nSet-Cookie: evil=1" } }));
        assert!(crlf.unwrap_err().contains("header `x-a`"));
        let name = parse(&json!({ "status": 200, "headers": { "x a": "1" } }));
        assert!(name.unwrap_err().contains("\"x a\""));
        let status = parse(&json!({ "status": 99 }));
        assert!(status.unwrap_err().contains("`status` 99"));
        assert!(parse(&json!({ "status": 200.5 })).is_err());
        assert!(parse(&json!({ "status": 200, "headers": { "x-a": 1 } })).is_err());
        assert!(parse(&json!({ "status": 200, "headers": "x" })).is_err());
    }
}
