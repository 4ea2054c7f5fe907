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
}

fn one() -> u32 {
    1
}

/// The type of a config var's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VarKind {
    /// Text (the default).
    #[default]
    String,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// Any JSON value.
    Json,
}

impl VarKind {
    /// The name used in files and messages.
    pub fn name(self) -> &'static str {
        match self {
            VarKind::String => "string",
            VarKind::Number => "number",
            VarKind::Boolean => "boolean",
            VarKind::Json => "json",
        }
    }

    /// Whether `value` has this type.
    pub fn accepts(self, value: &Json) -> bool {
        match self {
            VarKind::String => value.is_string(),
            VarKind::Number => value.is_number(),
            VarKind::Boolean => value.is_boolean(),
            VarKind::Json => true,
        }
    }
}

/// A config var an integration declares.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigVarSpec {
    /// The value's type.
    #[serde(rename = "type", default)]
    pub kind: VarKind,
    /// A run stops before any step when a required var has no value at any level.
    #[serde(default)]
    pub required: bool,
    /// The value used when no instance, customer or workspace value is set.
    #[serde(default)]
    pub default: Option<Json>,
    /// Secret values are redacted from run records and logs.
    #[serde(default)]
    pub secret: bool,
    /// What the var is for, for people.
    #[serde(default)]
    pub description: Option<String>,
}

/// A flow: a trigger and the steps that run, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// The flow's name, unique in the integration.
    pub name: String,
    /// What the flow does, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// What starts the flow under `weft serve`: `{ schedule = "CRON", timezone = "Area/City",
    /// overlap = false }` for a schedule; anything else (or nothing) means webhooks and API
    /// calls only. Runs from the CLI are manual whatever this says.
    #[serde(default)]
    pub trigger: Option<Json>,
    /// How many runs of this flow, per instance, `weft serve` lets go at once.
    #[serde(default)]
    pub concurrency: Option<ConcurrencySpec>,
    /// How `weft serve` answers the flow's webhook.
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
    /// The steps, run in order.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
}

/// How many runs of a flow, per instance, may go at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySpec {
    /// `parallel` (no limit, the default), `throttled` (at most `limit` at once) or `fifo`
    /// (one at a time, in arrival order).
    #[serde(default)]
    pub mode: ConcurrencyMode,
    /// The most runs at once for `throttled`.
    #[serde(default)]
    pub limit: Option<u32>,
    /// The most runs waiting for their turn; one more is refused (HTTP 429). Default 1000.
    #[serde(default)]
    pub queue: Option<u32>,
}

/// See [`ConcurrencySpec::mode`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConcurrencyMode {
    /// No limit.
    #[default]
    Parallel,
    /// At most `limit` at once.
    Throttled,
    /// One at a time, first come first served.
    Fifo,
}

/// How a flow's webhook answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Answer when the run ends instead of at once with 202 (a caller may also ask with
    /// `?wait=true`).
    #[serde(default)]
    pub sync: bool,
    /// The step whose result is the response: `{ status, headers, body }`, or any other value
    /// as a JSON body with status 200. Default: the last step.
    #[serde(default)]
    pub response_step: Option<String>,
}

/// A step of a flow: a plugin step (`plugin`) or a flow-control step (`type`), never both.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The step's id, unique in the flow; later steps reach its result as `steps.<id>.results`.
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The plugin that runs the step: a name from the workspace's `[plugins]` or a built-in one.
    #[serde(default)]
    pub plugin: Option<String>,
    /// A flow-control step instead of a plugin: `branch`, `loop`, `stop` or `call`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// A condition (CEL); when it is false the step is skipped: recorded `skipped`, result
    /// `null`.
    #[serde(rename = "if", default)]
    pub condition: Option<String>,
    /// The step's inputs; strings may hold `{{ … }}` references. For a `call` step, what the
    /// called flow sees as `trigger`.
    #[serde(default)]
    pub inputs: Map<String, Json>,
    /// The name of the credential the host applies to this step's requests; an instance may
    /// bind another with `credentials = { <step id> = "<name>" }`.
    #[serde(default)]
    pub credential: Option<String>,
    /// Shorthand for `limits.time`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Per-step limits, overriding the engine's defaults.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Run the step again when it fails with an error it marks retryable.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// What a failure of this step does to the run.
    #[serde(default)]
    pub on_error: OnError,
    /// `branch`: the branches, tried in order; the first whose `when` is true runs.
    #[serde(default)]
    pub branches: Vec<BranchSpec>,
    /// `loop`: iterate over this array (a `{{ … }}` reference).
    #[serde(default)]
    pub items: Option<Json>,
    /// `loop`: iterate this many times.
    #[serde(default)]
    pub count: Option<u64>,
    /// `loop`: iterate while this condition holds (checked before each iteration; needs
    /// `max_iterations`).
    #[serde(rename = "while", default)]
    pub while_condition: Option<String>,
    /// `loop`: the most iterations; more fails the run.
    #[serde(default)]
    pub max_iterations: Option<u64>,
    /// `loop`: how many iterations run at once (default 1: one after another).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// `loop`: what a failed iteration does.
    #[serde(default)]
    pub on_item_error: Option<OnItemError>,
    /// `loop`: a condition checked after each iteration; true ends the loop.
    #[serde(default)]
    pub break_if: Option<String>,
    /// `loop`: a name for the item that loops inside this one can use.
    #[serde(rename = "as", default)]
    pub alias: Option<String>,
    /// `loop`: the steps of each iteration.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
    /// `stop`: how the run ends (default `succeeded`).
    #[serde(default)]
    pub status: Option<StopStatus>,
    /// `stop`: the run's result (may hold `{{ … }}`); for a sync webhook, `{ status, headers,
    /// body }` answers it.
    #[serde(default)]
    pub result: Option<Json>,
    /// `stop` with `status = "failed"`: the run's error.
    #[serde(default)]
    pub message: Option<String>,
    /// `call`: the flow of the same integration to run.
    #[serde(default)]
    pub flow: Option<String>,
}

