//! Before any step runs: the config vars the run sees, the credentials its steps are bound
//! to, and every plugin loaded and checked against its policy. A problem found here fails the
//! run before its first step.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use weft_model::config::{ConfigProblem, ResolvedConfig};
use weft_model::control::StepKind;
use weft_model::spec::InstanceSpec;
use weft_model::workspace::{Flow, Integration, Step, Workspace};

use super::Runner;
use crate::plugin::Plugin;
use crate::secrets::Credential;

impl Runner {
    /// The config vars of `instance`; for a replay or a resume, the values in `snapshot` (what
    /// the run saw) except secrets, which records keep redacted and are resolved again.
    pub(super) fn resolve_config(
        ws: &Workspace,
        instance: &InstanceSpec,
        snapshot: Option<&ResolvedConfig>,
    ) -> Result<ResolvedConfig, Vec<ConfigProblem>> {
        ws.resolve_config(instance).map(|mut config| {
            if let Some(snapshot) = snapshot {
                for (name, var) in config.0.iter_mut() {
                    if let Some(seen) = snapshot.0.get(name)
                        && !var.secret
                        && !seen.secret
                    {
                        *var = seen.clone();
                    }
                }
            }
            config
        })
    }

    /// Resolves the credential bound to each step of `flow` (the instance's binding, else the
    /// step's own), each name once.
    pub(super) async fn bind_credentials(
        &self,
        ws: &Workspace,
        integration: &Integration,
        instance: &InstanceSpec,
        steps: &[&Step],
    ) -> anyhow::Result<HashMap<String, Arc<Credential>>> {
        let mut by_name: HashMap<&str, Arc<Credential>> = HashMap::new();
        let mut by_step = HashMap::new();
        for step in steps {
            let Some(name) = instance.credentials.get(&step.id).or_else(|| {
                let own = step.credential.as_ref()?;
                instance.connections.get(own).or(Some(own))
            }) else {
                continue;
            };
            let credential = match by_name.get(name.as_str()) {
                Some(c) => c.clone(),
                None => {
                    if let Some(connection) = weft_model::spec::connection_of(name) {
                        self.refresh_connection(integration, instance, connection, name)
                            .await
                            .with_context(|| format!("step `{}`", step.id))?;
                    }
                    let c = Arc::new(
                        crate::secrets::find(
                            ws,
                            self.vault.as_deref().map(|v| v as _),
                            Some(&instance.customer),
                            name,
                        )
                        .map_err(|e| match weft_model::spec::connection_of(name) {
                            Some(connection) if e.to_string().starts_with("no credential") => {
                                anyhow::anyhow!(
                                    "connection `{connection}` is not connected: connect it in the marketplace (Configure → Connections), then run again"
                                )
                            }
                            _ => e,
                        })
                        .with_context(|| format!("step `{}`", step.id))?,
                    );
                    by_name.insert(name, c.clone());
                    c
                }
            };
            by_step.insert(step.id.clone(), credential);
        }
        Ok(by_step)
    }

    /// Loads every plugin of `flow` and checks it against the workspace's policy, so that a
    /// bad plugin stops the run before any step.
    pub(super) fn load_plugins<'f>(
        &self,
        ws: &Workspace,
        steps: &[&'f Step],
    ) -> anyhow::Result<HashMap<&'f str, Arc<Plugin>>> {
        let mut plugins: HashMap<&str, Arc<Plugin>> = HashMap::new();
        for step in steps {
            if !matches!(step.kind, StepKind::Plugin) || plugins.contains_key(step.plugin.as_str())
            {
                continue;
            }
            let source = ws
                .plugin_source(&step.plugin)
                .ok_or_else(|| anyhow::anyhow!("unknown plugin `{}`", step.plugin))?;
            let plugin = self.host.load(&step.plugin, &source)?;
            crate::plugin::policy::check(ws, &plugin).map_err(anyhow::Error::msg)?;
            plugins.insert(&step.plugin, plugin);
        }
        Ok(plugins)
    }
}

/// Every step a run of `flow` may execute: its own, those inside its loops and branches, and
/// those of the flows its `call` steps call, each flow once.
pub(super) fn reachable_steps<'i>(integration: &'i Integration, flow: &'i Flow) -> Vec<&'i Step> {
    let mut flows = vec![flow];
    let mut seen = vec![flow.name.as_str()];
    let mut steps = Vec::new();
    while let Some(flow) = flows.pop() {
        for step in flow.all_steps() {
            if let StepKind::Call { flow: called } = &step.kind
                && !seen.contains(&called.as_str())
                && let Some(found) = integration.flows.iter().find(|f| &f.name == called)
            {
                seen.push(called);
                flows.push(found);
            }
            steps.push(step);
        }
    }
    steps
}
