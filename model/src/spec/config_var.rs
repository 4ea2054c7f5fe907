//! The config vars an integration declares: their types, and what the marketplace's config wizard
//! needs to ask a customer for one (label, options, pattern, message).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The type of a config var's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VarKind {
    /// Text on one line (the default).
    #[default]
    String,
    /// Text on several lines.
    Text,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// One of the var's `options`.
    Picklist,
    /// A calendar date, `2026-12-03`.
    Date,
    /// A date and time, `2026-12-03T10:15` (seconds and a UTC offset optional).
    Datetime,
    /// Any JSON value.
    Json,
}

impl VarKind {
    /// The name used in files and messages.
    pub fn name(self) -> &'static str {
        match self {
            VarKind::String => "string",
            VarKind::Text => "text",
            VarKind::Number => "number",
            VarKind::Boolean => "boolean",
            VarKind::Picklist => "picklist",
            VarKind::Date => "date",
            VarKind::Datetime => "datetime",
            VarKind::Json => "json",
        }
    }

    /// Whether `value` has this type (a picklist's options are checked by
    /// [`ConfigVarSpec::check`]).
    pub fn accepts(self, value: &Json) -> bool {
        match self {
            VarKind::String | VarKind::Text => value.is_string(),
            VarKind::Number => value.is_number(),
            VarKind::Boolean => value.is_boolean(),
            VarKind::Picklist => value.is_string() || value.is_number(),
            VarKind::Date => value.as_str().is_some_and(is_date),
            VarKind::Datetime => value.as_str().is_some_and(is_datetime),
            VarKind::Json => true,
        }
    }
}

