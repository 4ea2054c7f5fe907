//! An integration's flows and steps: plugins, inputs checked against manifests, flow control
//! (branches, loops, stops, calls) with its conditions parsed, and every reference resolved
//! against the steps visible where it is written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as Json;

use crate::condition::Condition;
use crate::control::{FlowLimits, StepKind};
use crate::manifest::Manifest;
use crate::spec::{FlowSpec, IntegrationFile, StepSpec, WorkspaceFile};
use crate::template::{Path as RefPath, ROOTS, Segment, Template};
use crate::workspace::{Flow, Integration, Step, plugin_source};

use super::limits::{check_flow_limits, check_limits, check_retry, policy_limits};
use super::{Report, did_you_mean, quoted};

mod control;

/// What the values of the current loop are called in templates (`loop.item`) and conditions
/// (`item`).
const LOOP_FIELDS: [&str; 3] = ["item", "index", "previous"];

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
        for problem in var.problems() {
            report.add(&path, &[quoted("config var", name)], problem);
        }
        if let Some(flow) = &var.options_from
            && !spec.flows.iter().any(|f| &f.name == flow)
        {
            report.add(
                &path,
                &[quoted("config var", name), "field `options_from`".into()],
                format!(
                    "the integration has no flow `{flow}` to list the options{}",
                    super::did_you_mean(flow, spec.flows.iter().map(|f| f.name.as_str()))
                ),
            );
        }
    }
    super::marketplace::check_marketplace(&spec, &path, report);
    let limits = check_flow_limits(&spec.limits, &ws.limits, &path, report);
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
        let mut checker = FlowChecker {
            spec: &spec,
            ws,
            dir,
            manifests,
            path: &path,
            flow: &flow.name,
            limits: &limits,
            places: places(flow, &path, &flow_at, report),
            report,
        };
        let top = Scope {
            at: vec![flow_at],
            parent: None,
            visible: Vec::new(),
            aliases: Vec::new(),
            in_loop: false,
            depth: 0,
        };
        let steps = checker.block(&flow.steps, &top);
        flows.push(Flow {
            name: flow.name.clone(),
            steps,
        });
    }
    Integration {
        path,
        spec,
        flows,
        limits,
    }
}

/// Where a step id is in its flow: the control step around it (`None` at the top), for
/// telling "runs later" from "inside another scope".
struct Place {
    parent: Option<String>,
}

/// Every step id of `flow` with its place; duplicate ids are reported.
fn places(
    flow: &FlowSpec,
    path: &Path,
    flow_at: &str,
    report: &mut Report,
) -> HashMap<String, Place> {
    fn visit(
        steps: &[StepSpec],
        parent: Option<&str>,
        out: &mut HashMap<String, Place>,
        duplicates: &mut Vec<String>,
    ) {
        for step in steps {
            if out
                .insert(
                    step.id.clone(),
                    Place {
                        parent: parent.map(str::to_string),
                    },
                )
                .is_some()
            {
                duplicates.push(step.id.clone());
            }
            visit(&step.steps, Some(&step.id), out, duplicates);
            for branch in &step.branches {
                visit(&branch.steps, Some(&step.id), out, duplicates);
            }
        }
    }
    let mut out = HashMap::new();
    let mut duplicates = Vec::new();
    visit(&flow.steps, None, &mut out, &mut duplicates);
    for id in duplicates {
        report.add(
            path,
            &[flow_at.to_string(), quoted("step", &id)],
            "duplicate step id; every step in a flow, inside loops and branches too, needs its own id because other steps refer to it",
        );
    }
    out
}

/// The kind a step spec declares, as far as it can be told (`plugin` for a plugin step).
fn kind_of(step: &StepSpec) -> &'static str {
    match step.kind.as_deref() {
        None => "plugin",
        Some("branch") => "branch",
        Some("loop") => "loop",
        Some("stop") => "stop",
        Some("call") => "call",
        Some(_) => "unknown",
    }
}

