//! The sled trees of the store, named in one place. Only the store's own modules open them;
//! the rest of the engine goes through typed accessors ([`super::Store::registry`],
//! [`super::vault::Vault::open`], [`super::Store::schedule_ticks`],
//! [`super::Store::compile_cache_key`], [`super::Store::webhook_tokens`],
//! [`super::Store::oauth_states`]). On PostgreSQL the
//! key-value trees among them are rows of `weft_kv` under the same names.

use anyhow::Context as _;

/// A tree of the store's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tree {
    /// Run records, by run id.
    Runs,
    /// Step records, by run id and step index.
    Steps,
    /// Binary step values, by SHA-256.
    Blobs,
    /// The snapshot of where runs in progress can be.
    Running,
    /// The managed state: workspace, integrations and versions, customers, instances, config.
    Registry,
    /// Sealed credentials.
    Credentials,
    /// Keys and check records: the master key check, the compile cache's sealing key.
    Meta,
    /// The last tick of each schedule.
    Schedules,
    /// The secret token of each instance flow's webhook.
    Webhooks,
    /// OAuth authorizations a customer started and the provider has not called back for.
    OauthStates,
}

impl Tree {
    pub(super) fn name(self) -> &'static str {
        match self {
            Tree::Runs => "runs",
            Tree::Steps => "steps",
            Tree::Blobs => "blobs",
            Tree::Running => "running",
            Tree::Registry => "registry",
            Tree::Credentials => "credentials",
            Tree::Meta => "meta",
            Tree::Schedules => "schedules",
            Tree::Webhooks => "webhooks",
            Tree::OauthStates => "oauth_states",
        }
    }

    /// Opens this tree of `db`.
    pub(super) fn open(self, db: &sled::Db) -> anyhow::Result<sled::Tree> {
        db.open_tree(self.name())
            .with_context(|| format!("failed to open the store's `{}` tree", self.name()))
    }
}
