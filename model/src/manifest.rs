//! Plugin manifests: what a plugin is, what it takes and returns, and what it asks to reach.
//!
//! A manifest is a TOML file next to the component, named after it: `http_get.plugin.toml`
//! beside `http_get.wasm`. The built-in plugins carry theirs inside the `weft` binary. A
//! manifest is optional; with one, the operator's grants must stay within what it requests,
//! step inputs are checked against it before a step runs, and the plugin reads only the config
//! vars it declares.
//!
//! ```toml
//! name = "http-get"
//! version = "0.1.0"
//! description = "Fetches a URL"
//!
//! [inputs]
//! url = { type = "string", required = true, description = "The URL" }
//! headers = { type = "object" }
//!
//! [outputs]
//! results = { type = "any", description = "The body: JSON, text or bytes" }
//!
//! [capabilities]
//! http = ["https://*"]                  # host patterns it may be granted
//! s3 = []                               # buckets (and prefixes) it may be granted
//! state = false                         # whether it keeps persisted state
//! config = ["customerName"]             # config vars it reads (absent: all of them)
//! credentials = ["bearer", "api-key"]   # credential kinds it works with (empty: any)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::credential::Kind;
use crate::value::Val;

/// A plugin's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// The inputs it takes, by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// What it returns, for people.
    #[serde(default)]
    pub outputs: BTreeMap<String, InputSpec>,
    /// What it asks to reach.
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// One input (or output) of a plugin.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// The value's type.
    #[serde(rename = "type", default)]
    pub kind: ValueKind,
    /// Whether a step must give it.
    #[serde(default)]
    pub required: bool,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// The type of an input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// Anything.
    #[default]
    Any,
    /// A JSON string.
    String,
    /// A JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
    /// Binary data.
    Bytes,
}

impl ValueKind {
    fn name(self) -> &'static str {
        match self {
            ValueKind::Any => "any",
            ValueKind::String => "string",
            ValueKind::Number => "number",
            ValueKind::Boolean => "boolean",
            ValueKind::Object => "object",
            ValueKind::Array => "array",
            ValueKind::Bytes => "bytes",
        }
    }

    fn of(value: &Val) -> ValueKind {
        match value {
            Val::Bytes { .. } => ValueKind::Bytes,
            Val::Json(serde_json::Value::String(_)) => ValueKind::String,
            Val::Json(serde_json::Value::Number(_)) => ValueKind::Number,
            Val::Json(serde_json::Value::Bool(_)) => ValueKind::Boolean,
            Val::Json(serde_json::Value::Object(_)) => ValueKind::Object,
            Val::Json(serde_json::Value::Array(_)) => ValueKind::Array,
            Val::Json(serde_json::Value::Null) => ValueKind::Any,
        }
    }
}

/// What a plugin asks to reach; the operator's policy grants a subset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Host patterns it may be granted (`https://api.example.com`, `https://*`).
    #[serde(default)]
    pub http: Vec<String>,
    /// Buckets it may be granted (`avatars`, `exports/reports/`, `*`).
    #[serde(default)]
    pub s3: Vec<String>,
    /// Whether it keeps persisted state.
    #[serde(default)]
    pub state: bool,
    /// The config vars it reads; `None` for all of the instance's.
    #[serde(default)]
    pub config: Option<Vec<String>>,
    /// The credential kinds it works with; empty for any.
    #[serde(default)]
    pub credentials: Vec<Kind>,
}

impl Manifest {
    /// Parses a manifest; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| {
            format!(
                "the manifest `{origin}` is not valid: {}",
                e.to_string().trim_end()
            )
        })
    }

    /// Where the manifest of the component at `wasm` is: `NAME.plugin.toml` beside `NAME.wasm`.
    pub fn path_for(wasm: &Path) -> PathBuf {
        let stem = wasm
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        wasm.with_file_name(format!("{stem}.plugin.toml"))
    }

    /// Reads the manifest beside the component at `wasm`, if there is one.
    pub fn beside(wasm: &Path) -> Result<Option<Self>, String> {
        let path = Self::path_for(wasm);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("failed to read `{}`: {e}", path.display())),
        }
    }

    /// Checks a step's rendered inputs: every required input present, every input one the
    /// plugin takes and of its type.
    pub fn check_inputs(&self, inputs: &[(String, Val)]) -> Result<(), String> {
        for (name, spec) in &self.inputs {
            if spec.required && !inputs.iter().any(|(n, _)| n == name) {
                return Err(format!(
                    "input `{name}` is required by plugin `{}` ({})",
                    self.name,
                    spec.description.as_deref().unwrap_or("see its manifest")
                ));
            }
        }
        for (name, value) in inputs {
            let Some(spec) = self.inputs.get(name) else {
                return Err(format!(
                    "plugin `{}` takes no input `{name}`; its inputs are {}",
                    self.name,
                    self.inputs
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let kind = ValueKind::of(value);
            if spec.kind != ValueKind::Any && kind != ValueKind::Any && kind != spec.kind {
                return Err(format!(
                    "input `{name}` of plugin `{}` must be {}, but it is {}",
                    self.name,
                    article(spec.kind.name()),
                    article(kind.name())
                ));
            }
        }
        Ok(())
    }
}

fn article(word: &str) -> String {
    match word {
        "any" => "anything".into(),
        "bytes" => "bytes".into(),
        w if w.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {w}"),
        w => format!("a {w}"),
    }
}
