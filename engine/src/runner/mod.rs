//! Running a flow: resolve config, load plugins, render each step's inputs, execute, record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};

use anyhow::Context as _;

use crate::credentials::{Credential, vault::Vault};
use crate::host::config::ConfigVars;
use crate::host::http::HttpContext;
use crate::host::s3::S3Context;
use crate::integration::template::{Path as RefPath, RenderError, walk};
use crate::integration::{Flow, ResolvedConfig, Workspace};
use crate::plugin::{Plugin, PluginHost, StepCall, StepFailure};
use crate::redact::Redactor;
use crate::store::{RunRecord, RunStore, RunWithSteps, Status, StepRecord};
use crate::value::{RecordedValue, Val};

/// Why a run could not start at all (nothing is recorded for these).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No instance with that id.
    #[error("unknown instance `{instance}`; the workspace has {known}")]
    UnknownInstance {
        /// The id asked for.
        instance: String,
        /// The ids there are, worded.
        known: String,
    },
    /// The instance's integration has no flow of that name.
    #[error("integration `{integration}` has no flow `{flow}`; its flows are {known}")]
    UnknownFlow {
        /// The integration.
        integration: String,
        /// The flow asked for.
        flow: String,
        /// The flows there are, worded.
        known: String,
    },
    /// The instance is disabled.
    #[error("instance `{0}` is disabled; set `enabled = true` to run it")]
    Disabled(String),
    /// The store failed.
    #[error("failed to record the run")]
    Store(#[source] anyhow::Error),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest<'a> {
    /// The workspace the instance is in.
    pub workspace: &'a Workspace,
    /// The instance's id.
    pub instance: &'a str,
    /// The flow's name; the integration's first flow when `None`.
    pub flow: Option<&'a str>,
    /// What the trigger passed in (`{{ trigger.… }}`).
    pub trigger: Json,
}

