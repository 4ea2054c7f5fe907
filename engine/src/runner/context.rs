//! What a run's steps are given besides their inputs, and how values are redacted before
//! they are recorded. (What `{{ … }}` references reach is `scope`.)

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;
use weft_model::config::ResolvedConfig;
use weft_model::redact::Redactor;
use weft_model::value::{RecordedValue, Val};

use crate::host::config::ConfigVars;
use crate::host::state::StateLocation;
use crate::secrets::Credential;

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
