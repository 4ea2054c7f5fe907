//! Instances customers make themselves in the marketplace: activated pinned to the newest
//! version of a listed integration, configured, and removed by their customer. `weft apply`
//! leaves them alone (they are marked `self_service`).

use anyhow::{Context, bail};
use serde_json::{Map, Value as Json};

use super::{ManagedInstance, Registry};
use weft_model::spec::{InstanceSpec, connection_credential};

impl Registry {
    /// Customer `customer`'s own instance of `integration`, if it activated one.
    pub fn self_service_instance(
        &self,
        customer: &str,
        integration: &str,
    ) -> anyhow::Result<Option<ManagedInstance>> {
        Ok(self.instances()?.into_iter().find(|i| {
            i.self_service && i.spec.customer == customer && i.spec.integration == integration
        }))
    }

    /// Activates `integration` for `customer`: a new instance pinned to its newest version,
    /// disabled until its customer has configured it. Fails when the integration is not
    /// listed in the marketplace or the customer already has it.
    pub fn activate(&self, customer: &str, integration: &str) -> anyhow::Result<ManagedInstance> {
        let newest = self
            .versions(integration)?
            .pop()
            .filter(|p| p.spec.marketplace.as_ref().is_some_and(|m| m.listed))
            .with_context(|| format!("integration `{integration}` is not offered"))?;
        if let Some(existing) = self.self_service_instance(customer, integration)? {
            bail!(
                "integration `{integration}` is already active for this customer as instance `{}`",
                existing.spec.id
            );
        }
        let id = format!("mp-{}", uuid::Uuid::now_v7().simple());
        // The steps that use a connection use this instance's: there is no falling back to a
        // credential of the workspace's.
        let connections = newest
            .spec
            .connections
            .keys()
            .map(|name| (name.clone(), connection_credential(name, &id)))
            .collect();
        let instance = ManagedInstance {
            spec: InstanceSpec {
                id,
                name: Some(integration.to_string()),
                customer: customer.to_string(),
                integration: integration.to_string(),
                config: Map::new(),
                enabled: false,
                credentials: Default::default(),
                connections,
                webhook_secret: None,
            },
            version: newest.version,
            self_service: true,
        };
        self.put_instance(&instance)?;
        Ok(instance)
    }

    /// Sets several instance-level config vars of instance `id` at once (a `null` value
    /// removes one), so that a wizard page is saved whole or not at all.
    pub fn set_instance_config(&self, id: &str, values: &Map<String, Json>) -> anyhow::Result<()> {
        let mut instance = self.instance_or_err(id)?;
        for (name, value) in values {
            if value.is_null() {
                instance.spec.config.remove(name);
            } else {
                instance.spec.config.insert(name.clone(), value.clone());
            }
        }
        self.put_instance(&instance)
    }

    /// Removes instance `id`, which its customer made. Returns whether it existed.
    pub fn remove_self_service(&self, id: &str) -> anyhow::Result<bool> {
        match self.instance(id)? {
            None => Ok(false),
            Some(instance) if !instance.self_service => bail!(
                "instance `{id}` is defined in the workspace file; remove it there and run `weft apply`"
            ),
            Some(_) => {
                self.tree.remove(format!("instance/{id}").as_bytes())?;
                self.tree.flush()?;
                Ok(true)
            }
        }
    }
}
