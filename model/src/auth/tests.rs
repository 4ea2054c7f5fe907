//! The verifier against the bad-token matrix and the claim rules.

use super::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_800_000_000;

fn config() -> AuthConfig {
    AuthConfig::with_secret("ws-key", SECRET, &[Algorithm::HS256])
        .unwrap()
        .with_user_hashes(SECRET)
        .unwrap()
}

fn token(claims: Json) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn b64(v: &Json) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn code(result: Result<Principal, AuthError>) -> &'static str {
    result.expect_err("refused").code
}

#[test]
fn customer_and_admin_tokens() {
    let c = config();
    let customer = token(
        json!({ "iss": "ws-key", "exp": NOW + 60, "id": "acme", "name": "Acme", "fields": { "tier": "gold" } }),
    );
    assert_eq!(
        c.verify_token(&customer, NOW).unwrap(),
        Principal::Customer {
            id: "acme".into(),
            name: Some("Acme".into()),
            fields: json!({ "tier": "gold" }).as_object().unwrap().clone()
        }
    );
    let admin = token(json!({ "iss": "ws-key", "exp": NOW + 60, "isAdmin": "yes" }));
    assert_eq!(
        c.verify_token(&admin, NOW).unwrap(),
        Principal::Admin { name: None }
    );
}

#[test]
fn the_bad_token_matrix() {
    let c = config();
    let good = json!({ "iss": "ws-key", "exp": NOW + 60, "id": "acme" });
    // alg: none
    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" })),
        b64(&good)
    );
    assert_eq!(code(c.verify_token(&none, NOW)), "algorithm_not_allowed");
    // an algorithm not on the list (HS512 signed with the same secret)
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &good,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(code(c.verify_token(&hs512, NOW)), "algorithm_not_allowed");
    // a wrong signature
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .unwrap();
    assert_eq!(code(c.verify_token(&forged, NOW)), "bad_signature");
    // expired, past the leeway; inside the leeway it passes
    let old = token(json!({ "iss": "ws-key", "exp": NOW - 31, "id": "acme" }));
    assert_eq!(code(c.verify_token(&old, NOW)), "expired");
    let skewed = token(json!({ "iss": "ws-key", "exp": NOW - 29, "id": "acme" }));
    assert!(c.verify_token(&skewed, NOW).is_ok());
    // missing exp, missing or wrong iss
    assert_eq!(
        code(c.verify_token(&token(json!({ "iss": "ws-key", "id": "a" })), NOW)),
        "missing_claim"
    );
    assert_eq!(
        code(c.verify_token(&token(json!({ "exp": NOW + 60, "id": "a" })), NOW)),
        "missing_claim"
    );
    assert_eq!(
        code(c.verify_token(
            &token(json!({ "iss": "other", "exp": NOW + 60, "id": "a" })),
            NOW
        )),
        "wrong_issuer"
    );
    // a crit header
    let with_crit = {
        let h = json!({ "alg": "HS256", "crit": ["exp"] });
        let signing_input = format!("{}.{}", b64(&h), b64(&good));
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(signing_input.as_bytes());
        let sig =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    };
    assert_eq!(code(c.verify_token(&with_crit, NOW)), "unsupported_header");
    // too large
    let big =
        token(json!({ "iss": "ws-key", "exp": NOW + 60, "id": "a", "pad": "x".repeat(9000) }));
    let err = c.verify_token(&big, NOW).unwrap_err();
    assert_eq!(err.code, "token_too_large");
    assert!(!err.message.contains(&big[..20]), "the token is not echoed");
    // malformed base64 and JSON
    assert_eq!(code(c.verify_token("a.b!.c", NOW)), "malformed_token");
    let not_json = format!(
        "{}.{}.sig",
        b64(&json!({ "alg": "HS256" })),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("not json")
    );
    assert_eq!(code(c.verify_token(&not_json, NOW)), "malformed_token");
    assert_eq!(code(c.verify_token("only.two", NOW)), "malformed_token");
    // id together with isAdmin, neither of them
    assert_eq!(
        code(c.verify_token(
            &token(json!({ "iss": "ws-key", "exp": NOW + 60, "id": "a", "isAdmin": true })),
            NOW
        )),
        "bad_claims"
    );
    assert_eq!(
        code(c.verify_token(&token(json!({ "iss": "ws-key", "exp": NOW + 60 })), NOW)),
        "missing_claim"
    );
}

