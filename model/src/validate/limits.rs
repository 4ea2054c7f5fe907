//! Retry policies and limits, with the engine's defaults and the plugin policy's caps.

use std::path::Path;
use std::time::Duration;

use crate::control::FlowLimits;
use crate::limits::{Bytes, Human, StepLimits, parse_duration, parse_size};
use crate::spec::{FlowLimitsSpec, RetrySpec, StepSpec, WorkspaceFile};
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

/// The integration's flow-control limits: its `[limits]` over the engine's defaults, each
/// at most what the workspace's `[limits]` allows.
pub(super) fn check_flow_limits(
    own: &FlowLimitsSpec,
    cap: &FlowLimitsSpec,
    path: &Path,
    report: &mut Report,
) -> FlowLimits {
    let mut limits = FlowLimits::default();
    let mut take = |name: &str, own: Option<u64>, cap: Option<u64>, default: u64| -> u64 {
        match (own, cap) {
            (Some(0), _) => {
                report.add(
                    path,
                    &[format!("field `limits.{name}`")],
                    "write a number above 0",
                );
                default
            }
            (Some(own), Some(cap)) if own > cap => {
                report.add(
                    path,
                    &[format!("field `limits.{name}`")],
                    format!(
                        "{own} is more than the workspace allows, {cap} (`[limits] {name}` in the workspace file)"
                    ),
                );
                cap
            }
            (Some(own), _) => own,
            (None, Some(cap)) => default.min(cap),
            (None, None) => default,
        }
    };
    limits.iterations = take(
        "iterations",
        own.iterations,
        cap.iterations,
        limits.iterations,
    );
    limits.step_executions = take(
        "step_executions",
        own.step_executions,
        cap.step_executions,
        limits.step_executions,
    );
    limits.depth = take(
        "depth",
        own.depth.map(u64::from),
        cap.depth.map(u64::from),
        limits.depth.into(),
    ) as u32;
    limits.call_depth = take(
        "call_depth",
        own.call_depth.map(u64::from),
        cap.call_depth.map(u64::from),
        limits.call_depth.into(),
    ) as u32;
    let duration = |text: &Option<String>, report: &mut Report, field: &str| {
        text.as_deref().and_then(|t| match parse_duration(t) {
            Ok(d) => Some(d),
            Err(e) => {
                report.add(path, &[field.to_string()], e);
                None
            }
        })
    };
    let own_time = duration(&own.run_time, report, "field `limits.run_time`");
    let cap_time = duration(
        &cap.run_time,
        report,
        "field `limits.run_time` of the workspace",
    );
    limits.run_time = match (own_time, cap_time) {
        (Some(o), Some(c)) if o > c => {
            report.add(
                path,
                &["field `limits.run_time`".to_string()],
                format!(
                    "{} is more than the workspace allows, {} (`[limits] run_time` in the workspace file)",
                    crate::limits::Human(o),
                    crate::limits::Human(c)
                ),
            );
            Some(c)
        }
        (Some(o), _) => Some(o),
        (None, c) => c,
    };
    limits.set_in = if own.iterations.is_some()
        || own.step_executions.is_some()
        || own.depth.is_some()
        || own.call_depth.is_some()
        || own.run_time.is_some()
    {
        format!("`[limits]` of `{}`", path.display())
    } else if cap.iterations.is_some()
        || cap.step_executions.is_some()
        || cap.depth.is_some()
        || cap.call_depth.is_some()
        || cap.run_time.is_some()
    {
        "the engine's default, capped by the workspace's `[limits]`".into()
    } else {
        "the engine's default".into()
    };
    limits
}
