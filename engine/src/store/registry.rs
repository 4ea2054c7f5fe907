//! Managed state: the workspace as applied to the store, with integration versions.
//!
//! `weft apply weft.toml` makes the store match the workspace file: the workspace's config vars,
//! plugins and credential definitions, its customers and instances, and every integration, each
//! change of which is published as a new version. An instance is pinned to the version it was
//! deployed with and moves only when upgraded. Runs started from the store (`weft run
//! --instance ID` without a workspace file) use exactly what is stored.
//!
//! Everything lives in the store's `registry` tree (JSON values): `workspace`,
//! `customer/ID`, `instance/ID` and `integration/NAME/VERSION` (the version big-endian, so a
//! name's versions sort in order).

use std::collections::BTreeMap;
use std::path::PathBuf;
use weft_model::records::now_ms;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use super::Store;
use super::kv::{KvBatch, KvTree};
use super::trees::Tree;

mod self_service;
mod workspace;

use weft_model::credential::CredentialSpec;
use weft_model::spec::{CodePolicySpec, EmbedSpec, FlowLimitsSpec, PluginSpec, WorkspaceMeta};
use weft_model::spec::{CustomerSpec, InstanceSpec, IntegrationFile};
use weft_model::workspace::Workspace;

/// The workspace-level part of the managed state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredWorkspace {
    /// Where the workspace file was when it was applied; relative paths in it (plugins,
    /// `file:` secrets) resolve against its directory.
    pub path: PathBuf,
    /// The `[workspace]` table.
    pub meta: WorkspaceMeta,
    /// Workspace-level config var values.
    pub config: Map<String, Json>,
    /// The plugins and their grants.
    pub plugins: BTreeMap<String, PluginSpec>,
    /// Workspace-level credential definitions (secrets stay `env:`/`file:` references).
    pub credentials: BTreeMap<String, CredentialSpec>,
    /// The caps on integrations' flow-control limits.
    #[serde(default)]
    pub limits: FlowLimitsSpec,
    /// The `[code]` policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodePolicySpec>,
    /// The `[embed]` table: who may frame the marketplace, its theme and strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<EmbedSpec>,
}

/// One published version of an integration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Published {
    /// The integration's name.
    pub name: String,
    /// Its version: 1, 2, … in the order they were published.
    pub version: u32,
    /// SHA-256 of the definition, to tell whether a file changed.
    pub sha256: String,
    /// When it was published, milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    /// The file it was published from.
    pub path: PathBuf,
    /// The definition.
    pub spec: IntegrationFile,
}

/// An instance in the store: its definition and the integration version it is pinned to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagedInstance {
    /// The instance as the workspace file defines it.
    #[serde(flatten)]
    pub spec: InstanceSpec,
    /// The integration version it runs.
    pub version: u32,
    /// Made by its customer in the marketplace rather than by the workspace file: `weft apply`
    /// leaves it alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub self_service: bool,
}

/// Where `weft config set` puts a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigLevel {
    /// The workspace (organization).
    Workspace,
    /// One customer.
    Customer(String),
    /// One instance.
    Instance(String),
}

/// The managed state of one store.
#[derive(Debug, Clone)]
pub struct Registry {
    tree: KvTree,
}

