//! Retry policies and limits, with the engine's defaults and the plugin policy's caps.

use std::path::Path;
use std::time::Duration;

use crate::limits::{Bytes, Human, StepLimits, parse_duration, parse_size};
use crate::spec::{RetrySpec, StepSpec, WorkspaceFile};
use crate::workspace::RetryPolicy;

use super::Report;

pub(super) fn check_retry(
    spec: &RetrySpec,
    path: &Path,
    step_at: &[String],
    report: &mut Report,
) -> Option<RetryPolicy> {
    let mut ok = true;
    let mut problem = |field: &str, message: String| {
        ok = false;
        report.add(
            path,
            &[step_at, &[format!("field `retry.{field}`")]].concat(),
            message,
        );
    };
    let attempts = spec.attempts.unwrap_or(3);
    if attempts == 0 || attempts > RetryPolicy::MAX_ATTEMPTS {
        problem(
            "attempts",
            format!(
                "`{attempts}` attempts: write 1 to {} (the first attempt included)",
                RetryPolicy::MAX_ATTEMPTS
            ),
        );
    }
    let mut duration = |field: &str, text: &Option<String>, default: Duration| match text {
        None => default,
        Some(t) => parse_duration(t).unwrap_or_else(|e| {
            problem(field, e);
            default
        }),
    };
    let delay = duration("delay", &spec.delay, Duration::from_secs(1));
    let max_delay = duration("max_delay", &spec.max_delay, Duration::from_secs(30));
    let backoff = spec.backoff.unwrap_or(2.0);
    if !(1.0..=10.0).contains(&backoff) {
        problem(
            "backoff",
            format!("`{backoff}`: write a factor from 1 (equal waits) to 10"),
        );
    }
    ok.then_some(RetryPolicy {
        attempts,
        delay,
        backoff,
        max_delay,
        jitter: spec.jitter.unwrap_or(true),
    })
}

/// The limits a plugin's policy sets (each unset one the engine's default), if it sets any.
/// Malformed values are reported by `check_plugins` and read as the default here.
pub(super) fn policy_limits(file: &WorkspaceFile, plugin: &str) -> Option<StepLimits> {
    let spec = file.plugins.get(plugin)?.limits.as_ref()?;
    let mut limits = StepLimits::default();
    if let Some(Ok(t)) = spec.time.as_deref().map(parse_duration) {
        limits.time = t;
    }
    if let Some(Ok(m)) = spec.memory.as_deref().map(parse_size) {
        limits.memory = m.min(StepLimits::MAX_MEMORY);
    }
    if let Some(Ok(o)) = spec.output.as_deref().map(parse_size) {
        limits.output = o;
    }
    Some(limits)
}

pub(super) fn check_limits(
    step: &StepSpec,
    cap: Option<StepLimits>,
    path: &Path,
    step_at: &[String],
    report: &mut Report,
) -> StepLimits {
    let mut limits = cap.unwrap_or_default();
    let mut field =
        |name: &str, text: &Option<String>, apply: &mut dyn FnMut(&str) -> Result<(), String>| {
            if let Some(text) = text
                && let Err(message) = apply(text)
            {
                report.add(
                    path,
                    &[step_at, &[format!("field `{name}`")]].concat(),
                    message,
                );
            }
        };
    field("timeout", &step.timeout, &mut |t| {
        limits.time = parse_duration(t)?;
        Ok(())
    });
    field("limits.time", &step.limits.time, &mut |t| {
        limits.time = parse_duration(t)?;
        Ok(())
    });
    field("limits.memory", &step.limits.memory, &mut |t| {
        let bytes = parse_size(t)?;
        if bytes > StepLimits::MAX_MEMORY {
            return Err(format!(
                "`{t}` is more than the largest memory limit, {}",
                Bytes(StepLimits::MAX_MEMORY)
            ));
        }
        limits.memory = bytes;
        Ok(())
    });
    field("limits.output", &step.limits.output, &mut |t| {
        limits.output = parse_size(t)?;
        Ok(())
    });
    if let Some(cap) = cap {
        let at = [step_at, &["field `limits`".to_string()]].concat();
        let plugin = step.plugin.as_deref().unwrap_or_default();
        let over = |what: &str, asked: String, most: String| {
            format!(
                "the step asks for {asked} of {what}, but the policy of plugin `{}` allows at most {most}; lower it, or raise `limits.{what}` in `[plugins.{}]`",
                plugin, plugin
            )
        };
        if limits.time > cap.time {
            report.add(
                path,
                &at,
                over(
                    "time",
                    Human(limits.time).to_string(),
                    Human(cap.time).to_string(),
                ),
            );
        }
        if limits.memory > cap.memory {
            report.add(
                path,
                &at,
                over(
                    "memory",
                    Bytes(limits.memory).to_string(),
                    Bytes(cap.memory).to_string(),
                ),
            );
        }
        if limits.output > cap.output {
            report.add(
                path,
                &at,
                over(
                    "output",
                    Bytes(limits.output).to_string(),
                    Bytes(cap.output).to_string(),
                ),
            );
        }
    }
    limits
}
