//! The Path Helper of the Pokemon Avatar Sync walkthrough.
//!
//! Reads the instance's config vars `customerName` and `pokemonAvatar` and returns the URL of the
//! avatar's Pokemon API entry and the S3 key the avatar is saved under. The API base URL may be
//! overridden with the optional input `api_base` (the offline demo points it at a local server).

use weft_step::{Guest, Inputs, StepError, Value, config};

struct PathHelper;

const DEFAULT_API_BASE: &str = "https://pokeapi.co/api/v2/pokemon";

impl Guest for PathHelper {
    fn run(inputs: Vec<(String, Value)>) -> Result<Value, StepError> {
        let inputs = Inputs::new(inputs);
        let api_base = inputs
            .optional_text("api_base")?
            .unwrap_or_else(|| DEFAULT_API_BASE.to_string());
        let avatar = required_var("pokemonAvatar")?;
        let customer = required_var("customerName")?;
        Ok(weft_step::json(&serde_json::json!({
            "pokemonUrl": format!("{}/{}", api_base.trim_end_matches('/'), avatar),
            "s3ObjectPath": format!("{customer}.png"),
        })))
    }
}

fn required_var(name: &str) -> Result<String, StepError> {
    config::get(name).ok_or_else(|| {
        StepError::denied(format!(
            "config var `{name}` has no value for this instance; set it on the instance, the customer or the workspace"
        ))
    })
}

weft_step::export!(PathHelper);
