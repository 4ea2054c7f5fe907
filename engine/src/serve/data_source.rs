//! Picklists whose options come from a flow of the integration (`options_from = "FLOW"`, a
//! "data source"): the customer's channels, projects or folders, fetched with the customer's own
//! connection while it fills in the wizard.
//!
//! The flow runs for the customer's (marketplace) instance — a recorded run, like every run —
//! before the instance is enabled and before its required vars are all set, so it runs with
//! the vars set so far (none is required of it). Its result is a list of values or `{ label, value }`
//! objects (or an object holding that list as `data` or `options`). A value the customer picks
//! is checked against the list the flow produces when it is saved.

use std::time::Duration;

use serde_json::{Value as Json, json};
use weft_model::spec::{ConfigVarSpec, PickOption};

use super::Server;
use super::self_service::FieldErrors;
use crate::runner::RunRequest;
use crate::store::registry::ManagedInstance;

/// How long a data source may take before the wizard gives up on it.
const DATA_SOURCE_TIMEOUT: Duration = Duration::from_secs(30);

impl Server {
    /// The options flow `flow` produces for `instance` now, or why there are none (in words
    /// for the customer).
    pub(super) async fn data_source_options(
        &self,
        instance: &ManagedInstance,
        var: &str,
        flow: &str,
    ) -> Result<Vec<PickOption>, String> {
        let id = &instance.spec.id;
        let ws = self
            .inner
            .registry
            .draft_workspace_for(id)
            .map_err(|e| format!("the choices could not be listed: {e:#}"))?;
        let run = self.inner.runner.run(RunRequest {
            workspace: &ws,
            instance: id,
            flow: Some(flow),
            trigger: json!({ "via": "data-source", "var": var }),
        });
        let run = tokio::time::timeout(DATA_SOURCE_TIMEOUT, run)
            .await
            .map_err(|_| {
                format!(
                    "listing the choices took longer than {}s",
                    DATA_SOURCE_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| format!("the choices could not be listed: {e}"))?;
        if let Some(error) = &run.run.error {
            return Err(format!("the choices could not be listed: {error}"));
        }
        let result = match &run.run.result {
            Some(weft_model::value::RecordedValue::Json(json)) => json.clone(),
            _ => Json::Null,
        };
        options_of(result)
            .map_err(|why| format!("the choices could not be listed: flow `{flow}` {why}"))
    }

    /// Fills in the options of the data-source picklists among `vars`; a source that failed
    /// is named in the returned errors (its field then offers only its current value).
    pub(super) async fn fill_data_sources(
        &self,
        instance: &ManagedInstance,
        vars: &mut [(String, ConfigVarSpec)],
    ) -> FieldErrors {
        let mut errors = FieldErrors::new();
        for (name, spec) in vars.iter_mut() {
            let Some(flow) = spec.options_from.clone() else {
                continue;
            };
            // An instance of the workspace file is the operator's: its data sources are not
            // run on its behalf (with the workspace's credentials) just to show a page.
            if !instance.self_service {
                errors.insert(
                    name.clone(),
                    format!(
                        "its choices are listed for marketplace instances only (flow `{flow}`)"
                    ),
                );
                continue;
            }
            match self.data_source_options(instance, name, &flow).await {
                Ok(options) => spec.options = options,
                Err(why) => {
                    errors.insert(name.clone(), why);
                }
            }
        }
        errors
    }

    /// Checks the values given data-source picklists against the options their flows produce.
    pub(super) async fn check_data_sources(
        &self,
        instance: &ManagedInstance,
        values: &serde_json::Map<String, Json>,
    ) -> super::error::ApiResult<FieldErrors> {
        if !instance.self_service {
            return Ok(FieldErrors::new());
        }
        let mut vars: Vec<(String, ConfigVarSpec)> = self
            .wizard(instance)?
            .into_iter()
            .flat_map(|p| p.vars)
            .filter(|(name, spec)| {
                spec.options_from.is_some() && values.get(name).is_some_and(|v| !v.is_null())
            })
            .collect();
        let mut errors = self.fill_data_sources(instance, &mut vars).await;
        for (name, spec) in &vars {
            if errors.contains_key(name) {
                continue;
            }
            let value = &values[name];
            // A page's form gives every value as text.
            let offered = spec.options.iter().any(|o| {
                &o.value == value
                    || (value.is_string()
                        && !o.value.is_string()
                        && value.as_str() == Some(&o.value.to_string()))
            });
            if !offered {
                errors.insert(
                    name.clone(),
                    spec.message.clone().unwrap_or_else(|| {
                        format!(
                            "{value} is not one of the choices {} offers now",
                            spec.label(name)
                        )
                    }),
                );
            }
        }
        Ok(errors)
    }
}

/// The options in a data source's result.
fn options_of(mut result: Json) -> Result<Vec<PickOption>, String> {
    // An HTTP step's output holds the body as `json`; APIs often wrap lists in `data`.
    for _ in 0..3 {
        let Json::Object(object) = &mut result else {
            break;
        };
        match ["data", "options", "json"]
            .iter()
            .find_map(|key| object.remove(*key))
        {
            Some(inner) => result = inner,
            None => return Err("returned an object without a list in `data` or `options`".into()),
        }
    }
    let list = match result {
        Json::Array(list) => list,
        Json::Null => return Err("returned nothing, not a list".into()),
        other => {
            return Err(format!(
                "returned `{}`, not a list",
                other.to_string().chars().take(40).collect::<String>()
            ));
        }
    };
    list.into_iter()
        .enumerate()
        .map(|(i, item)| {
            let usable = item.is_string()
                || item.is_number()
                || item
                    .get("value")
                    .is_some_and(|v| v.is_string() || v.is_number());
            if !usable {
                return Err(format!(
                    "returned item {i} that is neither a value nor a `{{ label, value }}` object"
                ));
            }
            serde_json::from_value(item).map_err(|e| format!("returned item {i}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_source_returns_values_or_labelled_values_in_a_list() {
        let options = options_of(json!({ "data": [
            "general",
            { "label": "Random", "value": "C02" },
            7,
        ] }))
        .unwrap();
        assert_eq!(options.len(), 3);
        assert_eq!(options[1].label(), "Random");
        assert_eq!(options[1].value, json!("C02"));
        assert_eq!(options[2].label(), "7");
        assert!(
            options_of(json!(null))
                .unwrap_err()
                .contains("returned nothing")
        );
        assert!(
            options_of(json!({ "x": 1 }))
                .unwrap_err()
                .contains("without a list")
        );
        assert!(
            options_of(json!([{ "name": "x" }]))
                .unwrap_err()
                .contains("item 0")
        );
    }
}
