//! The trigger a webhook request becomes: `{ method, path, query, headers, body }`, what a
//! flow reads as `{{ trigger.… }}` and what the run's record keeps.

use base64::Engine as _;
use serde_json::{Map, Value as Json, json};

/// Headers never copied into a trigger: they carry credentials or signatures.
pub const PRIVATE_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "x-weft-signature",
    "x-weft-user-hash",
];

/// A webhook request, as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The method, e.g. `POST`.
    pub method: &'a str,
    /// The path as the trigger records it (a token address records no token).
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// The headers, names lowercase, values as sent.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body.
    pub body: &'a [u8],
}

/// Whether a `Content-Type` value names JSON (`application/json`, `…+json`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// The trigger for `request`. A JSON body (by its content type) is parsed, so a flow reads
/// its fields; a UTF-8 body is kept as a string; any other body as `{ "base64": … }`. Headers
/// that are not UTF-8 text, and [`PRIVATE_HEADERS`], are left out. `Err` says why a body
/// declared as JSON is not.
pub fn webhook_trigger(request: &WebhookRequest<'_>) -> Result<Json, String> {
    let query: Map<String, Json> = request
        .query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), Json::String(v.into_owned())))
                .collect()
        })
        .unwrap_or_default();
    let headers: Map<String, Json> = request
        .headers
        .iter()
        .filter(|(name, _)| !PRIVATE_HEADERS.contains(name))
        .filter_map(|(name, value)| {
            let text = std::str::from_utf8(value).ok()?;
            Some((name.to_string(), Json::String(text.to_string())))
        })
        .collect();
    let declared_json = request
        .headers
        .iter()
        .find(|(name, _)| *name == "content-type")
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
        .is_some_and(is_json);
    let body = if request.body.is_empty() {
        Json::Null
    } else if declared_json {
        serde_json::from_slice(request.body)
            .map_err(|e| format!("the body is not valid JSON: {e}"))?
    } else {
        match std::str::from_utf8(request.body) {
            Ok(text) => Json::String(text.to_string()),
            Err(_) => {
                json!({ "base64": base64::engine::general_purpose::STANDARD.encode(request.body) })
            }
        }
    };
    // Moved in, not `json!`, which would copy each value by serializing it.
    Ok(Json::Object(Map::from_iter([
        ("method".into(), Json::String(request.method.into())),
        ("path".into(), Json::String(request.path.into())),
        ("query".into(), Json::Object(query)),
        ("headers".into(), Json::Object(headers)),
        ("body".into(), body),
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(headers: &'a [(&'a str, &'a [u8])], body: &'a [u8]) -> WebhookRequest<'a> {
        WebhookRequest {
            method: "POST",
            path: "/webhooks/{token}",
            query: Some("source=crm&wait=true"),
            headers,
            body,
        }
    }

    #[test]
    fn json_text_and_binary_bodies() {
        let json_type: &[(&str, &[u8])] =
            &[("content-type", b"application/vnd.api+json; charset=utf-8")];
        let t = webhook_trigger(&request(json_type, br#"{"region":"eu"}"#)).unwrap();
        assert_eq!(t["body"]["region"], "eu");
        assert_eq!(t["query"]["source"], "crm");
        let text = webhook_trigger(&request(&[], b"hello")).unwrap();
        assert_eq!(text["body"], "hello");
        let binary = webhook_trigger(&request(&[], &[0xff, 0x00])).unwrap();
        assert_eq!(binary["body"]["base64"], "/wA=");
        let bad = webhook_trigger(&request(json_type, b"{nope")).unwrap_err();
        assert!(bad.starts_with("the body is not valid JSON"), "{bad}");
        assert_eq!(
            webhook_trigger(&request(&[], b"")).unwrap()["body"],
            Json::Null
        );
    }

    #[test]
    fn credentials_and_non_text_headers_are_left_out() {
        let headers: &[(&str, &[u8])] = &[
            ("authorization", b"Bearer secret"),
            ("x-weft-signature", b"sha256=00"),
            ("x-trace", b"abc"),
            ("x-binary", &[0xff]),
        ];
        let t = webhook_trigger(&request(headers, b"")).unwrap();
        assert_eq!(t["headers"], json!({ "x-trace": "abc" }));
        assert!(!t.to_string().contains("secret"));
    }
}
