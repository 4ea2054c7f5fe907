//! The store: run records, and everything else the engine keeps on disk.
//!
//! [`RunStore`] is the storage boundary, on two backends: the embedded default is
//! [`SledStore`], a directory on disk (`.weft/` beside the workspace file unless told
//! otherwise) for one process; [`PgStore`] is a PostgreSQL database that any number of
//! processes share. [`Store`] is either, as the engine opens it ([`StoreLocation`]). A run that ends before
//! anything of it had to be written is written once, whole ([`RunStore::put_whole_run`]);
//! otherwise it is written as it proceeds: the run when it starts, each step as it finishes,
//! the run again when it ends (see [`crate::runner`] for when which happens).
//!
//! A step's record, the binary values it produced and the state it wrote are committed
//! together: after [`RunStore::commit_step`] returns (and, with [`Durability::Step`], after the
//! flush that follows it) the step is on disk whole or not at all.
//!
//! Beside the runs, the store keeps the managed state ([`registry`]), sealed credentials
//! ([`vault`]), schedule ticks ([`ScheduleTicks`]), webhook tokens ([`WebhookTokens`]) and the
//! compile cache's sealing key, each behind its own typed accessor on [`Store`], kept in
//! key-value trees ([`kv`]) on either backend.

mod backend;
mod flush;
mod keys;
pub mod kv;
mod oauth_states;
pub mod postgres;
pub mod registry;
mod schedule_ticks;
mod sled_store;
mod trees;
pub mod vault;
mod webhook_tokens;

pub use backend::{Store, StoreLocation};
pub use flush::GroupFlush;
pub use oauth_states::{OauthStates, PendingAuthorization};
pub use postgres::PgStore;
pub use schedule_ticks::ScheduleTicks;
pub use sled_store::SledStore;
pub use webhook_tokens::{HookTarget, WebhookTokens};

pub use weft_model::records::{Attempt, RunFilter, RunRecord, RunWithSteps, Status, StepRecord};

/// The SHA-256 of every binary value `step` refers to (its output and inputs).
fn blob_refs(step: &StepRecord) -> impl Iterator<Item = &str> {
    step.output
        .iter()
        .chain(step.inputs.iter().map(|(_, v)| v))
        .filter_map(|v| match v {
            weft_model::value::RecordedValue::Bytes(b) => Some(b.sha256.as_str()),
            weft_model::value::RecordedValue::Json(_) => None,
        })
}

/// When the store makes records durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Flush after every step that may have changed something outside Weft (an HTTP request
    /// other than GET/HEAD/OPTIONS/TRACE, an object written, state written, a failure) and at
    /// the end of the run (the last step's record is flushed with the run's final record): an
    /// acknowledged step survives a crash of the process or the machine, and a step that
    /// changed something is acknowledged before the run goes on. A step that only read is
    /// acknowledged with the next flush, so a crash may run it again. Runs in progress at once
    /// share their flushes (group commit).
    #[default]
    Step,
    /// Flush at the end of every run: a crash loses at most the steps of runs in progress,
    /// which are then found `interrupted` (those that had gone on for 0.1 s or more, and so had
    /// their start records written) and can be replayed.
    Run,
    /// Leave it to the store's background flush (sled: every 500 ms): a crash of the process
    /// or the machine may lose the last half second (sled keeps unflushed writes in memory).
    Background,
}

/// Where a piece of persisted step state lives: an instance's flow, or the whole instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateScope(pub String);

/// One change to step state, applied when the step that made it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    /// The scope.
    pub scope: StateScope,
    /// The key.
    pub key: String,
    /// The new value, or `None` to delete the key.
    pub value: Option<Vec<u8>>,
}

/// What pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Runs removed, with their steps.
    pub runs: usize,
    /// Stored binary values no run refers to any more.
    pub blobs: usize,
}

/// Where run records are kept.
pub trait RunStore: Send + Sync {
    /// Writes (or overwrites) the run's own record.
    fn put_run(&self, run: &RunRecord) -> anyhow::Result<()>;
    /// Writes a step of run `run_id`.
    fn put_step(&self, run_id: &str, step: &StepRecord) -> anyhow::Result<()> {
        self.commit_step(run_id, step, &[], &[])
    }
    /// Writes a step of run `run_id` together with the binary values it produced (stored once
    /// per content, by SHA-256) and the state it wrote: all of it or none.
    fn commit_step(
        &self,
        run_id: &str,
        step: &StepRecord,
        blobs: &[(String, Vec<u8>)],
        state: &[StateWrite],
    ) -> anyhow::Result<()>;
    /// Writes a run that ended together with all its steps, as one record. None of its steps
    /// may have been written with [`RunStore::commit_step`], and none of them wrote state; the
    /// binary values they produced are written with [`RunStore::put_blobs`] first. It replaces
    /// the run's earlier record, if there is one.
    fn put_whole_run(&self, run: &RunRecord, steps: &[StepRecord]) -> anyhow::Result<()> {
        for step in steps {
            self.put_step(&run.id, step)?;
        }
        self.put_run(run)
    }
    /// Writes binary values steps produced (stored once per content, by SHA-256), ahead of the
    /// records that refer to them.
    fn put_blobs(&self, _blobs: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        Ok(())
    }
    /// A stored binary value by its SHA-256 (lower-case hex).
    fn get_blob(&self, _sha256: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// The value of `key` in `scope`.
    fn state_get(&self, _scope: &StateScope, _key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Every key of `scope` with the size of its value.
    fn state_sizes(&self, _scope: &StateScope) -> anyhow::Result<Vec<(String, u64)>> {
        Ok(Vec::new())
    }
    /// Marks the runs still `running` that nobody is running any more as `interrupted`, and
    /// returns them: this process's own (call it when the process is done with its runs: at
    /// start, or after a shutdown's grace period) and, on a store that processes share, those
    /// of processes that stopped (the sled store is locked to one process).
    fn mark_interrupted(&self) -> anyhow::Result<Vec<RunRecord>> {
        Ok(Vec::new())
    }
    /// Removes finished runs started before `before_ms`, and past the newest `keep` runs, then
    /// the binary values no remaining run refers to. Running runs are kept.
    fn prune(&self, _before_ms: Option<u64>, _keep: Option<usize>) -> anyhow::Result<Pruned> {
        Ok(Pruned::default())
    }
    /// The run `id` with its steps, if it exists.
    fn get_run(&self, id: &str) -> anyhow::Result<Option<RunWithSteps>>;
    /// Runs matching `filter`, newest first.
    fn list_runs(&self, filter: &RunFilter) -> anyhow::Result<Vec<RunRecord>>;
    /// Makes everything written so far durable.
    fn flush(&self) -> anyhow::Result<()>;
}

/// A store that keeps nothing: for measuring the engine without its records, and for runs
/// whose records nobody will read.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardStore;

impl RunStore for DiscardStore {
    fn put_run(&self, _: &RunRecord) -> anyhow::Result<()> {
        Ok(())
    }
    fn commit_step(
        &self,
        _: &str,
        _: &StepRecord,
        _: &[(String, Vec<u8>)],
        _: &[StateWrite],
    ) -> anyhow::Result<()> {
        Ok(())
    }
    fn get_run(&self, _: &str) -> anyhow::Result<Option<RunWithSteps>> {
        Ok(None)
    }
    fn list_runs(&self, _: &RunFilter) -> anyhow::Result<Vec<RunRecord>> {
        Ok(Vec::new())
    }
    fn flush(&self) -> anyhow::Result<()> {
        Ok(())
    }
}
