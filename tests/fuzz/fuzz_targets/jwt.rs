//! The JWT verifier and user hashes: arbitrary tokens, and arbitrary JSON headers and claims
//! signed with the workspace's real secret (so the claim checks are reached, not only the
//! signature check). Any input must verify or give an `AuthError`, never panic; a token that
//! verifies must meet the rules (issuer, a customer id or admin).
#![no_main]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use weft_model::auth::{AuthConfig, Principal};

const SECRET: &[u8] = b"a-workspace-secret-of-32-bytes!!";
const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let config = AuthConfig::with_secret("ws-key", SECRET, &[Algorithm::HS256])
        .expect("the config is valid")
        .with_user_hashes(SECRET)
        .expect("the hash secret is valid");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As a token of its own.
    check(config.verify_token(text, NOW));
    // As a user id with some hash.
    let _ = config.verify_user_hash(text, "00");
    // As claims (and a header's `typ`/`kid`), signed with the real secret.
    let (claims, typ) = text.split_once('\u{0}').unwrap_or((text, ""));
    let Ok(claims) = serde_json::from_str::<serde_json::Value>(claims) else {
        return;
    };
    let mut header = Header::new(Algorithm::HS256);
    if !typ.is_empty() {
        header.typ = Some(typ.to_string());
    }
    if let Ok(token) = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)) {
        check(config.verify_token(&token, NOW));
    }
});

fn check(outcome: Result<Principal, weft_model::auth::AuthError>) {
    match outcome {
        Ok(Principal::Customer { id, .. }) => {
            assert!(!id.is_empty() && id.len() <= weft_model::auth::MAX_CUSTOMER_ID)
        }
        Ok(Principal::Admin { .. }) => {}
        Err(e) => assert!(!e.message.is_empty()),
    }
}