/// Runs flows and records them.
#[derive(Clone)]
pub struct Runner {
    host: Arc<PluginHost>,
    store: Arc<dyn RunStore>,
    vault: Option<Arc<Vault>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn words(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl Runner {
    /// A runner executing plugins on `host` and recording runs in `store`.
    pub fn new(host: Arc<PluginHost>, store: Arc<dyn RunStore>) -> Self {
        Self {
            host,
            store,
            vault: None,
        }
    }

    /// Also looks credentials up in `vault` (the encrypted ones set with `weft credentials set`).
    pub fn with_vault(mut self, vault: Option<Arc<Vault>>) -> Self {
        self.vault = vault;
        self
    }

    /// The store runs are recorded in.
    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.store
    }

    /// Runs a flow of an instance to the end, recording the run and each step as it goes.
    /// A run that fails (a missing config var, a step error, a limit) is recorded and returned
    /// with status `failed`; `Err` means the run could not start at all.
    pub async fn run(&self, request: RunRequest<'_>) -> Result<RunWithSteps, RunError> {
        let ws = request.workspace;
        let instance = ws
            .instance(request.instance)
            .ok_or_else(|| RunError::UnknownInstance {
                instance: request.instance.to_string(),
                known: words(ws.file.instances.iter().map(|i| i.id.clone())),
            })?;
        if !instance.enabled {
            return Err(RunError::Disabled(instance.id.clone()));
        }
        let integration =
            ws.integrations
                .get(&instance.integration)
                .ok_or_else(|| RunError::UnknownFlow {
                    integration: instance.integration.clone(),
                    flow: request.flow.unwrap_or_default().to_string(),
                    known: "none (the integration is not loaded)".into(),
                })?;
        let flow = match request.flow {
            Some(name) => integration.flows.iter().find(|f| f.name == name),
            None => integration.flows.first(),
        }
        .ok_or_else(|| RunError::UnknownFlow {
            integration: integration.spec.name.clone(),
            flow: request.flow.unwrap_or_default().to_string(),
            known: words(integration.flows.iter().map(|f| f.name.clone())),
        })?;
        let customer = ws.customer(&instance.customer);

        let started = Instant::now();
        let mut run = RunRecord {
            id: uuid::Uuid::now_v7().to_string(),
            instance: instance.id.clone(),
            customer: instance.customer.clone(),
            integration: integration.spec.name.clone(),
            integration_version: integration.spec.version,
            flow: flow.name.clone(),
            status: Status::Running,
            started_at_ms: now_ms(),
            duration_us: None,
            config: ResolvedConfig::default(),
            result: None,
            error: None,
        };

        let config = ws.resolve_config(instance);
        let bound = self.bind_credentials(ws, instance, flow);
        let mut secrets = config.as_ref().map(|c| c.secrets()).unwrap_or_default();
        if let Ok(bound) = &bound {
            secrets.extend(bound.values().flat_map(|c| c.secrets()));
        }
        let redactor = Redactor::new(secrets);
        let mut steps = Vec::new();
        match (config, bound) {
            (Err(problems), _) => {
                run.status = Status::Failed;
                run.error = Some(format!(
                    "the run stopped before any step: {}",
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
            (_, Err(e)) => {
                run.status = Status::Failed;
                run.error = Some(redactor.text(&format!("the run stopped before any step: {e:#}")));
            }
            (Ok(config), Ok(credentials)) => {
                run.config = redact_config(&config, &redactor);
                self.store.put_run(&run).map_err(RunError::Store)?;
                let context = Context {
                    config: config.to_json(),
                    trigger: request.trigger,
                    instance: json!({ "id": instance.id, "name": instance.name.as_deref().unwrap_or(&instance.id) }),
                    customer: customer
                        .map(|c| json!({ "id": c.id, "name": c.name, "fields": c.fields }))
                        .unwrap_or(Json::Null),
                    results: HashMap::new(),
                };
                let vars: ConfigVars = config
                    .0
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_text()))
                    .collect();
                let template_context = Arc::new(json!({
                    "config": context.config,
                    "customer": context.customer,
                    "instance": context.instance,
                }));
                let bindings = Bindings {
                    vars,
                    credentials,
                    template_context,
                };
                self.run_steps(ws, flow, context, bindings, &redactor, &mut run, &mut steps)
                    .await?;
            }
        }
        run.duration_us = Some(started.elapsed().as_micros() as u64);
        self.store.put_run(&run).map_err(RunError::Store)?;
        Ok(RunWithSteps { run, steps })
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one private call site; a struct would only rename them"
    )]
    async fn run_steps(
        &self,
        ws: &Workspace,
        flow: &Flow,
        mut context: Context,
        bindings: Bindings,
        redactor: &Redactor,
        run: &mut RunRecord,
        steps: &mut Vec<StepRecord>,
    ) -> Result<(), RunError> {
        // Load every plugin first, so that a bad plugin stops the run before any step.
        let mut plugins: HashMap<&str, Arc<Plugin>> = HashMap::new();
        for step in &flow.steps {
            if plugins.contains_key(step.plugin.as_str()) {
                continue;
            }
            let loaded = ws
                .plugin_source(&step.plugin)
                .ok_or_else(|| anyhow::anyhow!("unknown plugin `{}`", step.plugin))
                .and_then(|source| self.host.load(&step.plugin, &source));
            match loaded {
                Ok(plugin) => {
                    plugins.insert(&step.plugin, plugin);
                }
                Err(e) => {
                    run.status = Status::Failed;
                    run.error =
                        Some(redactor.text(&format!("the run stopped before any step: {e:#}")));
                    return Ok(());
                }
            }
        }

        let mut last = None;
        for (index, step) in flow.steps.iter().enumerate() {
            let started_at_ms = now_ms();
            let started = Instant::now();
            let rendered: Result<Vec<(String, Val)>, String> = step
                .inputs
                .iter()
                .map(|(name, template)| {
                    template
                        .render(&|path| context.lookup(path))
                        .map(|v| (name.clone(), v))
                        .map_err(|e| format!("step `{}` input `{name}`: {e}", step.id))
                })
                .collect();
            let mut record = StepRecord {
                index: index as u32,
                id: step.id.clone(),
                plugin: step.plugin.clone(),
                status: Status::Failed,
                started_at_ms,
                duration_us: 0,
                inputs: Vec::new(),
                output: None,
                logs: Vec::new(),
                error: None,
            };
            let failure = match rendered {
                Err(message) => Some(message),
                Ok(inputs) => {
                    record.inputs = inputs
                        .iter()
                        .map(|(k, v)| (k.clone(), redact_value(v, redactor)))
                        .collect();
                    let outcome = self
                        .host
                        .execute(
                            &plugins[step.plugin.as_str()],
                            StepCall {
                                step_id: &step.id,
                                inputs,
                                config: bindings.vars.clone(),
                                limits: step.limits,
                                http: Some(HttpContext {
                                    plugin: step.plugin.clone(),
                                    step: step.id.clone(),
                                    grant: ws.http_grant(&step.plugin),
                                    credential: bindings.credentials.get(&step.id).cloned(),
                                    template_context: bindings.template_context.clone(),
                                    clients: self.host.http_clients().clone(),
                                }),
                                s3: Some(S3Context {
                                    plugin: step.plugin.clone(),
                                    step: step.id.clone(),
                                    grant: ws.s3_grant(&step.plugin),
                                    credential: bindings.credentials.get(&step.id).cloned(),
                                    clients: self.host.s3_clients().clone(),
                                }),
                            },
                        )
                        .await;
                    record.logs = outcome
                        .logs
                        .into_iter()
                        .map(|mut line| {
                            line.message = redactor.text(&line.message);
                            line
                        })
                        .collect();
                    match outcome.result {
                        Ok(value) => {
                            record.status = Status::Succeeded;
                            record.output = Some(redact_value(&value, redactor));
                            context.results.insert(step.id.clone(), value);
                            None
                        }
                        Err(failure) => Some(describe_failure(
                            &step.id,
                            &step.plugin,
                            &failure,
                            &record.logs,
                        )),
                    }
                }
            };
            record.duration_us = started.elapsed().as_micros() as u64;
            record.error = failure.as_ref().map(|m| redactor.text(m));
            self.store
                .put_step(&run.id, &record)
                .map_err(RunError::Store)?;
            last = record.output.clone();
            steps.push(record);
            if let Some(message) = failure {
                run.status = Status::Failed;
                run.error = Some(redactor.text(&message));
                return Ok(());
            }
        }
        run.status = Status::Succeeded;
        run.result = last;
        Ok(())
    }
}

/// What a run's steps are given besides their inputs.
struct Bindings {
    vars: ConfigVars,
    /// Credentials by step id.
    credentials: HashMap<String, Arc<Credential>>,
    template_context: Arc<Json>,
}

impl Runner {
    /// Resolves the credential bound to each step of `flow` (the instance's binding, else the
    /// step's own), each name once.
    fn bind_credentials(
        &self,
        ws: &Workspace,
        instance: &crate::integration::InstanceSpec,
        flow: &Flow,
    ) -> anyhow::Result<HashMap<String, Arc<Credential>>> {
        let mut by_name: HashMap<&str, Arc<Credential>> = HashMap::new();
        let mut by_step = HashMap::new();
        for step in &flow.steps {
            let Some(name) = instance
                .credentials
                .get(&step.id)
                .or(step.credential.as_ref())
            else {
                continue;
            };
            let credential = match by_name.get(name.as_str()) {
                Some(c) => c.clone(),
                None => {
                    let c = Arc::new(
                        crate::credentials::find(
                            ws,
                            self.vault.as_deref(),
                            Some(&instance.customer),
                            name,
                        )
                        .with_context(|| format!("step `{}`", step.id))?,
                    );
                    by_name.insert(name, c.clone());
                    c
                }
            };
            by_step.insert(step.id.clone(), credential);
        }
        Ok(by_step)
    }
}

/// What a failed step's error says: the step, the plugin and what happened, with the last
/// line the step wrote to stderr when it crashed (usually a panic message).
fn describe_failure(
    step: &str,
    plugin: &str,
    failure: &StepFailure,
    logs: &[crate::host::log::LogLine],
) -> String {
    match failure {
        StepFailure::Error { kind, message, .. } => {
            let kind = serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            format!("step `{step}` (plugin `{plugin}`) failed ({kind}): {message}")
        }
        StepFailure::Trap(_) => {
            let stderr = logs
                .iter()
                .rev()
                .find_map(|l| l.message.strip_prefix("[stderr] "))
                .map(|line| format!("; its last stderr line: {line}"))
                .unwrap_or_default();
            format!("step `{step}` (plugin `{plugin}`) {failure}{stderr}")
        }
        _ => format!("step `{step}` (plugin `{plugin}`) {failure}"),
    }
}

fn redact_value(value: &Val, redactor: &Redactor) -> RecordedValue {
    match value.to_record() {
        RecordedValue::Json(v) => RecordedValue::Json(redactor.json(v)),
        bytes => bytes,
    }
}

fn redact_config(config: &ResolvedConfig, redactor: &Redactor) -> ResolvedConfig {
    let mut out = config.clone();
    for var in out.0.values_mut() {
        let value = std::mem::take(&mut var.value);
        var.value = if var.secret {
            Json::String(crate::redact::REDACTED.into())
        } else {
            redactor.json(value)
        };
    }
    out
}

/// What `{{ … }}` references can reach during a run.
struct Context {
    config: Json,
    trigger: Json,
    instance: Json,
    customer: Json,
    results: HashMap<String, Val>,
}

impl Context {
    fn lookup(&self, path: &RefPath) -> Result<Val, RenderError> {
        use crate::integration::template::Segment;
        let root = match path.root.as_str() {
            "config" => &self.config,
            "trigger" => &self.trigger,
            "instance" => &self.instance,
            "customer" => &self.customer,
            "steps" => {
                let (Some(Segment::Key(id)), Some(Segment::Key(results))) =
                    (path.segments.first(), path.segments.get(1))
                else {
                    return Err(RenderError(format!(
                        "`{path}` must look like `steps.<id>.results`"
                    )));
                };
                if results != "results" {
                    return Err(RenderError(format!(
                        "`{path}` must look like `steps.<id>.results`"
                    )));
                }
                let value = self
                    .results
                    .get(id)
                    .ok_or_else(|| RenderError(format!("`{path}`: step `{id}` has no result")))?;
                let rest = &path.segments[2..];
                return match value {
                    Val::Json(json) => walk(json, path, rest).map(|v| Val::Json(v.clone())),
                    bytes if rest.is_empty() => Ok(bytes.clone()),
                    Val::Bytes { content_type, .. } => Err(RenderError(format!(
                        "`{path}`: the result of step `{id}` is binary ({content_type}) and has no fields"
                    ))),
                };
            }
            other => return Err(RenderError(format!("unknown reference root `{other}`"))),
        };
        // An optional config var with no value reads as null rather than failing the step.
        if path.root == "config" && path.segments.len() == 1 {
            return Ok(Val::Json(
                walk(root, path, &path.segments)
                    .cloned()
                    .unwrap_or(Json::Null),
            ));
        }
        walk(root, path, &path.segments).map(|v| Val::Json(v.clone()))
    }
}
