//! What a customer does in the marketplace, shared by the JSON API and the marketplace pages:
//! list what is offered, activate it (a self-service instance), fill in its config vars page by
//! page, connect its accounts, enable, disable and remove it.
//!
//! Values are checked here, on the server, against the integration's declarations; a customer
//! sees and sets only the vars the wizard shows it (not those the operator set for the whole
//! workspace, unless the integration marks them `customer_visible`).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Map, Value as Json};

use weft_model::credential::{CredentialSpec, Scope};
use weft_model::spec::{ConfigVarSpec, ConnectionKind, ConnectionSpec, connection_credential};

use super::Server;
use super::error::{ApiError, ApiResult};
use crate::auth::Principal;
use crate::secrets::oauth;
use crate::store::registry::{ManagedInstance, Published};

/// An integration offered in the marketplace, with the caller's instance of it.
pub(super) struct Offer {
    /// Its newest version.
    pub(super) published: Published,
    /// The customer's own instance, when it activated it.
    pub(super) instance: Option<ManagedInstance>,
}

/// One page of the config wizard: its title and the vars on it.
pub(super) struct WizardPage {
    pub(super) title: String,
    pub(super) description: Option<String>,
    pub(super) vars: Vec<(String, ConfigVarSpec)>,
}

/// A connection of an instance, whether the customer connected it, and why it stopped
/// working if it did (an OAuth refresh the provider refused).
pub(super) struct ConnectionState {
    pub(super) name: String,
    pub(super) spec: ConnectionSpec,
    pub(super) connected: bool,
    pub(super) failed: Option<String>,
}

impl ConnectionState {
    /// How it stands, in a word the console and the API show.
    pub(super) fn status(&self) -> &'static str {
        match (self.connected, &self.failed) {
            (false, _) => "not_connected",
            (true, Some(_)) => "failed",
            (true, None) => "connected",
        }
    }
}

/// Problems with values, by field: what the page shows beside each.
pub(super) type FieldErrors = BTreeMap<String, String>;

/// The customer id of a customer caller; admins act through the admin API instead.
pub(super) fn customer_of(principal: &Principal) -> ApiResult<&str> {
    match principal {
        Principal::Customer { id, .. } => Ok(id),
        Principal::Admin { .. } => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "customer_only",
            "the marketplace is a customer's: sign in with a customer's token or user hash",
        )),
    }
}

impl Server {
    /// The integrations offered to customers, newest versions, with `customer`'s instances.
    pub(super) fn offers(&self, customer: &str) -> ApiResult<Vec<Offer>> {
        let registry = &self.inner.registry;
        let instances = registry.instances().map_err(ApiError::internal)?;
        let mut offers = Vec::new();
        for name in registry.integration_names().map_err(ApiError::internal)? {
            let Some(published) = registry
                .versions(&name)
                .map_err(ApiError::internal)?
                .pop()
                .filter(|p| p.spec.marketplace.as_ref().is_some_and(|m| m.listed))
            else {
                continue;
            };
            let instance = instances
                .iter()
                .find(|i| {
                    i.self_service && i.spec.customer == customer && i.spec.integration == name
                })
                .cloned();
            offers.push(Offer {
                published,
                instance,
            });
        }
        Ok(offers)
    }

