//! Integration and workspace files: parsing, validation and config var resolution.
//!
//! [`Workspace::load`] reads a workspace file and every integration it lists, checks them
//! together and returns either a workspace ready to run or every problem found, each naming
//! the file, flow, step and field and saying what would fix it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::code::CodeSource;
use crate::condition::Condition;
use crate::config::{self, ConfigProblem, ResolvedConfig};
use crate::control::{FlowLimits, StepKind};
use crate::grants::http::HttpGrant;
use crate::grants::s3::S3Grant;
use crate::limits::StepLimits;
use crate::manifest::Manifest;
use crate::spec::{self, CustomerSpec, InstanceSpec, IntegrationFile, WorkspaceFile};
use crate::template::Template;
use crate::validate;

/// A workspace that parsed and validated: ready to run.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The workspace file.
    pub path: PathBuf,
    /// What the workspace file says.
    pub file: WorkspaceFile,
    /// The integrations it lists, by name.
    pub integrations: BTreeMap<String, Arc<Integration>>,
    /// Each declared plugin's HTTP grant, parsed.
    pub grants: BTreeMap<String, Arc<HttpGrant>>,
    /// Each declared plugin's S3 grant, parsed.
    pub s3_grants: BTreeMap<String, Arc<S3Grant>>,
    /// The manifests of the plugins that have one, by the name steps use.
    pub manifests: BTreeMap<String, Arc<Manifest>>,
}

/// An integration that parsed and validated.
#[derive(Debug, Clone)]
pub struct Integration {
    /// The integration file.
    pub path: PathBuf,
    /// What the file says.
    pub spec: IntegrationFile,
    /// The flows with their templates compiled and limits parsed.
    pub flows: Vec<Flow>,
    /// The limits of its runs' flow control.
    pub limits: FlowLimits,
}

/// A flow ready to run.
#[derive(Debug, Clone)]
pub struct Flow {
    /// The flow's name.
    pub name: String,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

impl Flow {
    /// Every step of the flow, those inside loops and branches included, depth first.
    pub fn all_steps(&self) -> Vec<&Step> {
        fn walk<'s>(step: &'s Step, out: &mut Vec<&'s Step>) {
            out.push(step);
            let inner: Box<dyn Iterator<Item = &Step>> = match &step.kind {
                StepKind::Branch(branches) => {
                    Box::new(branches.iter().flat_map(|b| b.steps.iter()))
                }
                StepKind::Loop(l) => Box::new(l.steps.iter()),
                _ => Box::new(std::iter::empty()),
            };
            for s in inner {
                walk(s, out);
            }
        }
        let mut out = Vec::new();
        for step in &self.steps {
            walk(step, &mut out);
        }
        out
    }
}

/// A step ready to run.
#[derive(Debug, Clone)]
pub struct Step {
    /// The step's id.
    pub id: String,
    /// The plugin's name; for a flow-control step, its type (`loop`, `branch`, …).
    pub plugin: String,
    /// What kind of step it is.
    pub kind: StepKind,
    /// When false, the step is skipped.
    pub condition: Option<Condition>,
    /// Compiled input templates, in file order.
    pub inputs: Vec<(String, Template)>,
    /// The limits for this step: the engine's defaults with the step's overrides applied.
    pub limits: StepLimits,
    /// The credential bound in the integration file, if any.
    pub credential: Option<String>,
    /// When to try again after a retryable error.
    pub retry: Option<RetryPolicy>,
    /// What a failure does to the run.
    pub on_error: spec::OnError,
}

/// A step's retry policy, parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all.
    pub attempts: u32,
    /// The wait before the second attempt.
    pub delay: std::time::Duration,
    /// The factor between consecutive waits.
    pub backoff: f64,
    /// The longest wait.
    pub max_delay: std::time::Duration,
    /// Whether waits are randomised between half and all of their length.
    pub jitter: bool,
}

impl RetryPolicy {
    /// The most attempts a step may ask for.
    pub const MAX_ATTEMPTS: u32 = 20;

    /// The wait before attempt `attempt` (2 for the first retry). With jitter, `random` (in
    /// `0.0..=1.0`, drawn by the caller so this stays deterministic) picks where between half
    /// and all of the full wait it falls.
    pub fn delay_before(&self, attempt: u32, random: f64) -> std::time::Duration {
        let exponent = attempt.saturating_sub(2) as i32;
        let full = self.delay.as_secs_f64() * self.backoff.powi(exponent);
        let full = full.min(self.max_delay.as_secs_f64()).max(0.0);
        let wait = if self.jitter {
            full * (0.5 + random.clamp(0.0, 1.0) / 2.0)
        } else {
            full
        };
        std::time::Duration::from_secs_f64(wait)
    }
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginSource {
    /// Shipped inside the `weft` binary.
    Builtin(String),
    /// A `.wasm` file.
    File(PathBuf),
    /// An `http(s)` URL, fetched once into the store and pinned by its SHA-256 (a URL source
    /// without a pin does not validate).
    Url {
        /// Where to fetch it.
        url: String,
        /// The digest it must have.
        sha256: String,
    },
    /// A code step's source, built into a component by the engine.
    Code(Arc<CodeSource>),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::Builtin(name) => write!(f, "builtin:{name}"),
            PluginSource::File(path) => write!(f, "{}", path.display()),
            PluginSource::Url { url, .. } => f.write_str(url),
            PluginSource::Code(code) => write!(f, "the code of step `{}`", code.step),
        }
    }
}