fn integration_key(name: &str, version: u32) -> Vec<u8> {
    let mut key = integration_prefix(name);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn integration_prefix(name: &str) -> Vec<u8> {
    format!("integration/{name}/").into_bytes()
}

impl Store {
    /// The managed state kept in this store.
    pub fn registry(&self) -> anyhow::Result<Registry> {
        Registry::open(self)
    }
}

impl Registry {
    /// The managed state kept in `store`.
    pub fn open(store: &Store) -> anyhow::Result<Self> {
        Ok(Self {
            tree: store.kv(Tree::Registry)?,
        })
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> anyhow::Result<Option<T>> {
        match self.tree.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
                format!("the stored `{}` is damaged", String::from_utf8_lossy(key))
            }),
        }
    }

    fn scan<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> anyhow::Result<Vec<T>> {
        self.tree
            .scan_prefix(prefix.as_bytes())?
            .into_iter()
            .map(|(key, bytes)| {
                serde_json::from_slice(&bytes).with_context(|| {
                    format!("the stored `{}` is damaged", String::from_utf8_lossy(&key))
                })
            })
            .collect()
    }

    /// The stored workspace, if one was applied.
    pub fn workspace(&self) -> anyhow::Result<Option<StoredWorkspace>> {
        self.get(b"workspace")
    }

    /// Every customer, by id.
    pub fn customers(&self) -> anyhow::Result<Vec<CustomerSpec>> {
        self.scan("customer/")
    }

    /// Customer `id`.
    pub fn customer(&self, id: &str) -> anyhow::Result<Option<CustomerSpec>> {
        self.get(format!("customer/{id}").as_bytes())
    }

    /// Every instance, by id.
    pub fn instances(&self) -> anyhow::Result<Vec<ManagedInstance>> {
        self.scan("instance/")
    }

    /// Instance `id`.
    pub fn instance(&self, id: &str) -> anyhow::Result<Option<ManagedInstance>> {
        self.get(format!("instance/{id}").as_bytes())
    }

    /// Every published version of integration `name`, oldest first.
    pub fn versions(&self, name: &str) -> anyhow::Result<Vec<Published>> {
        self.tree
            .scan_prefix(&integration_prefix(name))?
            .into_iter()
            .map(|(_, bytes)| {
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("a stored version of `{name}` is damaged"))
            })
            .collect()
    }

    /// The integration version `instance` is pinned to.
    pub fn pinned(&self, instance: &ManagedInstance) -> anyhow::Result<Option<Published>> {
        self.get(&integration_key(
            &instance.spec.integration,
            instance.version,
        ))
    }

    /// Every instance in the store with each flow of the version it is pinned to:
    /// `(instance, flow)`.
    pub fn instance_flows(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut all = Vec::new();
        for instance in self.instances()? {
            if let Some(published) = self.pinned(&instance)? {
                for flow in published.spec.flows {
                    all.push((instance.spec.id.clone(), flow.name));
                }
            }
        }
        Ok(all)
    }

    /// The names of every integration ever published.
    pub fn integration_names(&self) -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .scan::<Published>("integration/")?
            .into_iter()
            .map(|p| p.name)
            .collect();
        names.dedup();
        Ok(names)
    }

    fn instance_or_err(&self, id: &str) -> anyhow::Result<ManagedInstance> {
        self.instance(id)?.with_context(|| {
            let known: Vec<String> = self
                .instances()
                .unwrap_or_default()
                .into_iter()
                .map(|i| format!("`{}`", i.spec.id))
                .collect();
            format!(
                "no instance `{id}` in the store; it has {}",
                if known.is_empty() {
                    "none (apply a workspace with `weft apply weft.toml`)".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
    }

    /// Makes the store match `ws`: publishes each integration whose definition changed as a
    /// new version, creates, updates and removes customers and instances, and stores the
    /// workspace's config vars, plugins and credential definitions. New instances are pinned to
    /// the newest version; existing ones keep theirs unless `upgrade` is set. Returns what
    /// changed, a line each; nothing when the store already matched.
    pub fn apply(&self, ws: &Workspace, upgrade: bool) -> anyhow::Result<Vec<String>> {
        let mut changes = Vec::new();
        let mut batch = KvBatch::default();

        let path = std::path::absolute(&ws.path)
            .with_context(|| format!("failed to resolve `{}`", ws.path.display()))?;
        let stored = StoredWorkspace {
            path,
            meta: ws.file.workspace.clone(),
            config: ws.file.config.clone(),
            // Code steps' plugins are made from the integrations each time they are checked.
            plugins: ws
                .file
                .plugins
                .iter()
                .filter(|(_, plugin)| plugin.code.is_none())
                .map(|(name, plugin)| (name.clone(), plugin.clone()))
                .collect(),
            credentials: ws.file.credentials.clone(),
            limits: ws.file.limits.clone(),
            code: ws.file.code.clone(),
            embed: ws.file.embed.clone(),
        };
        match self.workspace()? {
            None => changes.push(format!("workspace `{}`: created", ws.name())),
            Some(old) if !same(&old, &stored)? => {
                changes.push(format!("workspace `{}`: updated", ws.name()))
            }
            Some(_) => {}
        }
        put(&mut batch, b"workspace", &stored)?;

        let mut newest: BTreeMap<String, u32> = BTreeMap::new();
        for (name, integration) in &ws.integrations {
            let text = serde_json::to_vec(&integration.spec)?;
            let sha256 = hex::encode(Sha256::digest(&text));
            let versions = self.versions(name)?;
            let latest = versions.last();
            let version = match latest {
                Some(l) if l.sha256 == sha256 => l.version,
                _ => {
                    let version = latest.map_or(1, |l| l.version + 1);
                    let published = Published {
                        name: name.clone(),
                        version,
                        sha256,
                        published_at_ms: now_ms(),
                        path: std::path::absolute(&integration.path)
                            .unwrap_or_else(|_| integration.path.clone()),
                        spec: integration.spec.clone(),
                    };
                    put(&mut batch, &integration_key(name, version), &published)?;
                    changes.push(format!("integration `{name}`: published v{version}"));
                    version
                }
            };
            newest.insert(name.clone(), version);
        }

        let old_customers: BTreeMap<String, CustomerSpec> = self
            .customers()?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        for customer in &ws.file.customers {
            let key = format!("customer/{}", customer.id);
            match old_customers.get(&customer.id) {
                None => changes.push(format!("customer `{}`: created", customer.id)),
                Some(old) if !same(old, customer)? => {
                    changes.push(format!("customer `{}`: updated", customer.id))
                }
                Some(_) => {}
            }
            put(&mut batch, key.as_bytes(), customer)?;
        }
        for id in old_customers.keys() {
            // Customers that signed in with a token stay until removed on purpose.
            if ws.customer(id).is_none() && !self.tree.contains_key(&token_key(id))? {
                batch.remove(format!("customer/{id}").as_bytes());
                changes.push(format!("customer `{id}`: removed"));
            }
        }

        let old_instances: BTreeMap<String, ManagedInstance> = self
            .instances()?
            .into_iter()
            .map(|i| (i.spec.id.clone(), i))
            .collect();
        for spec in &ws.file.instances {
            let latest = newest.get(&spec.integration).copied().unwrap_or(1);
            let key = format!("instance/{}", spec.id);
            let managed = match old_instances.get(&spec.id) {
                None => {
                    changes.push(format!(
                        "instance `{}`: created, pinned to `{}` v{latest}",
                        spec.id, spec.integration
                    ));
                    ManagedInstance {
                        spec: spec.clone(),
                        version: latest,
                        self_service: false,
                    }
                }
                Some(old) => {
                    let moved = old.spec.integration != spec.integration;
                    let version = if upgrade || moved {
                        latest
                    } else {
                        old.version
                    };
                    if !same(&old.spec, spec)? {
                        changes.push(format!("instance `{}`: updated", spec.id));
                    }
                    if version != old.version || moved {
                        changes.push(format!(
                            "instance `{}`: moved from `{}` v{} to `{}` v{version}",
                            spec.id, old.spec.integration, old.version, spec.integration
                        ));
                    } else if version < latest {
                        changes.push(format!(
                            "instance `{}`: stays on `{}` v{version} (v{latest} is published; `weft instances upgrade {}` moves it)",
                            spec.id, spec.integration, spec.id
                        ));
                    }
                    ManagedInstance {
                        spec: spec.clone(),
                        version,
                        self_service: false,
                    }
                }
            };
            put(&mut batch, key.as_bytes(), &managed)?;
        }
        for (id, old) in &old_instances {
            // Customers' own instances are theirs to remove.
            if ws.instance(id).is_none() && !old.self_service {
                batch.remove(format!("instance/{id}").as_bytes());
                changes.push(format!("instance `{id}`: removed"));
            }
        }

        self.tree
            .apply(batch)
            .context("failed to write the managed state")?;
        self.tree.flush().context("failed to flush the store")?;
        Ok(changes)
    }

    /// Moves instance `id` to version `to` (default: the newest) of its integration. Returns
    /// the versions it moved from and to.
    pub fn upgrade(&self, id: &str, to: Option<u32>) -> anyhow::Result<(u32, u32)> {
        let mut instance = self.instance_or_err(id)?;
        let versions = self.versions(&instance.spec.integration)?;
        let target = match to {
            None => versions
                .last()
                .map(|p| p.version)
                .unwrap_or(instance.version),
            Some(v) if versions.iter().any(|p| p.version == v) => v,
            Some(v) => bail!(
                "integration `{}` has no v{v}; its versions are {}",
                instance.spec.integration,
                versions
                    .iter()
                    .map(|p| format!("v{}", p.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let from = instance.version;
        instance.version = target;
        self.put_instance(&instance)?;
        Ok((from, target))
    }

    /// Enables or disables instance `id`.
    pub fn set_enabled(&self, id: &str, enabled: bool) -> anyhow::Result<()> {
        let mut instance = self.instance_or_err(id)?;
        instance.spec.enabled = enabled;
        self.put_instance(&instance)
    }

    fn put_instance(&self, instance: &ManagedInstance) -> anyhow::Result<()> {
        self.tree.insert(
            format!("instance/{}", instance.spec.id).as_bytes(),
            &serde_json::to_vec(instance)?,
        )?;
        self.tree.flush()?;
        Ok(())
    }

    /// Sets (or with `None`, removes) config var `name` at `level`. The next `weft apply`
    /// replaces it with what the workspace file says.
    pub fn set_config(
        &self,
        level: &ConfigLevel,
        name: &str,
        value: Option<Json>,
    ) -> anyhow::Result<()> {
        let set = |map: &mut Map<String, Json>| match &value {
            Some(v) => {
                map.insert(name.to_string(), v.clone());
            }
            None => {
                map.remove(name);
            }
        };
        match level {
            ConfigLevel::Workspace => {
                let mut ws = self.workspace()?.context(
                    "no workspace has been applied to this store; run `weft apply weft.toml` first",
                )?;
                set(&mut ws.config);
                self.tree.insert(b"workspace", &serde_json::to_vec(&ws)?)?;
            }
            ConfigLevel::Customer(id) => {
                let mut customer = self
                    .customer(id)?
                    .with_context(|| format!("no customer `{id}` in the store"))?;
                set(&mut customer.config);
                self.tree.insert(
                    format!("customer/{id}").as_bytes(),
                    &serde_json::to_vec(&customer)?,
                )?;
            }
            ConfigLevel::Instance(id) => {
                let mut instance = self.instance_or_err(id)?;
                set(&mut instance.spec.config);
                self.tree.insert(
                    format!("instance/{id}").as_bytes(),
                    &serde_json::to_vec(&instance)?,
                )?;
            }
        }
        self.tree.flush()?;
        Ok(())
    }

    /// Creates or updates customer `id` from the claims of a token it signed in with (its
    /// `name` and `fields`); its config and credentials are kept. Returns whether anything
    /// changed. Such customers survive `weft apply` even when the file does not list them.
    pub fn upsert_customer(
        &self,
        id: &str,
        name: Option<&str>,
        fields: &Map<String, Json>,
    ) -> anyhow::Result<bool> {
        let existing = self.customer(id)?;
        let mut customer = existing.clone().unwrap_or_else(|| CustomerSpec {
            id: id.to_string(),
            name: name.unwrap_or(id).to_string(),
            fields: Map::new(),
            config: Map::new(),
            credentials: BTreeMap::new(),
        });
        if let Some(name) = name {
            customer.name = name.to_string();
        }
        if !fields.is_empty() {
            customer.fields = fields.clone();
        }
        if existing
            .as_ref()
            .is_some_and(|old| old.name == customer.name && old.fields == customer.fields)
        {
            return Ok(false);
        }
        let mut batch = KvBatch::default();
        put(&mut batch, format!("customer/{id}").as_bytes(), &customer)?;
        if existing.is_none() {
            batch.insert(token_key(id), b"1".to_vec());
        }
        self.tree.apply(batch)?;
        self.tree.flush()?;
        Ok(true)
    }

    /// Whether anything was ever applied.
    pub fn is_empty(&self) -> anyhow::Result<bool> {
        self.tree.is_empty()
    }
}

fn token_key(customer: &str) -> Vec<u8> {
    format!("token-customer/{customer}").into_bytes()
}

fn put<T: Serialize>(batch: &mut KvBatch, key: &[u8], value: &T) -> anyhow::Result<()> {
    batch.insert(key, serde_json::to_vec(value)?);
    Ok(())
}

/// Whether two records say the same.
fn same<T: Serialize>(a: &T, b: &T) -> anyhow::Result<bool> {
    Ok(serde_json::to_value(a)? == serde_json::to_value(b)?)
}
