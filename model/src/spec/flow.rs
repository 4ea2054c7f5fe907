//! The shapes of a flow and its steps in an integration file: plugin and code steps, flow control
//! (branches, loops, stops, calls), retries, limits, and how a flow's webhook answers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::code::{CodeLanguage, JsEngine};
use crate::manifest::Capabilities;

/// A flow: a trigger and the steps that run, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// The flow's name, unique in the integration.
    pub name: String,
    /// What the flow does, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// What starts the flow under `weft serve`: `{ schedule = "CRON", timezone = "Area/City",
    /// overlap = false }` for a schedule; anything else (or nothing) means webhooks and API
    /// calls only. Runs from the CLI are manual whatever this says.
    #[serde(default)]
    pub trigger: Option<Json>,
    /// How many runs of this flow, per instance, `weft serve` lets go at once.
    #[serde(default)]
    pub concurrency: Option<ConcurrencySpec>,
    /// How `weft serve` answers the flow's webhook.
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
    /// The steps, run in order.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
}

/// How many runs of a flow, per instance, may go at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySpec {
    /// `parallel` (no limit, the default), `throttled` (at most `limit` at once) or `fifo`
    /// (one at a time, in arrival order).
    #[serde(default)]
    pub mode: ConcurrencyMode,
    /// The most runs at once for `throttled`.
    #[serde(default)]
    pub limit: Option<u32>,
    /// The most runs waiting for their turn; one more is refused (HTTP 429). Default 1000.
    #[serde(default)]
    pub queue: Option<u32>,
}

/// See [`ConcurrencySpec::mode`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConcurrencyMode {
    /// No limit.
    #[default]
    Parallel,
    /// At most `limit` at once.
    Throttled,
    /// One at a time, first come first served.
    Fifo,
}

/// How a flow's webhook answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Answer when the run ends instead of at once with 202 (a caller may also ask with
    /// `?wait=true`).
    #[serde(default)]
    pub sync: bool,
    /// The step whose result is the response: `{ status, headers, body }`, or any other value
    /// as a JSON body with status 200. Default: the last step.
    #[serde(default)]
    pub response_step: Option<String>,
}

/// A step of a flow: a plugin step (`plugin`), a code step (`code` or `code_file`) or a
/// flow-control step (`type`), one of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The step's id, unique in the flow; later steps reach its result as `steps.<id>.results`.
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The plugin that runs the step: a name from the workspace's `[plugins]` or a built-in one.
    #[serde(default)]
    pub plugin: Option<String>,
    /// A flow-control step instead of a plugin: `branch`, `loop`, `stop` or `call`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Code the step runs instead of a plugin, written here (`code = """…"""`): JavaScript
    /// (an ES module or CommonJS, exporting `run(context, inputs)` or Prismatic's
    /// `async ({ configVars }, params) => ({ data })`) or Python (`def run(context, inputs)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The file the step's code is in, relative to the integration file (instead of `code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_file: Option<String>,
    /// The code's language: `javascript` or `python` (for `code_file`, its extension says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<CodeLanguage>,
    /// For JavaScript: the engine, `quickjs` (the default) or `spidermonkey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<JsEngine>,
    /// What a code step asks to reach, as a plugin manifest's `[capabilities]`: `http` (host
    /// patterns), `s3` (buckets), `state`. The workspace's `[code]` policy must grant them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// A condition (CEL); when it is false the step is skipped: recorded `skipped`, result
    /// `null`.
    #[serde(rename = "if", default)]
    pub condition: Option<String>,
    /// The step's inputs; strings may hold `{{ … }}` references. For a `call` step, what the
    /// called flow sees as `trigger`.
    #[serde(default)]
    pub inputs: Map<String, Json>,
    /// The name of the credential the host applies to this step's requests; an instance may
    /// bind another with `credentials = { <step id> = "<name>" }`.
    #[serde(default)]
    pub credential: Option<String>,
    /// Shorthand for `limits.time`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Per-step limits, overriding the engine's defaults.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Run the step again when it fails with an error it marks retryable.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// What a failure of this step does to the run.
    #[serde(default)]
    pub on_error: OnError,
    /// `branch`: the branches, tried in order; the first whose `when` is true runs.
    #[serde(default)]
    pub branches: Vec<BranchSpec>,
    /// `loop`: iterate over this array (a `{{ … }}` reference).
    #[serde(default)]
    pub items: Option<Json>,
    /// `loop`: iterate this many times.
    #[serde(default)]
    pub count: Option<u64>,
    /// `loop`: iterate while this condition holds (checked before each iteration; needs
    /// `max_iterations`).
    #[serde(rename = "while", default)]
    pub while_condition: Option<String>,
    /// `loop`: the most iterations; more fails the run.
    #[serde(default)]
    pub max_iterations: Option<u64>,
    /// `loop`: how many iterations run at once (default 1: one after another).
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// `loop`: what a failed iteration does.
    #[serde(default)]
    pub on_item_error: Option<OnItemError>,
    /// `loop`: a condition checked after each iteration; true ends the loop.
    #[serde(default)]
    pub break_if: Option<String>,
    /// `loop`: a name for the item that loops inside this one can use.
    #[serde(rename = "as", default)]
    pub alias: Option<String>,
    /// `loop`: the steps of each iteration.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
    /// `stop`: how the run ends (default `succeeded`).
    #[serde(default)]
    pub status: Option<StopStatus>,
    /// `stop`: the run's result (may hold `{{ … }}`); for a sync webhook, `{ status, headers,
    /// body }` answers it.
    #[serde(default)]
    pub result: Option<Json>,
    /// `stop` with `status = "failed"`: the run's error.
    #[serde(default)]
    pub message: Option<String>,
    /// `call`: the flow of the same integration to run.
    #[serde(default)]
    pub flow: Option<String>,
}

