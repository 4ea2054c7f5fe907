//! How runs look on the terminal.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use weft::store::{RunRecord, RunWithSteps, Status, StepRecord, StoreLocation};
use weft_model::limits::Human;
use weft_model::records::Frame;
use weft_model::value::RecordedValue;
use weft_model::workspace::Workspace;

pub fn announce(ws: &Workspace, instance: &str, flow: Option<&str>) {
    let Some(spec) = ws.instance(instance) else {
        return;
    };
    let Some(integration) = ws.integrations.get(&spec.integration) else {
        return;
    };
    let flow = match flow {
        Some(name) => integration.flows.iter().find(|f| f.name == name),
        None => integration.flows.first(),
    };
    // An unknown flow is reported by the run itself; announce only what will run.
    if let Some(flow) = flow {
        println!(
            "Running flow `{}` of `{}` for customer `{}` (instance `{instance}`)",
            flow.name, spec.integration, spec.customer
        );
    }
}

fn micros(us: u64) -> String {
    Human(Duration::from_micros(us)).to_string()
}

pub fn run_summary(run: &RunWithSteps, store: &StoreLocation, workspace: Option<&Path>) {
    steps_table(run);
    let r = &run.run;
    let took = r.duration_us.map(micros).unwrap_or_default();
    match r.status {
        Status::Succeeded => {
            if let Some(result) = &r.result {
                println!("\nResult:\n{}", pretty(result));
            }
            println!("\nRun {} succeeded in {took}.", r.id);
        }
        _ => {
            println!("\nRun {} {} in {took}.", r.id, r.status);
            if let Some(error) = &r.error {
                eprintln!("error: {error}");
            }
        }
    }
    let hint = match (workspace, store) {
        (Some(ws), StoreLocation::Dir(dir)) if *dir == super::local_dir(Some(ws)) => {
            format!("--workspace {}", ws.display())
        }
        _ => format!("--store {}", store.shown()),
    };
    println!("Details: weft runs show {} {hint}", r.id);
}

pub fn steps_table(run: &RunWithSteps) {
    if run.steps.is_empty() {
        return;
    }
    let w_id = run
        .steps
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let w_plugin = run
        .steps
        .iter()
        .map(|s| s.plugin.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "\n{:<w_id$}  {:<w_plugin$}  {:<9}  {:>9}",
        "STEP", "PLUGIN", "STATUS", "DURATION"
    );
    for step in &run.steps {
        println!(
            "{:<w_id$}  {:<w_plugin$}  {:<9}  {:>9}",
            step.id,
            step.plugin,
            step.status.to_string(),
            micros(step.duration_us)
        );
    }
}

