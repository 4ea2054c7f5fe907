//! A `loop` step: over the items of an array, a count, or while a condition holds; one
//! iteration at a time, or up to `concurrency` at once with the results kept in item order.
//! Each iteration's steps run in a scope of their own, recorded with the iteration's index.
//! `previous` is what the iteration before gave, its steps' results by id (`null` for the
//! first iteration, and in loops whose iterations run at once); `break_if` sees the iteration
//! that just ended as `previous`.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value as Json, json};
use weft_model::control::{Loop, LoopOver};
use weft_model::records::Frame;
use weft_model::spec::OnItemError;
use weft_model::value::Val;
use weft_model::workspace::Step;

use super::RunError;
use super::flow::{Exec, Outcome, Produced, Stopped};
use super::scope::{LoopVars, Scope, StepValue, as_json};

/// How the iterations went.
struct Iterations {
    /// Each iteration's result, in order (`null` for a failed one).
    results: Vec<Json>,
    /// The failures let through, as `{ index, error }`.
    errors: Vec<Json>,
    /// Why the loop failed, when it did.
    failure: Option<String>,
    /// A `stop` inside an iteration.
    stopped: Option<Stopped>,
}

impl Exec<'_> {
    pub(super) async fn looping<'b>(
        &'b self,
        step: &'b Step,
        spec: &'b Loop,
        scope: &'b Scope<'b>,
    ) -> Result<Produced, RunError> {
        let fail = |message: String| Produced {
            value: Err(message),
            stopped: None,
        };
        let items: Option<Vec<Json>> = match &spec.over {
            LoopOver::Items(template) => match template.render(&|path| scope.lookup(path)) {
                Ok(Val::Json(Json::Array(items))) => Some(items),
                Ok(other) => {
                    return Ok(fail(format!(
                        "step `{}`: `items` must be an array, but it is {}",
                        step.id,
                        kind(&as_json(&other))
                    )));
                }
                Err(e) => return Ok(fail(format!("step `{}` field `items`: {e}", step.id))),
            },
            LoopOver::Count(n) => Some((0..*n).map(|i| json!(i)).collect()),
            LoopOver::While(_) => None,
        };
        if let Some(items) = &items
            && items.len() as u64 > spec.max_iterations
        {
            return Ok(fail(format!(
                "step `{}`: the loop has {} items; the most it may run is {} (`max_iterations`, or `iterations` in the integration's `[limits]`)",
                step.id,
                items.len(),
                spec.max_iterations
            )));
        }
        let iterations = match items {
            Some(items) if spec.concurrency > 1 => self.at_once(step, spec, scope, items).await?,
            items => self.in_order(step, spec, scope, items).await?,
        };
        let detail = json!({
            "iterations": iterations.results.len(),
            "errors": iterations.errors,
        });
        if let Some(message) = iterations.failure {
            return Ok(fail(message));
        }
        if !iterations.errors.is_empty() {
            self.continued
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Produced {
            value: Ok(StepValue {
                value: Val::Json(Json::Array(iterations.results)),
                detail: Some(detail),
            }),
            stopped: iterations.stopped,
        })
    }

    /// One iteration after another; `items` is `None` for a `while` loop.
    async fn in_order<'b>(
        &'b self,
        step: &'b Step,
        spec: &'b Loop,
        scope: &'b Scope<'b>,
        items: Option<Vec<Json>>,
    ) -> Result<Iterations, RunError> {
        let mut out = Iterations {
            results: Vec::new(),
            errors: Vec::new(),
            failure: None,
            stopped: None,
        };
        let mut previous: Option<Arc<HashMap<String, StepValue>>> = None;
        let mut index: u64 = 0;
        let mut items = items.map(Vec::into_iter);
        loop {
            let item = match &mut items {
                Some(items) => match items.next() {
                    Some(item) => item,
                    None => break,
                },
                None => Json::Null,
            };
            // `break_if` sees the iteration that ended: its item, index and result.
            let item_for_break = spec.break_if.as_ref().map(|_| item.clone());
            let iteration = self.iteration_scope(step, spec, scope, item, index, previous.clone());
            if let LoopOver::While(condition) = &spec.over {
                match iteration.decide(condition) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(message) => {
                        out.failure = Some(format!("step `{}`: its `while` {message}", step.id));
                        break;
                    }
                }
                if index >= spec.max_iterations {
                    out.failure = Some(format!(
                        "step `{}`: the `while` loop still held after {} iterations, its `max_iterations`",
                        step.id, spec.max_iterations
                    ));
                    break;
                }
            }
            let (outcome, results) = self.block(&spec.steps, iteration, false).await?;
            let result = match outcome {
                Outcome::Done(last) => last_json(&results, last),
                Outcome::Stopped(stopped) => {
                    out.stopped = Some(stopped);
                    break;
                }
                Outcome::Failed(message) => match spec.on_item_error {
                    OnItemError::Continue => {
                        out.errors.push(json!({ "index": index, "error": message }));
                        Json::Null
                    }
                    OnItemError::Fail => {
                        out.failure = Some(format!(
                            "step `{}`: iteration {index} failed: {message}",
                            step.id
                        ));
                        break;
                    }
                },
            };
            out.results.push(result);
            previous = Some(Arc::new(results));
            if let (Some(condition), Some(item)) = (&spec.break_if, item_for_break) {
                let ended = self.iteration_scope(step, spec, scope, item, index, previous.clone());
                match ended.decide(condition) {
                    Ok(false) => {}
                    Ok(true) => break,
                    Err(message) => {
                        out.failure = Some(format!("step `{}`: its `break_if` {message}", step.id));
                        break;
                    }
                }
            }
            index += 1;
        }
        Ok(out)
    }

    /// Up to `concurrency` iterations at once, results in item order. After a failure (under
    /// `on_item_error = "fail"`) or a stop, no iteration starts, and those running finish.
    async fn at_once<'b>(
        &'b self,
        step: &'b Step,
        spec: &'b Loop,
        scope: &'b Scope<'b>,
        items: Vec<Json>,
    ) -> Result<Iterations, RunError> {
        let total = items.len();
        let mut results: Vec<Json> = vec![Json::Null; total];
        let mut failures: Vec<(usize, String)> = Vec::new();
        let mut stopped: Option<(usize, Stopped)> = None;
        let mut pending = items.into_iter().enumerate();
        let mut running = FuturesUnordered::new();
        let mut halted = false;
        loop {
            while !halted && running.len() < spec.concurrency as usize {
                let Some((index, item)) = pending.next() else {
                    break;
                };
                let iteration = self.iteration_scope(step, spec, scope, item, index as u64, None);
                running.push(async move {
                    // Only the last step's result is kept: the iteration's scope ends here.
                    let finished = self.block(&spec.steps, iteration, false).await;
                    let finished = finished.map(|(outcome, results)| match outcome {
                        Outcome::Done(last) => (Outcome::Done(None), last_json(&results, last)),
                        other => (other, Json::Null),
                    });
                    (index, finished)
                });
            }
            let Some((index, outcome)) = running.next().await else {
                break;
            };
            match outcome? {
                (Outcome::Done(_), result) => results[index] = result,
                (Outcome::Stopped(stop), _) => {
                    halted = true;
                    if stopped.as_ref().is_none_or(|(i, _)| index < *i) {
                        stopped = Some((index, stop));
                    }
                }
                (Outcome::Failed(message), _) => {
                    if spec.on_item_error == OnItemError::Fail {
                        halted = true;
                    }
                    failures.push((index, message));
                }
            }
        }
        failures.sort_by_key(|(i, _)| *i);
        let mut out = Iterations {
            results,
            errors: Vec::new(),
            failure: None,
            stopped: stopped.map(|(_, s)| s),
        };
        if spec.on_item_error == OnItemError::Fail
            && let Some((index, message)) = failures.first()
        {
            out.failure = Some(format!(
                "step `{}`: iteration {index} failed: {message}",
                step.id
            ));
        } else {
            out.errors = failures
                .into_iter()
                .map(|(index, error)| json!({ "index": index, "error": error }))
                .collect();
        }
        Ok(out)
    }

    fn iteration_scope<'b>(
        &self,
        step: &Step,
        spec: &Loop,
        scope: &'b Scope<'b>,
        item: Json,
        index: u64,
        previous: Option<Arc<HashMap<String, StepValue>>>,
    ) -> Scope<'b> {
        scope.child(
            Frame {
                step: step.id.clone(),
                iteration: Some(index),
                branch: None,
            },
            Some(LoopVars {
                item,
                index,
                previous,
                alias: spec.alias.clone(),
            }),
        )
    }
}

/// The result of an iteration: its last step's, as JSON (`null` when it gave none).
fn last_json(results: &HashMap<String, StepValue>, last: Option<String>) -> Json {
    last.and_then(|id| results.get(&id))
        .map_or(Json::Null, |v| as_json(&v.value))
}

/// What kind of JSON value `value` is, for messages.
fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
