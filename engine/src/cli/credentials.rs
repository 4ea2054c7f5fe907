//! `weft credentials …`: set, list, delete and test credentials.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::json;

use weft::host::http::{HttpClients, HttpContext, check_request};
use weft::secrets;
use weft::secrets::MasterKey;
use weft::store::Store;
use weft::store::vault::Vault;
use weft_model::credential::{CredentialSpec, Kind, Scope, TestRequest};
use weft_model::grants::http::HttpGrant;
use weft_model::grants::http::{AddressPolicy, HostPattern};

use super::{load_workspace, runtime, store_location};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store a credential encrypted (replacing one of the same name and scope).
    ///
    /// Secret fields take `env:VAR`, `file:PATH` or `-` (one line from standard input), so that
    /// secrets stay out of shell history: `--field token=env:GITHUB_TOKEN`.
    Set {
        /// The credential's name, as steps bind it.
        name: String,
        /// The workspace file.
        #[arg(long, short)]
        workspace: PathBuf,
        /// api-key-secret, api-key, basic, bearer or jwt-bearer.
        #[arg(long)]
        kind: String,
        /// Store it for this customer only (default: the whole workspace).
        #[arg(long)]
        customer: Option<String>,
        /// A field: `key=…`, `secret=env:VAR`, `password=-`, `algorithm=RS256`, …
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
        /// An origin the credential may be sent to (repeatable).
        #[arg(long = "host", value_name = "ORIGIN")]
        hosts: Vec<String>,
        /// The JWT payload, as JSON (jwt-bearer).
        #[arg(long, value_name = "JSON")]
        payload: Option<String>,
        /// Extra JWT headers, as JSON (jwt-bearer): `{"kid":"key-1"}`.
        #[arg(long, value_name = "JSON")]
        jwt_headers: Option<String>,
        /// The URL `weft credentials test` requests.
        #[arg(long, value_name = "URL")]
        test_url: Option<String>,
    },
    /// List credentials (names, kinds, scopes and hosts; never secrets).
    List {
        /// The workspace file.
        #[arg(long, short)]
        workspace: PathBuf,
    },
    /// Delete a stored credential.
    Delete {
        /// The credential's name.
        name: String,
        /// The workspace file.
        #[arg(long, short)]
        workspace: PathBuf,
        /// The customer it belongs to (default: the workspace).
        #[arg(long)]
        customer: Option<String>,
    },
    /// Send the credential's test request and report the answer, like a "Test connection"
    /// button.
    Test {
        /// The credential's name.
        name: String,
        /// The workspace file.
        #[arg(long, short)]
        workspace: PathBuf,
        /// Look for the credential as this customer sees it.
        #[arg(long)]
        customer: Option<String>,
        /// Allow the test URL to be a loopback address (a local service).
        #[arg(long)]
        allow_loopback: bool,
        /// Allow the test URL to be a private-network address.
        #[arg(long)]
        allow_private: bool,
    },
    /// Print a new random master key (for `WEFT_MASTER_KEY`).
    NewKey,
}

fn parse_kind(text: &str) -> anyhow::Result<Kind> {
    match serde_json::from_value(json!(text)) {
        Ok(Kind::Oauth2) => Err(anyhow::anyhow!(
            "an `oauth2` credential is made by a customer connecting in the marketplace; declare the provider under `[connections.NAME]` in the integration file"
        )),
        Ok(kind) => Ok(kind),
        Err(_) => Err(anyhow::anyhow!(
            "unknown credential kind `{text}`; use api-key-secret, api-key, basic, bearer or jwt-bearer"
        )),
    }
}

fn scope(customer: Option<String>) -> Scope {
    customer.map(Scope::Customer).unwrap_or(Scope::Workspace)
}

