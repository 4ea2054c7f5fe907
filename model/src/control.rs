//! Flow control, ready to run: what a `branch`, `loop`, `stop` or `call` step does, and the
//! limits that bound a run's flow control.

use std::time::Duration;

use crate::condition::Condition;
use crate::spec::OnItemError;
use crate::template::Template;
use crate::workspace::Step;

/// What kind of step a step is.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// A plugin runs it (`plugin = "…"`).
    Plugin,
    /// The first branch whose condition holds runs.
    Branch(Vec<Branch>),
    /// The steps run once per iteration.
    Loop(Box<Loop>),
    /// The run ends here.
    Stop(Stop),
    /// Another flow of the integration runs; its result is the step's.
    Call {
        /// The flow's name.
        flow: String,
    },
}

impl StepKind {
    /// The name a step of this kind is recorded under when it has no plugin.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Plugin => "plugin",
            StepKind::Branch(_) => "branch",
            StepKind::Loop(_) => "loop",
            StepKind::Stop(_) => "stop",
            StepKind::Call { .. } => "call",
        }
    }
}

/// One branch of a `branch` step.
#[derive(Debug, Clone)]
pub struct Branch {
    /// Its name.
    pub name: String,
    /// When it runs; `None` for the else branch.
    pub when: Option<Condition>,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// What a loop iterates over.
#[derive(Debug, Clone)]
pub enum LoopOver {
    /// The items of an array.
    Items(Template),
    /// `0..count`.
    Count(u64),
    /// While a condition holds.
    While(Condition),
}

/// A `loop` step.
#[derive(Debug, Clone)]
pub struct Loop {
    /// What it iterates over.
    pub over: LoopOver,
    /// The most iterations (the loop's own `max_iterations`, or the integration's limit).
    pub max_iterations: u64,
    /// Iterations at once.
    pub concurrency: u32,
    /// What a failed iteration does.
    pub on_item_error: OnItemError,
    /// Checked after each iteration; true ends the loop.
    pub break_if: Option<Condition>,
    /// The name inner loops reach this loop's item by.
    pub alias: Option<String>,
    /// The steps of each iteration.
    pub steps: Vec<Step>,
}

/// A `stop` step.
#[derive(Debug, Clone)]
pub struct Stop {
    /// Whether the run fails.
    pub failed: bool,
    /// The run's result.
    pub result: Option<Template>,
    /// The run's error when it fails.
    pub message: Option<Template>,
}

/// The limits of a run's flow control, with where each was set (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowLimits {
    /// The most iterations of one loop.
    pub iterations: u64,
    /// The most step executions in one run.
    pub step_executions: u64,
    /// How deeply loops and branches nest.
    pub depth: u32,
    /// How deeply `call` steps call flows.
    pub call_depth: u32,
    /// The longest a run may take.
    pub run_time: Option<Duration>,
    /// Where the limits were set: `the engine's default`, or the integration file's `[limits]`.
    pub set_in: String,
}

impl Default for FlowLimits {
    fn default() -> Self {
        Self {
            iterations: Self::ITERATIONS,
            step_executions: Self::STEP_EXECUTIONS,
            depth: Self::DEPTH,
            call_depth: Self::CALL_DEPTH,
            run_time: None,
            set_in: "the engine's default".into(),
        }
    }
}

impl FlowLimits {
    /// Default most iterations of one loop.
    pub const ITERATIONS: u64 = 10_000;
    /// Default most step executions in one run.
    pub const STEP_EXECUTIONS: u64 = 100_000;
    /// Default nesting depth of loops and branches.
    pub const DEPTH: u32 = 8;
    /// Default call depth.
    pub const CALL_DEPTH: u32 = 8;

    /// Where limit `name` comes from and how to raise it, for messages.
    pub fn source(&self, name: &str) -> String {
        format!(
            "{}; raise it with `{name}` in the integration file's `[limits]`",
            self.set_in
        )
    }
}
