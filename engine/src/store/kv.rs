//! Key-value trees on either backend: what the managed state, the vault, the keys, schedule
//! ticks and webhook tokens are kept in.
//!
//! These are small and read and written a few keys at a time, so one contract serves both
//! backends: a sled tree, or the rows of one tree in PostgreSQL's `weft_kv`. Writes are
//! durable when they return (sled is flushed by the caller where it matters: [`KvTree::flush`];
//! PostgreSQL commits each).

use super::postgres::PgTree;

/// One tree of keys and values.
#[derive(Debug, Clone)]
pub enum KvTree {
    /// A sled tree.
    Sled(sled::Tree),
    /// A tree in PostgreSQL.
    Postgres(PgTree),
}

/// Changes applied together, all or none, if every expectation holds.
#[derive(Debug, Default)]
pub struct KvBatch {
    /// Keys that must have these values (`None`: be absent) for the batch to apply.
    pub expect: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Keys to set (`Some`) or remove (`None`), in order.
    pub changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl KvBatch {
    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.changes.push((key.into(), Some(value.into())));
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.changes.push((key.into(), None));
    }

    /// Applies the batch only if `key` has `value` (`None`: is absent) when it does.
    pub fn expect(&mut self, key: impl Into<Vec<u8>>, value: Option<Vec<u8>>) {
        self.expect.push((key.into(), value));
    }
}

impl KvTree {
    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            KvTree::Sled(tree) => Ok(tree.get(key)?.map(|v| v.to_vec())),
            KvTree::Postgres(tree) => tree.get(key),
        }
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &[u8]) -> anyhow::Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Sets `key` to `value`.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        match self {
            KvTree::Sled(tree) => tree.insert(key, value).map(drop).map_err(Into::into),
            KvTree::Postgres(tree) => tree.insert(key, value),
        }
    }

    /// Removes `key`; whether it had a value.
    pub fn remove(&self, key: &[u8]) -> anyhow::Result<bool> {
        match self {
            KvTree::Sled(tree) => Ok(tree.remove(key)?.is_some()),
            KvTree::Postgres(tree) => tree.remove(key),
        }
    }

    /// Every key starting with `prefix`, with its value, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        match self {
            KvTree::Sled(tree) => tree
                .scan_prefix(prefix)
                .map(|entry| {
                    let (k, v) = entry?;
                    Ok((k.to_vec(), v.to_vec()))
                })
                .collect(),
            KvTree::Postgres(tree) => tree.scan_prefix(prefix),
        }
    }

    /// Whether the tree holds no key.
    pub fn is_empty(&self) -> anyhow::Result<bool> {
        match self {
            KvTree::Sled(tree) => Ok(tree.is_empty()),
            KvTree::Postgres(tree) => Ok(tree.scan_prefix(b"")?.is_empty()),
        }
    }

    /// Applies `batch` whole if its expectations hold; returns whether it applied.
    pub fn apply(&self, batch: KvBatch) -> anyhow::Result<bool> {
        match self {
            KvTree::Sled(tree) => apply_sled(tree, &batch),
            KvTree::Postgres(tree) => tree.apply(batch),
        }
    }

    /// Makes the tree's writes durable (sled; PostgreSQL's are when they return).
    pub fn flush(&self) -> anyhow::Result<()> {
        match self {
            KvTree::Sled(tree) => tree.flush().map(drop).map_err(Into::into),
            KvTree::Postgres(_) => Ok(()),
        }
    }
}

fn apply_sled(tree: &sled::Tree, batch: &KvBatch) -> anyhow::Result<bool> {
    use sled::transaction::{ConflictableTransactionError, TransactionError};
    let outcome = tree.transaction(|tx| {
        for (key, value) in &batch.expect {
            if tx.get(key)?.as_deref() != value.as_deref() {
                return Err(ConflictableTransactionError::Abort(()));
            }
        }
        for (key, value) in &batch.changes {
            match value {
                Some(value) => tx.insert(key.as_slice(), value.as_slice())?,
                None => tx.remove(key.as_slice())?,
            };
        }
        Ok(())
    });
    match outcome {
        Ok(()) => Ok(true),
        Err(TransactionError::Abort(())) => Ok(false),
        Err(TransactionError::Storage(e)) => Err(e.into()),
    }
}