fn pretty(value: &RecordedValue) -> String {
    match value {
        RecordedValue::Json(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        other => other.short(200),
    }
}

pub fn runs_table(runs: &[RunRecord]) {
    if runs.is_empty() {
        println!("No runs recorded.");
        return;
    }
    let w_inst = runs
        .iter()
        .map(|r| r.instance.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let w_flow = runs.iter().map(|r| r.flow.len()).max().unwrap_or(4).max(4);
    let w_status = runs
        .iter()
        .map(|r| r.status.to_string().len())
        .max()
        .unwrap_or(9)
        .max(9);
    println!(
        "{:<36}  {:<20}  {:<w_inst$}  {:<w_flow$}  {:<w_status$}  {:>9}",
        "RUN", "STARTED (UTC)", "INSTANCE", "FLOW", "STATUS", "DURATION"
    );
    for r in runs {
        println!(
            "{:<36}  {:<20}  {:<w_inst$}  {:<w_flow$}  {:<w_status$}  {:>9}",
            r.id,
            utc(r.started_at_ms),
            r.instance,
            r.flow,
            r.status.to_string(),
            r.duration_us.map(micros).unwrap_or_else(|| "-".into())
        );
    }
}

/// Prints a run and its steps as a tree: the steps inside a branch or a called flow under
/// it, a loop as one line with its counts and, under it, its failed iterations (and
/// iteration `open`, when asked for).
pub fn run_details(run: &RunWithSteps, open: Option<u64>) {
    let r = &run.run;
    println!("Run          {}", r.id);
    println!("Status       {}", r.status);
    println!("Instance     {} (customer {})", r.instance, r.customer);
    println!(
        "Integration  {} v{}, flow {}",
        r.integration, r.integration_version, r.flow
    );
    println!("Started      {} UTC", utc(r.started_at_ms));
    if let Some(of) = &r.replay_of {
        println!("Replay of    {of}");
    }
    if r.resumed > 0 {
        println!("Resumed      {} time(s) after an interruption", r.resumed);
    }
    if !r.trigger.is_null() {
        println!("Trigger      {}", r.trigger);
    }
    if let Some(us) = r.duration_us {
        println!("Duration     {}", micros(us));
    }
    if !r.config.0.is_empty() {
        println!("Config");
        for (name, var) in &r.config.0 {
            println!("  {name} = {} ({})", var.value, var.level);
        }
    }
    if let Some(stop) = &r.stopped_by {
        println!("Stopped by   step `{stop}`");
    }
    if let Some(error) = &r.error {
        println!("Error        {error}");
    }
    let tree = Tree::new(&run.steps);
    tree.print(&[], 0, open);
}

/// A run's step records by the scope they ran in.
struct Tree<'r> {
    by_scope: BTreeMap<Vec<String>, Vec<&'r StepRecord>>,
}

/// A scope as a sortable key: each frame as `step`, `step[iteration]` or `step:branch`
/// (iterations zero-padded so that they sort in order).
fn scope_key(scope: &[Frame]) -> Vec<String> {
    scope
        .iter()
        .map(|f| match (&f.iteration, &f.branch) {
            (Some(i), _) => format!("{}[{i:020}]", f.step),
            (None, Some(b)) => format!("{}:{b}", f.step),
            (None, None) => f.step.clone(),
        })
        .collect()
}

impl<'r> Tree<'r> {
    fn new(steps: &'r [StepRecord]) -> Self {
        let mut by_scope: BTreeMap<Vec<String>, Vec<&StepRecord>> = BTreeMap::new();
        for step in steps {
            by_scope
                .entry(scope_key(&step.scope))
                .or_default()
                .push(step);
        }
        for records in by_scope.values_mut() {
            records.sort_by_key(|s| s.index);
        }
        Self { by_scope }
    }

    /// The scopes directly inside step `id` of scope `at`.
    fn inner(&self, at: &[String], id: &str) -> Vec<(&Vec<String>, &Vec<&'r StepRecord>)> {
        self.by_scope
            .iter()
            .filter(|(key, _)| {
                key.len() == at.len() + 1
                    && key[..at.len()] == *at
                    && key[at.len()]
                        .strip_prefix(id)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['[', ':']))
            })
            .collect()
    }

    fn print(&self, at: &[String], depth: usize, open: Option<u64>) {
        let Some(records) = self.by_scope.get(at) else {
            return;
        };
        let pad = "  ".repeat(depth);
        for (position, step) in records.iter().enumerate() {
            print_step(step, position, &pad);
            let inner = self.inner(at, &step.id);
            if step.plugin == "loop" {
                let failed: Vec<u64> = step
                    .detail
                    .as_ref()
                    .and_then(|d| d["errors"].as_array())
                    .map(|errors| errors.iter().filter_map(|e| e["index"].as_u64()).collect())
                    .unwrap_or_default();
                let iterations = step
                    .detail
                    .as_ref()
                    .and_then(|d| d["iterations"].as_u64())
                    .unwrap_or(inner.len() as u64);
                println!(
                    "{pad}  {iterations} iteration(s), {} failed{}",
                    failed.len(),
                    if failed.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({})",
                            failed
                                .iter()
                                .map(u64::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                );
                for (key, records) in inner {
                    let Some(index) = records
                        .first()
                        .and_then(|r| r.scope.last())
                        .and_then(|f| f.iteration)
                    else {
                        continue;
                    };
                    let failed_here = records.iter().any(|r| r.status == Status::Failed);
                    if failed_here || open == Some(index) {
                        println!("{pad}  Iteration {index}");
                        self.print(key, depth + 2, open);
                    }
                }
            } else {
                for (key, _) in inner {
                    self.print(key, depth + 1, open);
                }
            }
        }
    }
}

/// Prints one step's record; `position` is its place among the steps of its scope that ran.
fn print_step(step: &StepRecord, position: usize, pad: &str) {
    let branch = step
        .detail
        .as_ref()
        .and_then(|d| d["branch"].as_str())
        .map(|b| format!(", branch `{b}`"))
        .unwrap_or_default();
    let kind = if ["branch", "loop", "stop", "call"].contains(&step.plugin.as_str()) {
        step.plugin.clone()
    } else {
        format!("plugin {}", step.plugin)
    };
    println!(
        "\n{pad}Step {} `{}` ({kind}): {} in {}{branch}",
        position + 1,
        step.id,
        step.status,
        micros(step.duration_us)
    );
    if !step.inputs.is_empty() {
        println!("{pad}  Inputs");
        for (name, value) in &step.inputs {
            println!("{pad}    {name} = {}", value.short(400));
        }
    }
    if let Some(output) = &step.output {
        println!("{pad}  Output     {}", output.short(1000));
    }
    if !step.logs.is_empty() {
        println!("{pad}  Logs");
        for line in &step.logs {
            println!("{pad}    [{:?}] {}", line.level, line.message);
        }
    }
    if let Some(error) = &step.error {
        println!("{pad}  Error      {error}");
    }
    if !step.attempts.is_empty() {
        println!("{pad}  Attempts");
        for (n, attempt) in step.attempts.iter().enumerate() {
            println!(
                "{pad}    {} at {} UTC, {}: {}",
                n + 1,
                utc(attempt.started_at_ms),
                micros(attempt.duration_us),
                attempt.error.as_deref().unwrap_or("succeeded")
            );
        }
    }
}

/// `2026-11-21 05:03:07` from milliseconds since the Unix epoch.
fn utc(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| format!("{ms} ms after the Unix epoch"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_795_237_387_000), "2026-11-21 05:03:07");
    }
}
