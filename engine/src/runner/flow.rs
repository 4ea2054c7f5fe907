//! A flow's steps, scope by scope: each step's `if` decided, the step run by its kind (a plugin
//! step by `steps`, a loop by `looping`, a branch, a stop and a call here), its record kept,
//! and what it gives the steps after it. A resumed run passes what its steps recorded: a step
//! with a record is not run again, so a run continues where it was cut, inside loops too.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value as Json, json};
use tracing::Instrument;
use weft_model::control::{Branch, StepKind, Stop};
use weft_model::records::{Frame, now_ms, step_path};
use weft_model::redact::Redactor;
use weft_model::spec::OnError;
use weft_model::value::{RecordedValue, Val};
use weft_model::workspace::{Integration, Step, Workspace};

use super::context::{Bindings, redact_value};
use super::recorder::Recorder;
use super::scope::{Scope, StepValue, as_json};
use super::{RunError, Runner};
use crate::plugin::Plugin;
use crate::store::{RunRecord, Status, StepRecord};

/// A boxed future, for the recursion of scopes inside scopes.
pub(super) type Boxed<'b, T> = Pin<Box<dyn Future<Output = T> + Send + 'b>>;

/// How a scope's steps ended, with what each step that ended gave.
pub(super) type Finished = (Outcome, HashMap<String, StepValue>);

/// How a scope's steps ended.
pub(super) enum Outcome {
    /// Every step ran (or was skipped); the id of the last one, if it gave a value (its value
    /// is in the results that come with the outcome).
    Done(Option<String>),
    /// A `stop` step ended the run.
    Stopped(Stopped),
    /// A step failed and its `on_error` is `fail`.
    Failed(String),
}

/// What a `stop` step decided.
pub(super) struct Stopped {
    pub(super) step: String,
    pub(super) failed: bool,
    pub(super) result: Option<Val>,
    pub(super) message: Option<String>,
}

/// How one step ended, for the scope it is in.
pub(super) enum Ended {
    /// It gave a value (a skipped step gives `null`).
    Value(StepValue),
    /// It failed and its `on_error` is `continue`.
    Continued,
    /// A `stop` step ended the run.
    Stopped(Stopped),
    /// It failed; the scope stops.
    Failed(String),
}

/// What a step's kind produced, before its record is kept.
pub(super) struct Produced {
    pub(super) value: Result<StepValue, String>,
    pub(super) stopped: Option<Stopped>,
}

/// Everything one run's steps share, whichever scope they are in.
pub(super) struct Exec<'a> {
    pub(super) runner: &'a Runner,
    pub(super) ws: &'a Workspace,
    pub(super) integration: &'a Integration,
    pub(super) run: &'a RunRecord,
    pub(super) bindings: &'a Bindings,
    pub(super) redactor: &'a Redactor,
    pub(super) plugins: &'a HashMap<&'a str, Arc<Plugin>>,
    /// The step whose result answers a webhook.
    pub(super) answer: Option<&'a str>,
    pub(super) recorder: &'a Recorder<'a>,
    /// What a resumed run's steps recorded, by [`step_path`].
    pub(super) memo: &'a HashMap<String, StepRecord>,
    /// Step executions so far, against the run's limit.
    pub(super) executions: AtomicU64,
    /// Whether a failure was let through (`on_error` or `on_item_error` `continue`).
    pub(super) continued: AtomicBool,
    /// When the run must end by (`[limits] run_time`).
    pub(super) deadline: Option<Instant>,
}

