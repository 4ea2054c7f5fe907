//! Run records and the storage they live in.
//!
//! [`RunStore`] is the storage boundary: the embedded default is [`SledStore`], a directory on
//! disk (`.weft/` beside the workspace file unless told otherwise). A run that ends before
//! anything of it had to be written is written once, whole ([`RunStore::put_whole_run`]);
//! otherwise it is written as it proceeds: the run when it starts, each step as it finishes,
//! the run again when it ends (see [`crate::runner`] for when which happens).
//!
//! A step's record, the binary values it produced and the state it wrote are committed
//! together: after [`RunStore::commit_step`] returns (and, with [`Durability::Step`], after the
//! flush that follows it) the step is on disk whole or not at all.

mod flush;
mod sled_store;

use serde::{Deserialize, Serialize};

pub use flush::GroupFlush;
pub use sled_store::SledStore;

use crate::host::log::LogLine;
use crate::integration::ResolvedConfig;
use crate::value::RecordedValue;

/// How a run or step ended, or that it has not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Started and not finished.
    Running,
    /// Finished without error.
    Succeeded,
    /// Stopped by an error.
    Failed,
    /// Finished, but at least one step failed and had `on_error = "continue"`.
    SucceededWithErrors,
    /// Cut short by a crash or a kill; found when the store was next opened. It can be resumed
    /// from its last completed step or replayed.
    Interrupted,
}

impl Status {
    /// Every status, as written in files and on the command line.
    pub const ALL: [Status; 5] = [
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::SucceededWithErrors,
        Status::Interrupted,
    ];
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|s| s.to_string() == text)
            .ok_or_else(|| {
                format!(
                    "`{text}` is not a run status; statuses are {}",
                    Status::ALL
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::SucceededWithErrors => "succeeded_with_errors",
            Status::Interrupted => "interrupted",
        })
    }
}

/// One execution of one flow of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id: time-ordered, so ids sort by start time.
    pub id: String,
    /// The instance it ran for.
    pub instance: String,
    /// The instance's customer.
    pub customer: String,
    /// The integration and its version.
    pub integration: String,
    /// The integration's version.
    pub integration_version: u32,
    /// The flow.
    pub flow: String,
    /// How it ended.
    pub status: Status,
    /// Start time, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Wall time of the whole run, in microseconds, once it ended.
    pub duration_us: Option<u64>,
    /// The config vars the run saw, secret values redacted.
    pub config: ResolvedConfig,
    /// The last step's result, when the run succeeded.
    pub result: Option<RecordedValue>,
    /// Why the run failed, when it did.
    pub error: Option<String>,
    /// What the trigger passed in; a replay passes it again.
    #[serde(default)]
    pub trigger: serde_json::Value,
    /// The run this one replays, if it is a replay.
    #[serde(default)]
    pub replay_of: Option<String>,
    /// How many times the run was resumed after an interruption.
    #[serde(default)]
    pub resumed: u32,
}

/// One attempt at a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Start time, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Wall time, in microseconds.
    pub duration_us: u64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Position in the flow, from 0.
    pub index: u32,
    /// The step's id.
    pub id: String,
    /// The plugin that ran it.
    pub plugin: String,
    /// How it ended.
    pub status: Status,
    /// Start time, milliseconds since the Unix epoch.
    pub started_at_ms: u64,
    /// Wall time of the execution (instantiate and call), in microseconds.
    pub duration_us: u64,
    /// The rendered inputs, secrets redacted.
    pub inputs: Vec<(String, RecordedValue)>,
    /// The result, when the step succeeded.
    pub output: Option<RecordedValue>,
    /// What the step logged.
    pub logs: Vec<LogLine>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Every attempt, in order, when the step was retried (empty for a single attempt).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

/// A run together with its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunWithSteps {
    /// The run.
    #[serde(flatten)]
    pub run: RunRecord,
    /// Its steps, in order.
    pub steps: Vec<StepRecord>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs of this instance.
    pub instance: Option<String>,
    /// Only runs for this customer.
    pub customer: Option<String>,
    /// Only runs of this flow.
    pub flow: Option<String>,
    /// Only runs with this status.
    pub status: Option<Status>,
    /// Only runs started at or after this time (milliseconds since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Only runs started before this time (milliseconds since the Unix epoch).
    pub until_ms: Option<u64>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

impl RunFilter {
    /// Whether `run` passes the filter (the limit aside).
    pub fn matches(&self, run: &RunRecord) -> bool {
        self.instance.as_ref().is_none_or(|i| *i == run.instance)
            && self.customer.as_ref().is_none_or(|c| *c == run.customer)
            && self.flow.as_ref().is_none_or(|f| *f == run.flow)
            && self.status.is_none_or(|s| s == run.status)
            && self.since_ms.is_none_or(|t| run.started_at_ms >= t)
            && self.until_ms.is_none_or(|t| run.started_at_ms < t)
    }
}

/// When the store makes records durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Flush after every step and at the end of the run (the last step's record is flushed
    /// with the run's final record): an acknowledged step survives a crash of the process or
    /// the machine. Runs in progress at once share their flushes (group commit).
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
    /// Marks every run still `running` as `interrupted` and returns them. Only call this when
    /// no other process can be running them (the sled store is locked to one process).
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
