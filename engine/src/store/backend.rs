//! The store as the engine opens it: sled in a directory (one process) or PostgreSQL (any
//! number of processes), behind one type.

use std::path::{Path, PathBuf};

use super::kv::KvTree;
use super::postgres::PgStore;
use super::trees::Tree;
use super::{
    Pruned, RunFilter, RunRecord, RunStore, RunWithSteps, SledStore, StateScope, StateWrite,
    StepRecord,
};

/// Where the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A directory: the embedded sled store, for one process.
    Dir(PathBuf),
    /// A PostgreSQL database (`postgres://…`), shared by any number of processes; `local` is a
    /// directory of this machine for what is not shared (compiled plugins, downloads).
    Postgres {
        /// The connection URL.
        url: String,
        /// This machine's directory for caches.
        local: PathBuf,
    },
}

impl StoreLocation {
    /// `text` as given to `--store` / `WEFT_STORE`: a `postgres://` or `postgresql://` URL,
    /// or a directory. `local` is where a PostgreSQL store keeps this machine's caches.
    pub fn parse(text: &str, local: &Path) -> Self {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            StoreLocation::Postgres {
                url: text.to_string(),
                local: local.to_path_buf(),
            }
        } else {
            StoreLocation::Dir(PathBuf::from(text))
        }
    }

    /// How messages name it: the directory, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            StoreLocation::Dir(dir) => dir.display().to_string(),
            StoreLocation::Postgres { url, .. } => super::postgres::without_password(url),
        }
    }

    /// This machine's directory for the store: the sled store's own, or a PostgreSQL store's
    /// directory for caches.
    pub fn local_dir(&self) -> &Path {
        match self {
            StoreLocation::Dir(dir) => dir,
            StoreLocation::Postgres { local, .. } => local,
        }
    }

    /// Whether a store exists there already (a PostgreSQL database is assumed to).
    pub fn exists(&self) -> bool {
        match self {
            StoreLocation::Dir(dir) => dir.join("db").exists(),
            StoreLocation::Postgres { .. } => true,
        }
    }
}

/// The store, on either backend. Cloning it shares the open store.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    local: PathBuf,
}

#[derive(Debug, Clone)]
enum Backend {
    Sled(SledStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens the store at `location` (a PostgreSQL database's schema is brought up to date).
    pub fn open(location: &StoreLocation) -> anyhow::Result<Self> {
        Ok(match location {
            StoreLocation::Dir(dir) => Self::from(SledStore::open(dir)?),
            StoreLocation::Postgres { url, local } => Self {
                backend: Backend::Postgres(PgStore::connect(url)?),
                local: local.clone(),
            },
        })
    }

    /// This machine's directory for what is not shared: the sled store's own directory, or
    /// the local directory given with a PostgreSQL store.
    pub fn local_dir(&self) -> &Path {
        &self.local
    }

    /// How messages name the store.
    pub fn shown(&self) -> String {
        match &self.backend {
            Backend::Sled(store) => store.path().display().to_string(),
            Backend::Postgres(store) => store.shown().to_string(),
        }
    }

    /// Whether other processes may share the store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The queue of runs shared by the processes, on a PostgreSQL store.
    pub fn queue(&self) -> Option<&PgStore> {
        match &self.backend {
            Backend::Sled(_) => None,
            Backend::Postgres(store) => Some(store),
        }
    }

    /// One of the store's key-value trees.
    pub(super) fn kv(&self, tree: Tree) -> anyhow::Result<KvTree> {
        Ok(match &self.backend {
            Backend::Sled(store) => KvTree::Sled(store.tree(tree)?),
            Backend::Postgres(store) => KvTree::Postgres(store.tree(tree.name())),
        })
    }

    fn runs(&self) -> &dyn RunStore {
        match &self.backend {
            Backend::Sled(store) => store,
            Backend::Postgres(store) => store,
        }
    }
}

impl From<SledStore> for Store {
    fn from(store: SledStore) -> Self {
        Self {
            local: store.path().to_path_buf(),
            backend: Backend::Sled(store),
        }
    }
}

impl RunStore for Store {
    fn put_run(&self, run: &RunRecord) -> anyhow::Result<()> {
        self.runs().put_run(run)
    }
    fn put_step(&self, run_id: &str, step: &StepRecord) -> anyhow::Result<()> {
        self.runs().put_step(run_id, step)
    }
    fn commit_step(
        &self,
        run_id: &str,
        step: &StepRecord,
        blobs: &[(String, Vec<u8>)],
        state: &[StateWrite],
    ) -> anyhow::Result<()> {
        self.runs().commit_step(run_id, step, blobs, state)
    }
    fn put_whole_run(&self, run: &RunRecord, steps: &[StepRecord]) -> anyhow::Result<()> {
        self.runs().put_whole_run(run, steps)
    }
    fn put_blobs(&self, blobs: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        self.runs().put_blobs(blobs)
    }
    fn get_blob(&self, sha256: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.runs().get_blob(sha256)
    }
    fn state_get(&self, scope: &StateScope, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.runs().state_get(scope, key)
    }
    fn state_sizes(&self, scope: &StateScope) -> anyhow::Result<Vec<(String, u64)>> {
        self.runs().state_sizes(scope)
    }
    fn mark_interrupted(&self) -> anyhow::Result<Vec<RunRecord>> {
        self.runs().mark_interrupted()
    }
    fn prune(&self, before_ms: Option<u64>, keep: Option<usize>) -> anyhow::Result<Pruned> {
        self.runs().prune(before_ms, keep)
    }
    fn get_run(&self, id: &str) -> anyhow::Result<Option<RunWithSteps>> {
        self.runs().get_run(id)
    }
    fn list_runs(&self, filter: &RunFilter) -> anyhow::Result<Vec<RunRecord>> {
        self.runs().list_runs(filter)
    }
    fn flush(&self) -> anyhow::Result<()> {
        self.runs().flush()
    }
}