impl Exec<'_> {
    /// Runs `steps` in `scope`, in order; `top` for the flow's own steps (the last of which
    /// ends the run). Returns how they ended and what each that ended gave.
    pub(super) fn block<'b>(
        &'b self,
        steps: &'b [Step],
        mut scope: Scope<'b>,
        top: bool,
    ) -> Boxed<'b, Result<Finished, RunError>> {
        Box::pin(async move {
            let mut last = None;
            for (index, step) in steps.iter().enumerate() {
                let ends_run = top && index + 1 == steps.len();
                let span = tracing::info_span!("step", step = %step.id);
                match self.step(step, &scope, ends_run).instrument(span).await? {
                    Ended::Value(value) => {
                        last = Some(step.id.clone());
                        scope.results.insert(step.id.clone(), value);
                    }
                    Ended::Continued => last = None,
                    Ended::Stopped(stopped) => {
                        return Ok((Outcome::Stopped(stopped), scope.results));
                    }
                    Ended::Failed(message) => return Ok((Outcome::Failed(message), scope.results)),
                }
            }
            Ok((Outcome::Done(last), scope.results))
        })
    }

    /// Runs one step in `scope` and keeps its record.
    pub(super) fn step<'b>(
        &'b self,
        step: &'b Step,
        scope: &'b Scope<'b>,
        ends_run: bool,
    ) -> Boxed<'b, Result<Ended, RunError>> {
        Box::pin(async move {
            // Only a resumed run has records to find; the path is built only then.
            if !self.memo.is_empty()
                && let Some(recorded) = self.memo.get(&step_path(&scope.frames, &step.id))
            {
                return self.recorded(step, recorded);
            }
            let mut record = StepRecord {
                index: 0,
                scope: scope.frames.clone(),
                id: step.id.clone(),
                plugin: step.plugin.clone(),
                status: Status::Failed,
                started_at_ms: now_ms(),
                duration_us: 0,
                inputs: Vec::new(),
                output: None,
                logs: Vec::new(),
                error: None,
                attempts: Vec::new(),
                detail: None,
            };
            let started = Instant::now();
            if let Some(message) = self.over_limits() {
                record.error = Some(message.clone());
                self.recorder
                    .step_ended(self.run, record, &[], &[], false, ends_run)
                    .await?;
                return Ok(Ended::Failed(message));
            }
            if let Some(condition) = &step.condition {
                match scope.decide(condition) {
                    Ok(true) => {}
                    Ok(false) => {
                        record.status = Status::Skipped;
                        record.output = Some(RecordedValue::Json(Json::Null));
                        record.duration_us = started.elapsed().as_micros() as u64;
                        self.recorder
                            .step_ended(self.run, record, &[], &[], false, ends_run)
                            .await?;
                        return Ok(Ended::Value(StepValue::plain(Val::Json(Json::Null))));
                    }
                    Err(message) => {
                        let message = format!("step `{}`: its `if` {message}", step.id);
                        return self.failed(step, record, started, message, ends_run).await;
                    }
                }
            }
            let mut blobs = Vec::new();
            let mut state_writes = Vec::new();
            // Flow control changes nothing itself; the steps inside it are recorded on their own.
            let mut changed_outside = false;
            let produced = match &step.kind {
                StepKind::Plugin => {
                    let ran = self.plugin_step(step, scope, &mut record).await;
                    crate::observe::metrics::step_finished(&step.plugin, started.elapsed());
                    match ran {
                        Ok(succeeded) => {
                            state_writes = succeeded.state_writes;
                            changed_outside = succeeded.changed_outside;
                            Produced {
                                value: Ok(StepValue::plain(succeeded.value)),
                                stopped: None,
                            }
                        }
                        Err(message) => Produced {
                            value: Err(message),
                            stopped: None,
                        },
                    }
                }
                StepKind::Branch(branches) => self.branch(step, branches, scope).await?,
                StepKind::Loop(spec) => self.looping(step, spec, scope).await?,
                StepKind::Stop(stop) => self.stop(step, stop, scope),
                StepKind::Call { flow } => self.call(step, flow, scope).await?,
            };
            let value = match produced.value {
                Ok(value) => value,
                Err(message) => {
                    return self.failed(step, record, started, message, ends_run).await;
                }
            };
            record.status = Status::Succeeded;
            record.output = Some(redact_value(&value.value, self.redactor));
            record.detail = value.detail.as_ref().map(|d| self.redactor.json(d.clone()));
            if let Val::Bytes { data, .. } = &value.value
                && let Some(RecordedValue::Bytes(summary)) = &record.output
            {
                blobs.push((summary.sha256.clone(), data.clone()));
            }
            record.duration_us = started.elapsed().as_micros() as u64;
            let ends_run = ends_run || produced.stopped.is_some();
            self.recorder
                .step_ended(
                    self.run,
                    record,
                    &blobs,
                    &state_writes,
                    changed_outside,
                    ends_run,
                )
                .await?;
            Ok(match produced.stopped {
                Some(stopped) => Ended::Stopped(stopped),
                None => Ended::Value(value),
            })
        })
    }

    /// Records `step` as failed with `message`, and says what its failure does to its scope.
    async fn failed(
        &self,
        step: &Step,
        mut record: StepRecord,
        started: Instant,
        message: String,
        ends_run: bool,
    ) -> Result<Ended, RunError> {
        let message = self.redactor.text(&message);
        record.status = Status::Failed;
        record.error = Some(message.clone());
        record.duration_us = started.elapsed().as_micros() as u64;
        let continues = step.on_error == OnError::Continue;
        // Not the message: it may quote what the step was given. The record has it.
        tracing::info!(plugin = %step.plugin, continues, "step failed");
        // A failed step may have changed something before it failed (which attempt did what
        // is not kept), so its record is made durable as if it had.
        self.recorder
            .step_ended(self.run, record, &[], &[], true, ends_run || !continues)
            .await?;
        if continues {
            self.continued.store(true, Ordering::Relaxed);
            Ok(Ended::Continued)
        } else {
            Ok(Ended::Failed(message))
        }
    }

    /// What a step that a resumed run recorded gives, without running it again.
    fn recorded(&self, step: &Step, record: &StepRecord) -> Result<Ended, RunError> {
        match record.status {
            Status::Succeeded | Status::Skipped => {
                let value = match &record.output {
                    Some(RecordedValue::Json(v)) => Val::Json(v.clone()),
                    Some(RecordedValue::Bytes(b)) => Val::Bytes {
                        content_type: b.content_type.clone(),
                        data: self
                            .runner
                            .store
                            .get_blob(&b.sha256)
                            .map_err(RunError::Store)?
                            .ok_or_else(|| {
                                RunError::NotResumable(format!(
                                    "the binary result of step `{}` is no longer stored; replay run `{}` instead",
                                    record.id, self.run.id
                                ))
                            })?,
                    },
                    None => Val::Json(Json::Null),
                };
                if let StepKind::Stop(_) = step.kind {
                    let detail = record.detail.clone().unwrap_or(Json::Null);
                    return Ok(Ended::Stopped(Stopped {
                        step: step.id.clone(),
                        failed: detail["status"] == "failed",
                        result: record.output.as_ref().map(|_| value),
                        message: detail["message"].as_str().map(String::from),
                    }));
                }
                Ok(Ended::Value(StepValue {
                    value,
                    detail: record.detail.clone(),
                }))
            }
            _ if step.on_error == OnError::Continue => {
                self.continued.store(true, Ordering::Relaxed);
                Ok(Ended::Continued)
            }
            _ => Ok(Ended::Failed(record.error.clone().unwrap_or_default())),
        }
    }

    /// Why no more steps may run, if a limit of the run is reached.
    fn over_limits(&self) -> Option<String> {
        let limits = &self.integration.limits;
        let done = self.executions.fetch_add(1, Ordering::Relaxed) + 1;
        if done > limits.step_executions {
            return Some(format!(
                "the run reached its limit of {} step executions (`step_executions`, {})",
                limits.step_executions,
                limits.source("step_executions")
            ));
        }
        if let (Some(deadline), Some(time)) = (self.deadline, limits.run_time)
            && Instant::now() > deadline
        {
            return Some(format!(
                "the run reached its time limit of {} (`run_time`, {})",
                weft_model::limits::Human(time),
                limits.source("run_time")
            ));
        }
        None
    }

    async fn branch<'b>(
        &'b self,
        step: &'b Step,
        branches: &'b [Branch],
        scope: &'b Scope<'b>,
    ) -> Result<Produced, RunError> {
        let mut chosen = None;
        for branch in branches {
            let holds = match &branch.when {
                None => Ok(true),
                Some(condition) => scope.decide(condition),
            };
            match holds {
                Ok(true) => {
                    chosen = Some(branch);
                    break;
                }
                Ok(false) => {}
                Err(message) => {
                    return Ok(Produced {
                        value: Err(format!(
                            "step `{}`: the `when` of branch `{}` {message}",
                            step.id, branch.name
                        )),
                        stopped: None,
                    });
                }
            }
        }
        let Some(branch) = chosen else {
            return Ok(Produced {
                value: Ok(StepValue {
                    value: Val::Json(Json::Null),
                    detail: Some(json!({ "branch": null })),
                }),
                stopped: None,
            });
        };
        let frame = Frame {
            step: step.id.clone(),
            iteration: None,
            branch: Some(branch.name.clone()),
        };
        let detail = Some(json!({ "branch": branch.name }));
        let (outcome, mut results) = self
            .block(&branch.steps, scope.child(frame, None), false)
            .await?;
        Ok(match outcome {
            Outcome::Done(last) => Produced {
                value: Ok(StepValue {
                    value: take_value(&mut results, last),
                    detail,
                }),
                stopped: None,
            },
            Outcome::Stopped(stopped) => Produced {
                value: Ok(StepValue {
                    value: Val::Json(Json::Null),
                    detail,
                }),
                stopped: Some(stopped),
            },
            Outcome::Failed(message) => Produced {
                value: Err(message),
                stopped: None,
            },
        })
    }

    fn stop(&self, step: &Step, stop: &Stop, scope: &Scope) -> Produced {
        let render = |template: &weft_model::template::Template| {
            template
                .render(&|path| scope.lookup(path))
                .map_err(|e| format!("step `{}`: {e}", step.id))
        };
        let result = match stop.result.as_ref().map(render).transpose() {
            Ok(result) => result,
            Err(message) => {
                return Produced {
                    value: Err(message),
                    stopped: None,
                };
            }
        };
        // A run answering a webhook answers with the stop's result: it must be servable.
        if self.answer.is_some()
            && let Some(Val::Json(value)) = &result
            && let Err(why) = weft_model::reply::parse(value)
        {
            return Produced {
                value: Err(format!(
                    "step `{}` stops the run with a result that answers the webhook, but it cannot be served: {why}",
                    step.id
                )),
                stopped: None,
            };
        }
        let message = match stop.message.as_ref().map(render).transpose() {
            Ok(message) => message.map(|m| match m {
                Val::Json(Json::String(s)) => s,
                other => as_json(&other).to_string(),
            }),
            Err(message) => {
                return Produced {
                    value: Err(message),
                    stopped: None,
                };
            }
        };
        Produced {
            value: Ok(StepValue {
                value: result.clone().unwrap_or(Val::Json(Json::Null)),
                detail: Some(json!({
                    "status": if stop.failed { "failed" } else { "succeeded" },
                    "message": message,
                })),
            }),
            stopped: Some(Stopped {
                step: step.id.clone(),
                failed: stop.failed,
                result,
                message,
            }),
        }
    }

    async fn call<'b>(
        &'b self,
        step: &'b Step,
        flow_name: &'b str,
        scope: &'b Scope<'b>,
    ) -> Result<Produced, RunError> {
        let fail = |message: String| Produced {
            value: Err(message),
            stopped: None,
        };
        let limits = &self.integration.limits;
        if scope.call_depth >= limits.call_depth {
            return Ok(fail(format!(
                "step `{}` calls flow `{flow_name}` {} calls deep; the most is {} (`call_depth`, {})",
                step.id,
                scope.call_depth + 1,
                limits.call_depth,
                limits.source("call_depth")
            )));
        }
        let Some(flow) = self.integration.flows.iter().find(|f| f.name == flow_name) else {
            return Ok(fail(format!(
                "step `{}` calls flow `{flow_name}`, which the integration does not have",
                step.id
            )));
        };
        let mut trigger = serde_json::Map::new();
        for (name, template) in &step.inputs {
            match template.render(&|path| scope.lookup(path)) {
                Ok(value) => {
                    trigger.insert(name.clone(), as_json(&value));
                }
                Err(e) => {
                    return Ok(fail(format!("step `{}` input `{name}`: {e}", step.id)));
                }
            }
        }
        let frame = Frame {
            step: step.id.clone(),
            iteration: None,
            branch: None,
        };
        let called = scope.called(frame, Json::Object(trigger));
        let (outcome, mut results) = self.block(&flow.steps, called, false).await?;
        Ok(match outcome {
            Outcome::Done(last) => Produced {
                value: Ok(StepValue::plain(take_value(&mut results, last))),
                stopped: None,
            },
            // A stop in a called flow ends that flow: its result is the call's.
            Outcome::Stopped(Stopped {
                failed: false,
                result,
                ..
            }) => Produced {
                value: Ok(StepValue::plain(result.unwrap_or(Val::Json(Json::Null)))),
                stopped: None,
            },
            Outcome::Stopped(Stopped {
                failed: true,
                message,
                step: stop,
                ..
            }) => fail(format!(
                "step `{}`: flow `{flow_name}` stopped failed at step `{stop}`{}",
                step.id,
                message.map(|m| format!(": {m}")).unwrap_or_default()
            )),
            Outcome::Failed(message) => fail(format!(
                "step `{}`: flow `{flow_name}` failed: {message}",
                step.id
            )),
        })
    }
}

/// The value of step `last` taken out of a scope's `results` (`null` when no step gave one).
pub(super) fn take_value(results: &mut HashMap<String, StepValue>, last: Option<String>) -> Val {
    last.and_then(|id| results.remove(&id))
        .map_or(Val::Json(Json::Null), |v| v.value)
}
