//! Credentials as written in a workspace file or stored in the vault: their kinds, fields and
//! where they were defined. Loading their secrets and applying them is the engine's job.

use anyhow::bail;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::grants::http::HostPattern;
use crate::limits::parse_duration;

/// The algorithms a `jwt-bearer` credential may use.
pub const JWT_ALGORITHMS: [&str; 8] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256",
];

/// Checks a JWT algorithm name from a credential (any case): whether it signs with a shared
/// secret (HS*) rather than a private key, or why it is not one Weft signs with.
pub fn jwt_algorithm_is_hmac(name: &str) -> Result<bool, String> {
    let upper = name.to_ascii_uppercase();
    if !JWT_ALGORITHMS.contains(&upper.as_str()) {
        return Err(format!(
            "unknown JWT algorithm `{name}`; use one of {}",
            JWT_ALGORITHMS.join(", ")
        ));
    }
    Ok(upper.starts_with("HS"))
}

/// The kinds of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A key id and a secret (AWS access key id + secret access key); used to sign S3 requests.
    ApiKeySecret,
    /// One key, sent in a header (default `X-API-Key`) or a query parameter.
    ApiKey,
    /// HTTP basic authentication.
    Basic,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A JWT signed by the host for each request (cached until near expiry), sent as a bearer
    /// token.
    JwtBearer,
    /// An OAuth 2.0 access token the host obtained for a marketplace connection and refreshes
    /// before it expires, sent as a bearer token. Only made by connecting; never in a file.
    Oauth2,
}

impl Kind {
    /// The name used in files.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ApiKeySecret => "api-key-secret",
            Kind::ApiKey => "api-key",
            Kind::Basic => "basic",
            Kind::Bearer => "bearer",
            Kind::JwtBearer => "jwt-bearer",
            Kind::Oauth2 => "oauth2",
        }
    }

    /// The fields of this kind whose values are secret.
    pub fn secret_fields(self) -> &'static [&'static str] {
        match self {
            Kind::ApiKeySecret => &["secret"],
            Kind::ApiKey => &["key"],
            Kind::Basic => &["password"],
            Kind::Bearer => &["token"],
            Kind::JwtBearer => &["secret", "private_key"],
            Kind::Oauth2 => &["token", "refresh_token", "secret"],
        }
    }
}

/// The request `weft credentials test` sends to check a credential, expecting a 2xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// The method (default `GET`).
    #[serde(default = "get")]
    pub method: String,
    /// The URL.
    pub url: String,
}

fn get() -> String {
    "GET".into()
}

/// A credential as written in a workspace file or stored in the vault.
///
/// In a workspace file, secret fields must be `env:NAME` or `file:PATH` so that no secret is
/// written into a file that is shared or committed; in the vault they hold the value itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    /// The kind.
    pub kind: Kind,
    /// Origins the credential may be sent to (`https://api.example.com`); a credential is
    /// never attached to a request to any other host. Empty: the hosts granted to the plugin.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The request `weft credentials test` sends.
    #[serde(default)]
    pub test: Option<TestRequest>,
    /// `api-key-secret`: the key id; `api-key`: the key (secret).
    #[serde(default)]
    pub key: Option<String>,
    /// `api-key-secret`: the secret; `jwt-bearer` with HS256/384/512: the signing secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// `api-key`: the header to send the key in (default `X-API-Key`).
    #[serde(default)]
    pub header: Option<String>,
    /// `api-key`: send the key as this query parameter instead of a header.
    #[serde(default)]
    pub query: Option<String>,
    /// `basic`: the user name.
    #[serde(default)]
    pub username: Option<String>,
    /// `basic`: the password.
    #[serde(default)]
    pub password: Option<String>,
    /// `bearer`: the token.
    #[serde(default)]
    pub token: Option<String>,
    /// `jwt-bearer`: HS256, HS384, HS512, RS256, RS384, RS512, PS256 or ES256.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// `jwt-bearer` with RS*/PS256/ES256: the PEM private key (pasted `\n` sequences are fine).
    #[serde(default)]
    pub private_key: Option<String>,
    /// `jwt-bearer`: the claims; strings may use `{{ config.… }}`, `{{ customer.… }}` and
    /// `{{ instance.… }}`. `iat` and `exp` are set by the host.
    #[serde(default)]
    pub payload: Option<Map<String, Json>>,
    /// `jwt-bearer`: extra JWT header fields (`kid`, `typ`).
    #[serde(default)]
    pub jwt_headers: Option<Map<String, Json>>,
    /// `jwt-bearer`: how long each token is valid (default `5m`); `oauth2`: how long the
    /// access token was issued for.
    #[serde(default)]
    pub lifetime: Option<String>,
    /// `oauth2`: the refresh token, when the provider issued one.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// `oauth2`: when the access token expires (RFC 3339), when the provider said.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// `oauth2`: why the connection stopped working (its refresh was refused); it must be
    /// connected again.
    #[serde(default)]
    pub failed: Option<String>,
}

