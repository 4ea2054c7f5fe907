//! The workspace a stored instance runs with: the stored workspace narrowed to the instance
//! and its customer, with the integration version it is pinned to.

use anyhow::{Context, bail};

use super::Registry;
use weft_model::spec::WorkspaceFile;
use weft_model::workspace::Workspace;

impl Registry {
    /// The workspace to run instance `id` with: what is stored, with the instance's pinned
    /// integration version (or `version`, to rerun a run as it was).
    pub fn workspace_for(&self, id: &str, version: Option<u32>) -> anyhow::Result<Workspace> {
        self.workspace_for_with(id, version, false)
    }

    /// The workspace to run a flow of instance `id` with while its customer is still filling
    /// in the wizard (a data source): enabled, and with none of its vars required.
    pub fn draft_workspace_for(&self, id: &str) -> anyhow::Result<Workspace> {
        self.workspace_for_with(id, None, true)
    }

    fn workspace_for_with(
        &self,
        id: &str,
        version: Option<u32>,
        draft: bool,
    ) -> anyhow::Result<Workspace> {
        let Some(stored) = self.workspace()? else {
            bail!("no workspace has been applied to this store; run `weft apply weft.toml` first");
        };
        let mut instance = self.instance_or_err(id)?;
        instance.spec.enabled |= draft;
        let customer = self.customer(&instance.spec.customer)?.with_context(|| {
            format!(
                "instance `{id}` belongs to customer `{}`, which is not in the store",
                instance.spec.customer
            )
        })?;
        let version = version.unwrap_or(instance.version);
        let published = self
            .versions(&instance.spec.integration)?
            .into_iter()
            .find(|p| p.version == version)
            .with_context(|| {
                format!(
                    "integration `{}` v{version} is not in the store",
                    instance.spec.integration
                )
            })?;
        // A marketplace instance uses its customer's connection for every connection the
        // version it runs declares, including ones added by an upgrade since it was activated.
        if instance.self_service {
            for name in published.spec.connections.keys() {
                instance
                    .spec
                    .connections
                    .entry(name.clone())
                    .or_insert_with(|| weft_model::spec::connection_credential(name, id));
            }
        }
        let file = WorkspaceFile {
            workspace: stored.meta,
            plugins: stored.plugins,
            config: stored.config,
            integrations: Vec::new(),
            customers: vec![customer],
            instances: vec![instance.spec],
            credentials: stored.credentials,
            auth: None,
            limits: stored.limits,
            code: stored.code,
            embed: stored.embed,
        };
        let mut spec = published.spec;
        spec.version = published.version;
        if draft {
            for var in spec.config_vars.values_mut() {
                var.required = false;
            }
        }
        // The problems stay a `ValidationErrors` in the chain, so a caller can tell a workspace
        // that does not check (a required var unset since) from a store that failed.
        Workspace::from_parts(&stored.path, file, vec![(published.path, spec)])
            .map_err(|e| anyhow::Error::new(e).context("the stored workspace does not check"))
    }
}