impl StepSpec {
    /// This step and every step inside it (a loop's, a branch's), depth first.
    pub fn walk(&self) -> Vec<&StepSpec> {
        let mut out = vec![self];
        for inner in self
            .steps
            .iter()
            .chain(self.branches.iter().flat_map(|b| b.steps.iter()))
        {
            out.extend(inner.walk());
        }
        out
    }
}

impl FlowSpec {
    /// Every step of the flow, those inside loops and branches included, depth first.
    pub fn all_steps(&self) -> Vec<&StepSpec> {
        self.steps.iter().flat_map(StepSpec::walk).collect()
    }
}

/// One branch of a `branch` step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchSpec {
    /// The branch's name: `steps.<branch step>.branch` after it ran.
    pub name: String,
    /// A condition (CEL); a branch without one is the else branch and must come last.
    #[serde(default)]
    pub when: Option<String>,
    /// The branch's steps.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
}

/// What a failed iteration of a loop does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnItemError {
    /// The loop stops and fails (the default); iterations already running finish first.
    #[default]
    Fail,
    /// The loop goes on; the failures are listed in `steps.<loop>.errors` and the run ends
    /// `succeeded_with_errors`.
    Continue,
}

/// How a `stop` step ends its run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopStatus {
    /// The run succeeded.
    #[default]
    Succeeded,
    /// The run failed.
    Failed,
}

/// Flow-control limits: `[limits]` in an integration file (capped by `[limits]` in the
/// workspace file).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLimitsSpec {
    /// The most iterations of one loop (default 10,000).
    #[serde(default)]
    pub iterations: Option<u64>,
    /// The most step executions in one run, every iteration's counted (default 100,000).
    #[serde(default)]
    pub step_executions: Option<u64>,
    /// How deeply loops and branches may nest (default 8).
    #[serde(default)]
    pub depth: Option<u32>,
    /// How deeply `call` steps may call flows (default 8).
    #[serde(default)]
    pub call_depth: Option<u32>,
    /// The longest a run may take, like `"15m"` (default: no limit).
    #[serde(default)]
    pub run_time: Option<String>,
}

/// `retry = { attempts = 3, delay = "1s", backoff = 2.0, max_delay = "30s", jitter = true }`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included (default 3, at most 20).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// The wait before the second attempt (default `1s`).
    #[serde(default)]
    pub delay: Option<String>,
    /// What each wait is multiplied by for the next (default 2).
    #[serde(default)]
    pub backoff: Option<f64>,
    /// The longest wait (default `30s`).
    #[serde(default)]
    pub max_delay: Option<String>,
    /// Wait a random time between half the delay and the delay, so that many runs failing
    /// together do not retry together (default true).
    #[serde(default)]
    pub jitter: Option<bool>,
}

/// What a step's failure does to its run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The run stops and fails (the default).
    #[default]
    Fail,
    /// The run goes on with the next step; it ends `succeeded_with_errors`. Later steps that
    /// refer to this step's results fail, since it has none.
    Continue,
}

/// Limits written in a file: `time = "5s"`, `memory = "64 MiB"`, `output = "1 MiB"`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Wall-clock time for one execution of the step.
    #[serde(default)]
    pub time: Option<String>,
    /// Linear memory the step may grow to.
    #[serde(default)]
    pub memory: Option<String>,
    /// Size of the step's result.
    #[serde(default)]
    pub output: Option<String>,
}
