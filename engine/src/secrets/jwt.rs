//! JWT-bearer credentials: the host signs a short-lived token for each request (cached until
//! near expiry) and sends it as `Authorization: Bearer <token>`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value as Json};

use super::Secret;
use weft_model::template::{Path as RefPath, RenderError, Template, walk};
use weft_model::value::Val;

/// The algorithms a `jwt-bearer` credential may use.
pub const ALGORITHMS: &str = "HS256, HS384, HS512, RS256, RS384, RS512, PS256, ES256";

/// Parses an algorithm name from a credential.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "ES256" => Algorithm::ES256,
        _ => {
            return Err(format!(
                "unknown JWT algorithm `{name}`; use one of {ALGORITHMS}"
            ));
        }
    })
}

pub use weft_model::auth::is_hmac;

/// Turns a key pasted with literal `\n` sequences (as in a web form or an env var) back into a
/// PEM document, and says clearly when it is not PEM at all.
pub fn normalize_pem(key: &str) -> anyhow::Result<String> {
    let pem = key.trim().replace("\\r\\n", "\n").replace("\\n", "\n");
    if !pem.starts_with("-----BEGIN ") || !pem.contains("-----END ") {
        bail!(
            "the private key is not a PEM key: it must start with `-----BEGIN PRIVATE KEY-----` (or `-----BEGIN RSA PRIVATE KEY-----`) and end with the matching `-----END …-----` line; a key pasted on one line with `\\n` sequences is fine"
        );
    }
    Ok(pem)
}

/// Tokens issued in this process, by signer fingerprint and claims, so that runs reuse a token
/// until shortly before it expires instead of signing one per run.
type TokenCache = Mutex<HashMap<String, (Secret, SystemTime)>>;

/// The most tokens kept; past it, expired ones are dropped, then the cache is cleared.
const MAX_CACHED_TOKENS: usize = 10_000;

fn token_cache() -> &'static TokenCache {
    static CACHE: OnceLock<TokenCache> = OnceLock::new();
    CACHE.get_or_init(TokenCache::default)
}

