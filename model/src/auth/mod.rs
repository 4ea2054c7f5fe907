//! How apps that embed integrations authenticate their customers to Weft: workspace JWTs and
//! HMAC user hashes, for the HTTP API of `weft serve`.
//!
//! A **workspace JWT** is signed with the workspace's secret (HS256 by default, or HS512) or with
//! a private key whose public half the workspace registered (RS256/384/512, PS256, ES256/384).
//! Its claims: `iss` (the workspace key), `exp` (required), and either `id` (a customer, with
//! optional `name` and `fields`) or `isAdmin` (and then no `id`); every registered claim a token
//! carries is checked too ([`claims`] has the rules, `isAdmin`'s among them). Verification is
//! strict: an allow-list of algorithms per workspace, no `alg: none`, no HS/RS key confusion
//! (HMAC algorithms only with a secret, public-key ones only with a public key), no `crit`
//! header, `typ` absent or `JWT`, tokens of at most 8 KiB, 30 s of leeway on dates. The key is
//! never taken from the token (`jku`, `jwk`, `x5u`, `x5c` and `kid` are ignored). Errors say
//! what is wrong and never echo the token.
//!
//! An **HMAC user hash** is `hex(HMAC-SHA256(app secret, user id))`, sent with the app key and
//! the user id, compared in constant time; it grants the same customer scope as a token with
//! that `id`.

mod claims;

pub use claims::MAX_CUSTOMER_ID;

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
    /// `bad_signature`, `expired`, `not_yet_valid`, `missing_claim`, `wrong_issuer`,
    /// `wrong_audience`, `bad_claims`, `bad_user_hash`, `unknown_app_key`.
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

/// Whether `alg` is an HMAC algorithm (signed and verified with a shared secret).
pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// How a workspace verifies tokens and user hashes.
#[derive(Clone)]
pub struct AuthConfig {
    issuer: String,
    algorithms: Vec<Algorithm>,
    secret: Option<Vec<u8>>,
    public_key: Option<DecodingKey>,
    hmac_secret: Option<Vec<u8>>,
    audience: Option<String>,
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
            if !is_hmac(*alg) {
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
            audience: None,
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
            audience: None,
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

    /// Requires tokens to name `audience` in their `aud` claim (without it, a token that
    /// carries `aud` is refused: it was meant for someone else).
    pub fn with_audience(mut self, audience: &str) -> Self {
        self.audience = Some(audience.to_string());
        self
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
        // RFC 8725 §3.11: a token of another type (an access token, a logout token) signed with
        // the same key is not a workspace token.
        if let Some(typ) = header.get("typ")
            && !typ.as_str().is_some_and(|t| {
                t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("application/jwt")
            })
        {
            return Err(fail(
                "unsupported_header",
                "the header's `typ` is not `JWT`; only workspace JWTs are accepted",
            ));
        }
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
        let key = match (is_hmac(alg), &self.secret, &self.public_key) {
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

        claims::check(
            &payload,
            claims::Expected {
                issuer: &self.issuer,
                audience: self.audience.as_deref(),
                now,
            },
        )
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
        claims::check_customer_id(user_id)?;
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
mod tests;
