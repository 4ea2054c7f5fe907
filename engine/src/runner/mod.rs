//! Running a flow: resolve config, load plugins, render each step's inputs, execute, record.
//!
//! When records are written: a step's record is written when the step ends if it must be
//! acknowledged before the run ends (`--durability step`, or a step observer), if it wrote
//! state, or if the run's records are already being written as it goes; otherwise it is kept
//! until the run ends. The run's start record is written before its first step record, or by
//! [`starts`] once the run has gone on for a while. A run with nothing written when it ends is
//! written once, whole, with its steps ([`RunStore::put_whole_run`]).

mod starts;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};

use anyhow::Context as _;

use crate::host::config::ConfigVars;
use crate::host::http::HttpContext;
use crate::host::s3::S3Context;
use crate::host::state::StateContext;
use crate::plugin::{Plugin, PluginHost, StepCall, StepFailure};
use crate::secrets::Credential;
use crate::store::vault::Vault;
use crate::store::{
    Attempt, Durability, GroupFlush, RunRecord, RunStore, RunWithSteps, Status, StepRecord,
};
use starts::{StartRecords, Started};
use weft_model::config::ResolvedConfig;
use weft_model::redact::Redactor;
use weft_model::spec::InstanceSpec;
use weft_model::spec::OnError;
use weft_model::template::{Path as RefPath, RenderError, walk};
use weft_model::value::{RecordedValue, Val};
use weft_model::workspace::{Flow, Workspace};

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
    /// No run with that id in the store.
    #[error("no run `{0}` in the store; `weft runs list` shows the runs it has")]
    UnknownRun(String),
    /// The run cannot be resumed.
    #[error("{0}")]
    NotResumable(String),
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
    /// Flushes for many runs at once.
    flusher: Arc<GroupFlush>,
    /// Runs in progress whose start records are written only when needed.
    starts: Arc<StartRecords>,
    vault: Option<Arc<Vault>>,
    durability: Durability,
    observer: Option<StepObserver>,
}

/// Called after each step is recorded (and, with [`Durability::Step`], flushed): the
/// acknowledgement that the step is stored. The step that ends a run is acknowledged together
/// with the run's final record, which one flush makes durable with it.
pub type StepObserver = Arc<dyn Fn(&RunRecord, &StepRecord) + Send + Sync>;

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

/// A run that has its id and passed its checks, not yet started.
#[derive(Debug)]
pub struct PreparedRun(RunRecord);

impl PreparedRun {
    /// The run's id.
    pub fn id(&self) -> &str {
        &self.0.id
    }
    /// The run's record as it will be written when it starts.
    pub fn record(&self) -> &RunRecord {
        &self.0
    }
}

impl Runner {
    /// A runner executing plugins on `host` and recording runs in `store`.
    pub fn new(host: Arc<PluginHost>, store: Arc<dyn RunStore>) -> Self {
        Self {
            host,
            flusher: Arc::new(GroupFlush::new(&store)),
            starts: StartRecords::new(&store),
            store,
            vault: None,
            durability: Durability::default(),
            observer: None,
        }
    }

