//! One key-value tree in `weft_kv`: see [`crate::store::kv`].

use super::PgStore;
use crate::store::kv::KvBatch;

/// The rows of tree `tree` in `weft_kv`.
#[derive(Debug, Clone)]
pub struct PgTree {
    store: PgStore,
    tree: &'static str,
}

impl PgStore {
    /// The key-value tree `tree`.
    pub fn tree(&self, tree: &'static str) -> PgTree {
        PgTree {
            store: self.clone(),
            tree,
        }
    }
}

impl PgTree {
    pub(crate) fn get(&self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        let (tree, key) = (self.tree, key.to_vec());
        self.store
            .query("read the store", move |client| async move {
                let get = client
                    .prepare_cached("SELECT value FROM weft_kv WHERE tree = $1 AND key = $2")
                    .await?;
                Ok(client
                    .query_opt(&get, &[&tree, &key])
                    .await?
                    .map(|row| row.get(0)))
            })
    }

    pub(crate) fn insert(&self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let mut batch = KvBatch::default();
        batch.insert(key, value);
        self.apply(batch).map(drop)
    }

    pub(crate) fn remove(&self, key: &[u8]) -> anyhow::Result<bool> {
        let (tree, key) = (self.tree, key.to_vec());
        self.store
            .query("write to the store", move |client| async move {
                let removed = client
                    .execute(
                        "DELETE FROM weft_kv WHERE tree = $1 AND key = $2",
                        &[&tree, &key],
                    )
                    .await?;
                Ok(removed > 0)
            })
    }

    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (tree, prefix) = (self.tree, prefix.to_vec());
        self.store
            .query("read the store", move |client| async move {
                // Keys from `prefix` on, while they start with it (bytea sorts bytewise).
                Ok(client
                    .query(
                        "SELECT key, value FROM weft_kv WHERE tree = $1 AND key >= $2 \
                     AND substring(key FROM 1 FOR octet_length($2)) = $2 ORDER BY key",
                        &[&tree, &prefix],
                    )
                    .await?
                    .iter()
                    .map(|row| (row.get(0), row.get(1)))
                    .collect())
            })
    }

    pub(crate) fn apply(&self, batch: KvBatch) -> anyhow::Result<bool> {
        let tree = self.tree;
        self.store
            .query("write to the store", move |mut client| async move {
                let tx = client.transaction().await?;
                for (key, expected) in &batch.expect {
                    // Two batches expecting the same key take turns (an advisory lock held to
                    // the end of the transaction: it also covers a key that is absent, which a
                    // row lock cannot), so the check holds while the changes apply.
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1 || encode($2, 'hex'), 0))",
                        &[&tree, key],
                    )
                    .await?;
                    let found: Option<Vec<u8>> = tx
                        .query_opt(
                            "SELECT value FROM weft_kv WHERE tree = $1 AND key = $2",
                            &[&tree, key],
                        )
                        .await?
                        .map(|row| row.get(0));
                    if found != *expected {
                        return Ok(false);
                    }
                }
                let put = tx
                    .prepare_cached(
                        "INSERT INTO weft_kv (tree, key, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value",
                    )
                    .await?;
                let delete = tx
                    .prepare_cached("DELETE FROM weft_kv WHERE tree = $1 AND key = $2")
                    .await?;
                for (key, value) in &batch.changes {
                    match value {
                        Some(value) => tx.execute(&put, &[&tree, key, value]).await?,
                        None => tx.execute(&delete, &[&tree, key]).await?,
                    };
                }
                tx.commit().await?;
                Ok(true)
            })
    }
}
