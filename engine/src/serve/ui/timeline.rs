//! A run's steps as a timeline picture: one bar per step execution, placed by when it started
//! and as long as it took, indented by the loops and branches around it, coloured by how it
//! ended. The geometry is worked out here; the console's template draws it as SVG.

use serde::Serialize;
use weft_model::records::{RunWithSteps, Status, scope_path};

/// The picture's width, in SVG units.
const WIDTH: f64 = 960.0;
/// Where the bars start: the labels are left of it.
const BARS_LEFT: f64 = 330.0;
/// One row's height.
const ROW: f64 = 24.0;
/// A bar is never thinner than this, so that a 20 µs step still shows.
const MIN_BAR: f64 = 3.0;

/// The timeline of one run.
#[derive(Debug, Serialize)]
pub(super) struct Timeline {
    pub(super) width: f64,
    pub(super) height: f64,
    pub(super) bars_left: f64,
    /// The time the bars' width stands for, in milliseconds.
    pub(super) span_ms: f64,
    /// Ticks along the top: (x, label).
    pub(super) ticks: Vec<(f64, String)>,
    pub(super) rows: Vec<Row>,
}

/// One step execution.
#[derive(Debug, Serialize)]
pub(super) struct Row {
    /// Its key in the run (`pages[1]/upsert`), which the step details below link to.
    pub(super) path: String,
    /// The step's id, shown indented by `depth`.
    pub(super) label: String,
    /// The loop iterations and branches around it, as text (`pages[1]`).
    pub(super) scope: String,
    pub(super) depth: usize,
    pub(super) status: String,
    pub(super) y: f64,
    pub(super) x: f64,
    pub(super) bar_width: f64,
    pub(super) label_x: f64,
    /// Start and duration, for the bar's tooltip.
    pub(super) start_ms: f64,
    pub(super) duration_ms: f64,
}

/// The timeline of `run` as it is recorded now (a running run's last step may be missing).
pub(super) fn timeline(run: &RunWithSteps) -> Timeline {
    // From the first step: what comes before it (loading the plugins, the first time) is the
    // run's, not a step's, and would squeeze the bars into the right edge.
    let start = run
        .steps
        .iter()
        .map(|s| s.started_at_ms)
        .min()
        .unwrap_or(run.run.started_at_ms) as f64;
    let ends = run
        .steps
        .iter()
        .map(|s| s.started_at_ms as f64 - start + s.duration_us as f64 / 1000.0);
    let span_ms = ends.fold(0.0, f64::max).max(1.0);
    let scale = (WIDTH - BARS_LEFT - 10.0) / span_ms;
    let top = 28.0;
    let rows = run
        .steps
        .iter()
        .enumerate()
        .map(|(n, step)| {
            let start_ms = (step.started_at_ms as f64 - start).max(0.0);
            let duration_ms = step.duration_us as f64 / 1000.0;
            let depth = step.scope.len();
            Row {
                path: step.path(),
                label: step.id.clone(),
                scope: scope_path(&step.scope),
                depth,
                status: status_class(step.status).to_string(),
                y: top + n as f64 * ROW,
                x: BARS_LEFT + start_ms * scale,
                bar_width: (duration_ms * scale).max(MIN_BAR),
                label_x: 8.0 + depth as f64 * 14.0,
                start_ms,
                duration_ms,
            }
        })
        .collect::<Vec<_>>();
    let ticks = (0..=4)
        .map(|i| {
            let ms = span_ms * i as f64 / 4.0;
            (BARS_LEFT + ms * scale, format_ms(ms))
        })
        .collect();
    Timeline {
        width: WIDTH,
        height: top + rows.len().max(1) as f64 * ROW + 8.0,
        bars_left: BARS_LEFT,
        span_ms,
        ticks,
        rows,
    }
}

fn status_class(status: Status) -> &'static str {
    match status {
        Status::Succeeded | Status::SucceededWithErrors => "succeeded",
        Status::Failed => "failed",
        Status::Running => "running",
        Status::Interrupted => "interrupted",
        Status::Skipped => "skipped",
    }
}

/// Milliseconds as people read them: `0.42 ms`, `12 ms`, `1.5 s`.
pub(super) fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}