/// One problem found while loading or validating: where it is and what would fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// Where in the file, outermost first: ``flow `sync` ``, ``step `save` ``, ``field `inputs.url` ``.
    pub location: Vec<String>,
    /// What is wrong and what would fix it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        for part in &self.location {
            write!(f, ", {part}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a workspace; it does not run until all are fixed.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ValidationErrors(pub Vec<Diagnostic>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{} found", if n == 1 { "" } else { "s" })?;
        for d in &self.0 {
            write!(f, "\n  - {d}")?;
        }
        Ok(())
    }
}

impl Workspace {
    /// Reads and validates the workspace file at `path` and the integrations it lists.
    pub fn load(path: &Path) -> Result<Workspace, ValidationErrors> {
        validate::load(path)
    }

    /// Checks a workspace whose files were already read (from the store, say): `path` is where
    /// the workspace file is, so relative paths in it resolve; `integrations` are the integration
    /// files, each with its own path.
    pub fn from_parts(
        path: &Path,
        file: WorkspaceFile,
        integrations: Vec<(PathBuf, IntegrationFile)>,
    ) -> Result<Workspace, ValidationErrors> {
        validate::build(path, file, integrations)
    }

    /// The directory relative paths in the workspace file are resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The instance with id `id`.
    pub fn instance(&self, id: &str) -> Option<&InstanceSpec> {
        self.file.instances.iter().find(|i| i.id == id)
    }

    /// The customer with id `id`.
    pub fn customer(&self, id: &str) -> Option<&CustomerSpec> {
        self.file.customers.iter().find(|c| c.id == id)
    }

    /// Where plugin `name` comes from: the workspace's `[plugins]` entry, or a built-in plugin
    /// of that name.
    pub fn plugin_source(&self, name: &str) -> Option<PluginSource> {
        plugin_source(&self.file, self.dir(), name)
    }

    /// The name of the workspace (for binding stored credentials to it); `default` if unnamed.
    pub fn name(&self) -> &str {
        self.file.workspace.name.as_deref().unwrap_or("default")
    }

    /// The HTTP grant of plugin `name`: what its `[plugins.NAME] http` entry allows.
    pub fn http_grant(&self, name: &str) -> Arc<HttpGrant> {
        self.grants.get(name).cloned().unwrap_or_default()
    }

    /// The manifest of plugin `name`, if it has one.
    pub fn manifest(&self, name: &str) -> Option<&Arc<Manifest>> {
        self.manifests.get(name)
    }

    /// How many steps of plugin `name` may execute at once, if its policy says.
    pub fn plugin_concurrency(&self, name: &str) -> Option<u32> {
        self.file.plugins.get(name)?.limits.as_ref()?.concurrency
    }

    /// The S3 grant of plugin `name`, if its `[plugins.NAME]` entry has one.
    pub fn s3_grant(&self, name: &str) -> Option<Arc<S3Grant>> {
        self.s3_grants.get(name).cloned()
    }

    /// Resolves the config vars of `instance`: instance value, then customer var, then
    /// workspace var, then the integration's default.
    pub fn resolve_config(
        &self,
        instance: &InstanceSpec,
    ) -> Result<ResolvedConfig, Vec<ConfigProblem>> {
        let integration = self
            .integrations
            .get(&instance.integration)
            .ok_or_else(|| {
                vec![ConfigProblem::Other(format!(
                    "instance `{}` uses integration `{}`, which the workspace does not list",
                    instance.id, instance.integration
                ))]
            })?;
        let customer = self.customer(&instance.customer).ok_or_else(|| {
            vec![ConfigProblem::Other(format!(
                "instance `{}` belongs to customer `{}`, which the workspace does not list",
                instance.id, instance.customer
            ))]
        })?;
        config::resolve(&integration.spec, &self.file.config, customer, instance)
    }
}

pub(crate) fn plugin_source(file: &WorkspaceFile, dir: &Path, name: &str) -> Option<PluginSource> {
    match file.plugins.get(name) {
        Some(spec) if spec.code.is_some() => spec.code.clone().map(PluginSource::Code),
        Some(spec) => Some(match spec.source.strip_prefix("builtin:") {
            Some(builtin) => PluginSource::Builtin(builtin.to_string()),
            None if spec.source.starts_with("https://") || spec.source.starts_with("http://") => {
                PluginSource::Url {
                    url: spec.source.clone(),
                    sha256: spec.sha256.clone().unwrap_or_default().to_ascii_lowercase(),
                }
            }
            None => PluginSource::File(dir.join(&spec.source)),
        }),
        None => crate::builtin::is_builtin(name).then(|| PluginSource::Builtin(name.to_string())),
    }
}