    /// Activates `integration` for the calling customer.
    pub(super) fn activate(
        &self,
        principal: &Principal,
        integration: &str,
    ) -> ApiResult<ManagedInstance> {
        let customer = customer_of(principal)?;
        let offered = self
            .offers(customer)?
            .into_iter()
            .find(|o| o.published.name == integration)
            .ok_or_else(|| {
                ApiError::not_found(format!("no integration `{integration}` is offered"))
            })?;
        if let Some(existing) = offered.instance {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_active",
                format!(
                    "`{integration}` is already active as instance `{}`",
                    existing.spec.id
                ),
            ));
        }
        let instance = self
            .inner
            .registry
            .activate(customer, integration)
            .map_err(ApiError::internal)?;
        self.invalidate();
        Ok(instance)
    }

    /// The calling customer's own (self-service) instance `id`; anything else is 404.
    pub(super) fn own_instance(
        &self,
        principal: &Principal,
        id: &str,
    ) -> ApiResult<ManagedInstance> {
        let instance = self.visible_instance(principal, id)?;
        if !instance.self_service {
            return Err(ApiError::not_found(format!(
                "no marketplace instance `{id}`"
            )));
        }
        Ok(instance)
    }

    /// The version instance `instance` runs.
    pub(super) fn pinned_version(&self, instance: &ManagedInstance) -> ApiResult<Published> {
        super::api::instances::pinned(self, instance)?.ok_or_else(|| {
            ApiError::internal(format!(
                "integration `{}` v{} is not in the store",
                instance.spec.integration, instance.version
            ))
        })
    }

    /// The wizard's pages for `instance`: the integration's pages (or one page of every var),
    /// each with the vars a customer may set.
    pub(super) fn wizard(&self, instance: &ManagedInstance) -> ApiResult<Vec<WizardPage>> {
        let published = self.pinned_version(instance)?;
        let workspace_config = self
            .inner
            .registry
            .workspace()
            .map_err(ApiError::internal)?
            .map(|w| w.config)
            .unwrap_or_default();
        let vars = &published.spec.config_vars;
        let shown = |name: &String| {
            vars.get(name)
                .filter(|spec| spec.customer_visible || !workspace_config.contains_key(name))
                .map(|spec| (name.clone(), spec.clone()))
        };
        let marketplace = published.spec.marketplace.clone().unwrap_or_default();
        let mut pages: Vec<WizardPage> = if marketplace.pages.is_empty() {
            vec![WizardPage {
                title: published.spec.name.clone(),
                description: None,
                vars: vars.keys().filter_map(shown).collect(),
            }]
        } else {
            marketplace
                .pages
                .iter()
                .map(|page| WizardPage {
                    title: page.title.clone(),
                    description: page.description.clone(),
                    vars: page.vars.iter().filter_map(shown).collect(),
                })
                .collect()
        };
        pages.retain(|p| !p.vars.is_empty());
        Ok(pages)
    }

    /// Checks `values` (the vars of one wizard page, or any the customer may set) and stores
    /// them all, or none when one is refused.
    pub(super) async fn save_config(
        &self,
        instance: &ManagedInstance,
        values: &Map<String, Json>,
    ) -> ApiResult<Result<(), FieldErrors>> {
        let settable: BTreeMap<String, ConfigVarSpec> = self
            .wizard(instance)?
            .into_iter()
            .flat_map(|p| p.vars)
            .collect();
        let mut errors = FieldErrors::new();
        for (name, value) in values {
            match settable.get(name) {
                None => {
                    errors.insert(
                        name.clone(),
                        format!("`{name}` is not a setting of this integration"),
                    );
                }
                Some(spec) if value.is_null() && spec.required => {
                    errors.insert(name.clone(), format!("{} is required", spec.label(name)));
                }
                Some(spec) if !value.is_null() => {
                    if let Err(why) = spec.check(name, value) {
                        errors.insert(name.clone(), why);
                    }
                }
                Some(_) => {}
            }
        }
        if errors.is_empty() {
            errors = self.check_data_sources(instance, values).await?;
        }
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        self.inner
            .registry
            .set_instance_config(&instance.spec.id, values)
            .map_err(ApiError::internal)?;
        self.invalidate();
        Ok(Ok(()))
    }

    /// The connections `instance`'s integration declares, and which are connected (none for an
    /// instance the workspace file defines).
    pub(super) fn connections(
        &self,
        instance: &ManagedInstance,
    ) -> ApiResult<Vec<ConnectionState>> {
        // An instance of the workspace file uses the credentials the file names.
        if !instance.self_service {
            return Ok(Vec::new());
        }
        let published = self.pinned_version(instance)?;
        let vault = self.inner.vault.as_deref();
        published
            .spec
            .connections
            .into_iter()
            .map(|(name, spec)| {
                let stored = match vault {
                    None => None,
                    Some(vault) => vault
                        .get(
                            &Scope::Customer(instance.spec.customer.clone()),
                            &connection_credential(&name, &instance.spec.id),
                        )
                        .map_err(ApiError::internal)?,
                };
                Ok(ConnectionState {
                    name,
                    spec,
                    connected: stored.is_some(),
                    failed: stored.and_then(|s| s.failed),
                })
            })
            .collect()
    }

    /// Connects `name` of `instance` with the fields the customer filled in, sealed in the
    /// vault; for client credentials, once the provider issued a token for them. A field
    /// problem (or the provider refusing the client) is answered as such; nothing is stored
    /// then.
    pub(super) async fn connect(
        &self,
        instance: &ManagedInstance,
        name: &str,
        fields: &Map<String, Json>,
    ) -> ApiResult<Result<(), FieldErrors>> {
        if !instance.self_service {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "managed_by_file",
                format!(
                    "instance `{}` is defined in the workspace file; its steps use the credentials set there",
                    instance.spec.id
                ),
            ));
        }
        let published = self.pinned_version(instance)?;
        let spec = published
            .spec
            .connections
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("no connection `{name}`")))?;
        let mut credential = match spec.credential(fields) {
            Ok(c) => c,
            Err(why) => {
                let field = why.split('`').nth(1).unwrap_or(name).to_string();
                return Ok(Err(FieldErrors::from([(field, why)])));
            }
        };
        let vault = super::api::credentials::vault(self)?;
        if spec.kind == ConnectionKind::Oauth2ClientCredentials {
            let client = oauth::Client::of_customer(&credential);
            match oauth::client_credentials(spec, &client).await {
                Ok(tokens) => {
                    credential = CredentialSpec {
                        key: credential.key,
                        secret: credential.secret,
                        ..tokens
                    }
                }
                Err(why) => {
                    return Ok(Err(FieldErrors::from([(
                        "client_secret".to_string(),
                        format!("the provider issued no token for this client: {why}"),
                    )])));
                }
            }
        }
        vault
            .put(
                &Scope::Customer(instance.spec.customer.clone()),
                &connection_credential(name, &instance.spec.id),
                &credential,
            )
            .map_err(ApiError::internal)?;
        self.invalidate();
        Ok(Ok(()))
    }

    /// Forgets connection `name` of `instance`. Returns whether it was connected.
    pub(super) fn disconnect(&self, instance: &ManagedInstance, name: &str) -> ApiResult<bool> {
        let vault = super::api::credentials::vault(self)?;
        let existed = vault
            .delete(
                &Scope::Customer(instance.spec.customer.clone()),
                &connection_credential(name, &instance.spec.id),
            )
            .map_err(ApiError::internal)?;
        self.invalidate();
        Ok(existed)
    }

    /// What `instance` still needs before it can run: required vars with no value at any level
    /// and connections not connected, as the customer would name them.
    pub(super) fn missing(&self, instance: &ManagedInstance) -> ApiResult<Vec<String>> {
        let published = self.pinned_version(instance)?;
        let registry = &self.inner.registry;
        let workspace = registry
            .workspace()
            .map_err(ApiError::internal)?
            .map(|w| w.config)
            .unwrap_or_default();
        let customer = registry
            .customer(&instance.spec.customer)
            .map_err(ApiError::internal)?
            .map(|c| c.config)
            .unwrap_or_default();
        let mut missing: Vec<String> = published
            .spec
            .config_vars
            .iter()
            .filter(|(name, spec)| {
                spec.required
                    && spec.default.is_none()
                    && !instance.spec.config.contains_key(*name)
                    && !customer.contains_key(*name)
                    && !workspace.contains_key(*name)
            })
            .map(|(name, spec)| spec.label(name).to_string())
            .collect();
        missing.extend(
            self.connections(instance)?
                .into_iter()
                .filter(|c| !c.connected || c.failed.is_some())
                .map(|c| c.spec.label.unwrap_or(c.name)),
        );
        Ok(missing)
    }

    /// Enables or disables `instance`; enabling needs everything [`Server::missing`] names.
    pub(super) fn set_instance_enabled(
        &self,
        instance: &ManagedInstance,
        enabled: bool,
    ) -> ApiResult<()> {
        if enabled {
            let missing = self.missing(instance)?;
            if !missing.is_empty() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "not_configured",
                    format!("set these first: {}", missing.join(", ")),
                ));
            }
        }
        self.inner
            .registry
            .set_enabled(&instance.spec.id, enabled)
            .map_err(ApiError::internal)?;
        self.invalidate();
        Ok(())
    }

    /// Removes `instance` and its connections.
    pub(super) fn remove_instance(&self, instance: &ManagedInstance) -> ApiResult<()> {
        if self.inner.vault.is_some() {
            for connection in self.connections(instance)? {
                self.disconnect(instance, &connection.name)?;
            }
        }
        self.inner
            .registry
            .remove_self_service(&instance.spec.id)
            .map_err(|e| {
                ApiError::new(StatusCode::CONFLICT, "managed_by_file", format!("{e:#}"))
            })?;
        self.invalidate();
        Ok(())
    }
}
