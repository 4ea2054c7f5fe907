//! A plugin step: its inputs rendered and checked against the plugin's manifest, the plugin
//! executed under the step's retry policy, and its result checked when it answers a webhook.

use weft_model::value::Val;
use weft_model::workspace::Step;

use super::attempt::Succeeded;
use super::context::redact_value;
use super::flow::Exec;
use super::scope::Scope;
use crate::store::StepRecord;

impl Exec<'_> {
    /// Runs plugin step `step` in `scope`; its inputs, logs and attempts go into `record`.
    pub(super) async fn plugin_step(
        &self,
        step: &Step,
        scope: &Scope<'_>,
        record: &mut StepRecord,
    ) -> Result<Succeeded, String> {
        let inputs: Vec<(String, Val)> = step
            .inputs
            .iter()
            .map(|(name, template)| {
                template
                    .render(&|path| scope.lookup(path))
                    .map(|v| (name.clone(), v))
                    .map_err(|e| format!("step `{}` input `{name}`: {e}", step.id))
            })
            .collect::<Result<_, _>>()?;
        if let Some(manifest) = self.ws.manifest(&step.plugin) {
            manifest
                .check_inputs(&inputs)
                .map_err(|e| format!("step `{}`: {e}", step.id))?;
        }
        record.inputs = inputs
            .iter()
            .map(|(k, v)| (k.clone(), redact_value(v, self.redactor)))
            .collect();
        let plugin = &self.plugins[step.plugin.as_str()];
        let succeeded = self
            .runner
            .attempt(
                &self.run.id,
                self.ws,
                step,
                plugin,
                &inputs,
                self.bindings,
                self.redactor,
                record,
            )
            .await?;
        if let Some(message) = unservable_reply(step, self.answer, &succeeded.value) {
            return Err(message);
        }
        Ok(succeeded)
    }
}

/// Why the result of `step` cannot answer the webhook it is to answer, if it cannot.
pub(super) fn unservable_reply(step: &Step, answer: Option<&str>, value: &Val) -> Option<String> {
    if answer != Some(step.id.as_str()) {
        return None;
    }
    let Val::Json(value) = value else {
        return None;
    };
    weft_model::reply::parse(value).err().map(|why| {
        format!(
            "step `{}` (plugin `{}`) answers the webhook, but its result cannot be served: {why}",
            step.id, step.plugin
        )
    })
}
