//! Start records written only when they are needed.
//!
//! A run used to be written when it started, again after each step and again when it ended:
//! three writes for a one-step flow, the first of which only said "running". Most runs of a
//! webhook flow end within a millisecond, and a start record that nobody reads before the final
//! record replaces it is pure cost. So a run's start record is written when something needs it:
//! a step that must be acknowledged (or that wrote state) before the run ends, a shutdown that
//! records runs in flight as interrupted, or the run having gone on for [`WRITE_AFTER`] (then a
//! background thread writes it, so that a long run can be seen running and is found
//! `interrupted` after a crash). A run that ends before any of these is written once, whole.
//!
//! This loses no guarantee: under `--durability step` a step is on disk once acknowledged, and
//! an unflushed start record was never on disk before the first flush either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::store::{RunRecord, RunStore, Status};

/// How long a run may go on before its start record is written by the background thread.
pub const WRITE_AFTER: Duration = Duration::from_millis(100);

/// How often the background thread looks for such runs.
const SWEEP_EVERY: Duration = Duration::from_millis(50);

/// The runs in progress of one runner whose start records may not be written yet.
pub(crate) struct StartRecords {
    store: Weak<dyn RunStore>,
    runs: Mutex<HashMap<String, Arc<Mutex<Start>>>>,
    sweeper: std::sync::Once,
}

impl std::fmt::Debug for StartRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartRecords").finish_non_exhaustive()
    }
}

/// One run in progress.
struct Start {
    /// The record to write: the run as it started, with its config snapshot.
    record: RunRecord,
    began: Instant,
    written: bool,
    /// The run wrote its final record (or is about to): its start record must not follow it.
    ended: bool,
}

/// A run's place among [`StartRecords`], until it is dropped ([`Started::end`] first, for a
/// run that ended).
pub(crate) struct Started {
    start: Arc<Mutex<Start>>,
    owner: Arc<StartRecords>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is a single assignment or map operation.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl StartRecords {
    /// Start records of runs recorded in `store`.
    pub(crate) fn new(store: &Arc<dyn RunStore>) -> Arc<Self> {
        Arc::new(Self {
            store: Arc::downgrade(store),
            runs: Mutex::default(),
            sweeper: std::sync::Once::new(),
        })
    }

    /// Registers a run that starts now with its start record, not written yet.
    pub(crate) fn begin(self: &Arc<Self>, record: &RunRecord) -> Started {
        self.sweeper.call_once(|| self.spawn_sweeper());
        let start = Arc::new(Mutex::new(Start {
            record: record.clone(),
            began: Instant::now(),
            written: false,
            ended: false,
        }));
        lock(&self.runs).insert(record.id.clone(), start.clone());
        Started {
            start,
            owner: self.clone(),
        }
    }

    /// Writes the start record of every run in progress that does not have one yet (before
    /// a shutdown marks runs in flight as interrupted).
    pub(crate) fn write_all(&self) -> anyhow::Result<()> {
        self.write_older_than(Duration::ZERO)
    }

    fn write_older_than(&self, age: Duration) -> anyhow::Result<()> {
        let Some(store) = self.store.upgrade() else {
            return Ok(());
        };
        let due: Vec<_> = lock(&self.runs).values().cloned().collect();
        for start in due {
            let mut start = lock(&start);
            if !start.written && !start.ended && start.began.elapsed() >= age {
                store.put_run(&start.record)?;
                start.written = true;
            }
        }
        Ok(())
    }

    /// A thread that writes the start records of runs going on for longer than
    /// [`WRITE_AFTER`]; it ends with the runner.
    fn spawn_sweeper(self: &Arc<Self>) {
        let starts = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("weft-starts".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SWEEP_EVERY);
                    let Some(starts) = starts.upgrade() else {
                        break;
                    };
                    if let Err(e) = starts.write_older_than(WRITE_AFTER) {
                        // The run writes its record when it ends; nothing else to do here.
                        tracing::error!("failed to record a run in progress: {e:#}");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("runs in progress will be recorded only when they end: {e}");
        }
    }
}

impl Started {
    /// Writes the run's start record now unless it was written already.
    pub(crate) fn write(&self, store: &dyn RunStore) -> anyhow::Result<()> {
        let mut start = lock(&self.start);
        if !start.written {
            store.put_run(&start.record)?;
            start.written = true;
        }
        Ok(())
    }

    /// Whether the start record was written.
    pub(crate) fn written(&self) -> bool {
        lock(&self.start).written
    }

    /// The run is about to write its final record: its start record will not be written after
    /// this.
    pub(crate) fn end(self) {
        lock(&self.start).ended = true;
    }
}

impl Drop for Started {
    /// A run dropped before it ended was cancelled (the request that waited for it went away,
    /// or the engine is shutting down): it is recorded as interrupted, so that it can be
    /// resumed or replayed, rather than left without a record or `running`.
    fn drop(&mut self) {
        let id = {
            let mut start = lock(&self.start);
            if !start.ended {
                start.ended = true;
                let mut record = start.record.clone();
                record.status = Status::Interrupted;
                record.error = Some(
                    "the run was cancelled before it ended (the request waiting for it went away, or the server stopped); resume it with `weft runs resume` or replay it with `weft runs replay`".into(),
                );
                if let Some(store) = self.owner.store.upgrade()
                    && let Err(e) = store.put_run(&record)
                {
                    tracing::error!(run_id = %record.id, "failed to record the cancelled run: {e:#}");
                }
            }
            std::mem::take(&mut start.record.id)
        };
        lock(&self.owner.runs).remove(&id);
    }
}