    /// When records are made durable (default: after every step).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Calls `observer` after each step is recorded.
    pub fn with_observer(mut self, observer: StepObserver) -> Self {
        self.observer = Some(observer);
        self
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

    /// Writes the start record of every run in progress that has none yet, so that the store
    /// can find them all (before a shutdown records the runs still in flight as interrupted).
    pub fn record_runs_in_progress(&self) -> anyhow::Result<()> {
        self.starts.write_all()
    }

    /// Runs a flow of an instance to the end, recording the run and each step as it goes.
    /// A run that fails (a missing config var, a step error, a limit) is recorded and returned
    /// with status `failed`; `Err` means the run could not start at all.
    pub async fn run(&self, request: RunRequest<'_>) -> Result<RunWithSteps, RunError> {
        let ws = request.workspace;
        let prepared = self.prepare(request)?;
        self.run_prepared(ws, prepared).await
    }

    /// Checks that the instance and flow exist and can run, and gives the run its id, without
    /// starting it; [`Runner::run_prepared`] runs it. (A server answers with the id at once.)
    pub fn prepare(&self, request: RunRequest<'_>) -> Result<PreparedRun, RunError> {
        let ws = request.workspace;
        let (instance, flow) = self.locate(ws, request.instance, request.flow)?;
        Ok(PreparedRun(self.new_record(
            ws,
            instance,
            flow,
            request.trigger,
            None,
        )))
    }

    /// Runs a prepared run of `ws` to the end, as [`Runner::run`] does.
    pub async fn run_prepared(
        &self,
        ws: &Workspace,
        prepared: PreparedRun,
    ) -> Result<RunWithSteps, RunError> {
        self.execute(ws, prepared.0, Vec::new(), HashMap::new(), None)
            .await
    }

    /// Runs run `run_id` again as a new run linked to it: the same instance and flow, its
    /// original trigger input, and the config vars it saw (secret vars, which records keep
    /// redacted, are resolved again).
    pub async fn replay(&self, ws: &Workspace, run_id: &str) -> Result<RunWithSteps, RunError> {
        let old = self.load(run_id)?;
        let (instance, flow) = self.locate(ws, &old.run.instance, Some(&old.run.flow))?;
        let run = self.new_record(
            ws,
            instance,
            flow,
            old.run.trigger.clone(),
            Some(old.run.id.clone()),
        );
        self.execute(ws, run, Vec::new(), HashMap::new(), Some(&old.run.config))
            .await
    }

    /// Continues an interrupted run from its last completed step, under the same run id, with
    /// the results its completed steps recorded (binary ones from the store), its trigger input
    /// and the config vars it saw (secret vars resolved again).
    pub async fn resume(&self, ws: &Workspace, run_id: &str) -> Result<RunWithSteps, RunError> {
        let old = self.load(run_id)?;
        if old.run.status != Status::Interrupted {
            return Err(RunError::NotResumable(format!(
                "run `{run_id}` is {}; only an interrupted run can be resumed (replay it with `weft runs replay` instead)",
                old.run.status
            )));
        }
        let (_, flow) = self.locate(ws, &old.run.instance, Some(&old.run.flow))?;
        let mut prior = Vec::new();
        let mut results = HashMap::new();
        for (index, record) in old.steps.into_iter().enumerate() {
            let planned = flow.steps.get(index).map(|s| s.id.as_str());
            if record.index as usize != index || planned != Some(record.id.as_str()) {
                return Err(RunError::NotResumable(format!(
                    "run `{run_id}` does not match flow `{}` as it is now (step {} is `{}` in the record); replay it instead",
                    flow.name,
                    index + 1,
                    record.id
                )));
            }
            if record.status == Status::Succeeded {
                let value = match &record.output {
                    Some(RecordedValue::Json(v)) => Val::Json(v.clone()),
                    Some(RecordedValue::Bytes(b)) => {
                        let data = self
                            .store
                            .get_blob(&b.sha256)
                            .map_err(RunError::Store)?
                            .ok_or_else(|| {
                                RunError::NotResumable(format!(
                                    "the binary result of step `{}` is no longer stored; replay run `{run_id}` instead",
                                    record.id
                                ))
                            })?;
                        Val::Bytes {
                            content_type: b.content_type.clone(),
                            data,
                        }
                    }
                    None => Val::Json(Json::Null),
                };
                results.insert(record.id.clone(), value);
            } else if record.status != Status::Failed {
                // A step record is written only when the step ended; anything else is damage.
                break;
            }
            prior.push(record);
        }
        let mut run = old.run;
        run.status = Status::Running;
        run.error = None;
        run.result = None;
        run.duration_us = None;
        run.resumed += 1;
        let snapshot = run.config.clone();
        self.execute(ws, run, prior, results, Some(&snapshot)).await
    }

    fn load(&self, run_id: &str) -> Result<RunWithSteps, RunError> {
        self.store
            .get_run(run_id)
            .map_err(RunError::Store)?
            .ok_or_else(|| RunError::UnknownRun(run_id.to_string()))
    }

    fn locate<'w>(
        &self,
        ws: &'w Workspace,
        instance: &str,
        flow: Option<&str>,
    ) -> Result<(&'w InstanceSpec, &'w Flow), RunError> {
        let instance = ws
            .instance(instance)
            .ok_or_else(|| RunError::UnknownInstance {
                instance: instance.to_string(),
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
                    flow: flow.unwrap_or_default().to_string(),
                    known: "none (the integration is not loaded)".into(),
                })?;
        let found = match flow {
            Some(name) => integration.flows.iter().find(|f| f.name == name),
            None => integration.flows.first(),
        }
        .ok_or_else(|| RunError::UnknownFlow {
            integration: integration.spec.name.clone(),
            flow: flow.unwrap_or_default().to_string(),
            known: words(integration.flows.iter().map(|f| f.name.clone())),
        })?;
        Ok((instance, found))
    }

