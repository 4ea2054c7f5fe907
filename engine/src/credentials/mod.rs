//! Credentials: what they are, where their secrets come from, and how the host applies them.
//!
//! A credential is defined in the workspace file (`[credentials.NAME]`, or per customer under
//! `[[customers]]`) with its secret values taken from `env:NAME` or `file:PATH`, or set with
//! `weft credentials set` and kept encrypted in the store ([`vault`]). A step is bound to a
//! credential by name; the host applies it to the step's requests to the credential's hosts.
//! Plugins never receive a secret.

pub mod jwt;
pub mod vault;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::host::http::policy::HostPattern;
use crate::limits::parse_duration;

/// A secret value. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// The value itself: only for applying it to a request or signing with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
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
    /// `jwt-bearer`: how long each token is valid (default `5m`).
    #[serde(default)]
    pub lifetime: Option<String>,
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

/// How a resolved credential authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Key id and secret, for S3 signing.
    KeySecret {
        /// The key id.
        key: String,
        /// The secret.
        secret: Secret,
    },
    /// An API key in a header.
    ApiKeyHeader {
        /// The header name.
        header: String,
        /// The key.
        key: Secret,
    },
    /// An API key in a query parameter.
    ApiKeyQuery {
        /// The parameter name.
        param: String,
        /// The key.
        key: Secret,
    },
    /// HTTP basic.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// A bearer token.
    Bearer(Secret),
    /// A host-signed JWT.
    Jwt(Arc<jwt::JwtSigner>),
}

/// A credential with its secrets loaded, ready to apply.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Its name.
    pub name: String,
    /// Where it was defined.
    pub scope: Scope,
    /// Its kind.
    pub kind: Kind,
    /// The origins it may be sent to.
    pub hosts: Vec<HostPattern>,
    /// The test request.
    pub test: Option<TestRequest>,
    /// How it authenticates.
    pub auth: Auth,
}

impl Credential {
    /// Every secret value, and the forms it travels in (the basic `user:password` pair), so
    /// they can be redacted from anything a plugin or a record could see.
    pub fn secrets(&self) -> Vec<String> {
        match &self.auth {
            Auth::KeySecret { secret, .. } => vec![secret.expose().to_string()],
            Auth::ApiKeyHeader { key, .. } | Auth::ApiKeyQuery { key, .. } => {
                vec![key.expose().to_string()]
            }
            Auth::Basic { username, password } => vec![
                password.expose().to_string(),
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose())),
            ],
            Auth::Bearer(token) => vec![token.expose().to_string()],
            Auth::Jwt(signer) => signer.secrets(),
        }
    }
}

/// Reads a secret given as `env:NAME`, `file:PATH` (relative to `base_dir`) or inline.
pub fn load_reference(reference: &str, base_dir: &Path) -> anyhow::Result<String> {
    load_value(reference, base_dir)
}

/// How a field's value is given: `env:NAME`, `file:PATH` or the value itself.
fn load_value(reference: &str, base_dir: &Path) -> anyhow::Result<String> {
    if let Some(var) = reference.strip_prefix("env:") {
        std::env::var(var).with_context(|| format!("environment variable `{var}` is not set"))
    } else if let Some(path) = reference.strip_prefix("file:") {
        let path = base_dir.join(path);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        Ok(text.trim_end_matches(['\n', '\r']).to_string())
    } else {
        Ok(reference.to_string())
    }
}

impl CredentialSpec {
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

