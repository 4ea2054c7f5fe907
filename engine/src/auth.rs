//! How apps that embed integrations authenticate their customers to Weft: workspace JWTs and
//! HMAC user hashes, for the HTTP API of `weft serve`.
//!
//! A **workspace JWT** is signed with the workspace's secret (HS256 by default, or HS512) or with
//! a private key whose public half the workspace registered (RS256/384/512, PS256, ES256/384).
//! Its claims: `iss` (the workspace key), `exp` (required), and either `id` (a customer, with
//! optional `name` and `fields`) or `isAdmin` (non-empty, and then no `id`). Verification is
//! strict: an allow-list of algorithms per workspace, no `alg: none`, no HS/RS key confusion
//! (HMAC algorithms only with a secret, public-key ones only with a public key), no `crit`
//! header, tokens of at most 8 KiB, `exp` with at most 30 s of leeway, `iss` required and equal to
//! the workspace key. Errors say what is wrong and never echo the token.
//!
//! An **HMAC user hash** is `hex(HMAC-SHA256(app secret, user id))`, sent with the app key and
//! the user id, compared in constant time; it grants the same customer scope as a token with
//! that `id`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value as Json};
use sha2::Sha256;

/// The largest token accepted.
pub const MAX_TOKEN: usize = 8 << 10;
/// The most clock skew allowed on `exp`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// The organization's admin: may call admin routes.
    Admin {
        /// The `name` claim, if any.
        name: Option<String>,
    },
    /// One customer: sees only its own instances and runs.
    Customer {
        /// The customer's id.
        id: String,
        /// The `name` claim, if any.
        name: Option<String>,
        /// The `fields` claim.
        fields: Map<String, Json>,
    },
}

/// Why a request was not authenticated: a stable code and a message that never holds the
/// token or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AuthError {
    /// `token_too_large`, `malformed_token`, `algorithm_not_allowed`, `unsupported_header`,
    /// `bad_signature`, `expired`, `missing_claim`, `wrong_issuer`, `bad_claims`,
    /// `bad_user_hash`, `unknown_app_key`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn fail(code: &'static str, message: impl Into<String>) -> AuthError {
    AuthError {
        code,
        message: message.into(),
    }
}

/// How a workspace verifies tokens and user hashes.
#[derive(Clone)]
pub struct AuthConfig {
    issuer: String,
    algorithms: Vec<Algorithm>,
    secret: Option<Vec<u8>>,
    public_key: Option<DecodingKey>,
    hmac_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("issuer", &self.issuer)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

fn min_secret(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS512 => 64,
        Algorithm::HS384 => 48,
        _ => 32,
    }
}

impl AuthConfig {
    /// Tokens signed with `secret` using one of `algorithms` (HMAC ones only), issued by
    /// `issuer` (the workspace key). A secret shorter than the hash is refused.
    pub fn with_secret(
        issuer: &str,
        secret: &[u8],
        algorithms: &[Algorithm],
    ) -> Result<Self, String> {
        if algorithms.is_empty() {
            return Err("allow at least one algorithm".into());
        }
        for alg in algorithms {
            if !crate::secrets::jwt::is_hmac(*alg) {
                return Err(format!(
                    "{alg:?} needs a public key, not a secret; a workspace secret signs HS256, HS384 or HS512"
                ));
            }
            if secret.len() < min_secret(*alg) {
                return Err(format!(
                    "the workspace secret is {} bytes; {alg:?} needs at least {} (as long as its hash)",
                    secret.len(),
                    min_secret(*alg)
                ));
            }
        }
        Ok(Self {
            issuer: issuer.to_string(),
            algorithms: algorithms.to_vec(),
            secret: Some(secret.to_vec()),
            public_key: None,
            hmac_secret: None,
        })
    }

    /// Tokens signed with the private half of `public_pem` using one of `algorithms`
    /// (public-key ones only), issued by `issuer`.
    pub fn with_public_key(
        issuer: &str,
        public_pem: &[u8],
        algorithms: &[Algorithm],
    ) -> Result<Self, String> {
        if algorithms.is_empty() {
            return Err("allow at least one algorithm".into());
        }
        let mut key = None;
        for alg in algorithms {
            let parsed = match alg {
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512 => DecodingKey::from_rsa_pem(public_pem),
                Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(public_pem),
                other => {
                    return Err(format!(
                        "{other:?} is not a public-key algorithm Weft accepts here"
                    ));
                }
            }
            .map_err(|e| format!("the public key does not parse for {alg:?}: {e}"))?;
            key = Some(parsed);
        }
        Ok(Self {
            issuer: issuer.to_string(),
            algorithms: algorithms.to_vec(),
            secret: None,
            public_key: key,
            hmac_secret: None,
        })
    }

