//! Keeping secret values out of run records, logs and error messages.

use base64::Engine as _;

/// Replaces secret values, and their base64 and URL-encoded forms, with `[redacted]`.
#[derive(Default, Clone)]
pub struct Redactor {
    needles: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} patterns)", self.needles.len())
    }
}

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

impl Redactor {
    /// A redactor for `secrets`. Very short values (under 4 bytes) are skipped: redacting them
    /// would shred ordinary text and hides nothing worth hiding.
    pub fn new<I: IntoIterator<Item = String>>(secrets: I) -> Self {
        let mut needles = Vec::new();
        for secret in secrets {
            if secret.len() < 4 {
                continue;
            }
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            for engine in engines {
                needles.push(engine.encode(secret.as_bytes()));
            }
            needles.push(percent_encode(&secret));
            needles.push(secret);
        }
        // Longest first, so a secret inside a longer encoded form does not break it up.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Self { needles }
    }

    /// Adds one more secret (and its encoded forms).
    pub fn add(&mut self, secret: &str) {
        if self.needles.iter().any(|n| n == secret) {
            return;
        }
        let mut more = Redactor::new([secret.to_string()]).needles;
        self.needles.append(&mut more);
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        self.needles.dedup();
    }

    /// `data` with every secret replaced, byte for byte (for response bodies of any type).
    pub fn bytes(&self, data: Vec<u8>) -> Vec<u8> {
        let mut data = data;
        for needle in &self.needles {
            let needle = needle.as_bytes();
            if data.len() < needle.len() || !data.windows(needle.len()).any(|w| w == needle) {
                continue;
            }
            let mut out = Vec::with_capacity(data.len());
            let mut i = 0;
            while i < data.len() {
                if data[i..].starts_with(needle) {
                    out.extend_from_slice(REDACTED.as_bytes());
                    i += needle.len();
                } else {
                    out.push(data[i]);
                    i += 1;
                }
            }
            data = out;
        }
        data
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every secret replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        out
    }

    /// `value` with every string (keys included) redacted.
    pub fn json(&self, value: serde_json::Value) -> serde_json::Value {
        use serde_json::Value as J;
        if self.is_empty() {
            return value;
        }
        match value {
            J::String(s) => J::String(self.text(&s)),
            J::Array(items) => J::Array(items.into_iter().map(|v| self.json(v)).collect()),
            J::Object(map) => J::Object(
                map.into_iter()
                    .map(|(k, v)| (self.text(&k), self.json(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

fn percent_encode(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_plain_base64_and_url_forms() {
        let r = Redactor::new(["s3cr3t/+=!".to_string()]);
        let b64 = base64::engine::general_purpose::STANDARD.encode("s3cr3t/+=!");
        let text = format!("a s3cr3t/+=! b {b64} c s3cr3t%2F%2B%3D%21 d");
        assert_eq!(r.text(&text), "a [redacted] b [redacted] c [redacted] d");
        assert_eq!(
            r.json(serde_json::json!({ "k": ["s3cr3t/+=!"] })),
            serde_json::json!({ "k": ["[redacted]"] })
        );
    }
}