#[test]
fn hs_rs_key_confusion_is_refused() {
    let public = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/rsa-public.pem"
    ))
    .unwrap();
    let c = AuthConfig::with_public_key("ws-key", &public, &[Algorithm::RS256]).unwrap();
    // The classic attack: HS256 "signed" with the public key's bytes as the secret.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &json!({ "iss": "ws-key", "exp": NOW + 60, "id": "acme" }),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_eq!(
        code(c.verify_token(&confused, NOW)),
        "algorithm_not_allowed"
    );
    // A real RS256 token verifies.
    let private = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/rsa-private.pem"
    ))
    .unwrap();
    let real = encode(
        &Header::new(Algorithm::RS256),
        &json!({ "iss": "ws-key", "exp": NOW + 60, "id": "acme" }),
        &EncodingKey::from_rsa_pem(&private).unwrap(),
    )
    .unwrap();
    assert!(c.verify_token(&real, NOW).is_ok());
}

#[test]
fn short_secrets_are_refused_and_user_hashes_checked() {
    assert!(
        AuthConfig::with_secret("k", &[7; 31], &[Algorithm::HS256])
            .unwrap_err()
            .contains("at least 32")
    );
    assert!(
        AuthConfig::with_secret("k", &[7; 63], &[Algorithm::HS512])
            .unwrap_err()
            .contains("at least 64")
    );
    assert!(AuthConfig::with_secret("k", &[7; 64], &[Algorithm::RS256]).is_err());
    let c = config();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(b"acme");
    let hash = hex::encode(mac.finalize().into_bytes());
    assert!(
        matches!(c.verify_user_hash("acme", &hash), Ok(Principal::Customer { id, .. }) if id == "acme")
    );
    assert_eq!(code(c.verify_user_hash("globex", &hash)), "bad_user_hash");
    assert_eq!(code(c.verify_user_hash("acme", "zz")), "bad_user_hash");
}

fn claims(extra: Json) -> Json {
    let mut claims = json!({ "iss": "ws-key", "exp": NOW + 60 });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn verify(c: &AuthConfig, extra: Json) -> Result<Principal, AuthError> {
    c.verify_token(&token(claims(extra)), NOW)
}

#[test]
fn every_registered_claim_is_checked_for_its_type_and_meaning() {
    let c = config();
    // NumericDates may be fractional
    assert!(verify(&c, json!({ "id": "a", "exp": NOW as f64 + 0.5 })).is_ok());
    assert_eq!(
        code(verify(
            &c,
            json!({ "id": "a", "exp": (NOW - 40) as f64 + 0.5 })
        )),
        "expired"
    );
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "exp": "tomorrow" }))),
        "bad_claims"
    );
    // nbf: in the future past the leeway, refused; inside it, accepted
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "nbf": NOW + 31 }))),
        "not_yet_valid"
    );
    assert!(verify(&c, json!({ "id": "a", "nbf": NOW + 29 })).is_ok());
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "nbf": "now" }))),
        "bad_claims"
    );
    // iat: a number, not in the future
    assert!(verify(&c, json!({ "id": "a", "iat": NOW - 5 })).is_ok());
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "iat": NOW + 600 }))),
        "bad_claims"
    );
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "iat": true }))),
        "bad_claims"
    );
    // iss, sub and jti are strings
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "iss": 7 }))),
        "bad_claims"
    );
    assert!(verify(&c, json!({ "id": "a", "sub": "u-1", "jti": "t-1" })).is_ok());
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "sub": 1 }))),
        "bad_claims"
    );
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "jti": [] }))),
        "bad_claims"
    );
    // name and fields
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "name": 5 }))),
        "bad_claims"
    );
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "name": "n".repeat(257) }))),
        "bad_claims"
    );
    assert_eq!(
        code(verify(&c, json!({ "id": "a", "fields": [1] }))),
        "bad_claims"
    );
}