/// What a step can see where it is written.
#[derive(Clone)]
struct Scope<'s> {
    /// Where it is, for messages: flow, then each enclosing step (and branch).
    at: Vec<String>,
    /// The control step whose steps these are.
    parent: Option<&'s str>,
    /// Steps that ran before, here and in every enclosing scope, with their kinds.
    visible: Vec<(&'s str, &'static str)>,
    /// The `as` names of the enclosing loops.
    aliases: Vec<&'s str>,
    /// Whether the steps are inside a loop.
    in_loop: bool,
    /// How many loops and branches enclose the steps.
    depth: u32,
}

impl Scope<'_> {
    /// The roots templates may start with here.
    fn template_roots(&self) -> Vec<&str> {
        let mut roots: Vec<&str> = ROOTS.to_vec();
        if self.in_loop {
            roots.push("loop");
        }
        roots.extend(self.aliases.iter().copied());
        roots
    }

    /// The names conditions may read here.
    fn condition_roots(&self) -> Vec<&str> {
        let mut roots: Vec<&str> = ROOTS.to_vec();
        if self.in_loop {
            roots.extend(LOOP_FIELDS);
        }
        roots.extend(self.aliases.iter().copied());
        roots
    }
}

struct FlowChecker<'c> {
    spec: &'c IntegrationFile,
    ws: &'c WorkspaceFile,
    dir: &'c Path,
    manifests: &'c BTreeMap<String, Arc<Manifest>>,
    path: &'c Path,
    /// The flow's name.
    flow: &'c str,
    limits: &'c FlowLimits,
    places: HashMap<String, Place>,
    report: &'c mut Report,
}

impl<'c> FlowChecker<'c> {
    fn add(&mut self, at: &[String], message: impl Into<String>) {
        self.report.add(self.path, at, message);
    }