    fn new_record(
        &self,
        ws: &Workspace,
        instance: &InstanceSpec,
        flow: &Flow,
        trigger: Json,
        replay_of: Option<String>,
    ) -> RunRecord {
        let version = ws
            .integrations
            .get(&instance.integration)
            .map(|i| i.spec.version)
            .unwrap_or_default();
        RunRecord {
            id: uuid::Uuid::now_v7().to_string(),
            instance: instance.id.clone(),
            customer: instance.customer.clone(),
            integration: instance.integration.clone(),
            integration_version: version,
            flow: flow.name.clone(),
            status: Status::Running,
            started_at_ms: now_ms(),
            duration_us: None,
            config: ResolvedConfig::default(),
            result: None,
            error: None,
            trigger,
            replay_of,
            resumed: 0,
        }
    }

    /// Resolves config and credentials, then runs the flow's steps after those in `prior`.
    async fn execute(
        &self,
        ws: &Workspace,
        mut run: RunRecord,
        prior: Vec<StepRecord>,
        results: HashMap<String, Val>,
        snapshot: Option<&ResolvedConfig>,
    ) -> Result<RunWithSteps, RunError> {
        let (instance, flow) = self.locate(ws, &run.instance, Some(&run.flow))?;
        let customer = ws.customer(&instance.customer);
        let started = Instant::now();
        // Flushes wait briefly for the runs in progress, to cover more of them at once.
        let _in_progress =
            (self.durability != Durability::Background).then(|| self.flusher.enter());

        let config = ws.resolve_config(instance).map(|mut config| {
            if let Some(snapshot) = snapshot {
                // The values the run saw, except secrets, which records keep redacted.
                for (name, var) in config.0.iter_mut() {
                    if let Some(seen) = snapshot.0.get(name)
                        && !var.secret
                        && !seen.secret
                    {
                        *var = seen.clone();
                    }
                }
            }
            config
        });
        let bound = self.bind_credentials(ws, instance, flow);
        let mut secrets = config.as_ref().map(|c| c.secrets()).unwrap_or_default();
        if let Ok(bound) = &bound {
            secrets.extend(bound.values().flat_map(|c| c.secrets()));
        }
        let redactor = Redactor::new(secrets);
        let mut recording = Recording {
            started: None,
            // A resumed run's earlier steps are in the store already.
            written_steps: prior.len(),
            deferred_ack: false,
        };
        let mut steps = prior;
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
                recording.started = Some(self.starts.begin(&run));
                let context = Context {
                    config: config.to_json(),
                    trigger: run.trigger.clone(),
                    instance: json!({ "id": instance.id, "name": instance.name.as_deref().unwrap_or(&instance.id) }),
                    customer: customer
                        .map(|c| json!({ "id": c.id, "name": c.name, "fields": c.fields }))
                        .unwrap_or(Json::Null),
                    results,
                };
                let vars: ConfigVars = config
                    .0
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_text()))
                    .collect();
                // Cloned values, not `json!`, which would copy them by serializing each one.
                let template_context = Arc::new(Json::Object(serde_json::Map::from_iter([
                    ("config".to_string(), context.config.clone()),
                    ("customer".to_string(), context.customer.clone()),
                    ("instance".to_string(), context.instance.clone()),
                ])));
                let bindings = Bindings {
                    vars,
                    credentials,
                    template_context,
                    state: StateContext::new(
                        self.store.clone(),
                        ws.name(),
                        &instance.id,
                        &flow.name,
                    ),
                };
                self.run_steps(
                    ws,
                    flow,
                    context,
                    bindings,
                    &redactor,
                    &mut run,
                    &mut steps,
                    &mut recording,
                )
                .await?;
            }
        }
        let took = started.elapsed().as_micros() as u64;
        run.duration_us = Some(run.duration_us.unwrap_or(0) + took);
        if let Some(started) = recording.started.take() {
            started.end();
        }
        if recording.written_steps == 0 {
            self.store
                .put_whole_run(&run, &steps)
                .map_err(RunError::Store)?;
        } else {
            for step in &steps[recording.written_steps..] {
                self.store
                    .put_step(&run.id, step)
                    .map_err(RunError::Store)?;
            }
            self.store.put_run(&run).map_err(RunError::Store)?;
        }
        if self.durability != Durability::Background {
            self.flusher.flush().await.map_err(RunError::Store)?;
        }
        if recording.deferred_ack
            && let Some(observer) = &self.observer
            && let Some(last) = steps.last()
        {
            observer(&run, last);
        }
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
        recording: &mut Recording,
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
                .and_then(|source| self.host.load(&step.plugin, &source))
                .and_then(|plugin| {
                    crate::plugin::policy::check(ws, &plugin).map_err(anyhow::Error::msg)?;
                    Ok(plugin)
                });
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

        let mut last = steps.iter().rev().find_map(|s| s.output.clone());
        let mut continued = steps.iter().any(|s| s.status == Status::Failed);
        for (index, step) in flow.steps.iter().enumerate().skip(steps.len()) {
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
                attempts: Vec::new(),
            };
            let mut blobs = Vec::new();
            let mut state_writes = Vec::new();
            let rendered = rendered.and_then(|inputs| match ws.manifest(&step.plugin) {
                Some(manifest) => manifest
                    .check_inputs(&inputs)
                    .map(|()| inputs)
                    .map_err(|e| format!("step `{}`: {e}", step.id)),
                None => Ok(inputs),
            });
            let failure = match rendered {
                Err(message) => Some(message),
                Ok(inputs) => {
                    record.inputs = inputs
                        .iter()
                        .map(|(k, v)| (k.clone(), redact_value(v, redactor)))
                        .collect();
                    let max = step.retry.as_ref().map_or(1, |r| r.attempts.max(1));
                    let mut attempt = 1;
                    loop {
                        let attempt_started = Instant::now();
                        let attempt_at_ms = now_ms();
                        let outcome = self
                            .host
                            .execute(
                                &plugins[step.plugin.as_str()],
                                self.step_call(ws, step, &inputs, &bindings),
                            )
                            .await;
                        record.logs.extend(outcome.logs.into_iter().map(|mut line| {
                            line.message = redactor.text(&line.message);
                            line
                        }));
                        match outcome.result {
                            Ok(value) => {
                                if max > 1 || attempt > 1 {
                                    record.attempts.push(Attempt {
                                        started_at_ms: attempt_at_ms,
                                        duration_us: attempt_started.elapsed().as_micros() as u64,
                                        error: None,
                                    });
                                }
                                record.status = Status::Succeeded;
                                record.output = Some(redact_value(&value, redactor));
                                if let Val::Bytes { data, .. } = &value
                                    && let Some(RecordedValue::Bytes(summary)) = &record.output
                                {
                                    blobs.push((summary.sha256.clone(), data.clone()));
                                }
                                state_writes = outcome.state_writes;
                                context.results.insert(step.id.clone(), value);
                                break None;
                            }
                            Err(failure) => {
                                let message = describe_failure(
                                    &step.id,
                                    &step.plugin,
                                    &failure,
                                    &record.logs,
                                );
                                let retryable = matches!(
                                    failure,
                                    StepFailure::Error {
                                        retryable: true,
                                        ..
                                    }
                                );
                                if max > 1 {
                                    record.attempts.push(Attempt {
                                        started_at_ms: attempt_at_ms,
                                        duration_us: attempt_started.elapsed().as_micros() as u64,
                                        error: Some(redactor.text(&message)),
                                    });
                                }
                                let policy = step.retry.as_ref().filter(|_| retryable);
                                match policy {
                                    Some(policy) if attempt < max => {
                                        tokio::time::sleep(
                                            policy.delay_before(attempt + 1, unit_random()),
                                        )
                                        .await;
                                        attempt += 1;
                                    }
                                    _ if max > 1 && attempt > 1 => {
                                        break Some(format!(
                                            "{message} (attempt {attempt} of {max})"
                                        ));
                                    }
                                    _ => break Some(message),
                                }
                            }
                        }
                    }
                }
            };
            record.duration_us = started.elapsed().as_micros() as u64;
            record.error = failure.as_ref().map(|m| redactor.text(m));
            let ends_run = index + 1 == flow.steps.len()
                || (failure.is_some() && step.on_error != OnError::Continue);
            // Acknowledged now rather than with the run's final record.
            let acknowledged =
                !ends_run && (self.durability == Durability::Step || self.observer.is_some());
            let write_now = acknowledged
                || !state_writes.is_empty()
                || recording.written_steps > 0
                || recording.started.as_ref().is_some_and(Started::written);
            if write_now {
                // The run's record goes first, then any steps kept until now, then this one.
                if let Some(started) = &recording.started {
                    started.write(&*self.store).map_err(RunError::Store)?;
                }
                for kept in &steps[recording.written_steps..] {
                    self.store
                        .put_step(&run.id, kept)
                        .map_err(RunError::Store)?;
                }
                self.store
                    .commit_step(&run.id, &record, &blobs, &state_writes)
                    .map_err(RunError::Store)?;
                recording.written_steps = steps.len() + 1;
            } else {
                // Kept until the run ends; its binary values can go now (they are keyed by
                // their content, so an unreferenced one costs only space until pruned).
                self.store.put_blobs(&blobs).map_err(RunError::Store)?;
            }
            if ends_run {
                // The run's own record follows at once; one flush after it covers both, and
                // the step is acknowledged then (see `execute`).
                recording.deferred_ack = true;
            } else if acknowledged {
                if self.durability == Durability::Step {
                    self.flusher.flush().await.map_err(RunError::Store)?;
                }
                if let Some(observer) = &self.observer {
                    observer(run, &record);
                }
            }
            if record.status == Status::Succeeded {
                last = record.output.clone();
            }
            steps.push(record);
            if let Some(message) = failure {
                if step.on_error == OnError::Continue {
                    continued = true;
                    continue;
                }
                run.status = Status::Failed;
                run.error = Some(redactor.text(&message));
                return Ok(());
            }
        }
        run.status = if continued {
            Status::SucceededWithErrors
        } else {
            Status::Succeeded
        };
        run.result = last;
        Ok(())
    }

    fn step_call<'s>(
        &self,
        ws: &Workspace,
        step: &'s weft_model::workspace::Step,
        inputs: &[(String, Val)],
        bindings: &Bindings,
    ) -> StepCall<'s> {
        let credential = bindings.credentials.get(&step.id).cloned();
        // A plugin whose manifest lists the config vars it reads sees only those.
        let config = match ws
            .manifest(&step.plugin)
            .and_then(|m| m.capabilities.config.as_ref())
        {
            Some(names) => bindings.vars.only(names),
            None => bindings.vars.clone(),
        };
        StepCall {
            step_id: &step.id,
            inputs: inputs.to_vec(),
            config,
            limits: step.limits,
            http: Some(HttpContext {
                plugin: step.plugin.clone(),
                step: step.id.clone(),
                grant: ws.http_grant(&step.plugin),
                credential: credential.clone(),
                template_context: bindings.template_context.clone(),
                clients: self.host.http_clients().clone(),
            }),
            s3: Some(S3Context {
                plugin: step.plugin.clone(),
                step: step.id.clone(),
                grant: ws.s3_grant(&step.plugin),
                credential,
                clients: self.host.s3_clients().clone(),
            }),
            state: Some(bindings.state.clone()),
            concurrency: ws.plugin_concurrency(&step.plugin),
        }
    }
}

