//! What a run's steps see: the values `{{ … }}` references reach, what each step is given
//! besides its inputs, and how values are redacted before they are recorded.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;
use weft_model::config::ResolvedConfig;
use weft_model::redact::Redactor;
use weft_model::template::{Path as RefPath, RenderError, walk};
use weft_model::value::{RecordedValue, Val};

use crate::host::config::ConfigVars;
use crate::host::state::StateLocation;
use crate::secrets::Credential;

/// What `{{ … }}` references can reach during a run.
pub(super) struct Context {
    pub(super) config: Json,
    pub(super) trigger: Json,
    pub(super) instance: Json,
    pub(super) customer: Json,
    /// The results of the steps that succeeded so far, by step id.
    pub(super) results: HashMap<String, Val>,
}

impl Context {
    /// The value a `{{ … }}` reference names.
    pub(super) fn lookup(&self, path: &RefPath) -> Result<Val, RenderError> {
        use weft_model::template::Segment;
        let root = match path.root.as_str() {
            "config" => &self.config,
            "trigger" => &self.trigger,
            "instance" => &self.instance,
            "customer" => &self.customer,
            "steps" => {
                let (Some(Segment::Key(id)), Some(Segment::Key(results))) =
                    (path.segments.first(), path.segments.get(1))
                else {
                    return Err(RenderError(format!(
                        "`{path}` must look like `steps.<id>.results`"
                    )));
                };
                if results != "results" {
                    return Err(RenderError(format!(
                        "`{path}` must look like `steps.<id>.results`"
                    )));
                }
                let value = self
                    .results
                    .get(id)
                    .ok_or_else(|| RenderError(format!("`{path}`: step `{id}` has no result")))?;
                let rest = &path.segments[2..];
                return match value {
                    Val::Json(json) => walk(json, path, rest).map(|v| Val::Json(v.clone())),
                    bytes if rest.is_empty() => Ok(bytes.clone()),
                    Val::Bytes { content_type, .. } => Err(RenderError(format!(
                        "`{path}`: the result of step `{id}` is binary ({content_type}) and has no fields"
                    ))),
                };
            }
            other => return Err(RenderError(format!("unknown reference root `{other}`"))),
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
}

/// What a run's steps are given besides their inputs.
pub(super) struct Bindings {
    /// The config vars, as plugins read them.
    pub(super) vars: ConfigVars,
    /// Credentials by step id.
    pub(super) credentials: HashMap<String, Arc<Credential>>,
    /// What credential templates (a JWT's claims) can reach.
    pub(super) template_context: Arc<Json>,
    /// Where the steps' persisted state lives.
    pub(super) state: StateLocation,
}

/// A value as a record keeps it, secrets redacted.
pub(super) fn redact_value(value: &Val, redactor: &Redactor) -> RecordedValue {
    match value.to_record() {
        RecordedValue::Json(v) => RecordedValue::Json(redactor.json(v)),
        bytes => bytes,
    }
}

/// The config vars as a record keeps them: secret vars redacted whole, secrets redacted in
/// the others.
pub(super) fn redact_config(config: &ResolvedConfig, redactor: &Redactor) -> ResolvedConfig {
    let mut out = config.clone();
    for var in out.0.values_mut() {
        let value = std::mem::take(&mut var.value);
        var.value = if var.secret {
            Json::String(weft_model::redact::REDACTED.into())
        } else {
            redactor.json(value)
        };
    }
    out
}
