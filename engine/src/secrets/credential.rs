//! Credentials with their secrets loaded: how each kind authenticates, and where a step's
//! credential is found.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use weft_model::credential::{CredentialSpec, Kind, Scope, TestRequest};
use weft_model::grants::http::HostPattern;
use weft_model::limits::parse_duration;

use super::{Secret, jwt};

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

impl Credential {
    /// Loads the secrets of `spec` (`env:`/`file:` relative to `base_dir`) and builds the
    /// credential.
    pub fn load(
        spec: &CredentialSpec,
        name: &str,
        scope: Scope,
        base_dir: &Path,
    ) -> anyhow::Result<Credential> {
        Self::build(spec, name, scope, |reference| {
            load_value(reference, base_dir)
        })
    }

    /// Builds a credential kept in the vault, whose fields hold the values themselves: a value
    /// that reads `env:…` or `file:…` (a customer may type anything) is taken as it is, never
    /// looked up on the server.
    pub fn from_stored(
        spec: &CredentialSpec,
        name: &str,
        scope: Scope,
    ) -> anyhow::Result<Credential> {
        Self::build(spec, name, scope, |value| Ok(value.to_string()))
    }

    fn build(
        spec: &CredentialSpec,
        name: &str,
        scope: Scope,
        resolve: impl Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<Credential> {
        let problems = spec.shape_problems();
        if !problems.is_empty() {
            bail!("{}", problems.join("; "));
        }
        let load = |field: &str| -> anyhow::Result<String> {
            let reference = spec
                .field(field)
                .with_context(|| format!("field `{field}` is missing"))?;
            resolve(reference).with_context(|| format!("field `{field}`"))
        };
        let secret = |field: &str| load(field).map(Secret::new);
        let auth = match spec.kind {
            Kind::ApiKeySecret => Auth::KeySecret {
                key: load("key")?,
                secret: secret("secret")?,
            },
            Kind::ApiKey => match &spec.query {
                Some(param) => Auth::ApiKeyQuery {
                    param: param.clone(),
                    key: secret("key")?,
                },
                None => Auth::ApiKeyHeader {
                    header: spec.header.clone().unwrap_or_else(|| "X-API-Key".into()),
                    key: secret("key")?,
                },
            },
            Kind::Basic => Auth::Basic {
                username: load("username")?,
                password: secret("password")?,
            },
            Kind::Bearer | Kind::Oauth2 => Auth::Bearer(secret("token")?),
            Kind::JwtBearer => {
                let alg = jwt::parse_algorithm(spec.algorithm.as_deref().unwrap_or_default())
                    .map_err(anyhow::Error::msg)?;
                let key = if jwt::is_hmac(alg) {
                    secret("secret")?
                } else {
                    secret("private_key")?
                };
                let lifetime = match &spec.lifetime {
                    Some(l) => parse_duration(l).map_err(anyhow::Error::msg)?,
                    None => std::time::Duration::from_secs(300),
                };
                Auth::Jwt(Arc::new(jwt::JwtSigner::new(
                    alg,
                    &key,
                    spec.payload.clone().unwrap_or_default(),
                    spec.jwt_headers.clone().unwrap_or_default(),
                    lifetime,
                )?))
            }
        };
        let hosts = spec
            .hosts
            .iter()
            .map(|h| HostPattern::parse(h).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Credential {
            name: name.to_string(),
            scope,
            kind: spec.kind,
            hosts,
            test: spec.test.clone(),
            auth,
        })
    }
}

/// Credentials kept sealed in the store, as [`find`] searches them.
pub trait StoredCredentials {
    /// The stored credential `name` at `scope`, if there is one.
    fn get(&self, scope: &Scope, name: &str) -> anyhow::Result<Option<CredentialSpec>>;
}

/// Finds credential `name` as `customer` sees it (or, with `None`, at workspace scope only)
/// and loads its secrets. Searched in order: the customer's stored credentials, the customer's
/// in the workspace file, the workspace's stored credentials, the workspace's in the file.
pub fn find(
    ws: &weft_model::workspace::Workspace,
    stored: Option<&dyn StoredCredentials>,
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
        if let Some(stored) = stored
            && let Some(spec) = stored.get(&scope, name)?
        {
            return Credential::from_stored(&spec, name, scope.clone())
                .with_context(|| format!("stored credential `{name}` ({scope})"));
        }
        if let Some(spec) = in_file(&scope) {
            return Credential::load(spec, name, scope.clone(), ws.dir()).with_context(|| {
                format!("credential `{name}` ({scope}) in `{}`", ws.path.display())
            });
        }
    }
    let store_hint = if stored.is_some() {
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