/// The vault of the workspace's store, when a master key is configured; an error only when a
/// key is configured but wrong or unreadable.
pub fn open_vault_if_configured(
    store: &Store,
    workspace: &str,
) -> anyhow::Result<Option<Arc<Vault>>> {
    if std::env::var_os("WEFT_MASTER_KEY").is_none()
        && std::env::var_os("WEFT_MASTER_KEY_FILE").is_none()
    {
        return Ok(None);
    }
    let key = MasterKey::from_env(store.local_dir())?;
    Ok(Some(Arc::new(Vault::open(store, workspace, key)?)))
}

fn open_vault(
    store_override: Option<&str>,
    workspace: &Path,
    ws_name: &str,
) -> anyhow::Result<Vault> {
    let location = store_location(store_override, Some(workspace));
    // Check the key before opening (and so creating) anything.
    let key = MasterKey::from_env(location.local_dir())?;
    let store = Store::open(&location)?;
    Vault::open(&store, ws_name, key)
}

pub fn main(command: Command, store_override: Option<&str>) -> anyhow::Result<ExitCode> {
    match command {
        Command::NewKey => {
            println!("{}", MasterKey::generate());
            Ok(ExitCode::SUCCESS)
        }
        Command::Set {
            name,
            workspace,
            kind,
            customer,
            fields,
            hosts,
            payload,
            jwt_headers,
            test_url,
        } => {
            let ws = load_workspace(&workspace)?;
            if let Some(id) = &customer
                && ws.customer(id).is_none()
            {
                bail!("unknown customer `{id}` in `{}`", workspace.display());
            }
            let kind = parse_kind(&kind)?;
            let mut spec = CredentialSpec {
                kind,
                hosts,
                test: test_url.map(|url| TestRequest {
                    method: "GET".into(),
                    url,
                }),
                payload: payload
                    .map(|p| serde_json::from_str(&p).context("`--payload` is not a JSON object"))
                    .transpose()?,
                jwt_headers: jwt_headers
                    .map(|h| {
                        serde_json::from_str(&h).context("`--jwt-headers` is not a JSON object")
                    })
                    .transpose()?,
                ..CredentialSpec::empty(kind)
            };
            let mut stdin_used = false;
            for field in fields {
                let (field_name, value) = field
                    .split_once('=')
                    .with_context(|| format!("`--field {field}` must look like NAME=VALUE"))?;
                let secret = kind.secret_fields().contains(&field_name);
                let value = if value == "-" {
                    if stdin_used {
                        bail!("only one field can be read from standard input");
                    }
                    stdin_used = true;
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\n', '\r']).to_string()
                } else if let Some(var) = value.strip_prefix("env:") {
                    std::env::var(var)
                        .with_context(|| format!("environment variable `{var}` is not set"))?
                } else if let Some(path) = value.strip_prefix("file:") {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("failed to read `{path}`"))?
                        .trim_end_matches(['\n', '\r'])
                        .to_string()
                } else if secret {
                    bail!(
                        "field `{field_name}` is secret: pass it as `env:VAR`, `file:PATH` or `-` (standard input), not on the command line"
                    );
                } else {
                    value.to_string()
                };
                spec.set_field(field_name, value)?;
            }
            // Resolving checks the shape and the keys (a PEM that is not a key fails here).
            secrets::Credential::from_stored(&spec, &name, scope(customer.clone()))?;
            let vault = open_vault(store_override, &workspace, ws.name())?;
            let scope = scope(customer);
            vault.put(&scope, &name, &spec)?;
            println!(
                "Stored credential `{name}` ({}, {scope}), encrypted.",
                kind.name()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::List { workspace } => {
            let ws = load_workspace(&workspace)?;
            let mut rows = Vec::new();
            for (name, spec) in &ws.file.credentials {
                rows.push((
                    name.clone(),
                    "workspace".to_string(),
                    spec.kind.name(),
                    spec.hosts.join(" "),
                    "weft.toml",
                ));
            }
            for customer in &ws.file.customers {
                for (name, spec) in &customer.credentials {
                    rows.push((
                        name.clone(),
                        format!("customer {}", customer.id),
                        spec.kind.name(),
                        spec.hosts.join(" "),
                        "weft.toml",
                    ));
                }
            }
            match std::env::var_os("WEFT_MASTER_KEY").or(std::env::var_os("WEFT_MASTER_KEY_FILE")) {
                Some(_) => {
                    let vault = open_vault(store_override, &workspace, ws.name())?;
                    for stored in vault.list()? {
                        if let Some(spec) = vault.get(&stored.scope, &stored.name)? {
                            let scope = match &stored.scope {
                                Scope::Workspace => "workspace".to_string(),
                                Scope::Customer(id) => format!("customer {id}"),
                            };
                            rows.push((
                                stored.name,
                                scope,
                                spec.kind.name(),
                                spec.hosts.join(" "),
                                "store",
                            ));
                        }
                    }
                }
                None => eprintln!(
                    "(stored credentials not listed: set WEFT_MASTER_KEY to include them)"
                ),
            }
            if rows.is_empty() {
                println!("No credentials.");
            } else {
                println!(
                    "{:<20}  {:<22}  {:<15}  {:<9}  HOSTS",
                    "NAME", "SCOPE", "KIND", "SOURCE"
                );
                for (name, scope, kind, hosts, source) in rows {
                    println!("{name:<20}  {scope:<22}  {kind:<15}  {source:<9}  {hosts}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Delete {
            name,
            workspace,
            customer,
        } => {
            let ws = load_workspace(&workspace)?;
            let vault = open_vault(store_override, &workspace, ws.name())?;
            let scope = scope(customer);
            if !vault.delete(&scope, &name)? {
                bail!("no stored credential `{name}` ({scope})");
            }
            println!("Deleted credential `{name}` ({scope}).");
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            name,
            workspace,
            customer,
            allow_loopback,
            allow_private,
        } => {
            let ws = load_workspace(&workspace)?;
            let location = store_location(store_override, Some(&workspace));
            let vault = if location.exists() {
                open_vault_if_configured(&Store::open(&location)?, ws.name())?
            } else {
                None
            };
            let credential = secrets::find(
                &ws,
                vault.as_deref().map(|v| v as _),
                customer.as_deref(),
                &name,
            )?;
            let Some(test) = credential.test.clone() else {
                bail!(
                    "credential `{name}` has no test request; add `test = {{ url = \"https://…\" }}` (or `--test-url` when setting it)"
                );
            };
            let mut allow = credential.hosts.clone();
            if allow.is_empty() {
                let url = url::Url::parse(&test.url)
                    .with_context(|| format!("`{}` is not a URL", test.url))?;
                let origin = format!(
                    "{}://{}:{}",
                    url.scheme(),
                    url.host_str().unwrap_or_default(),
                    url.port_or_known_default().unwrap_or_default()
                );
                allow.push(HostPattern::parse(&origin).map_err(anyhow::Error::msg)?);
            }
            let ctx = HttpContext {
                plugin: "weft credentials test".into(),
                step: name.clone(),
                grant: Arc::new(HttpGrant {
                    allow,
                    addresses: AddressPolicy {
                        allow_loopback,
                        allow_private,
                        allow_metadata: false,
                    },
                    max_response: 1 << 20,
                }),
                credential: Some(Arc::new(credential)),
                template_context: Arc::new(
                    json!({ "customer": { "id": customer }, "config": {}, "instance": {} }),
                ),
                clients: Arc::new(HttpClients::default()),
                idempotency_key: None,
            };
            let result = runtime()?.block_on(check_request(
                &ctx,
                &test.method,
                &test.url,
                Duration::from_secs(30),
            ));
            match result {
                Ok((status, _)) if (200..300).contains(&status) => {
                    println!(
                        "Credential `{name}` works: {} {} answered {status}.",
                        test.method, test.url
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Ok((status, body)) => {
                    let start: String = String::from_utf8_lossy(&body).chars().take(300).collect();
                    eprintln!(
                        "error: credential `{name}` was refused: {} {} answered {status}: {}",
                        test.method,
                        test.url,
                        start.trim()
                    );
                    Ok(ExitCode::FAILURE)
                }
                Err(message) => {
                    eprintln!("error: credential `{name}` could not be tested: {message}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