impl StepSpec {
    /// This step and every step inside it (a loop's, a branch's), depth first.
    pub fn walk(&self) -> Vec<&StepSpec> {
        let mut out = vec![self];
        for inner in self
            .steps
            .iter()
            .chain(self.branches.iter().flat_map(|b| b.steps.iter()))
        {
            out.extend(inner.walk());
        }
        out
    }
}

impl FlowSpec {
    /// Every step of the flow, those inside loops and branches included, depth first.
    pub fn all_steps(&self) -> Vec<&StepSpec> {
        self.steps.iter().flat_map(StepSpec::walk).collect()
    }
}

/// One branch of a `branch` step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchSpec {
    /// The branch's name: `steps.<branch step>.branch` after it ran.
    pub name: String,
    /// A condition (CEL); a branch without one is the else branch and must come last.
    #[serde(default)]
    pub when: Option<String>,
    /// The branch's steps.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
}

/// What a failed iteration of a loop does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnItemError {
    /// The loop stops and fails (the default); iterations already running finish first.
    #[default]
    Fail,
    /// The loop goes on; the failures are listed in `steps.<loop>.errors` and the run ends
    /// `succeeded_with_errors`.
    Continue,
}

/// How a `stop` step ends its run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopStatus {
    /// The run succeeded.
    #[default]
    Succeeded,
    /// The run failed.
    Failed,
}

/// Flow-control limits: `[limits]` in an integration file (capped by `[limits]` in the
/// workspace file).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLimitsSpec {
    /// The most iterations of one loop (default 10,000).
    #[serde(default)]
    pub iterations: Option<u64>,
    /// The most step executions in one run, every iteration's counted (default 100,000).
    #[serde(default)]
    pub step_executions: Option<u64>,
    /// How deeply loops and branches may nest (default 8).
    #[serde(default)]
    pub depth: Option<u32>,
    /// How deeply `call` steps may call flows (default 8).
    #[serde(default)]
    pub call_depth: Option<u32>,
    /// The longest a run may take, like `"15m"` (default: no limit).
    #[serde(default)]
    pub run_time: Option<String>,
}

/// `retry = { attempts = 3, delay = "1s", backoff = 2.0, max_delay = "30s", jitter = true }`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included (default 3, at most 20).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// The wait before the second attempt (default `1s`).
    #[serde(default)]
    pub delay: Option<String>,
    /// What each wait is multiplied by for the next (default 2).
    #[serde(default)]
    pub backoff: Option<f64>,
    /// The longest wait (default `30s`).
    #[serde(default)]
    pub max_delay: Option<String>,
    /// Wait a random time between half the delay and the delay, so that many runs failing
    /// together do not retry together (default true).
    #[serde(default)]
    pub jitter: Option<bool>,
}

/// What a step's failure does to its run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The run stops and fails (the default).
    #[default]
    Fail,
    /// The run goes on with the next step; it ends `succeeded_with_errors`. Later steps that
    /// refer to this step's results fail, since it has none.
    Continue,
}

/// Limits written in a file: `time = "5s"`, `memory = "64 MiB"`, `output = "1 MiB"`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Wall-clock time for one execution of the step.
    #[serde(default)]
    pub time: Option<String>,
    /// Linear memory the step may grow to.
    #[serde(default)]
    pub memory: Option<String>,
    /// Size of the step's result.
    #[serde(default)]
    pub output: Option<String>,
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
