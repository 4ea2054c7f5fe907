//! What `{{ … }}` references and conditions reach at one point of a run: the run's roots, the
//! results of the steps before it (in its own scope and the scopes around), and the values of
//! the loops around it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value as Json, json};
use weft_model::condition::Condition;
use weft_model::records::Frame;
use weft_model::template::{Path as RefPath, RenderError, Segment, walk};
use weft_model::value::Val;

/// The values every scope of a run shares.
pub(super) struct Roots {
    pub(super) config: Json,
    pub(super) instance: Json,
    pub(super) customer: Json,
}

/// What a step that ended gives the steps after it.
pub(super) struct StepValue {
    /// `steps.<id>.results`.
    pub(super) value: Val,
    /// The other fields of a flow-control step: `branch` of a branch, `errors` of a loop.
    pub(super) detail: Option<Json>,
}

impl StepValue {
    pub(super) fn plain(value: Val) -> Self {
        Self {
            value,
            detail: None,
        }
    }
}

/// The values of one iteration of a loop.
pub(super) struct LoopVars {
    pub(super) item: Json,
    pub(super) index: u64,
    /// What the steps of the iteration before gave, by step id (`None` for the first).
    pub(super) previous: Option<Arc<HashMap<String, StepValue>>>,
    /// The loop's `as` name.
    pub(super) alias: Option<String>,
}

/// One scope of a run: the flow's steps, a branch's, one iteration of a loop's, or a called
/// flow's.
pub(super) struct Scope<'p> {
    parent: Option<&'p Scope<'p>>,
    roots: &'p Roots,
    /// What the flow (or called flow) was given; inner scopes read their parent's.
    trigger: Option<Json>,
    /// The steps of this scope that ended, by id.
    pub(super) results: HashMap<String, StepValue>,
    looping: Option<LoopVars>,
    /// Where this scope is, for records.
    pub(super) frames: Vec<Frame>,
    /// How many `call` steps led here.
    pub(super) call_depth: u32,
}

impl<'p> Scope<'p> {
    /// The scope of a flow's own steps.
    pub(super) fn flow(
        roots: &'p Roots,
        trigger: Json,
        results: HashMap<String, StepValue>,
    ) -> Self {
        Self {
            parent: None,
            roots,
            trigger: Some(trigger),
            results,
            looping: None,
            frames: Vec::new(),
            call_depth: 0,
        }
    }

    /// The scope of the steps inside control step `frame.step`, seeing this one.
    pub(super) fn child(&'p self, frame: Frame, looping: Option<LoopVars>) -> Scope<'p> {
        let mut frames = self.frames.clone();
        frames.push(frame);
        Scope {
            parent: Some(self),
            roots: self.roots,
            trigger: None,
            results: HashMap::new(),
            looping,
            frames,
            call_depth: self.call_depth,
        }
    }

    /// The scope of a flow called by step `frame.step` with `trigger`: it sees the run's roots
    /// but none of the caller's steps.
    pub(super) fn called(&self, frame: Frame, trigger: Json) -> Scope<'p> {
        let mut frames = self.frames.clone();
        frames.push(frame);
        Scope {
            parent: None,
            roots: self.roots,
            trigger: Some(trigger),
            results: HashMap::new(),
            looping: None,
            frames,
            call_depth: self.call_depth + 1,
        }
    }