    /// Checks the steps of one scope, each seeing those before it.
    fn block<'s>(&mut self, steps: &'s [StepSpec], scope: &Scope<'s>) -> Vec<Step> {
        let mut scope = scope.clone();
        let mut out = Vec::new();
        for step in steps {
            if let Some(compiled) = self.step(step, &scope) {
                out.push(compiled);
            }
            scope.visible.push((step.id.as_str(), kind_of(step)));
        }
        out
    }

    fn step<'s>(&mut self, step: &'s StepSpec, scope: &Scope<'s>) -> Option<Step> {
        let mut at = scope.at.clone();
        at.push(quoted("step", &step.id));
        if step.id.is_empty()
            || !step
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.add(
                &at,
                "a step id may use only letters, digits, `_` and `-`, so that `steps.<id>` references can name it",
            );
        }
        // A code step runs the plugin validation made of its code.
        let is_code = step.code.is_some() || step.code_file.is_some();
        let plugin = if is_code {
            if step.plugin.is_some() || step.kind.is_some() {
                return None;
            }
            Some(crate::code::plugin_name(
                &self.spec.name,
                self.flow,
                &step.id,
            ))
        } else {
            step.plugin.clone()
        };
        let kind = match (&plugin, step.kind.as_deref()) {
            (Some(_), Some(_)) => {
                self.add(
                    &at,
                    "the step has both `plugin` and `type`; a step is either a plugin step or a flow-control step, so keep one",
                );
                return None;
            }
            (None, None) => {
                self.add(
                    &at,
                    "the step has neither `plugin` nor `type`; add `plugin = \"<name>\"`, or `type = \"branch\"`, `\"loop\"`, `\"stop\"` or `\"call\"`",
                );
                return None;
            }
            (Some(_), None) => "plugin",
            (None, Some(kind @ ("branch" | "loop" | "stop" | "call"))) => kind,
            (None, Some(other)) => {
                self.add(
                    &[at.clone(), vec!["field `type`".into()]].concat(),
                    format!(
                        "unknown step type `{other}`; the types are `branch`, `loop`, `stop` and `call`{}",
                        did_you_mean(other, ["branch", "loop", "stop", "call"].into_iter())
                    ),
                );
                return None;
            }
        };
        self.misplaced_fields(step, kind, &at);
        let condition = step
            .condition
            .as_deref()
            .and_then(|source| self.condition(source, "if", scope, &at));
        let limits = check_limits(
            step,
            plugin
                .as_deref()
                .and_then(|plugin| policy_limits(self.ws, plugin)),
            self.path,
            &at,
            self.report,
        );
        let retry = step
            .retry
            .as_ref()
            .and_then(|r| check_retry(r, self.path, &at, self.report));
        let mut inputs = Vec::new();
        let kind = match kind {
            "plugin" => {
                if !is_code {
                    self.plugin(step, plugin.as_deref().unwrap_or_default(), &at);
                }
                inputs = self.inputs(step, scope, &at);
                StepKind::Plugin
            }
            "branch" => StepKind::Branch(self.branches(step, scope, &at)),
            "loop" => StepKind::Loop(Box::new(self.looping(step, scope, &at)?)),
            "stop" => StepKind::Stop(self.stop(step, scope, &at)),
            _ => {
                inputs = self.inputs(step, scope, &at);
                StepKind::Call {
                    flow: self.call(step, &at),
                }
            }
        };
        Some(Step {
            id: step.id.clone(),
            plugin: plugin.unwrap_or_else(|| kind.name().to_string()),
            kind,
            condition,
            inputs,
            limits,
            credential: step.credential.clone(),
            retry,
            on_error: step.on_error,
        })
    }

    fn plugin(&mut self, step: &StepSpec, plugin: &str, at: &[String]) {
        if plugin_source(self.ws, self.dir, plugin).is_none() {
            self.add(
                &[at, &["field `plugin`".to_string()]].concat(),
                format!(
                    "unknown plugin `{plugin}`; add it to `[plugins]` in the workspace file or use a built-in plugin ({})",
                    crate::builtin::names()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        let Some(manifest) = self.manifests.get(plugin).cloned() else {
            return;
        };
        for name in step.inputs.keys() {
            if !manifest.inputs.contains_key(name) {
                self.add(
                    &[at, &[format!("field `inputs.{name}`")]].concat(),
                    format!(
                        "plugin `{plugin}` takes no input `{name}`; its inputs are {}",
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
                self.add(
                    &[at, &["field `inputs`".to_string()]].concat(),
                    format!("plugin `{plugin}` requires input `{name}`"),
                );
            }
        }
    }

    fn inputs(&mut self, step: &StepSpec, scope: &Scope, at: &[String]) -> Vec<(String, Template)> {
        let mut inputs = Vec::new();
        for (name, value) in &step.inputs {
            let field_at = [at, &[format!("field `inputs.{name}`")]].concat();
            if let Some(template) = self.template(value, &step.id, scope, &field_at) {
                inputs.push((name.clone(), template));
            }
        }
        inputs
    }

    /// Compiles a template and checks every reference in it.
    fn template(
        &mut self,
        value: &Json,
        step_id: &str,
        scope: &Scope,
        at: &[String],
    ) -> Option<Template> {
        let template = match Template::compile_with_roots(value, &scope.template_roots()) {
            Ok(t) => t,
            Err(e) => {
                self.add(at, format!("malformed template: {e}"));
                return None;
            }
        };
        for reference in template.paths() {
            if let Err(message) = self.reference(reference, step_id, scope) {
                self.add(at, message);
            }
        }
        Some(template)
    }

    /// Whether `reference`, written in step `step_id`, can be resolved there.
    fn reference(&self, reference: &RefPath, step_id: &str, scope: &Scope) -> Result<(), String> {
        let first = reference.segments.first();
        match reference.root.as_str() {
            "config" => match first {
                Some(Segment::Key(var)) if self.spec.config_vars.contains_key(var) => Ok(()),
                Some(Segment::Key(var)) => Err(format!(
                    "`{reference}` names config var `{var}`, which the integration does not declare; declare it under `[config_vars]`{}",
                    did_you_mean(var, self.spec.config_vars.keys().map(String::as_str))
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
                let field = match reference.segments.get(1) {
                    Some(Segment::Key(k)) => Some(k.as_str()),
                    _ => None,
                };
                self.step_reference(&reference.to_string(), id, field, step_id, scope)
            }
            "loop" => match first {
                Some(Segment::Key(k)) if LOOP_FIELDS.contains(&k.as_str()) => Ok(()),
                _ => Err(format!(
                    "`{reference}`: a loop's values are `loop.item`, `loop.index` and `loop.previous` (the previous iteration's result)"
                )),
            },
            _ => Ok(()),
        }
    }

    /// Whether `steps.<id>.<field>` (written as `text` in step `from`) can be read there.
    fn step_reference(
        &self,
        text: &str,
        id: &str,
        field: Option<&str>,
        from: &str,
        scope: &Scope,
    ) -> Result<(), String> {
        let Some(&(_, kind)) = scope.visible.iter().rev().find(|(v, _)| *v == id) else {
            return Err(match self.places.get(id) {
                None => format!(
                    "`{text}` refers to step `{id}`, which is not in this flow{}",
                    did_you_mean(id, self.places.keys().map(String::as_str))
                ),
                Some(_) if id == from => format!(
                    "`{text}` refers to the step itself; a step can only use the results of steps before it"
                ),
                Some(place) if place.parent.as_deref() == scope.parent => format!(
                    "`{text}` refers to step `{id}`, which runs later; a step can only use the results of steps before it"
                ),
                Some(place) => match &place.parent {
                    Some(parent) => format!(
                        "`{text}` refers to step `{id}`, which is inside step `{parent}`; steps outside it can only use what it gives, `steps.{parent}.results`"
                    ),
                    None => format!(
                        "`{text}` refers to step `{id}`, which runs later; a step can only use the results of steps before it"
                    ),
                },
            });
        };
        let fields: &[&str] = match kind {
            "branch" => &["results", "branch"],
            "loop" => &["results", "errors"],
            _ => &["results"],
        };
        match field {
            Some(f) if fields.contains(&f) => Ok(()),
            _ => Err(format!(
                "`{text}` must continue with {}, like `steps.{id}.results.field`",
                fields
                    .iter()
                    .map(|f| format!("`.{f}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
        }
    }

    /// Parses a condition written in `field` and checks what it reads.
    fn condition(
        &mut self,
        source: &str,
        field: &str,
        scope: &Scope,
        at: &[String],
    ) -> Option<Condition> {
        let at = [at, &[format!("field `{field}`")]].concat();
        let step_id = at
            .iter()
            .rev()
            .find_map(|a| a.strip_prefix("step `"))
            .map(|s| s.trim_end_matches('`').to_string())
            .unwrap_or_default();
        let condition = match Condition::compile(source) {
            Ok(c) => c,
            Err(e) => {
                let hint = if e.message.contains("reserved identifier: loop") {
                    "; `loop` is a reserved word in CEL: conditions read the loop's values as `item`, `index` and `previous`"
                } else {
                    ""
                };
                self.add(
                    &at,
                    format!("the expression `{source}` does not parse: {e}{hint}"),
                );
                return None;
            }
        };
        let allowed = scope.condition_roots();
        for root in condition.roots() {
            if !allowed.contains(&root.as_str()) {
                self.add(
                    &at,
                    format!(
                        "`{source}` reads `{root}`, which conditions cannot see here; they read {}",
                        allowed
                            .iter()
                            .map(|r| format!("`{r}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        for reference in condition.step_references() {
            let text = match &reference.field {
                Some(f) => format!("steps.{}.{f}", reference.step),
                None => format!("steps.{}", reference.step),
            };
            if let Err(message) = self.step_reference(
                &text,
                &reference.step,
                reference.field.as_deref(),
                &step_id,
                scope,
            ) {
                self.add(
                    &at,
                    format!(
                        "{message} (in `{source}`, line {}, column {})",
                        reference.line, reference.column
                    ),
                );
            }
        }
        Some(condition)
    }
}