    /// The workspace key: the `iss` tokens must carry and the app key of user hashes.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Also accept HMAC user hashes made with `secret` (at least 32 bytes).
    pub fn with_user_hashes(mut self, secret: &[u8]) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err(format!(
                "the app secret for user hashes is {} bytes; HMAC-SHA256 needs at least 32",
                secret.len()
            ));
        }
        self.hmac_secret = Some(secret.to_vec());
        Ok(self)
    }

    /// Verifies a workspace JWT at time `now` (seconds since the Unix epoch).
    pub fn verify_token(&self, token: &str, now: u64) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN {
            return Err(fail(
                "token_too_large",
                format!(
                    "the token is {} bytes; at most {MAX_TOKEN} are accepted",
                    token.len()
                ),
            ));
        }
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err(fail(
                "malformed_token",
                "a token has three base64url parts separated by dots",
            ));
        }
        let header = decode_part(parts[0], "header")?;
        let payload = decode_part(parts[1], "payload")?;
        let alg_name = header
            .get("alg")
            .and_then(Json::as_str)
            .ok_or_else(|| fail("malformed_token", "the header has no `alg`"))?;
        if header.contains_key("crit") {
            return Err(fail(
                "unsupported_header",
                "the header has a `crit` parameter, which Weft does not understand; tokens must not use it",
            ));
        }
        let alg: Algorithm = alg_name.parse().map_err(|_| {
            fail(
                "algorithm_not_allowed",
                format!("algorithm `{alg_name}` is not accepted"),
            )
        })?;
        if !self.algorithms.contains(&alg) {
            return Err(fail(
                "algorithm_not_allowed",
                format!(
                    "algorithm `{alg_name}` is not accepted; this workspace accepts {}",
                    self.algorithms
                        .iter()
                        .map(|a| format!("{a:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        // The key follows from the configuration, never from the token: an HMAC algorithm is
        // only ever checked with the secret, a public-key one only with the public key.
        let key = match (
            crate::secrets::jwt::is_hmac(alg),
            &self.secret,
            &self.public_key,
        ) {
            (true, Some(secret), _) => DecodingKey::from_secret(secret),
            (false, _, Some(key)) => key.clone(),
            _ => {
                return Err(fail(
                    "algorithm_not_allowed",
                    format!("algorithm `{alg_name}` does not match the workspace's key"),
                ));
            }
        };
        let mut validation = Validation::new(alg);
        validation.validate_exp = false; // checked below, with our own clock and messages
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Json>(token, &key, &validation)
            .map_err(|_| fail("bad_signature", "the signature does not verify"))?;

        match payload.get("iss").and_then(Json::as_str) {
            None => return Err(fail("missing_claim", "the token has no `iss` claim")),
            Some(iss) if iss != self.issuer => {
                return Err(fail("wrong_issuer", "`iss` is not this workspace's key"));
            }
            Some(_) => {}
        }
        let exp = match payload.get("exp") {
            None => return Err(fail("missing_claim", "the token has no `exp` claim")),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| fail("bad_claims", "`exp` must be a number of seconds"))?,
        };
        if exp + LEEWAY_SECONDS < now {
            return Err(fail("expired", "the token has expired"));
        }
        let admin = match payload.get("isAdmin") {
            None | Some(Json::Null) | Some(Json::Bool(false)) => false,
            Some(Json::String(s)) if s.is_empty() => false,
            Some(_) => true,
        };
        let id = payload.get("id");
        let name = payload
            .get("name")
            .and_then(Json::as_str)
            .map(str::to_string);
        match (admin, id) {
            (true, Some(_)) => Err(fail(
                "bad_claims",
                "a token may carry `id` (a customer) or `isAdmin`, not both",
            )),
            (true, None) => Ok(Principal::Admin { name }),
            (false, Some(Json::String(id))) if !id.is_empty() => Ok(Principal::Customer {
                id: id.clone(),
                name,
                fields: payload
                    .get("fields")
                    .and_then(Json::as_object)
                    .cloned()
                    .unwrap_or_default(),
            }),
            (false, Some(_)) => Err(fail("bad_claims", "`id` must be a non-empty string")),
            (false, None) => Err(fail(
                "missing_claim",
                "the token has neither `id` (a customer) nor `isAdmin`",
            )),
        }
    }

    /// Verifies an HMAC user hash: `hash` must be `hex(HMAC-SHA256(app secret, user_id))`.
    pub fn verify_user_hash(&self, user_id: &str, hash: &str) -> Result<Principal, AuthError> {
        let Some(secret) = &self.hmac_secret else {
            return Err(fail(
                "unknown_app_key",
                "this workspace does not accept user hashes",
            ));
        };
        let given =
            hex::decode(hash).map_err(|_| fail("bad_user_hash", "the user hash must be hex"))?;
        if !hmac_sha256_matches(secret, user_id.as_bytes(), &given) {
            return Err(fail(
                "bad_user_hash",
                "the user hash does not match the user id",
            ));
        }
        if user_id.is_empty() {
            return Err(fail("bad_claims", "the user id is empty"));
        }
        Ok(Principal::Customer {
            id: user_id.to_string(),
            name: None,
            fields: Map::new(),
        })
    }
}

fn decode_part(part: &str, what: &str) -> Result<Map<String, Json>, AuthError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| fail("malformed_token", format!("the {what} is not base64url")))?;
    match serde_json::from_slice::<Json>(&bytes) {
        Ok(Json::Object(map)) => Ok(map),
        _ => Err(fail(
            "malformed_token",
            format!("the {what} is not a JSON object"),
        )),
    }
}

/// Whether `mac` is the HMAC-SHA256 of `message` under `key`, compared in constant time. User
/// hashes and signed webhooks are both checked with it.
pub fn hmac_sha256_matches(key: &[u8], message: &[u8], mac: &[u8]) -> bool {
    let mut hmac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    hmac.update(message);
    hmac.verify_slice(mac).is_ok()
}

#[cfg(test)]
mod tests {
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
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(mac.finalize().into_bytes());
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
}
