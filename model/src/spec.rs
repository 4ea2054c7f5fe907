//! The shapes of the integration file and the workspace file, as written by users.
//!
//! TOML and JSON of the same shape are both accepted; unknown keys are errors so that a typo
//! (`plugn = …`) is caught instead of silently ignored.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::credential::CredentialSpec;

mod config_var;
mod flow;
mod marketplace;

pub use config_var::{ConfigVarSpec, PickOption, VarKind};
pub use marketplace::{
    ConnectionKind, ConnectionSpec, EmbedSpec, MarketplaceSpec, PageSpec, ThemeSpec,
    connection_credential, connection_of, marketplace_strings,
};

pub use flow::{
    BranchSpec, ConcurrencyMode, ConcurrencySpec, FlowLimitsSpec, FlowSpec, LimitsSpec, OnError,
    OnItemError, RetrySpec, StepSpec, StopStatus, WebhookSpec,
};

/// An integration: the config vars it needs and its flows (`integration.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationFile {
    /// The integration's name, unique in the workspace; instances refer to it.
    pub name: String,
    /// The version of this definition.
    #[serde(default = "one")]
    pub version: u32,
    /// What the integration does, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// The config vars the integration reads, by name.
    #[serde(default)]
    pub config_vars: BTreeMap<String, ConfigVarSpec>,
    /// The flows; the first is the default for `weft run`.
    #[serde(default)]
    pub flows: Vec<FlowSpec>,
    /// Flow-control limits for this integration's runs.
    #[serde(default)]
    pub limits: FlowLimitsSpec,
    /// How the integration is offered to customers in the embedded marketplace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace: Option<MarketplaceSpec>,
    /// The accounts a customer connects (API keys, basic, bearer), by the credential name
    /// steps use: a self-service instance's steps use the customer's connection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connections: BTreeMap<String, ConnectionSpec>,
}

fn one() -> u32 {
    1
}

/// A workspace: plugins, org-level config vars, integrations, customers and instances
/// (`weft.toml`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceFile {
    /// About the workspace itself.
    #[serde(default)]
    pub workspace: WorkspaceMeta,
    /// Plugins by the name steps use.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginSpec>,
    /// Workspace-level (organization) config var values.
    #[serde(default)]
    pub config: Map<String, Json>,
    /// Paths of integration files, relative to the workspace file.
    #[serde(default)]
    pub integrations: Vec<String>,
    /// The workspace's customers.
    #[serde(default)]
    pub customers: Vec<CustomerSpec>,
    /// Integrations deployed to customers.
    #[serde(default)]
    pub instances: Vec<InstanceSpec>,
    /// Workspace-level credentials by name; secret fields are `env:NAME` or `file:PATH`.
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialSpec>,
    /// How `weft serve` authenticates apps' customers and admins.
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// The most any integration may set its flow-control limits to.
    #[serde(default)]
    pub limits: FlowLimitsSpec,
    /// What code steps (inline code in integration files) may be granted; without it they get
    /// config vars and the log only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodePolicySpec>,
    /// How apps embed the marketplace: the origins allowed to frame it, its theme and strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<EmbedSpec>,
}

/// The `[code]` policy: the most any code step may be granted. A step gets what it asks for in
/// its `capabilities`, each within what this allows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodePolicySpec {
    /// The origins code steps may reach over HTTP, and the address checks, as a plugin's grant.
    #[serde(default)]
    pub http: Option<HttpGrantSpec>,
    /// The buckets (and S3-compatible endpoints) code steps may write to.
    #[serde(default)]
    pub s3: Option<S3GrantSpec>,
    /// Let code steps keep persisted state.
    #[serde(default)]
    pub state: bool,
    /// Limits for every code step: the defaults and the most a step may ask for.
    #[serde(default)]
    pub limits: Option<PluginLimitsSpec>,
}

/// The `[auth]` table: the workspace key and secret (or public key) embedding apps sign their
/// JWTs with, and the app secret for HMAC user hashes. Secrets are `env:NAME` or `file:PATH`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// The workspace key: the `iss` every token must carry, and the app key of user hashes.
    pub key: String,
    /// The workspace secret for HS256 / HS512 tokens.
    #[serde(default)]
    pub secret: Option<String>,
    /// A PEM public key for RS256/384/512, PS256, ES256/384 tokens (instead of `secret`).
    #[serde(default)]
    pub public_key: Option<String>,
    /// The algorithms accepted (default `["HS256"]` with a secret, `["RS256"]` with a key).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// The app secret of HMAC-SHA256 user hashes; without it user hashes are refused.
    #[serde(default)]
    pub user_hash_secret: Option<String>,
    /// The audience tokens must name in `aud`. Without it, a token that has `aud` is refused
    /// (it was meant for another audience).
    #[serde(default)]
    pub audience: Option<String>,
}