/// Signs tokens for one `jwt-bearer` credential.
pub struct JwtSigner {
    alg: Algorithm,
    key: EncodingKey,
    key_text: Secret,
    header: Header,
    payload: Template,
    lifetime: Duration,
    /// Identifies the algorithm, key, header and lifetime, without revealing the key.
    fingerprint: String,
    issued: Mutex<Vec<Secret>>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("alg", &self.alg)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    /// A signer for `alg` with `key` (a secret for HS*, a PEM private key otherwise).
    pub fn new(
        alg: Algorithm,
        key: &Secret,
        payload: Map<String, Json>,
        extra_headers: Map<String, Json>,
        lifetime: Duration,
    ) -> anyhow::Result<Self> {
        let encoding = if is_hmac(alg) {
            EncodingKey::from_secret(key.expose().as_bytes())
        } else {
            let pem = normalize_pem(key.expose())?;
            match alg {
                Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes())
                    .context("the private key is PEM but not an EC P-256 key in PKCS#8 form (`-----BEGIN PRIVATE KEY-----`), which ES256 needs")?,
                _ => EncodingKey::from_rsa_pem(pem.as_bytes())
                    .with_context(|| format!("the private key is PEM but not an RSA key, which {alg:?} needs"))?,
            }
        };
        let mut header = Header::new(alg);
        for (name, value) in extra_headers {
            let text = value
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            match name.as_str() {
                "kid" => header.kid = Some(text),
                "typ" => header.typ = Some(text),
                "cty" => header.cty = Some(text),
                "x5t" => header.x5t = Some(text),
                "x5u" => header.x5u = Some(text),
                "jku" => header.jku = Some(text),
                other => bail!(
                    "JWT header `{other}` is not supported; use kid, typ, cty, x5t, x5u or jku"
                ),
            }
        }
        let payload = Template::compile(&Json::Object(payload))
            .context("the JWT payload has a malformed template")?;
        let fingerprint = {
            use sha2::{Digest, Sha256};
            let mut hash = Sha256::new();
            hash.update(format!("{alg:?}\0{}\0", lifetime.as_secs()));
            hash.update(serde_json::to_vec(&header).unwrap_or_default());
            hash.update([0]);
            hash.update(key.expose().as_bytes());
            hex::encode(hash.finalize())
        };
        Ok(Self {
            alg,
            key: encoding,
            key_text: key.clone(),
            header,
            payload,
            lifetime,
            fingerprint,
            issued: Mutex::new(Vec::new()),
        })
    }

    /// The signing key and every token this signer handed out, for redaction.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = vec![self.key_text.expose().to_string()];
        let issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        out.extend(issued.iter().map(|t| t.expose().to_string()));
        out
    }

    fn hand_out(&self, token: Secret) -> Secret {
        self.issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(token.clone());
        token
    }

    /// A token for the claims rendered against `context` (an object with `config`,
    /// `customer` and `instance`): a cached one with enough life left, or a fresh one.
    pub fn token(&self, context: &Json) -> anyhow::Result<Secret> {
        let lookup = |path: &RefPath| -> Result<Val, RenderError> {
            let root = context.get(&path.root).unwrap_or(&Json::Null);
            walk(root, path, &path.segments).map(|v| Val::Json(v.clone()))
        };
        let Val::Json(Json::Object(mut claims)) = self
            .payload
            .render(&lookup)
            .context("failed to fill in the JWT payload")?
        else {
            bail!("the JWT payload must be an object");
        };
        let cache_key = format!("{}\0{}", self.fingerprint, Json::Object(claims.clone()));
        let now = SystemTime::now();
        let margin = (self.lifetime / 5).min(Duration::from_secs(60));
        {
            let cache = token_cache().lock().unwrap_or_else(|e| e.into_inner());
            if let Some((token, expires)) = cache.get(&cache_key)
                && now + margin < *expires
            {
                return Ok(self.hand_out(token.clone()));
            }
        }
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let expires = now + self.lifetime;
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), (iat + self.lifetime.as_secs().max(1)).into());
        let token = jsonwebtoken::encode(&self.header, &claims, &self.key)
            .with_context(|| format!("failed to sign the JWT with {:?}", self.alg))?;
        let token = Secret::new(token);
        let mut cache = token_cache().lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_TOKENS {
            cache.retain(|_, (_, expires)| *expires > now);
            if cache.len() >= MAX_CACHED_TOKENS {
                cache.clear();
            }
        }
        cache.insert(cache_key, (token.clone(), expires));
        drop(cache);
        Ok(self.hand_out(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_pasted_with_backslash_n_are_accepted_and_non_pem_is_named() {
        let pasted = "-----BEGIN PRIVATE KEY-----\\nMIIB\\n-----END PRIVATE KEY-----";
        assert_eq!(
            normalize_pem(pasted).unwrap(),
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"
        );
        let e = normalize_pem("ssh-rsa AAAA").unwrap_err().to_string();
        assert!(e.starts_with("the private key is not a PEM key"), "{e}");
    }

    fn hs256_signer() -> JwtSigner {
        JwtSigner::new(
            Algorithm::HS256,
            &Secret::new("0123456789abcdef0123456789abcdef"),
            serde_json::from_str(r#"{ "sub": "{{ customer.id }}" }"#).unwrap(),
            Map::new(),
            Duration::from_secs(300),
        )
        .unwrap()
    }

    #[test]
    fn hmac_tokens_are_cached_per_claims() {
        let signer = hs256_signer();
        let a = signer
            .token(&serde_json::json!({ "customer": { "id": "a" } }))
            .unwrap();
        let again = signer
            .token(&serde_json::json!({ "customer": { "id": "a" } }))
            .unwrap();
        let b = signer
            .token(&serde_json::json!({ "customer": { "id": "b" } }))
            .unwrap();
        assert_eq!(a, again);
        assert_ne!(a, b);
        assert!(parse_algorithm("none").is_err());

        // PS256 signatures are randomised, so equal tokens can only come from the cache: a
        // signer made again for the next run (same key and settings) reuses the token.
        let ps256 = || {
            JwtSigner::new(
                Algorithm::PS256,
                &Secret::new(include_str!("../../../tests/fixtures/rsa-private.pem")),
                serde_json::from_str(r#"{ "sub": "x" }"#).unwrap(),
                Map::new(),
                Duration::from_secs(300),
            )
            .unwrap()
        };
        let pem = include_str!("../../../tests/fixtures/rsa-private.pem");
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let header = Header::new(Algorithm::PS256);
        let claims = serde_json::json!({ "sub": "x" });
        assert_ne!(
            jsonwebtoken::encode(&header, &claims, &key).unwrap(),
            jsonwebtoken::encode(&header, &claims, &key).unwrap(),
            "the premise: signing twice gives two tokens"
        );
        let ctx = serde_json::json!({});
        let first = ps256().token(&ctx).unwrap();
        let next_run = ps256();
        assert_eq!(next_run.token(&ctx).unwrap(), first);
        assert!(next_run.secrets().contains(&first.expose().to_string()));
    }
}
