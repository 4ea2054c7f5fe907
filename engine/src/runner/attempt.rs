//! One step executed: attempt after attempt under its retry policy, each failure described
//! with the step and plugin, every log line redacted.

use std::time::Instant;

use weft_model::records::{LogLine, now_ms};
use weft_model::redact::Redactor;
use weft_model::value::Val;
use weft_model::workspace::{Step, Workspace};

use super::Runner;
use super::context::Bindings;
use crate::host::http::HttpContext;
use crate::host::s3::S3Context;
use crate::plugin::{Plugin, StepCall, StepFailure};
use crate::store::{Attempt, StateWrite, StepRecord};

/// What a step that succeeded produced.
pub(super) struct Succeeded {
    /// Its result.
    pub(super) value: Val,
    /// The state it wrote, applied when its record is committed.
    pub(super) state_writes: Vec<StateWrite>,
    /// Whether one of its attempts may have changed something outside Weft.
    pub(super) changed_outside: bool,
}

impl Runner {
    /// Executes `step` until it succeeds, fails with an error that is not retryable, or has
    /// used all its attempts. Its logs and (when it may retry) each attempt go into `record`;
    /// a failure is returned as the message its record keeps.
    #[expect(
        clippy::too_many_arguments,
        reason = "one private call site; a struct would only rename them"
    )]
    pub(super) async fn attempt(
        &self,
        run_id: &str,
        ws: &Workspace,
        step: &Step,
        plugin: &Plugin,
        inputs: &[(String, Val)],
        bindings: &Bindings,
        redactor: &Redactor,
        record: &mut StepRecord,
    ) -> Result<Succeeded, String> {
        let max = step.retry.as_ref().map_or(1, |r| r.attempts.max(1));
        let mut attempt = 1;
        let mut changed_outside = false;
        loop {
            let attempt_started = Instant::now();
            let attempt_at_ms = now_ms();
            let key = idempotency_key(run_id, &record.path(), attempt);
            let outcome = self
                .host
                .execute(plugin, self.step_call(ws, step, inputs, bindings, key))
                .await;
            changed_outside |= outcome.changed_outside;
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
                    return Ok(Succeeded {
                        value,
                        state_writes: outcome.state_writes,
                        changed_outside,
                    });
                }
                Err(failure) => {
                    let message = describe_failure(&step.id, &step.plugin, &failure, &record.logs);
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
                            tokio::time::sleep(policy.delay_before(attempt + 1, unit_random()))
                                .await;
                            attempt += 1;
                        }
                        _ if max > 1 && attempt > 1 => {
                            return Err(format!("{message} (attempt {attempt} of {max})"));
                        }
                        _ => return Err(message),
                    }
                }
            }
        }
    }

    fn step_call<'s>(
        &self,
        ws: &Workspace,
        step: &'s Step,
        inputs: &[(String, Val)],
        bindings: &Bindings,
        idempotency_key: String,
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
                idempotency_key: Some(idempotency_key),
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

/// What a failed step's error says: the step, the plugin and what happened, with the last
/// line the step wrote to stderr when it crashed (usually a panic message).
fn describe_failure(step: &str, plugin: &str, failure: &StepFailure, logs: &[LogLine]) -> String {
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

/// The idempotency key of attempt `attempt` of the step execution at `path` of run `run_id`:
/// `<run>/<path>/<attempt>`, the path's characters outside `A-Z a-z 0-9 - _ . [ ] /` escaped
/// so that it is a valid header value.
fn idempotency_key(run_id: &str, path: &str, attempt: u32) -> String {
    let mut key = format!("{run_id}/");
    for c in path.chars() {
        if c.is_ascii_alphanumeric() || "-_.[]/".contains(c) {
            key.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                key.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    key.push_str(&format!("/{attempt}"));
    key
}

/// A random number in `0.0..=1.0`, for retry jitter.
fn unit_random() -> f64 {
    use chacha20poly1305::aead::rand_core::RngCore as _;
    chacha20poly1305::aead::OsRng.next_u32() as f64 / u32::MAX as f64
}
