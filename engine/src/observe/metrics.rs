//! Weft's metrics: every name, label and bucket in one place, and one small function per thing
//! counted, so that the runner and the server never spell a metric name themselves.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `weft_runs_started_total` | counter | `flow`, `instance` |
//! | `weft_runs_resumed_total` | counter | `flow`, `instance` |
//! | `weft_runs_finished_total` | counter | `flow`, `instance`, `status` |
//! | `weft_step_duration_seconds` | histogram | `plugin` |
//! | `weft_webhook_duration_seconds` | histogram | `flow`, `wait` |
//! | `weft_queue_depth` | gauge | `flow`, `instance` |
//! | `weft_queue_oldest_wait_seconds` | gauge | `flow`, `instance` |
//! | `weft_shared_queue_waiting` | gauge | |
//! | `weft_shared_queue_running` | gauge | |
//! | `weft_shared_queue_oldest_wait_seconds` | gauge | |
//! | `weft_queue_wait_seconds` | histogram | `flow`, `instance` |
//! | `weft_runs_reclaimed_total` | counter | `flow`, `instance` |
//! | `weft_runs_abandoned_total` | counter | |
//! | `weft_store_flush_seconds` | histogram | |
//!
//! Recorded through the [`metrics`] facade: until [`install`] runs, every call here
//! is a no-op, so library users and tests that never install a recorder pay nothing. Runs are
//! counted where the runner starts and ends them, so the counters agree with the run records:
//! `started + resumed - finished` is the number of runs going (a run waiting in a flow's queue
//! is started when its turn comes; until then it is in the queue's depth).

use std::sync::OnceLock;
use std::time::Duration;

use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use weft_model::records::Status;

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Runs started (new runs and replays), by flow and instance.
pub const RUNS_STARTED: &str = "weft_runs_started_total";
/// Interrupted runs continued from their last completed step, by flow and instance.
pub const RUNS_RESUMED: &str = "weft_runs_resumed_total";
/// Runs ended, by flow, instance and the status their record has.
pub const RUNS_FINISHED: &str = "weft_runs_finished_total";
/// How long each plugin step took (inputs, every attempt, retry delays), by plugin.
pub const STEP_DURATION: &str = "weft_step_duration_seconds";
/// From a webhook request received to its answer, by flow and whether the caller waited.
pub const WEBHOOK_DURATION: &str = "weft_webhook_duration_seconds";
/// Runs waiting for a slot of a throttled or FIFO flow, by flow and instance.
pub const QUEUE_DEPTH: &str = "weft_queue_depth";
/// How long the oldest of those runs has waited, by flow and instance (0 when none waits).
pub const QUEUE_OLDEST_WAIT: &str = "weft_queue_oldest_wait_seconds";

/// Runs in the queue shared by the processes on a PostgreSQL store, not held by a worker.
pub const SHARED_QUEUE_WAITING: &str = "weft_shared_queue_waiting";
/// Runs in that queue held by a worker.
pub const SHARED_QUEUE_RUNNING: &str = "weft_shared_queue_running";
/// How long the oldest run waiting in that queue has waited (0 when none waits).
pub const SHARED_QUEUE_OLDEST_WAIT: &str = "weft_shared_queue_oldest_wait_seconds";
/// From a run queued to a worker taking it, by flow and instance (workers).
pub const QUEUE_WAIT: &str = "weft_queue_wait_seconds";
/// Runs a worker took after the lease of the worker holding them ran out (it stopped, or was
/// cut off), by flow and instance: each is resumed after its last committed step.
pub const RUNS_RECLAIMED: &str = "weft_runs_reclaimed_total";
/// Runs a worker gave up because it held them past its lease and another took them.
pub const RUNS_ABANDONED: &str = "weft_runs_abandoned_total";
/// How long each flush of the embedded store's log to disk took (what runs at the default
/// durability, and sync webhooks' answers, wait for).
pub const STORE_FLUSH: &str = "weft_store_flush_seconds";

/// Plugin steps take from tens of microseconds (a pure step on a warm instance) to tens of
/// seconds (a slow upstream, retries with back-off).
const STEP_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A webhook answered at once takes about a millisecond; one that waits for its run takes as
/// long as the run.
const WEBHOOK_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A flush is a write and a disk sync: about a millisecond on a local SSD, far more on a
/// busy or networked disk.
const FLUSH_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes: without it
/// they would pile up in memory until the next scrape.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder for the whole process (once; later calls do nothing), and
/// a thread that folds histogram samples into buckets between scrapes.
pub fn install() -> anyhow::Result<()> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(STEP_DURATION.into()), STEP_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(WEBHOOK_DURATION.into()), WEBHOOK_BUCKETS)
        })
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(QUEUE_WAIT.into()), WEBHOOK_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(STORE_FLUSH.into()), FLUSH_BUCKETS))
        .context("the metrics' buckets are invalid")?
        .install_recorder()
        .context("failed to install the metrics recorder (is another one installed?)")?;
    describe();
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("weft-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        })
        .context("failed to start the metrics upkeep thread")?;
    let _ = HANDLE.set(handle);
    Ok(())
}

/// Every metric in the Prometheus text format, or `None` when no recorder was installed.
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