/// The `[workspace]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceMeta {
    /// The workspace's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Where a plugin comes from and what it is granted.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// A path to a `.wasm` component relative to the workspace file, `builtin:NAME` for a
    /// plugin shipped inside the `weft` binary, or an `http(s)` URL (which must be pinned with
    /// `sha256`).
    pub source: String,
    /// What the plugin may reach over HTTP; without it, a plugin that imports `weft:step/http`
    /// is refused at load.
    #[serde(default)]
    pub http: Option<HttpGrantSpec>,
    /// What the plugin may write to S3; without it, a plugin that imports `weft:step/s3` is
    /// refused at load.
    #[serde(default)]
    pub s3: Option<S3GrantSpec>,
    /// The SHA-256 the component must have (64 hex digits); a file that differs is refused.
    /// `weft plugins add FILE.wasm` prints it.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Let the plugin keep persisted state (`weft:step/state`).
    #[serde(default)]
    pub state: bool,
    /// Limits for every step of this plugin: the defaults for its steps and the most any of
    /// them may ask for.
    #[serde(default)]
    pub limits: Option<PluginLimitsSpec>,
    /// For the plugin of a code step (made by validation, never read from a file): its code.
    #[serde(skip)]
    pub code: Option<std::sync::Arc<crate::code::CodeSource>>,
}

/// A plugin's limits in its policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimitsSpec {
    /// Wall-clock time for one execution.
    #[serde(default)]
    pub time: Option<String>,
    /// Linear memory.
    #[serde(default)]
    pub memory: Option<String>,
    /// Size of a step's result.
    #[serde(default)]
    pub output: Option<String>,
    /// How many of its steps may execute at once, across all runs (default: no limit but the
    /// engine's).
    #[serde(default)]
    pub concurrency: Option<u32>,
}

/// A plugin's S3 grant: `s3 = { buckets = ["avatars"] }`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3GrantSpec {
    /// Buckets it may write to: `avatars` (any key), `exports/reports/` (keys under that
    /// prefix), `*` (any bucket).
    #[serde(default)]
    pub buckets: Vec<String>,
    /// Endpoints of S3-compatible stores it may use, as origins (`http://127.0.0.1:9000`,
    /// `https://*.r2.cloudflarestorage.com`); Amazon S3 itself needs none.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Allow loopback addresses (127.0.0.0/8, ::1). For tests and local demos.
    #[serde(default)]
    pub allow_loopback: bool,
    /// Allow private, shared (CGNAT), link-local and unique-local addresses (a MinIO on the
    /// local network).
    #[serde(default)]
    pub allow_private: bool,
}

/// A plugin's HTTP grant: `http = { allow = ["https://pokeapi.co"] }`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGrantSpec {
    /// Origins it may reach: `https://api.example.com`, `https://*.example.com:8443`,
    /// `http://127.0.0.1:*`, `https://*` (any host, still subject to the address checks).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Allow loopback addresses (127.0.0.0/8, ::1). For tests and local demos.
    #[serde(default)]
    pub allow_loopback: bool,
    /// Allow private, shared (CGNAT), link-local and unique-local addresses.
    #[serde(default)]
    pub allow_private: bool,
    /// Allow cloud metadata addresses (169.254.169.254 and the like).
    #[serde(default)]
    pub allow_metadata: bool,
    /// The largest response body (default `10 MiB`).
    #[serde(default)]
    pub max_response: Option<String>,
}

/// A customer of the workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSpec {
    /// The customer's id, unique in the workspace.
    pub id: String,
    /// The customer's display name.
    pub name: String,
    /// Free-form attributes.
    #[serde(default)]
    pub fields: Map<String, Json>,
    /// Customer-level config var values.
    #[serde(default)]
    pub config: Map<String, Json>,
    /// Customer-level credentials by name; they win over workspace credentials of that name.
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialSpec>,
}

/// An integration deployed for one customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// The instance's id, unique in the workspace.
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The customer's id.
    pub customer: String,
    /// The integration's name.
    pub integration: String,
    /// Instance-level config var values; these win over every other level.
    #[serde(default)]
    pub config: Map<String, Json>,
    /// A disabled instance does not run.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Credential bindings by step id, overriding the steps' own `credential`.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// The credential each of the integration's `[connections]` is for this instance, by
    /// connection name: steps with `credential = NAME` use it instead (after a binding by step
    /// id). A marketplace instance gets `NAME` → `NAME@INSTANCE`, the account its customer
    /// connected, so it never falls back to a workspace credential of the same name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connections: BTreeMap<String, String>,
    /// The secret webhook calls to this instance are signed with (`env:NAME` or `file:PATH`):
    /// `weft serve` then requires every webhook request to carry `X-Weft-Timestamp` (Unix
    /// seconds, within 300 s) and `X-Weft-Signature: sha256=<hex HMAC-SHA256 of
    /// "<timestamp>.<body>">`, and also serves the flows at `/webhooks/{instance}/{flow}`.
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

fn yes() -> bool {
    true
}

/// Reads a TOML file, or a JSON file when the name ends in `.json`.
pub fn read_file<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    parse_text(path, &text)
}

/// Parses `text` as TOML, or JSON when `path` ends in `.json`.
pub fn parse_text<T: DeserializeOwned>(path: &Path, text: &str) -> anyhow::Result<T> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        serde_json::from_str(text)
            .with_context(|| format!("`{}` is not a valid file", path.display()))
    } else {
        toml::from_str(text).map_err(|e| {
            // toml's message already points at the line and column with a caret.
            anyhow::anyhow!(
                "`{}` is not a valid file: {}",
                path.display(),
                e.to_string().trim_end()
            )
        })
    }
}
