//! Running a flow: resolve config, load plugins, render each step's inputs, execute, record.
//!
//! The parts, in the order a run meets them: `preflight` (config, credentials, plugins),
//! `flow` (the flow's steps, scope by scope: branches, stops and calls), `looping` (loops),
//! `steps` (a plugin step), `attempt` (one plugin step under its retry policy), with `scope`
//! (what references and conditions reach), `context` (what steps are given, redaction) and
//! `recorder` (when records are written, flushed and acknowledged; runs in progress are
//! tracked by `starts`), and `observed` (each run's log span and metrics).

mod attempt;
mod context;
mod flow;
mod looping;
mod oauth_refresh;
mod observed;
mod preflight;
mod recorder;
mod scope;
mod starts;
mod steps;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value as Json, json};

use crate::host::config::ConfigVars;
use crate::host::state::StateLocation;
use crate::plugin::PluginHost;
use crate::store::vault::Vault;
use crate::store::{Durability, GroupFlush, RunRecord, RunStore, RunWithSteps, Status, StepRecord};
use context::{Bindings, redact_config};
use flow::{Exec, Outcome};
use recorder::Recorder;
use scope::{Roots, Scope};
use starts::StartRecords;
use weft_model::config::ResolvedConfig;
use weft_model::records::now_ms;
use weft_model::redact::Redactor;
use weft_model::spec::InstanceSpec;

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

/// Where a run starts from: the steps already recorded (a resumed run's), and the config vars
/// to use again (a replayed or resumed run's snapshot).
struct StartingPoint<'a> {
    prior: Vec<StepRecord>,
    snapshot: Option<&'a ResolvedConfig>,
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
    /// One lock per OAuth connection credential, held while its tokens are refreshed.
    oauth_refresh: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
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
pub struct PreparedRun {
    record: RunRecord,
    /// The step whose result answers a webhook, checked as a reply when it succeeds.
    answer: Option<String>,
}