#[test]
fn a_token_with_an_audience_is_only_for_that_audience() {
    let without = config();
    assert_eq!(
        code(verify(&without, json!({ "id": "a", "aud": "another-app" }))),
        "wrong_audience"
    );
    let with = config().with_audience("weft-prod");
    assert!(verify(&with, json!({ "id": "a", "aud": "weft-prod" })).is_ok());
    assert!(verify(&with, json!({ "id": "a", "aud": ["x", "weft-prod"] })).is_ok());
    assert_eq!(
        code(verify(&with, json!({ "id": "a", "aud": ["x"] }))),
        "wrong_audience"
    );
    assert_eq!(code(verify(&with, json!({ "id": "a" }))), "missing_claim");
    assert_eq!(
        code(verify(&with, json!({ "id": "a", "aud": [1] }))),
        "bad_claims"
    );
    assert_eq!(
        code(verify(&with, json!({ "id": "a", "aud": { "x": 1 } }))),
        "bad_claims"
    );
}

#[test]
fn what_is_admin_is_decided_for_every_json_value() {
    let c = config();
    let admin = |v: Json| verify(&c, json!({ "isAdmin": v }));
    for yes in [
        json!(true),
        json!(1),
        json!("yes"),
        json!("true"),
        json!(2.5),
    ] {
        assert!(
            matches!(admin(yes.clone()), Ok(Principal::Admin { .. })),
            "{yes} is admin"
        );
    }
    // false, 0, "" and null mean "not admin": with an id the token is a customer's, without
    // one it names nobody
    for no in [json!(false), json!(0), json!(""), Json::Null] {
        assert_eq!(code(admin(no.clone())), "missing_claim", "{no} alone");
        assert!(
            matches!(
                verify(&c, json!({ "isAdmin": no, "id": "acme" })),
                Ok(Principal::Customer { .. })
            ),
            "{no} with an id"
        );
    }
    for ambiguous in [json!("false"), json!("0"), json!("No")] {
        assert_eq!(code(admin(ambiguous)), "bad_claims");
    }
    assert_eq!(code(admin(json!([true]))), "bad_claims");
    assert_eq!(code(admin(json!({ "admin": true }))), "bad_claims");
}

#[test]
fn customer_ids_are_bounded_in_length_and_characters() {
    let c = config();
    assert!(verify(&c, json!({ "id": "acme-corp_01:eu@x.com+1" })).is_ok());
    assert!(verify(&c, json!({ "id": "a".repeat(128) })).is_ok());
    for bad in [
        json!("a".repeat(129)),
        json!(""),
        json!("a b"),
        json!("a/b"),
        json!("ü"),
    ] {
        let err = verify(&c, json!({ "id": bad })).unwrap_err();
        assert_eq!(err.code, "bad_claims");
        assert!(
            err.message.contains("1 to 128 characters"),
            "{}",
            err.message
        );
    }
    assert_eq!(code(verify(&c, json!({ "id": 42 }))), "bad_claims");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(b"a b");
    let hash = hex::encode(mac.finalize().into_bytes());
    assert_eq!(code(c.verify_user_hash("a b", &hash)), "bad_claims");
}

#[test]
fn a_token_of_another_type_is_refused() {
    let c = config();
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let access_token = encode(
        &header,
        &claims(json!({ "id": "a" })),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(
        code(c.verify_token(&access_token, NOW)),
        "unsupported_header"
    );
    header.typ = Some("jwt".into());
    let plain = encode(
        &header,
        &claims(json!({ "id": "a" })),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert!(c.verify_token(&plain, NOW).is_ok());
}