    fn chain(&self) -> impl Iterator<Item = &Scope<'p>> {
        std::iter::successors(Some(self), |s| s.parent)
    }

    fn trigger(&self) -> &Json {
        self.chain()
            .find_map(|s| s.trigger.as_ref())
            .unwrap_or(&Json::Null)
    }

    fn result(&self, id: &str) -> Option<&StepValue> {
        self.chain().find_map(|s| s.results.get(id))
    }

    fn current_loop(&self) -> Option<&LoopVars> {
        self.chain().find_map(|s| s.looping.as_ref())
    }

    fn alias(&self, name: &str) -> Option<&LoopVars> {
        self.chain()
            .filter_map(|s| s.looping.as_ref())
            .find(|l| l.alias.as_deref() == Some(name))
    }

    /// The value a `{{ … }}` reference names.
    pub(super) fn lookup(&self, path: &RefPath) -> Result<Val, RenderError> {
        let root = match path.root.as_str() {
            "config" => &self.roots.config,
            "trigger" => self.trigger(),
            "instance" => &self.roots.instance,
            "customer" => &self.roots.customer,
            "steps" => return self.lookup_step(path),
            "loop" => {
                let current = self.current_loop().ok_or_else(|| {
                    RenderError(format!("`{path}`: the step is not inside a loop"))
                })?;
                let value = match path.segments.first() {
                    Some(Segment::Key(k)) if k == "item" => current.item.clone(),
                    Some(Segment::Key(k)) if k == "index" => json!(current.index),
                    Some(Segment::Key(k)) if k == "previous" => {
                        // Only the step the reference names is turned into JSON.
                        if let (Some(previous), Some(Segment::Key(id))) =
                            (&current.previous, path.segments.get(1))
                        {
                            let step = previous.get(id).ok_or_else(|| {
                                RenderError(format!(
                                    "`{path}`: the iteration before has no result of step `{id}`"
                                ))
                            })?;
                            let value = as_json(&step.value);
                            return walk(&value, path, &path.segments[2..])
                                .map(|v| Val::Json(v.clone()));
                        }
                        current.previous.as_deref().map_or(Json::Null, results_json)
                    }
                    _ => {
                        return Err(RenderError(format!(
                            "`{path}`: a loop has `item`, `index` and `previous`"
                        )));
                    }
                };
                return walk(&value, path, &path.segments[1..]).map(|v| Val::Json(v.clone()));
            }
            alias => {
                let named = self
                    .alias(alias)
                    .ok_or_else(|| RenderError(format!("unknown reference root `{alias}`")))?;
                return walk(&named.item, path, &path.segments).map(|v| Val::Json(v.clone()));
            }
        };
        // An optional config var with no value reads as null rather than failing the step.
        if path.root == "config" && path.segments.len() == 1 {
            return Ok(Val::Json(
                walk(root, path, &path.segments)
                    .cloned()
                    .unwrap_or(Json::Null),
            ));
        }
        walk(root, path, &path.segments).map(|v| Val::Json(v.clone()))
    }

    fn lookup_step(&self, path: &RefPath) -> Result<Val, RenderError> {
        let (Some(Segment::Key(id)), Some(Segment::Key(field))) =
            (path.segments.first(), path.segments.get(1))
        else {
            return Err(RenderError(format!(
                "`{path}` must look like `steps.<id>.results`"
            )));
        };
        let step = self
            .result(id)
            .ok_or_else(|| RenderError(format!("`{path}`: step `{id}` has no result")))?;
        let rest = &path.segments[2..];
        if field != "results" {
            let detail = step
                .detail
                .as_ref()
                .and_then(|d| d.get(field))
                .ok_or_else(|| RenderError(format!("`{path}`: step `{id}` has no `{field}`")))?;
            return walk(detail, path, rest).map(|v| Val::Json(v.clone()));
        }
        match &step.value {
            Val::Json(json) => walk(json, path, rest).map(|v| Val::Json(v.clone())),
            bytes if rest.is_empty() => Ok(bytes.clone()),
            Val::Bytes { content_type, .. } => Err(RenderError(format!(
                "`{path}`: the result of step `{id}` is binary ({content_type}) and has no fields"
            ))),
        }
    }

    /// Evaluates `condition` here: it sees only the roots and steps it reads.
    pub(super) fn decide(&self, condition: &Condition) -> Result<bool, String> {
        let mut values: Vec<(String, Json)> = Vec::new();
        for root in condition.roots() {
            let value = match root.as_str() {
                "config" => self.roots.config.clone(),
                "trigger" => self.trigger().clone(),
                "instance" => self.roots.instance.clone(),
                "customer" => self.roots.customer.clone(),
                "steps" => {
                    let mut steps = Map::new();
                    for reference in condition.step_references() {
                        if steps.contains_key(&reference.step) {
                            continue;
                        }
                        if let Some(step) = self.result(&reference.step) {
                            let mut fields = Map::new();
                            fields.insert("results".into(), as_json(&step.value));
                            if let Some(Json::Object(detail)) = &step.detail {
                                fields.extend(detail.clone());
                            }
                            steps.insert(reference.step.clone(), Json::Object(fields));
                        }
                    }
                    Json::Object(steps)
                }
                "item" => self.current_loop().map_or(Json::Null, |l| l.item.clone()),
                "index" => self.current_loop().map_or(Json::Null, |l| json!(l.index)),
                "previous" => self
                    .current_loop()
                    .and_then(|l| l.previous.as_deref())
                    .map_or(Json::Null, results_json),
                alias => match self.alias(alias) {
                    Some(named) => named.item.clone(),
                    None => continue,
                },
            };
            values.push((root, value));
        }
        let bound: Vec<(&str, &Json)> = values.iter().map(|(k, v)| (k.as_str(), v)).collect();
        condition.decide(&bound)
    }
}

/// What a scope's steps gave, as `previous` shows it: their results by step id.
pub(super) fn results_json(results: &HashMap<String, StepValue>) -> Json {
    Json::Object(
        results
            .iter()
            .map(|(id, value)| (id.clone(), as_json(&value.value)))
            .collect(),
    )
}

/// A value as conditions see it: binary values as their type and size.
pub(super) fn as_json(value: &Val) -> Json {
    match value {
        Val::Json(json) => json.clone(),
        Val::Bytes { content_type, data } => {
            json!({ "content_type": content_type, "size": data.len() })
        }
    }
}
