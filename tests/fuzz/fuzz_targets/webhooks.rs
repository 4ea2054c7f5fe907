//! Webhook requests: arbitrary headers, query strings and bodies in every content type become a
//! trigger or a clear error, never a panic; the trigger never carries a private header; and any
//! JSON a step returns is a reply that can be served, not a reply, or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_model::reply;
use weft_model::trigger::{PRIVATE_HEADERS, WebhookRequest, webhook_trigger};

const CONTENT_TYPES: &[&[u8]] = &[
    b"application/json",
    b"application/json; charset=utf-8",
    b"application/vnd.api+json",
    b"text/plain",
    b"application/x-www-form-urlencoded",
    b"application/octet-stream",
    b"multipart/form-data; boundary=x",
    b"APPLICATION/JSON",
    b"\xff\xfe",
];

fuzz_target!(|data: &[u8]| {
    // The input is cut into a query string, header lines and a body by the first two 0x00
    // bytes; its first byte picks a content type.
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == 0);
    let query = parts.next().unwrap_or_default();
    let header_block = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let mut headers: Vec<(&str, &[u8])> = header_block
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let name = std::str::from_utf8(&line[..colon]).ok()?;
            Some((name, &line[colon + 1..]))
        })
        .collect();
    headers.push((
        "content-type",
        CONTENT_TYPES[usize::from(pick) % CONTENT_TYPES.len()],
    ));
    headers.push(("authorization", b"Bearer secret-token-for-the-fuzzer"));
    let query = std::str::from_utf8(query).ok();
    let request = WebhookRequest {
        method: "POST",
        path: "/webhooks/{token}",
        query,
        headers: &headers,
        body,
    };
    if let Ok(trigger) = webhook_trigger(&request) {
        let recorded = trigger["headers"]
            .as_object()
            .expect("headers are an object");
        for private in PRIVATE_HEADERS {
            assert!(!recorded.contains_key(*private), "{private} was recorded");
        }
        // Whatever a flow makes of the trigger and returns, the reply check holds.
        for value in [&trigger, &trigger["body"], &trigger["query"]] {
            if let Ok(Some(reply)) = reply::parse(value) {
                assert!((200..=599).contains(&reply.status));
                for (name, value) in &reply.headers {
                    assert!(reply::settable(name));
                    assert!(!value.contains('\r') && !value.contains('\n'));
                }
            }
        }
    }
});