/// The `# HELP` lines.
fn describe() {
    describe_counter!(RUNS_STARTED, "Runs started (new runs and replays)");
    describe_counter!(
        RUNS_RESUMED,
        "Interrupted runs continued from their last completed step"
    );
    describe_counter!(RUNS_FINISHED, "Runs ended, by the status their record has");
    describe_histogram!(
        STEP_DURATION,
        Unit::Seconds,
        "How long each plugin step took, every attempt included"
    );
    describe_histogram!(
        WEBHOOK_DURATION,
        Unit::Seconds,
        "From a webhook request received to its answer"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Runs waiting for a slot of a throttled or FIFO flow"
    );
    describe_gauge!(
        QUEUE_OLDEST_WAIT,
        Unit::Seconds,
        "How long the oldest waiting run has waited"
    );
    describe_gauge!(
        SHARED_QUEUE_WAITING,
        "Runs in the queue shared by the processes on a PostgreSQL store, not held by a worker"
    );
    describe_gauge!(
        SHARED_QUEUE_RUNNING,
        "Runs in the shared queue held by a worker"
    );
    describe_gauge!(
        SHARED_QUEUE_OLDEST_WAIT,
        Unit::Seconds,
        "How long the oldest run waiting in the shared queue has waited"
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "From a run queued to a worker taking it"
    );
    describe_counter!(
        RUNS_RECLAIMED,
        "Runs taken after the lease of the worker holding them ran out"
    );
    describe_counter!(
        RUNS_ABANDONED,
        "Runs given up by a worker that held them past its lease"
    );
    describe_histogram!(
        STORE_FLUSH,
        Unit::Seconds,
        "How long each flush of the embedded store to disk took"
    );
}

/// A new run (or a replay) of `flow` of `instance` started.
pub fn run_started(flow: &str, instance: &str) {
    counter!(RUNS_STARTED, "flow" => flow.to_owned(), "instance" => instance.to_owned())
        .increment(1);
}

/// An interrupted run of `flow` of `instance` was continued.
pub fn run_resumed(flow: &str, instance: &str) {
    counter!(RUNS_RESUMED, "flow" => flow.to_owned(), "instance" => instance.to_owned())
        .increment(1);
}

/// A run of `flow` of `instance` ended with `status` (as its record spells it).
pub fn run_finished(flow: &str, instance: &str, status: Status) {
    counter!(
        RUNS_FINISHED,
        "flow" => flow.to_owned(),
        "instance" => instance.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
}

/// A step of plugin `plugin` ended after `took`.
pub fn step_finished(plugin: &str, took: Duration) {
    histogram!(STEP_DURATION, "plugin" => plugin.to_owned()).record(took);
}

/// A webhook of `flow` was answered `took` after it was received; `waited` when the answer
/// waited for the run.
pub fn webhook_answered(flow: &str, waited: bool, took: Duration) {
    let wait = if waited { "true" } else { "false" };
    histogram!(WEBHOOK_DURATION, "flow" => flow.to_owned(), "wait" => wait).record(took);
}

/// `depth` runs of `flow` of `instance` wait for a slot, the oldest for `oldest`.
pub fn queue(flow: &str, instance: &str, depth: usize, oldest: Duration) {
    let labels = [("flow", flow.to_owned()), ("instance", instance.to_owned())];
    gauge!(QUEUE_DEPTH, &labels).set(depth as f64);
    gauge!(QUEUE_OLDEST_WAIT, &labels).set(oldest);
}

/// The queue shared through a PostgreSQL store holds `waiting` runs nobody holds and
/// `running` held ones; the oldest waiting one has waited `oldest`.
pub fn shared_queue(waiting: i64, running: i64, oldest: Duration) {
    gauge!(SHARED_QUEUE_WAITING).set(waiting as f64);
    gauge!(SHARED_QUEUE_RUNNING).set(running as f64);
    gauge!(SHARED_QUEUE_OLDEST_WAIT).set(oldest);
}

/// A worker took a run of `flow` of `instance` that waited `waited` in the queue; `again` when
/// another worker had held it and lost its lease.
pub fn run_claimed(flow: &str, instance: &str, waited: Duration, again: bool) {
    let labels = [("flow", flow.to_owned()), ("instance", instance.to_owned())];
    histogram!(QUEUE_WAIT, &labels).record(waited);
    if again {
        counter!(RUNS_RECLAIMED, &labels).increment(1);
    }
}

/// A worker gave a run up: it held it past its lease.
pub fn run_abandoned() {
    counter!(RUNS_ABANDONED).increment(1);
}

/// A flush of the embedded store to disk took `took`.
pub fn store_flushed(took: Duration) {
    histogram!(STORE_FLUSH).record(took);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_installed_it_renders_the_names_labels_and_buckets_set_here() {
        install().unwrap();
        install().expect("installing again does nothing");
        run_started("observe-test", "i-1");
        run_finished("observe-test", "i-1", Status::SucceededWithErrors);
        step_finished("observe-test-plugin", Duration::from_micros(75));
        store_flushed(Duration::from_millis(30));
        let text = render().expect("installed");
        for expected in [
            r#"weft_runs_started_total{flow="observe-test",instance="i-1"} 1"#,
            r#"weft_runs_finished_total{flow="observe-test",instance="i-1",status="succeeded_with_errors"} 1"#,
            "# TYPE weft_step_duration_seconds histogram",
            r#"weft_step_duration_seconds_bucket{plugin="observe-test-plugin",le="0.00005"} 0"#,
            r#"weft_step_duration_seconds_bucket{plugin="observe-test-plugin",le="0.0001"} 1"#,
            r#"weft_step_duration_seconds_count{plugin="observe-test-plugin"} 1"#,
            r#"weft_store_flush_seconds_bucket{le="0.025"} 0"#,
            r#"weft_store_flush_seconds_bucket{le="0.05"} 1"#,
        ] {
            assert!(text.contains(expected), "no `{expected}` in:\n{text}");
        }
    }
}