    fn shape_problems(&self) -> Vec<String> {
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
            Kind::Bearer => need("token", &mut problems),
            Kind::JwtBearer => match self.algorithm.as_deref().map(jwt::parse_algorithm) {
                None => need("algorithm", &mut problems),
                Some(Err(e)) => problems.push(e),
                Some(Ok(alg)) if jwt::is_hmac(alg) => need("secret", &mut problems),
                Some(Ok(_)) => need("private_key", &mut problems),
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

    /// Loads the secrets (`env:`/`file:` relative to `base_dir`) and builds the credential.
    pub fn resolve(&self, name: &str, scope: Scope, base_dir: &Path) -> anyhow::Result<Credential> {
        let problems = self.shape_problems();
        if !problems.is_empty() {
            bail!("{}", problems.join("; "));
        }
        let load = |field: &str| -> anyhow::Result<String> {
            let reference = self
                .field(field)
                .with_context(|| format!("field `{field}` is missing"))?;
            load_value(reference, base_dir).with_context(|| format!("field `{field}`"))
        };
        let secret = |field: &str| load(field).map(Secret::new);
        let auth = match self.kind {
            Kind::ApiKeySecret => Auth::KeySecret {
                key: load("key")?,
                secret: secret("secret")?,
            },
            Kind::ApiKey => match &self.query {
                Some(param) => Auth::ApiKeyQuery {
                    param: param.clone(),
                    key: secret("key")?,
                },
                None => Auth::ApiKeyHeader {
                    header: self.header.clone().unwrap_or_else(|| "X-API-Key".into()),
                    key: secret("key")?,
                },
            },
            Kind::Basic => Auth::Basic {
                username: load("username")?,
                password: secret("password")?,
            },
            Kind::Bearer => Auth::Bearer(secret("token")?),
            Kind::JwtBearer => {
                let alg = jwt::parse_algorithm(self.algorithm.as_deref().unwrap_or_default())
                    .map_err(anyhow::Error::msg)?;
                let key = if jwt::is_hmac(alg) {
                    secret("secret")?
                } else {
                    secret("private_key")?
                };
                let lifetime = match &self.lifetime {
                    Some(l) => parse_duration(l).map_err(anyhow::Error::msg)?,
                    None => std::time::Duration::from_secs(300),
                };
                Auth::Jwt(Arc::new(jwt::JwtSigner::new(
                    alg,
                    &key,
                    self.payload.clone().unwrap_or_default(),
                    self.jwt_headers.clone().unwrap_or_default(),
                    lifetime,
                )?))
            }
        };
        let hosts = self
            .hosts
            .iter()
            .map(|h| HostPattern::parse(h).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Credential {
            name: name.to_string(),
            scope,
            kind: self.kind,
            hosts,
            test: self.test.clone(),
            auth,
        })
    }
}

/// Finds credential `name` as `customer` sees it (or, with `None`, at workspace scope only)
/// and loads its secrets. Searched in order: the customer's stored credentials, the customer's
/// in the workspace file, the workspace's stored credentials, the workspace's in the file.
pub fn find(
    ws: &crate::integration::Workspace,
    vault: Option<&vault::Vault>,
    customer: Option<&str>,
    name: &str,
) -> anyhow::Result<Credential> {
    let mut scopes = Vec::new();
    if let Some(id) = customer {
        scopes.push(Scope::Customer(id.to_string()));
    }
    scopes.push(Scope::Workspace);
    let in_file = |scope: &Scope| -> Option<&CredentialSpec> {
        match scope {
            Scope::Workspace => ws.file.credentials.get(name),
            Scope::Customer(id) => ws.customer(id).and_then(|c| c.credentials.get(name)),
        }
    };
    for scope in scopes {
        if let Some(vault) = vault
            && let Some(spec) = vault.get(&scope, name)?
        {
            return spec
                .resolve(name, scope.clone(), ws.dir())
                .with_context(|| format!("stored credential `{name}` ({scope})"));
        }
        if let Some(spec) = in_file(&scope) {
            return spec
                .resolve(name, scope.clone(), ws.dir())
                .with_context(|| {
                    format!("credential `{name}` ({scope}) in `{}`", ws.path.display())
                });
        }
    }
    let store_hint = if vault.is_some() {
        ""
    } else {
        " (stored credentials were not searched: set `WEFT_MASTER_KEY` to use them)"
    };
    let searched = match customer {
        Some(id) => format!("customer `{id}` and the workspace"),
        None => "the workspace".to_string(),
    };
    bail!(
        "no credential `{name}`: searched {searched}, in the workspace file and the store{store_hint}; define it under `[credentials.{name}]` or with `weft credentials set {name}`"
    )
}
