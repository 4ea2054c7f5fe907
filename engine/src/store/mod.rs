//! Run records and the storage they live in.
//!
//! [`RunStore`] is the storage boundary: the embedded default is [`SledStore`], a directory on
//! disk (`.weft/` beside the workspace file unless told otherwise). Runs are written as they
//! proceed: the run when it starts, each step as it finishes, the run again when it ends.

mod sled_store;

use serde::{Deserialize, Serialize};

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
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
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
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

/// Where run records are kept.
pub trait RunStore: Send + Sync {
    /// Writes (or overwrites) the run's own record.
    fn put_run(&self, run: &RunRecord) -> anyhow::Result<()>;
    /// Writes a step of run `run_id`.
    fn put_step(&self, run_id: &str, step: &StepRecord) -> anyhow::Result<()>;
    /// The run `id` with its steps, if it exists.
    fn get_run(&self, id: &str) -> anyhow::Result<Option<RunWithSteps>>;
    /// Runs matching `filter`, newest first.
    fn list_runs(&self, filter: &RunFilter) -> anyhow::Result<Vec<RunRecord>>;
    /// Makes everything written so far durable.
    fn flush(&self) -> anyhow::Result<()>;
}
