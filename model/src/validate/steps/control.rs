//! Flow-control steps: branches, loops, stops and calls, each checked with the scope its
//! steps see, and the fields each kind of step may have.

use std::collections::HashSet;

use crate::control::{Branch, Loop, LoopOver, Stop};
use crate::spec::{OnItemError, StepSpec, StopStatus};
use crate::template::ROOTS;
use serde_json::Value as Json;

use super::super::{did_you_mean, quoted};
use super::{FlowChecker, LOOP_FIELDS, Scope};

/// The most iterations of a loop that run at once.
const MAX_CONCURRENCY: u32 = 64;
/// Words CEL reserves, which cannot name a loop's item.
const RESERVED: [&str; 17] = [
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

impl FlowChecker<'_> {
    /// Reports fields that belong to another kind of step.
    pub(super) fn misplaced_fields(&mut self, step: &StepSpec, kind: &str, at: &[String]) {
        let limits = &step.limits;
        let fields: [(&str, bool, &[&str]); 16] = [
            ("inputs", !step.inputs.is_empty(), &["plugin", "call"]),
            ("credential", step.credential.is_some(), &["plugin"]),
            ("retry", step.retry.is_some(), &["plugin"]),
            (
                "timeout` or `limits",
                step.timeout.is_some()
                    || limits.time.is_some()
                    || limits.memory.is_some()
                    || limits.output.is_some(),
                &["plugin"],
            ),
            ("branches", !step.branches.is_empty(), &["branch"]),
            ("items", step.items.is_some(), &["loop"]),
            ("count", step.count.is_some(), &["loop"]),
            ("while", step.while_condition.is_some(), &["loop"]),
            ("max_iterations", step.max_iterations.is_some(), &["loop"]),
            ("concurrency", step.concurrency.is_some(), &["loop"]),
            ("on_item_error", step.on_item_error.is_some(), &["loop"]),
            ("break_if", step.break_if.is_some(), &["loop"]),
            ("as", step.alias.is_some(), &["loop"]),
            ("steps", !step.steps.is_empty(), &["loop"]),
            (
                "result",
                step.result.is_some() || step.status.is_some() || step.message.is_some(),
                &["stop"],
            ),
            ("flow", step.flow.is_some(), &["call"]),
        ];
        for (field, set, kinds) in fields {
            if set && !kinds.contains(&kind) {
                let field = if field == "result" {
                    "status`, `result` or `message".to_string()
                } else {
                    field.to_string()
                };
                let owners = kinds
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" and ");
                let why = if field.starts_with("timeout") {
                    " (put it on the plugin steps inside; `run_time` in the integration's `[limits]` bounds a whole run)".to_string()
                } else if kinds == ["plugin"] {
                    " (put it on the plugin steps inside)".to_string()
                } else {
                    String::new()
                };
                self.add(
                    at,
                    format!("a {kind} step has no `{field}`; it belongs to {owners} steps{why}"),
                );
            }
        }
    }

    /// The scope of the steps inside control step `step`.
    fn inner<'s>(&mut self, step: &'s StepSpec, scope: &Scope<'s>, at: &[String]) -> Scope<'s> {
        let depth = scope.depth + 1;
        if depth > self.limits.depth {
            self.add(
                at,
                format!(
                    "loops and branches nest {depth} deep here; the most is {} ({}); flatten the flow or move part of it into a flow of its own and `call` it",
                    self.limits.depth,
                    self.limits.source("depth")
                ),
            );
        }
        Scope {
            at: at.to_vec(),
            parent: Some(&step.id),
            visible: scope.visible.clone(),
            aliases: scope.aliases.clone(),
            in_loop: scope.in_loop,
            depth,
        }
    }

    pub(super) fn branches<'s>(
        &mut self,
        step: &'s StepSpec,
        scope: &Scope<'s>,
        at: &[String],
    ) -> Vec<Branch> {
        if step.branches.is_empty() {
            self.add(
                at,
                "a branch step needs `branches`: `[[flows.steps.branches]]` tables with `name`, `when` and `steps`",
            );
        }
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for (n, branch) in step.branches.iter().enumerate() {
            let branch_at = [at, &[quoted("branch", &branch.name)]].concat();
            if !names.insert(branch.name.as_str()) {
                self.add(
                    &branch_at,
                    "another branch has the same name; rename one of them",
                );
            }
            if branch.name.is_empty() {
                self.add(&branch_at, "a branch needs a `name`");
            }
            if branch.when.is_none() && n + 1 != step.branches.len() {
                self.add(
                    &branch_at,
                    "a branch without `when` is the else branch and must come last (the branches after it could never run)",
                );
            }
            let when = branch
                .when
                .as_deref()
                .and_then(|source| self.condition(source, "when", scope, &branch_at));
            let inner = self.inner(step, scope, &branch_at);
            let steps = self.block(&branch.steps, &inner);
            out.push(Branch {
                name: branch.name.clone(),
                when,
                steps,
            });
        }
        out
    }

    pub(super) fn looping<'s>(
        &mut self,
        step: &'s StepSpec,
        scope: &Scope<'s>,
        at: &[String],
    ) -> Option<Loop> {
        let field = |name: &str| [at, &[format!("field `{name}`")]].concat();
        let limit = self.limits.iterations;
        let over = match (&step.items, step.count, &step.while_condition) {
            (Some(items), None, None) => self
                .template(items, &step.id, scope, &field("items"))
                .map(LoopOver::Items),
            (None, Some(count), None) => {
                if count > limit {
                    self.add(
                        &field("count"),
                        format!(
                            "{count} iterations is more than the most a loop may run, {limit} ({})",
                            self.limits.source("iterations")
                        ),
                    );
                }
                Some(LoopOver::Count(count))
            }
            (None, None, Some(source)) => {
                if step.max_iterations.is_none() {
                    self.add(
                        &field("while"),
                        "a `while` loop needs `max_iterations`, so that a condition that never turns false cannot run forever",
                    );
                }
                let mut inside = scope.clone();
                inside.in_loop = true;
                self.condition(source, "while", &inside, at)
                    .map(LoopOver::While)
            }
            _ => {
                self.add(
                    at,
                    "a loop needs exactly one of `items` (an array), `count` (a number of times) and `while` (a condition)",
                );
                None
            }
        };
        let max_iterations = step.max_iterations.unwrap_or(limit);
        if max_iterations == 0 || max_iterations > limit {
            self.add(
                &field("max_iterations"),
                format!(
                    "`{max_iterations}`: write 1 to {limit} ({})",
                    self.limits.source("iterations")
                ),
            );
        }
        let concurrency = step.concurrency.unwrap_or(1);
        if concurrency == 0 || concurrency > MAX_CONCURRENCY {
            self.add(
                &field("concurrency"),
                format!("`{concurrency}`: write 1 to {MAX_CONCURRENCY}"),
            );
        }
        if concurrency > 1 && step.while_condition.is_some() {
            self.add(
                &field("concurrency"),
                "a `while` loop runs one iteration at a time: each decides whether there is a next",
            );
        }
        if concurrency > 1 && step.break_if.is_some() {
            self.add(
                &field("break_if"),
                "`break_if` needs `concurrency = 1`: with iterations running at once, those after the break would already have started",
            );
        }
        let mut inner = self.inner(step, scope, at);
        inner.in_loop = true;
        if let Some(alias) = step.alias.as_deref() {
            let valid = alias
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid
                || ROOTS.contains(&alias)
                || LOOP_FIELDS.contains(&alias)
                || RESERVED.contains(&alias)
                || scope.aliases.contains(&alias)
            {
                self.add(
                    &field("as"),
                    format!(
                        "`{alias}` cannot name the loop's item: use letters, digits and `_`, and a name that is not taken ({}, `loop`, `item`, `index`, `previous`, CEL's reserved words, or an enclosing loop's `as`)",
                        ROOTS.map(|r| format!("`{r}`")).join(", ")
                    ),
                );
            } else {
                inner.aliases.push(alias);
            }
        }
        let break_if = step
            .break_if
            .as_deref()
            .and_then(|source| self.condition(source, "break_if", &inner, at));
        if step.steps.is_empty() {
            self.add(
                at,
                "the loop has no steps; add `[[flows.steps.steps]]` tables",
            );
        }
        let steps = self.block(&step.steps, &inner);
        Some(Loop {
            over: over?,
            max_iterations,
            concurrency,
            on_item_error: step.on_item_error.unwrap_or(OnItemError::Fail),
            break_if,
            alias: step.alias.clone(),
            steps,
        })
    }

    pub(super) fn stop(&mut self, step: &StepSpec, scope: &Scope, at: &[String]) -> Stop {
        let result = step.result.as_ref().and_then(|value| {
            self.template(
                value,
                &step.id,
                scope,
                &[at, &["field `result`".to_string()]].concat(),
            )
        });
        let failed = step.status == Some(StopStatus::Failed);
        if step.message.is_some() && !failed {
            self.add(
                at,
                "`message` is the error of a run that a stop step fails; add `status = \"failed\"` or remove it",
            );
        }
        let message = step.message.as_ref().and_then(|text| {
            self.template(
                &Json::String(text.clone()),
                &step.id,
                scope,
                &[at, &["field `message`".to_string()]].concat(),
            )
        });
        Stop {
            failed,
            result,
            message,
        }
    }

    pub(super) fn call(&mut self, step: &StepSpec, at: &[String]) -> String {
        let Some(flow) = step.flow.as_deref() else {
            self.add(
                at,
                "a call step needs `flow`, the name of a flow of this integration",
            );
            return String::new();
        };
        if !self.spec.flows.iter().any(|f| f.name == flow) {
            self.add(
                &[at, &["field `flow`".to_string()]].concat(),
                format!(
                    "the integration has no flow `{flow}`{}",
                    did_you_mean(flow, self.spec.flows.iter().map(|f| f.name.as_str()))
                ),
            );
        }
        flow.to_string()
    }
}
