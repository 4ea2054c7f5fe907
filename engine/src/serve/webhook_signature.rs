//! Signed webhooks: `X-Weft-Timestamp: <Unix seconds>` and
//! `X-Weft-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//!
//! The timestamp is part of what is signed and must be within [`WINDOW_SECONDS`] of the
//! server's clock, so a captured request cannot be sent again later.

use axum::http::HeaderMap;

/// How far a signed request's timestamp may be from the server's clock, either way.
pub const WINDOW_SECONDS: u64 = 300;

/// Why a signed webhook request was refused (logged for the operator; the caller is told
/// nothing more than that there is no webhook at that address).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Weft-Signature` or `X-Weft-Timestamp` header.
    #[error("the request has no {0} header")]
    Missing(&'static str),
    /// The timestamp is not a number of seconds.
    #[error("X-Weft-Timestamp is not a number of seconds since the Unix epoch")]
    BadTimestamp,
    /// The timestamp is outside the window.
    #[error(
        "X-Weft-Timestamp is {0} s away from the server's clock; at most {WINDOW_SECONDS} s are accepted (a replay, or a clock that is off)"
    )]
    Stale(u64),
    /// The signature is not `sha256=` and 64 hex digits.
    #[error("X-Weft-Signature is not `sha256=` followed by 64 hex digits")]
    Malformed,
    /// The signature does not match.
    #[error("X-Weft-Signature does not match the timestamp and body")]
    Mismatch,
}

/// Checks the signature of a webhook request with `body` against `secret`, at `now` (seconds
/// since the Unix epoch).
pub fn verify(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: u64,
) -> Result<(), SignatureError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(SignatureError::Missing(name))
    };
    let timestamp = header("x-weft-timestamp")?;
    let given = header("x-weft-signature")?;
    let seconds: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = seconds.abs_diff(now);
    if skew > WINDOW_SECONDS {
        return Err(SignatureError::Stale(skew));
    }
    let digits = given.strip_prefix("sha256=").unwrap_or(given);
    let mac = hex::decode(digits)
        .ok()
        .filter(|mac| mac.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    if crate::auth::hmac_sha256_matches(secret, &signed, &mac) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    const SECRET: &[u8] = b"whsec-0123456789abcdef0123456789";
    const NOW: u64 = 1_800_000_000;

    fn signed(timestamp: &str, body: &[u8]) -> HeaderMap {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        let mut headers = HeaderMap::new();
        headers.insert("x-weft-timestamp", timestamp.parse().unwrap());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        headers.insert("x-weft-signature", signature.parse().unwrap());
        headers
    }

    #[test]
    fn a_fresh_signature_passes_and_everything_else_is_refused() {
        let now = NOW.to_string();
        assert_eq!(verify(SECRET, &signed(&now, b"{}"), b"{}", NOW), Ok(()));
        // the same request within the window, from a clock a little off either way
        assert_eq!(
            verify(SECRET, &signed(&now, b"{}"), b"{}", NOW + 299),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, &signed(&now, b"{}"), b"{}", NOW - 299),
            Ok(())
        );
        // replayed later
        assert_eq!(
            verify(SECRET, &signed(&now, b"{}"), b"{}", NOW + 301),
            Err(SignatureError::Stale(301))
        );
        // another body, or the timestamp moved forward without signing it again
        assert_eq!(
            verify(SECRET, &signed(&now, b"{}"), b"{\"a\":1}", NOW),
            Err(SignatureError::Mismatch)
        );
        let mut moved = signed(&now, b"{}");
        moved.insert("x-weft-timestamp", (NOW + 10).to_string().parse().unwrap());
        assert_eq!(
            verify(SECRET, &moved, b"{}", NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &HeaderMap::new(), b"", NOW),
            Err(SignatureError::Missing("x-weft-timestamp"))
        );
        let mut malformed = signed(&now, b"");
        malformed.insert("x-weft-signature", "sha256=zz".parse().unwrap());
        assert_eq!(
            verify(SECRET, &malformed, b"", NOW),
            Err(SignatureError::Malformed)
        );
        let mut words = signed(&now, b"");
        words.insert("x-weft-timestamp", "yesterday".parse().unwrap());
        assert_eq!(
            verify(SECRET, &words, b"", NOW),
            Err(SignatureError::BadTimestamp)
        );
    }
}
