//! OAuth 2.0 for marketplace connections (RFC 6749, PKCE RFC 7636): the authorization request a
//! customer's popup goes to, and the token requests the host makes — the code exchange, the
//! refresh, and client credentials. The tokens are kept in the vault as an `oauth2` credential
//! and applied as a bearer token; a plugin never sees one.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use weft_model::credential::{CredentialSpec, Kind};
use weft_model::spec::ConnectionSpec;

use super::credential::load_reference;

/// How long a token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(20);

/// A random value of 32 bytes in base64url: PKCE verifiers and `state`.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE `S256` challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The URL the customer's popup opens to authorize `connection`.
pub fn authorize_url(
    connection: &ConnectionSpec,
    redirect_uri: &str,
    state: &str,
    verifier: &str,
) -> anyhow::Result<String> {
    let base = connection
        .authorize_url
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("the connection has no `authorize_url`"))?;
    let mut url = url::Url::parse(base)
        .map_err(|e| anyhow::anyhow!("`authorize_url` `{base}` is not a URL: {e}"))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair(
                "client_id",
                connection.client_id.as_deref().unwrap_or_default(),
            )
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        if !connection.scopes.is_empty() {
            query.append_pair("scope", &connection.scopes.join(" "));
        }
        for (name, value) in &connection.params {
            query.append_pair(name, value);
        }
    }
    Ok(url.into())
}

/// Why a token request failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The provider refused the grant for good (`invalid_grant`; a customer's client it does
    /// not know): the connection must be made again.
    #[error("the provider refused it: {0}")]
    Refused(String),
    /// It could not be made or its answer was not understood; trying again later may work.
    #[error("{0}")]
    Failed(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// `expires_in` as a number or, as some providers send it, a string of digits.
fn seconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
    }
    Ok(match Option::<Seconds>::deserialize(deserializer)? {
        None => None,
        Some(Seconds::Number(n)) => Some(n),
        Some(Seconds::Text(text)) => Some(text.trim().parse().map_err(serde::de::Error::custom)?),
    })
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The client a connection's token requests authenticate as: the integration's (authorization
/// code) or the customer's own (client credentials). Its `Debug` never shows the secret.
pub struct Client {
    id: String,
    secret: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The integration's client of `connection`, its secret read from `env:`/`file:`
    /// (relative to `base_dir`).
    pub fn of_integration(connection: &ConnectionSpec, base_dir: &Path) -> anyhow::Result<Self> {
        let secret = match &connection.client_secret {
            Some(reference) => Some(
                load_reference(reference, base_dir)
                    .map_err(|e| anyhow::anyhow!("the connection's `client_secret`: {e:#}"))?,
            ),
            None => None,
        };
        Ok(Self {
            id: connection.client_id.clone().unwrap_or_default(),
            secret,
        })
    }

    /// The customer's client stored in `credential` (client credentials).
    pub fn of_customer(credential: &CredentialSpec) -> Self {
        Self {
            id: credential.key.clone().unwrap_or_default(),
            secret: credential.secret.clone(),
        }
    }
}

/// Exchanges an authorization `code` (with its PKCE `verifier`) for tokens.
pub async fn exchange_code(
    connection: &ConnectionSpec,
    client: &Client,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<CredentialSpec, TokenError> {
    token_request(
        connection,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
        ],
    )
    .await
}

/// Fresh tokens for `current`: by its refresh token, or for client credentials by the
/// customer's client. A provider that does not send a new refresh token keeps the old one valid.
pub async fn refresh(
    connection: &ConnectionSpec,
    client: &Client,
    current: &CredentialSpec,
) -> Result<CredentialSpec, TokenError> {
    let mut fresh = match &current.refresh_token {
        Some(refresh_token) => {
            token_request(
                connection,
                client,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
            )
            .await?
        }
        None if current.key.is_some() => client_credentials(connection, client).await?,
        None => {
            return Err(TokenError::Refused(
                "the access token expired and the provider gave no refresh token".into(),
            ));
        }
    };
    if fresh.refresh_token.is_none() {
        fresh.refresh_token = current.refresh_token.clone();
    }
    fresh.key = current.key.clone();
    fresh.secret = current.secret.clone();
    Ok(fresh)
}

/// An access token for the customer's own client (client credentials grant).
pub async fn client_credentials(
    connection: &ConnectionSpec,
    client: &Client,
) -> Result<CredentialSpec, TokenError> {
    token_request(connection, client, &[("grant_type", "client_credentials")]).await
}

async fn token_request(
    connection: &ConnectionSpec,
    client: &Client,
    params: &[(&str, &str)],
) -> Result<CredentialSpec, TokenError> {
    let token_url = connection
        .token_url
        .as_deref()
        .ok_or_else(|| TokenError::Failed("the connection has no `token_url`".into()))?;
    // A confidential client authenticates with HTTP basic (`client_secret_basic`, which every
    // provider must support); a public one names itself in the body.
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.extend_pairs(params.iter().copied());
        let scopes = connection.scopes.join(" ");
        if params.contains(&("grant_type", "client_credentials")) && !scopes.is_empty() {
            form.append_pair("scope", &scopes);
        }
        if client.secret.is_none() {
            form.append_pair("client_id", &client.id);
        }
        form.finish()
    };
    let mut request = reqwest::Client::builder()
        .timeout(TOKEN_TIMEOUT)
        .build()
        .map_err(|e| TokenError::Failed(format!("no HTTP client: {e}")))?
        .post(token_url)
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(secret) = &client.secret {
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        request = request.basic_auth(encode(&client.id), Some(encode(secret)));
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|e| TokenError::Failed(format!("the token endpoint did not answer: {e}")))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| TokenError::Failed(format!("the token endpoint's answer broke off: {e}")))?;
    if !status.is_success() {
        // The provider's error code and description say what was wrong; they never hold a token.
        // Only a grant the provider will never accept again makes the connection unusable:
        // `invalid_grant` (revoked, expired), and for client credentials a client it refuses
        // (the customer's own). Anything else — rate limits, `temporarily_unavailable`, the
        // integration's client secret being wrong — may pass, and fails this attempt only.
        let grant = params
            .iter()
            .find(|(k, _)| *k == "grant_type")
            .map(|(_, v)| *v);
        return Err(match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) => {
                let final_ = e.error == "invalid_grant"
                    || (grant == Some("client_credentials")
                        && matches!(e.error.as_str(), "invalid_client" | "unauthorized_client"));
                let text = match e.error_description {
                    Some(description) => format!("{} ({description})", e.error),
                    None => e.error,
                };
                if final_ {
                    TokenError::Refused(text)
                } else {
                    TokenError::Failed(format!("the token endpoint answered {status}: {text}"))
                }
            }
            Err(_) => TokenError::Failed(format!("the token endpoint answered {status}")),
        });
    }
    let tokens: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
        TokenError::Failed(format!(
            "the token endpoint's answer is not a token response: {e}"
        ))
    })?;
    if let Some(kind) = &tokens.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(TokenError::Failed(format!(
            "the provider issued a `{kind}` token; Weft sends bearer tokens only"
        )));
    }
    let mut spec = CredentialSpec {
        hosts: connection.hosts.clone(),
        token: Some(tokens.access_token),
        refresh_token: tokens.refresh_token,
        ..CredentialSpec::empty(Kind::Oauth2)
    };
    if let Some(seconds) = tokens.expires_in {
        spec.lifetime = Some(format!("{seconds}s"));
        spec.expires_at = Some(
            (chrono::Utc::now() + chrono::Duration::seconds(seconds as i64))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
    }
    Ok(spec)
}

