//! What a run leaves behind: the run record, its steps' records and their logs.
//!
//! These are the types every store backend keeps and every reader (CLI, API) shows.

use serde::{Deserialize, Serialize};

use crate::config::ResolvedConfig;
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
    /// A step whose `if` was false: it did not run and its result is `null`.
    Skipped,
}

impl Status {
    /// Every status, as written in files and on the command line.
    pub const ALL: [Status; 6] = [
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::SucceededWithErrors,
        Status::Interrupted,
        Status::Skipped,
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
            Status::Skipped => "skipped",
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
    /// The `stop` step that ended the run, when one did; its result is the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    /// How long the run waited in the shared queue before a worker took it, in microseconds
    /// (runs queued by a front end for the workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_us: Option<u64>,
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

/// Where a step inside flow control ran: the control step around it and, for a loop, the
/// iteration, for a branch, the branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    /// The loop, branch or call step.
    pub step: String,
    /// The iteration of a loop, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u64>,
    /// The branch that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// Where a scope is, as text: its frames joined by `/`, each `step`, `step[iteration]` or
/// `step:branch` (`pages[1]/contacts[17]/upsert:create`); empty for the flow's own steps.
pub fn scope_path(scope: &[Frame]) -> String {
    let mut out = String::new();
    for (n, frame) in scope.iter().enumerate() {
        if n > 0 {
            out.push('/');
        }
        out.push_str(&frame.step);
        if let Some(i) = frame.iteration {
            out.push_str(&format!("[{i}]"));
        }
        if let Some(b) = &frame.branch {
            out.push(':');
            out.push_str(b);
        }
    }
    out
}

/// The key of a step execution in its run: [`scope_path`] and the step's id, like
/// `contacts[17]/upsert:create/create`. Two executions of a run never share one.
pub fn step_path(scope: &[Frame], id: &str) -> String {
    if scope.is_empty() {
        return id.to_string();
    }
    format!("{}/{id}", scope_path(scope))
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The record's number in the run, from 0, in the order records were written; in a flow
    /// without flow control, the step's position.
    pub index: u32,
    /// The flow control around the step (empty for a step of the flow itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<Frame>,
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
    /// What a flow-control step did: the branch taken (`{"branch": …}`), a loop's iteration
    /// count and failed iterations (`{"iterations": …, "errors": […]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl StepRecord {
    /// The key of this execution in its run ([`step_path`]).
    pub fn path(&self) -> String {
        step_path(&self.scope, &self.id)
    }
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

/// The severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected but handled.
    Warn,
    /// A failure.
    Error,
}

/// One message in a step's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Its severity.
    pub level: LogLevel,
    /// The text (cut to the host's per-line cap).
    pub message: String,
}

/// The current time as records keep it: milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