/// Where a credential was defined.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The whole workspace.
    Workspace,
    /// One customer.
    Customer(String),
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Workspace => f.write_str("workspace"),
            Scope::Customer(id) => write!(f, "customer `{id}`"),
        }
    }
}

impl CredentialSpec {
    /// A credential of `kind` with no fields set.
    pub fn empty(kind: Kind) -> Self {
        Self {
            kind,
            hosts: Vec::new(),
            test: None,
            key: None,
            secret: None,
            header: None,
            query: None,
            username: None,
            password: None,
            token: None,
            algorithm: None,
            private_key: None,
            payload: None,
            jwt_headers: None,
            lifetime: None,
            refresh_token: None,
            expires_at: None,
            failed: None,
        }
    }

    /// The value of field `name`, if set.
    pub fn field(&self, name: &str) -> Option<&String> {
        match name {
            "key" => self.key.as_ref(),
            "secret" => self.secret.as_ref(),
            "header" => self.header.as_ref(),
            "query" => self.query.as_ref(),
            "username" => self.username.as_ref(),
            "password" => self.password.as_ref(),
            "token" => self.token.as_ref(),
            "algorithm" => self.algorithm.as_ref(),
            "private_key" => self.private_key.as_ref(),
            "lifetime" => self.lifetime.as_ref(),
            "refresh_token" => self.refresh_token.as_ref(),
            _ => None,
        }
    }

    /// Sets field `name` (one of the text fields).
    pub fn set_field(&mut self, name: &str, value: String) -> anyhow::Result<()> {
        let slot = match name {
            "key" => &mut self.key,
            "secret" => &mut self.secret,
            "header" => &mut self.header,
            "query" => &mut self.query,
            "username" => &mut self.username,
            "password" => &mut self.password,
            "token" => &mut self.token,
            "algorithm" => &mut self.algorithm,
            "private_key" => &mut self.private_key,
            "lifetime" => &mut self.lifetime,
            other => bail!(
                "unknown credential field `{other}`; fields are key, secret, header, query, username, password, token, algorithm, private_key, lifetime"
            ),
        };
        *slot = Some(value);
        Ok(())
    }

    /// Problems with a credential written in a workspace file: a secret written inline, a
    /// field missing for its kind, a bad host pattern.
    pub fn check_in_file(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.kind == Kind::Oauth2 {
            problems.push(
                "an `oauth2` credential is made by a customer connecting in the marketplace; declare the provider under `[connections.NAME]` in the integration file".into(),
            );
            return problems;
        }
        for field in self.kind.secret_fields() {
            if let Some(value) = self.field(field)
                && !value.starts_with("env:")
                && !value.starts_with("file:")
            {
                problems.push(format!(
                    "field `{field}` holds a secret written into the file; use `env:NAME` or `file:PATH`, or store it encrypted with `weft credentials set`"
                ));
            }
        }
        problems.extend(self.shape_problems());
        problems
    }

    /// Problems with a credential's shape wherever it is kept: a field missing for its kind,
    /// an unknown JWT algorithm, a bad host pattern or lifetime.
    pub fn shape_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let need = |field: &str, problems: &mut Vec<String>| {
            if self.field(field).is_none() {
                problems.push(format!(
                    "a `{}` credential needs field `{field}`",
                    self.kind.name()
                ));
            }
        };
        match self.kind {
            Kind::ApiKeySecret => {
                need("key", &mut problems);
                need("secret", &mut problems);
            }
            Kind::ApiKey => need("key", &mut problems),
            Kind::Basic => {
                need("username", &mut problems);
                need("password", &mut problems);
            }
            Kind::Bearer | Kind::Oauth2 => need("token", &mut problems),
            Kind::JwtBearer => match self.algorithm.as_deref().map(jwt_algorithm_is_hmac) {
                None => need("algorithm", &mut problems),
                Some(Err(e)) => problems.push(e),
                Some(Ok(true)) => need("secret", &mut problems),
                Some(Ok(false)) => need("private_key", &mut problems),
            },
        }
        for host in &self.hosts {
            if let Err(e) = HostPattern::parse(host) {
                problems.push(e);
            }
        }
        if let Some(lifetime) = &self.lifetime
            && let Err(e) = parse_duration(lifetime)
        {
            problems.push(format!("field `lifetime`: {e}"));
        }
        problems
    }
}