fn is_date(text: &str) -> bool {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

/// RFC 3339, or the `YYYY-MM-DDTHH:MM[:SS]` a browser's date-time field sends.
fn is_datetime(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
        || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").is_ok()
        || chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").is_ok()
}

/// One choice of a picklist: `"pikachu"` or `{ label = "Pikachu", value = "pikachu" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "PickOptionForm")]
pub struct PickOption {
    /// What the customer sees (default: the value).
    pub label: Option<String>,
    /// The value the var gets.
    pub value: Json,
}

impl PickOption {
    /// What the customer sees.
    pub fn label(&self) -> String {
        match (&self.label, &self.value) {
            (Some(label), _) => label.clone(),
            (None, Json::String(text)) => text.clone(),
            (None, other) => other.to_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PickOptionForm {
    Labelled { label: Option<String>, value: Json },
    Bare(Json),
}

impl From<PickOptionForm> for PickOption {
    fn from(form: PickOptionForm) -> Self {
        match form {
            PickOptionForm::Labelled { label, value } => Self { label, value },
            PickOptionForm::Bare(value) => Self { label: None, value },
        }
    }
}

/// A config var an integration declares.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigVarSpec {
    /// The value's type.
    #[serde(rename = "type", default)]
    pub kind: VarKind,
    /// A run stops before any step when a required var has no value at any level.
    #[serde(default)]
    pub required: bool,
    /// The value used when no instance, customer or workspace value is set.
    #[serde(default)]
    pub default: Option<Json>,
    /// Secret values are redacted from run records and logs, and never shown again once set
    /// (the wizard's field is write-only).
    #[serde(default)]
    pub secret: bool,
    /// What the var is for, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// The wizard's label for it (default: the var's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A picklist's choices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<PickOption>,
    /// A picklist whose choices a flow of the integration produces (a data source, e.g. the
    /// customer's channels fetched with its own connection): the flow's result is a list of
    /// values or `{ label, value }` objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options_from: Option<String>,
    /// A regular expression a string or text value must match as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// What the wizard says when a value is refused (default: what was wrong with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Ask customers for it even when the workspace sets it (by default a var the operator
    /// set at workspace level is not shown to customers).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub customer_visible: bool,
}

impl ConfigVarSpec {
    /// The wizard's label.
    pub fn label<'a>(&'a self, name: &'a str) -> &'a str {
        self.label.as_deref().unwrap_or(name)
    }

    /// Checks a value a customer or admin gives var `name`: its type, a picklist's options and
    /// the pattern. The error is the integration's `message` when it has one.
    pub fn check(&self, name: &str, value: &Json) -> Result<(), String> {
        let problem = if !self.kind.accepts(value) {
            Some(match self.kind {
                VarKind::Date => format!("`{name}` must be a date (YYYY-MM-DD)"),
                VarKind::Datetime => {
                    format!("`{name}` must be a date and time (YYYY-MM-DDTHH:MM)")
                }
                kind => format!("`{name}` must be a {}", kind.name()),
            })
        } else if self.kind == VarKind::Picklist
            && self.options_from.is_none()
            && !self.options.iter().any(|o| &o.value == value)
        {
            Some(format!(
                "`{name}` must be one of {}",
                self.options
                    .iter()
                    .map(|o| o.value.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else if let (Some(pattern), Some(text)) = (&self.pattern, value.as_str())
            && !whole_match(pattern, text)
        {
            Some(format!("`{name}` does not have the expected form"))
        } else {
            None
        };
        match problem {
            None => Ok(()),
            Some(problem) => Err(self.message.clone().unwrap_or(problem)),
        }
    }

    /// What is wrong with the declaration itself (checked when the integration is loaded).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        match (&self.options_from, self.options.is_empty()) {
            (None, true) if self.kind == VarKind::Picklist => out.push(
                "a picklist needs `options`, or `options_from` naming the flow that lists them"
                    .to_string(),
            ),
            (Some(_), false) => {
                out.push("give `options` or `options_from`, not both".to_string());
            }
            (Some(_), _) if self.kind != VarKind::Picklist => out.push(format!(
                "`options_from` is for `type = \"picklist\"`; this var is a {}",
                self.kind.name()
            )),
            _ => {}
        }
        if self.kind != VarKind::Picklist && !self.options.is_empty() {
            out.push(format!(
                "`options` are for `type = \"picklist\"`; this var is a {}",
                self.kind.name()
            ));
        }
        if let Some(pattern) = &self.pattern
            && let Err(e) = regex::Regex::new(pattern)
        {
            out.push(format!("`pattern` is not a regular expression: {e}"));
        }
        if let Some(default) = &self.default
            && let Err(why) = self.check("default", default)
        {
            out.push(format!("the default {default} is refused: {why}"));
        }
        out
    }
}

fn whole_match(pattern: &str, text: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn var(toml_text: &str) -> ConfigVarSpec {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn a_picklist_takes_only_its_options_in_either_form() {
        let v = var(r#"type = "picklist"
options = ["pikachu", { label = "Onix (rock)", value = "onix" }]"#);
        assert!(v.check("pokemon", &json!("onix")).is_ok());
        let err = v.check("pokemon", &json!("mew")).unwrap_err();
        assert_eq!(err, r#"`pokemon` must be one of "pikachu", "onix""#);
        assert_eq!(v.options[1].label(), "Onix (rock)");
        assert_eq!(v.options[0].label(), "pikachu");
    }

    #[test]
    fn dates_and_times_are_checked_as_calendars_do() {
        let d = var(r#"type = "date""#);
        assert!(d.check("d", &json!("2026-02-28")).is_ok());
        assert!(d.check("d", &json!("2026-02-30")).is_err());
        let t = var(r#"type = "datetime""#);
        for ok in [
            "2026-12-03T10:15",
            "2026-12-03T10:15:30",
            "2026-12-03T10:15:30Z",
        ] {
            assert!(t.check("t", &json!(ok)).is_ok(), "{ok}");
        }
        assert!(t.check("t", &json!("tomorrow")).is_err());
    }

    #[test]
    fn the_integrations_message_replaces_the_default_one() {
        let v = var(r#"pattern = "[a-z0-9-]+"
message = "Use lower-case letters, digits and dashes""#);
        assert!(v.check("slug", &json!("my-bucket")).is_ok());
        assert_eq!(
            v.check("slug", &json!("My Bucket")).unwrap_err(),
            "Use lower-case letters, digits and dashes"
        );
    }

    #[test]
    fn bad_declarations_are_named() {
        assert_eq!(
            var(r#"type = "picklist""#).problems(),
            ["a picklist needs `options`, or `options_from` naming the flow that lists them"]
        );
        assert_eq!(
            var(r#"type = "picklist"
options = ["a"]
options_from = "list""#)
            .problems(),
            ["give `options` or `options_from`, not both"]
        );
        assert!(
            var(r#"options_from = "list""#).problems()[0]
                .starts_with("`options_from` is for `type = \"picklist\"`")
        );
        assert!(
            var(r#"type = "picklist"
options_from = "list""#)
            .problems()
            .is_empty()
        );
        let p = var(r#"type = "picklist"
options = ["a"]
default = "b""#)
        .problems();
        assert_eq!(
            p,
            [r#"the default "b" is refused: `default` must be one of "a""#]
        );
        assert!(var(r#"pattern = "(""#).problems()[0].starts_with("`pattern` is not"));
    }
}
