//! An integration's flows and steps: plugins, inputs checked against manifests, and every
//! template reference resolved against the steps before it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::manifest::Manifest;
use crate::spec::{IntegrationFile, StepSpec, WorkspaceFile};
use crate::template::{Path as RefPath, Segment, Template};
use crate::workspace::{Flow, Integration, Step, plugin_source};

use super::limits::{check_limits, check_retry, policy_limits};
use super::{Report, did_you_mean, quoted};

pub(super) fn check_integration(
    spec: IntegrationFile,
    path: PathBuf,
    ws: &WorkspaceFile,
    dir: &Path,
    manifests: &BTreeMap<String, Arc<Manifest>>,
    report: &mut Report,
) -> Integration {
    if spec.flows.is_empty() {
        report.add(
            &path,
            &[],
            "the integration has no flows; add a `[[flows]]` table with steps",
        );
    }
    for (name, var) in &spec.config_vars {
        if let Some(default) = &var.default
            && !var.kind.accepts(default)
        {
            report.add(
                &path,
                &[quoted("config var", name), "field `default`".into()],
                format!("the default {default} is not a {}", var.kind.name()),
            );
        }
    }
    let mut flow_names = HashSet::new();
    let mut flows = Vec::new();
    for flow in &spec.flows {
        let flow_at = quoted("flow", &flow.name);
        if !flow_names.insert(flow.name.clone()) {
            report.add(
                &path,
                std::slice::from_ref(&flow_at),
                "another flow has the same name; rename one of them",
            );
        }
        if flow.steps.is_empty() {
            report.add(
                &path,
                std::slice::from_ref(&flow_at),
                "the flow has no steps; add `[[flows.steps]]` tables",
            );
        }
        // Position of every step id, to tell an unknown step from one that runs later.
        let positions: HashMap<&str, usize> = flow
            .steps
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut seen = HashSet::new();
        let mut steps = Vec::new();
        for (index, step) in flow.steps.iter().enumerate() {
            let step_at = [flow_at.clone(), quoted("step", &step.id)];
            if !seen.insert(step.id.as_str()) {
                report.add(
                    &path,
                    &step_at,
                    "duplicate step id; every step in a flow needs its own id because later steps refer to it",
                );
            }
            if step.id.is_empty()
                || !step
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                report.add(
                    &path,
                    &step_at,
                    "a step id may use only letters, digits, `_` and `-`, so that `steps.<id>` references can name it",
                );
            }
            if plugin_source(ws, dir, &step.plugin).is_none() {
                report.add(
                    &path,
                    &[step_at[0].clone(), step_at[1].clone(), "field `plugin`".into()],
                    format!(
                        "unknown plugin `{}`; add it to `[plugins]` in the workspace file or use a built-in plugin ({})",
                        step.plugin,
                        crate::builtin::names().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            let inputs = check_inputs(step, index, &positions, &spec, &path, &step_at, report);
            if let Some(manifest) = manifests.get(&step.plugin) {
                for name in step.inputs.keys() {
                    if !manifest.inputs.contains_key(name) {
                        report.add(
                            &path,
                            &[
                                step_at[0].clone(),
                                step_at[1].clone(),
                                format!("field `inputs.{name}`"),
                            ],
                            format!(
                                "plugin `{}` takes no input `{name}`; its inputs are {}",
                                step.plugin,
                                manifest
                                    .inputs
                                    .keys()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                }
                for (name, input) in &manifest.inputs {
                    if input.required && !step.inputs.contains_key(name) {
                        report.add(
                            &path,
                            &[
                                step_at[0].clone(),
                                step_at[1].clone(),
                                "field `inputs`".into(),
                            ],
                            format!("plugin `{}` requires input `{name}`", step.plugin),
                        );
                    }
                }
            }
            let limits = check_limits(
                step,
                policy_limits(ws, &step.plugin),
                &path,
                &step_at,
                report,
            );
            let retry = step
                .retry
                .as_ref()
                .and_then(|r| check_retry(r, &path, &step_at, report));
            steps.push(Step {
                id: step.id.clone(),
                plugin: step.plugin.clone(),
                inputs,
                limits,
                credential: step.credential.clone(),
                retry,
                on_error: step.on_error,
            });
        }
        flows.push(Flow {
            name: flow.name.clone(),
            steps,
        });
    }
    Integration { path, spec, flows }
}

pub(super) fn check_inputs(
    step: &StepSpec,
    index: usize,
    positions: &HashMap<&str, usize>,
    spec: &IntegrationFile,
    path: &Path,
    step_at: &[String; 2],
    report: &mut Report,
) -> Vec<(String, Template)> {
    let mut inputs = Vec::new();
    for (name, value) in &step.inputs {
        let at = [
            step_at[0].clone(),
            step_at[1].clone(),
            format!("field `inputs.{name}`"),
        ];
        let template = match Template::compile(value) {
            Ok(t) => t,
            Err(e) => {
                report.add(path, &at, format!("malformed template: {e}"));
                continue;
            }
        };
        for reference in template.paths() {
            if let Err(message) = check_reference(reference, index, positions, spec) {
                report.add(path, &at, message);
            }
        }
        inputs.push((name.clone(), template));
    }
    inputs
}

pub(super) fn check_reference(
    reference: &RefPath,
    index: usize,
    positions: &HashMap<&str, usize>,
    spec: &IntegrationFile,
) -> Result<(), String> {
    let first = reference.segments.first();
    match reference.root.as_str() {
        "config" => match first {
            Some(Segment::Key(var)) if spec.config_vars.contains_key(var) => Ok(()),
            Some(Segment::Key(var)) => Err(format!(
                "`{reference}` names config var `{var}`, which the integration does not declare; declare it under `[config_vars]`{}",
                did_you_mean(var, spec.config_vars.keys().map(String::as_str))
            )),
            _ => Err(format!(
                "`{reference}` must name a config var, like `config.customerName`"
            )),
        },
        "steps" => {
            let Some(Segment::Key(id)) = first else {
                return Err(format!(
                    "`{reference}` must name a step, like `steps.<id>.results`"
                ));
            };
            match positions.get(id.as_str()) {
                None => Err(format!(
                    "`{reference}` refers to step `{id}`, which is not in this flow{}",
                    did_you_mean(id, positions.keys().copied())
                )),
                Some(&at) if at == index => Err(format!(
                    "`{reference}` refers to the step itself; a step can only use the results of steps before it"
                )),
                Some(&at) if at > index => Err(format!(
                    "`{reference}` refers to step `{id}`, which runs later; a step can only use the results of steps before it"
                )),
                Some(_) => match reference.segments.get(1) {
                    Some(Segment::Key(k)) if k == "results" => Ok(()),
                    _ => Err(format!(
                        "`{reference}` must continue with `.results`, like `steps.{id}.results.field`"
                    )),
                },
            }
        }
        _ => Ok(()),
    }
}
