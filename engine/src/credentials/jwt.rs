//! JWT-bearer credentials: the host signs a short-lived token for each request (cached until
//! near expiry) and sends it as `Authorization: Bearer <token>`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value as Json};

use super::Secret;
use crate::integration::template::{Path as RefPath, RenderError, Template, walk};
use crate::value::Val;

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

/// Whether `alg` signs with a shared secret rather than a private key.
pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

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

/// Signs tokens for one `jwt-bearer` credential.
pub struct JwtSigner {
    alg: Algorithm,
    key: EncodingKey,
    key_text: Secret,
    header: Header,
    payload: Template,
    lifetime: Duration,
    cache: Mutex<HashMap<String, (Secret, SystemTime)>>,
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
        Ok(Self {
            alg,
            key: encoding,
            key_text: key.clone(),
            header,
            payload,
            lifetime,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The signing key and every token issued, for redaction.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = vec![self.key_text.expose().to_string()];
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        out.extend(cache.values().map(|(t, _)| t.expose().to_string()));
        out
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
        let cache_key = Json::Object(claims.clone()).to_string();
        let now = SystemTime::now();
        let margin = (self.lifetime / 5).min(Duration::from_secs(60));
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((token, expires)) = cache.get(&cache_key)
                && now + margin < *expires
            {
                return Ok(token.clone());
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
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cache_key, (token.clone(), expires));
        Ok(token)
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

    #[test]
    fn hmac_tokens_are_cached_per_claims() {
        let signer = JwtSigner::new(
            Algorithm::HS256,
            &Secret::new("0123456789abcdef0123456789abcdef"),
            serde_json::from_str(r#"{ "sub": "{{ customer.id }}" }"#).unwrap(),
            Map::new(),
            Duration::from_secs(300),
        )
        .unwrap();
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
    }
}
