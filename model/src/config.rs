//! Config var resolution: instance → customer → workspace → integration default.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::spec::{CustomerSpec, InstanceSpec, IntegrationFile};

/// Where a config var's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The instance's own value.
    Instance,
    /// The customer's config var.
    Customer,
    /// The workspace (organization) config var.
    Workspace,
    /// The integration's default.
    Default,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Instance => "instance",
            Level::Customer => "customer",
            Level::Workspace => "workspace",
            Level::Default => "integration default",
        })
    }
}

/// One resolved config var.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedVar {
    /// The value.
    pub value: Json,
    /// Where it came from.
    pub level: Level,
    /// Whether the integration marks it secret.
    pub secret: bool,
}

impl ResolvedVar {
    /// The value as a plugin reads it: strings as-is, anything else as JSON text.
    pub fn as_text(&self) -> String {
        match &self.value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// The config vars of one instance, by name. Only vars the integration declares are here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResolvedConfig(pub BTreeMap<String, ResolvedVar>);

impl ResolvedConfig {
    /// The vars as a JSON object, for `{{ config.… }}` references.
    pub fn to_json(&self) -> Json {
        Json::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
        )
    }

    /// The text of every secret var, so it can be redacted from records and logs.
    pub fn secrets(&self) -> Vec<String> {
        self.0
            .values()
            .filter(|v| v.secret)
            .map(ResolvedVar::as_text)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// Why an instance's config could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigProblem {
    /// A required var has no value at any level.
    Missing {
        /// The var's name.
        var: String,
        /// The instance.
        instance: String,
        /// The instance's customer.
        customer: String,
    },
    /// A value has the wrong type.
    WrongType {
        /// The var's name.
        var: String,
        /// Where the value was set.
        level: Level,
        /// The declared type.
        expected: &'static str,
        /// The value found.
        found: String,
    },
    /// The instance sets a var the integration does not declare.
    Undeclared {
        /// The var's name.
        var: String,
        /// The integration.
        integration: String,
    },
    /// Anything else, already worded.
    Other(String),
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::Missing {
                var,
                instance,
                customer,
            } => write!(
                f,
                "required config var `{var}` has no value; searched instance `{instance}`, customer `{customer}`, workspace and integration default; set it in one of them"
            ),
            ConfigProblem::WrongType {
                var,
                level,
                expected,
                found,
            } => write!(
                f,
                "config var `{var}` is declared as {expected} but the {level} value is {found}"
            ),
            ConfigProblem::Undeclared { var, integration } => write!(
                f,
                "the instance sets config var `{var}`, which integration `{integration}` does not declare; declare it under `[config_vars]` or remove it"
            ),
            ConfigProblem::Other(message) => f.write_str(message),
        }
    }
}

pub(crate) fn resolve(
    integration: &IntegrationFile,
    workspace: &Map<String, Json>,
    customer: &CustomerSpec,
    instance: &InstanceSpec,
) -> Result<ResolvedConfig, Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    for var in instance.config.keys() {
        if !integration.config_vars.contains_key(var) {
            problems.push(ConfigProblem::Undeclared {
                var: var.clone(),
                integration: integration.name.clone(),
            });
        }
    }
    let mut resolved = BTreeMap::new();
    for (name, spec) in &integration.config_vars {
        let found = [
            (Level::Instance, instance.config.get(name)),
            (Level::Customer, customer.config.get(name)),
            (Level::Workspace, workspace.get(name)),
            (Level::Default, spec.default.as_ref()),
        ]
        .into_iter()
        .find_map(|(level, value)| value.map(|v| (level, v)));
        match found {
            Some((level, value)) if !spec.kind.accepts(value) => {
                problems.push(ConfigProblem::WrongType {
                    var: name.clone(),
                    level,
                    expected: spec.kind.name(),
                    found: if spec.secret {
                        "not of that type".into()
                    } else {
                        value.to_string()
                    },
                });
            }
            Some((level, value)) => {
                resolved.insert(
                    name.clone(),
                    ResolvedVar {
                        value: value.clone(),
                        level,
                        secret: spec.secret,
                    },
                );
            }
            None if spec.required => problems.push(ConfigProblem::Missing {
                var: name.clone(),
                instance: instance.id.clone(),
                customer: customer.id.clone(),
            }),
            None => {}
        }
    }
    if problems.is_empty() {
        Ok(ResolvedConfig(resolved))
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ConfigVarSpec;
    use serde_json::json;

    fn obj(v: Json) -> Map<String, Json> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn levels_in_order() {
        let mut integration: IntegrationFile = toml::from_str(
            "name = 'i'\n[config_vars]\na = {}\nb = {}\nc = {}\nd = { default = 'dflt' }",
        )
        .unwrap();
        integration.config_vars.insert(
            "e".into(),
            ConfigVarSpec {
                required: true,
                ..Default::default()
            },
        );
        let customer = CustomerSpec {
            id: "c".into(),
            name: "C".into(),
            fields: Map::new(),
            config: obj(json!({ "b": "cust", "c": "cust" })),
            credentials: Default::default(),
        };
        let instance = InstanceSpec {
            id: "i1".into(),
            name: None,
            customer: "c".into(),
            integration: "i".into(),
            config: obj(json!({ "a": "inst" })),
            enabled: true,
            credentials: Default::default(),
            webhook_secret: None,
            connections: Default::default(),
        };
        let ws = obj(json!({ "a": "ws", "b": "ws", "c": "ws", "d": "ws", "e": "ws" }));
        let r = resolve(&integration, &ws, &customer, &instance).unwrap();
        let got: Vec<_> =
            r.0.iter()
                .map(|(k, v)| (k.as_str(), v.as_text(), v.level))
                .collect();
        assert_eq!(
            got,
            [
                ("a", "inst".into(), Level::Instance),
                ("b", "cust".into(), Level::Customer),
                ("c", "cust".into(), Level::Customer),
                ("d", "ws".into(), Level::Workspace),
                ("e", "ws".into(), Level::Workspace),
            ]
        );
        let r = resolve(&integration, &Map::new(), &customer, &instance).unwrap_err();
        assert_eq!(
            r[0].to_string(),
            "required config var `e` has no value; searched instance `i1`, customer `c`, workspace and integration default; set it in one of them"
        );
    }
}