/// How far a run's records have been written.
struct Recording {
    /// The run's start record, once its steps are about to run.
    started: Option<Started>,
    /// How many of the run's steps are in the store.
    written_steps: usize,
    /// Whether the last step's record waits for the flush of the run's final record to be
    /// made durable and acknowledged.
    deferred_ack: bool,
}

/// What a run's steps are given besides their inputs.
struct Bindings {
    vars: ConfigVars,
    /// Credentials by step id.
    credentials: HashMap<String, Arc<Credential>>,
    template_context: Arc<Json>,
    /// Where the steps' persisted state lives.
    state: StateContext,
}

impl Runner {
    /// Resolves the credential bound to each step of `flow` (the instance's binding, else the
    /// step's own), each name once.
    fn bind_credentials(
        &self,
        ws: &Workspace,
        instance: &weft_model::spec::InstanceSpec,
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
                        crate::secrets::find(
                            ws,
                            self.vault.as_deref().map(|v| v as _),
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
    logs: &[weft_model::records::LogLine],
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
            Json::String(weft_model::redact::REDACTED.into())
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
        use weft_model::template::Segment;
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

/// A random number in `0.0..=1.0`, for retry jitter.
fn unit_random() -> f64 {
    use chacha20poly1305::aead::rand_core::RngCore as _;
    chacha20poly1305::aead::OsRng.next_u32() as f64 / u32::MAX as f64
}