/// Whether `credential`'s access token is to be refreshed now: it expires within a tenth of
/// its lifetime or a minute, whichever is shorter.
pub fn needs_refresh(credential: &CredentialSpec) -> bool {
    let Some(expires_at) = credential
        .expires_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    else {
        return false;
    };
    let lifetime = credential
        .lifetime
        .as_deref()
        .and_then(|l| weft_model::limits::parse_duration(l).ok())
        .unwrap_or(Duration::from_secs(600));
    let margin = (lifetime / 10).min(Duration::from_secs(60));
    let margin = chrono::Duration::from_std(margin).unwrap_or_default();
    chrono::Utc::now() + margin >= expires_at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> ConnectionSpec {
        toml::from_str(
            r#"kind = "oauth2"
authorize_url = "https://id.example.com/authorize?tenant=acme"
token_url = "https://id.example.com/token"
client_id = "weft app"
scopes = ["openid", "offline_access"]
params = { prompt = "consent" }"#,
        )
        .unwrap()
    }

    #[test]
    fn the_authorization_request_carries_state_and_an_s256_challenge_never_the_verifier() {
        let url = authorize_url(
            &connection(),
            "https://weft.example.com/cb",
            "st4te",
            "v3rifier",
        )
        .unwrap();
        let url = url::Url::parse(&url).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "acme");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "weft app");
        assert_eq!(q["redirect_uri"], "https://weft.example.com/cb");
        assert_eq!(q["state"], "st4te");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pkce_challenge("v3rifier"));
        assert_ne!(q["code_challenge"], "v3rifier");
        assert_eq!(q["scope"], "openid offline_access");
        assert_eq!(q["prompt"], "consent");
        assert!(!url.as_str().contains("v3rifier"));
    }

    #[test]
    fn random_tokens_are_256_bits_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn a_token_is_refreshed_within_a_tenth_of_its_lifetime_of_expiring() {
        let at = |seconds: i64, lifetime: &str| CredentialSpec {
            expires_at: Some(
                (chrono::Utc::now() + chrono::Duration::seconds(seconds)).to_rfc3339(),
            ),
            lifetime: Some(lifetime.into()),
            ..CredentialSpec::empty(Kind::Oauth2)
        };
        assert!(!needs_refresh(&at(3000, "3600s")));
        assert!(needs_refresh(&at(30, "3600s")));
        assert!(!needs_refresh(&at(3, "4s")));
        assert!(needs_refresh(&at(-1, "4s")));
        assert!(!needs_refresh(&CredentialSpec::empty(Kind::Oauth2)));
    }
}