impl PreparedRun {
    /// The run's id.
    pub fn id(&self) -> &str {
        &self.record.id
    }
    /// The same run under id `id`: the one it was queued under by another process.
    pub fn with_id(mut self, id: String) -> Self {
        self.record.id = id;
        self
    }
    /// The run waited `waited` in the shared queue before this process took it.
    pub fn queued_for(mut self, waited: std::time::Duration) -> Self {
        self.record.queued_us = Some(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX));
        self
    }
    /// The run's record as it will be written when it starts.
    pub fn record(&self) -> &RunRecord {
        &self.record
    }
    /// The result of step `step` will answer a webhook: when it has the reply shape
    /// (`{ status, headers, body }`) it must be one that can be served
    /// ([`weft_model::reply`]), or the step fails with what is wrong.
    pub fn answering(mut self, step: &str) -> Self {
        self.answer = Some(step.to_string());
        self
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
            oauth_refresh: Arc::default(),
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
        Ok(PreparedRun {
            record: self.new_record(ws, instance, flow, request.trigger, None),
            answer: None,
        })
    }

    /// Runs a prepared run of `ws` to the end, as [`Runner::run`] does.
    pub async fn run_prepared(
        &self,
        ws: &Workspace,
        prepared: PreparedRun,
    ) -> Result<RunWithSteps, RunError> {
        let from = StartingPoint {
            prior: Vec::new(),
            snapshot: None,
        };
        self.execute(ws, prepared.record, from, prepared.answer.as_deref())
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
        let from = StartingPoint {
            prior: Vec::new(),
            snapshot: Some(&old.run.config),
        };
        self.execute(ws, run, from, None).await
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
        // The recorded steps are matched to the flow as it is now by their ids and places
        // (loop iterations, branches): a step the flow no longer has means it changed.
        let known: std::collections::HashSet<&str> =
            flow.all_steps().iter().map(|s| s.id.as_str()).collect();
        if let Some(stray) = old
            .steps
            .iter()
            .find(|r| !known.contains(r.id.as_str()) && r.scope.is_empty())
        {
            return Err(RunError::NotResumable(format!(
                "run `{run_id}` does not match flow `{}` as it is now (it recorded step `{}`, which the flow no longer has); replay it instead",
                flow.name, stray.id
            )));
        }
        let prior = old.steps;
        let mut run = old.run;
        run.status = Status::Running;
        run.error = None;
        run.result = None;
        run.duration_us = None;
        run.resumed += 1;
        let snapshot = run.config.clone();
        let from = StartingPoint {
            prior,
            snapshot: Some(&snapshot),
        };
        self.execute(ws, run, from, None).await
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
            stopped_by: None,
            queued_us: None,
        }
    }

    /// Resolves config and credentials, then runs the flow's steps after those in
    /// `from.prior`; the result of step `answer` is checked as a webhook reply.
    /// ([`Runner::execute`] wraps it in the run's span and counts it.)
    async fn execute_run(
        &self,
        ws: &Workspace,
        mut run: RunRecord,
        from: StartingPoint<'_>,
        answer: Option<&str>,
    ) -> Result<RunWithSteps, RunError> {
        let StartingPoint { prior, snapshot } = from;
        let (instance, flow) = self.locate(ws, &run.instance, Some(&run.flow))?;
        let customer = ws.customer(&instance.customer);
        let started = Instant::now();
        // Flushes wait briefly for the runs in progress, to cover more of them at once.
        let _in_progress =
            (self.durability != Durability::Background).then(|| self.flusher.enter());

        let config = Self::resolve_config(ws, instance, snapshot);
        let integration = &ws.integrations[&instance.integration];
        let reachable = preflight::reachable_steps(integration, flow);
        let bound = self
            .bind_credentials(ws, integration, instance, &reachable)
            .await;
        let mut secrets = config.as_ref().map(|c| c.secrets()).unwrap_or_default();
        if let Ok(bound) = &bound {
            secrets.extend(bound.values().flat_map(|c| c.secrets()));
        }
        let redactor = Redactor::new(secrets);
        // A resumed run's earlier steps are in the store already.
        let recorder = Recorder::new(self, &prior);
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
                recorder.begin(&run);
                let roots = Roots {
                    config: config.to_json(),
                    instance: json!({ "id": instance.id, "name": instance.name.as_deref().unwrap_or(&instance.id) }),
                    customer: customer
                        .map(|c| json!({ "id": c.id, "name": c.name, "fields": c.fields }))
                        .unwrap_or(Json::Null),
                };
                let vars: ConfigVars = config
                    .0
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_text()))
                    .collect();
                // Cloned values, not `json!`, which would copy them by serializing each one.
                let template_context = Arc::new(Json::Object(serde_json::Map::from_iter([
                    ("config".to_string(), roots.config.clone()),
                    ("customer".to_string(), roots.customer.clone()),
                    ("instance".to_string(), roots.instance.clone()),
                ])));
                let bindings = Bindings {
                    vars,
                    credentials,
                    template_context,
                    state: StateLocation::new(
                        self.store.clone(),
                        ws.name(),
                        &instance.id,
                        &flow.name,
                    ),
                };
                match self.load_plugins(ws, &reachable) {
                    Err(e) => {
                        run.status = Status::Failed;
                        run.error =
                            Some(redactor.text(&format!("the run stopped before any step: {e:#}")));
                    }
                    Ok(plugins) => {
                        let memo: HashMap<String, StepRecord> =
                            prior.iter().map(|r| (r.path(), r.clone())).collect();
                        drop(prior);
                        let exec = Exec {
                            runner: self,
                            ws,
                            integration,
                            run: &run,
                            bindings: &bindings,
                            redactor: &redactor,
                            plugins: &plugins,
                            answer,
                            recorder: &recorder,
                            memo: &memo,
                            executions: Default::default(),
                            continued: Default::default(),
                            deadline: integration.limits.run_time.map(|t| started + t),
                        };
                        let scope = Scope::flow(&roots, run.trigger.clone(), HashMap::new());
                        let (outcome, mut results) = exec.block(&flow.steps, scope, true).await?;
                        let continued = exec.continued.load(std::sync::atomic::Ordering::Relaxed);
                        end_run(&mut run, outcome, &mut results, continued, &redactor);
                    }
                }
            }
        }
        let took = started.elapsed().as_micros() as u64;
        run.duration_us = Some(run.duration_us.unwrap_or(0) + took);
        let steps = recorder.run_ended(&run).await?;
        Ok(RunWithSteps { run, steps })
    }
}

/// Sets how `run` ended from how its flow's steps did.
fn end_run(
    run: &mut RunRecord,
    outcome: Outcome,
    results: &mut HashMap<String, scope::StepValue>,
    continued: bool,
    redactor: &Redactor,
) {
    match outcome {
        Outcome::Done(last) => {
            run.status = if continued {
                Status::SucceededWithErrors
            } else {
                Status::Succeeded
            };
            run.result = last
                .and_then(|id| results.remove(&id))
                .map(|v| context::redact_value(&v.value, redactor));
        }
        Outcome::Stopped(stopped) => {
            run.stopped_by = Some(stopped.step.clone());
            run.result = stopped.result.map(|v| context::redact_value(&v, redactor));
            if stopped.failed {
                run.status = Status::Failed;
                run.error = Some(redactor.text(&format!(
                    "stopped by step `{}`{}",
                    stopped.step,
                    stopped
                        .message
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                )));
            } else if continued {
                run.status = Status::SucceededWithErrors;
            } else {
                run.status = Status::Succeeded;
            }
        }
        Outcome::Failed(message) => {
            run.status = Status::Failed;
            run.error = Some(redactor.text(&message));
        }
    }
}
