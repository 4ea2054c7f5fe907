//! A flow's steps, in order: inputs rendered and checked against the plugin's manifest, the
//! step executed, its record kept, and the run's status decided by the step that ended it.

use std::time::Instant;

use weft_model::records::now_ms;
use weft_model::redact::Redactor;
use weft_model::spec::OnError;
use weft_model::value::{RecordedValue, Val};
use weft_model::workspace::{Flow, Step, Workspace};

use super::context::{Bindings, Context, redact_value};
use super::recorder::Recorder;
use super::{RunError, Runner};
use crate::store::{RunRecord, Status, StepRecord};

impl Runner {
    /// Runs the steps of `flow` that follow those already in `steps`, recording each, and
    /// sets the run's status, error and result.
    #[expect(
        clippy::too_many_arguments,
        reason = "one private call site; a struct would only rename them"
    )]
    pub(super) async fn run_steps(
        &self,
        ws: &Workspace,
        flow: &Flow,
        mut context: Context,
        bindings: Bindings,
        redactor: &Redactor,
        answer: Option<&str>,
        run: &mut RunRecord,
        steps: &mut Vec<StepRecord>,
        recorder: &mut Recorder<'_>,
    ) -> Result<(), RunError> {
        let plugins = match self.load_plugins(ws, flow) {
            Ok(plugins) => plugins,
            Err(e) => {
                run.status = Status::Failed;
                run.error = Some(redactor.text(&format!("the run stopped before any step: {e:#}")));
                return Ok(());
            }
        };

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
                    let plugin = &plugins[step.plugin.as_str()];
                    match self
                        .attempt(ws, step, plugin, &inputs, &bindings, redactor, &mut record)
                        .await
                    {
                        Ok(succeeded) => match unservable_reply(step, answer, &succeeded.value) {
                            Some(message) => Some(message),
                            None => {
                                record.status = Status::Succeeded;
                                record.output = Some(redact_value(&succeeded.value, redactor));
                                if let Val::Bytes { data, .. } = &succeeded.value
                                    && let Some(RecordedValue::Bytes(summary)) = &record.output
                                {
                                    blobs.push((summary.sha256.clone(), data.clone()));
                                }
                                state_writes = succeeded.state_writes;
                                context.results.insert(step.id.clone(), succeeded.value);
                                None
                            }
                        },
                        Err(message) => Some(message),
                    }
                }
            };
            record.duration_us = started.elapsed().as_micros() as u64;
            record.error = failure.as_ref().map(|m| redactor.text(m));
            let ends_run = index + 1 == flow.steps.len()
                || (failure.is_some() && step.on_error != OnError::Continue);
            recorder
                .step_ended(run, steps, &record, &blobs, &state_writes, ends_run)
                .await?;
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
}

/// Why the result of `step` cannot answer the webhook it is to answer, if it cannot.
fn unservable_reply(step: &Step, answer: Option<&str>, value: &Val) -> Option<String> {
    if answer != Some(step.id.as_str()) {
        return None;
    }
    let Val::Json(value) = value else {
        return None;
    };
    weft_model::reply::parse(value).err().map(|why| {
        format!(
            "step `{}` (plugin `{}`) answers the webhook, but its result cannot be served: {why}",
            step.id, step.plugin
        )
    })
}
