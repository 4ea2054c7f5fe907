//! The embedded store: sled, one directory on disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_model::records::now_ms;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::trees::Tree;
use super::{
    Pruned, RunFilter, RunRecord, RunStore, RunWithSteps, StateScope, StateWrite, Status,
    StepRecord, blob_refs,
};

/// Run records in a sled database. Trees: `runs` (run id → run; a run written whole also
/// carries its steps, as `steps`), `steps` (run id, 0, big-endian step index → step of a run
/// written as it went; and 0xff, scope, 0, key → a step's persisted state),
/// `blobs` (SHA-256 → bytes of a binary value a step produced) and `running` (where to look
/// for runs in progress after a crash: see [`Progress`]).
#[derive(Debug, Clone)]
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    runs: sled::Tree,
    steps: sled::Tree,
    blobs: sled::Tree,
    running: sled::Tree,
    progress: Arc<Mutex<Progress>>,
}

/// Where runs left `running` by a crash can be: among the ids of the last saved [`Snapshot`],
/// or at or after its floor (run ids are time-ordered). Saving where runs are rather than
/// indexing each run as it starts and ends keeps two writes off every run: the snapshot is
/// written at most every [`SNAPSHOT_EVERY`], or at once when a run starts below the floor and
/// outside the saved ids (a resumed run, or one prepared before the last snapshot).
#[derive(Debug, Default)]
struct Progress {
    /// Runs this process wrote as `running` and has not yet written as ended.
    running: BTreeSet<String>,
    /// What the store holds, once a snapshot was saved.
    saved: Option<Snapshot>,
    saved_at: Option<Instant>,
}

/// How often, at most, the snapshot is saved as runs end.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(250);

/// The key of the snapshot in the `running` tree. (Before snapshots, that tree held one key
/// per run in progress; run ids do not start with `!`.)
const SNAPSHOT_KEY: &[u8] = b"!snapshot";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Snapshot {
    /// Every run started at or after this id may be running.
    floor: String,
    /// Runs started before the floor that may be running.
    running: BTreeSet<String>,
}

impl Snapshot {
    fn covers(&self, id: &str) -> bool {
        id >= self.floor.as_str() || self.running.contains(id)
    }
}

/// The smallest run id of a run started at `ms` (milliseconds since the Unix epoch): the
/// time-ordered ids (UUIDv7) of runs started then or later sort at or after it.
fn floor_at(ms: u64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// How long opening a locked store waits for the lock before giving up.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Gets the sled database in `db_dir` ready to open, holding its lock (the one sled takes,
/// `db_dir/db`) while it does:
///
/// - sled releases the lock from a background thread after the last handle is dropped, so a
///   store closed a moment ago, by this process or one that is exiting, can still be locked
///   briefly: this waits up to [`LOCK_WAIT`] for it (past that, sled's own open says the store
///   is in use);
/// - sled 0.34 opens the newest `snap.*` file it finds, including a `snap.*.generating` one
///   left by a process killed while writing it, and then refuses to open the store as
///   corrupted. Such a file is never complete (sled renames it once written and synced), so
///   it is removed; only under the lock, so a snapshot that a live process is writing is never
///   touched.
fn prepare_to_open(db_dir: &Path) -> anyhow::Result<()> {
    let lock_path = db_dir.join("db");
    let Ok(lock) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock_path)
    else {
        return Ok(()); // a new store: sled creates it
    };
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    while lock.try_lock().is_err() {
        if std::time::Instant::now() >= deadline {
            return Ok(()); // in use: sled's open says so
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for entry in std::fs::read_dir(db_dir)
        .with_context(|| format!("failed to read the store directory `{}`", db_dir.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(&path).with_context(|| {
                format!(
                    "failed to remove the interrupted snapshot `{}`",
                    path.display()
                )
            })?;
        }
    }
    Ok(())
}

impl SledStore {
    /// Opens the store in `dir`, creating it if needed.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create store directory `{}`", dir.display()))?;
        let db_dir = dir.join("db");
        prepare_to_open(&db_dir)?;
        let db = sled::Config::new()
            .path(&db_dir)
            // sled keeps recently written records in memory up to this size; bounded so a
            // long-running engine's memory does not grow with its history.
            .cache_capacity(32 << 20)
            .open()
            .with_context(|| {
                format!(
                    "failed to open the store in `{}` (is another `weft` process using it?)",
                    dir.display()
                )
            })?;
        let runs = Tree::Runs.open(&db)?;
        let steps = Tree::Steps.open(&db)?;
        let blobs = Tree::Blobs.open(&db)?;
        let running = Tree::Running.open(&db)?;
        let saved = running
            .get(SNAPSHOT_KEY)
            .context("failed to read the store's list of runs in progress")?
            .map(|bytes| serde_json::from_slice::<Snapshot>(&bytes))
            .transpose()
            .context("the store's list of runs in progress is damaged")?;
        Ok(Self {
            path: dir.to_path_buf(),
            db,
            runs,
            steps,
            blobs,
            running,
            progress: Arc::new(Mutex::new(Progress {
                saved,
                ..Progress::default()
            })),
        })
    }

    /// Opens one of the store's trees, for the store's typed accessors.
    pub(super) fn tree(&self, tree: Tree) -> anyhow::Result<sled::Tree> {
        tree.open(&self.db)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        // Every update of `Progress` is a single assignment or set operation; a panic cannot
        // leave it half-done.
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Saves where runs in progress can be: the runs this process has in progress, and a
    /// floor below every run it may yet start (ids handed out before now were, or will be,
    /// added to `running` before their records are written, under the same lock).
    fn save_snapshot(&self, progress: &mut Progress) -> anyhow::Result<()> {
        let floor = floor_at(now_ms().saturating_sub(1000));
        let snapshot = Snapshot {
            running: progress
                .running
                .iter()
                .filter(|id| id.as_str() < floor.as_str())
                .cloned()
                .collect(),
            floor,
        };
        self.running
            .insert(SNAPSHOT_KEY, serde_json::to_vec(&snapshot)?)
            .context("failed to record the list of runs in progress")?;
        progress.saved = Some(snapshot);
        progress.saved_at = Some(Instant::now());
        Ok(())
    }

    /// Writes `bytes` as the record of `run`, keeping the snapshot of where runs in progress
    /// can be in step with it.
    fn write_run(&self, run: &RunRecord, bytes: Vec<u8>) -> anyhow::Result<()> {
        let failed = || format!("failed to record run `{}`", run.id);
        // The snapshot of where runs in progress can be must cover a run before its record
        // says `running` (sled recovers writes in the order they were made), so that finding
        // the runs a crash left behind need not read the whole history.
        if run.status == Status::Running {
            let mut progress = self.lock_progress();
            progress.running.insert(run.id.clone());
            if !progress.saved.as_ref().is_some_and(|s| s.covers(&run.id)) {
                self.save_snapshot(&mut progress).with_context(failed)?;
            }
        }
        self.runs
            .insert(run.id.as_bytes(), bytes)
            .with_context(failed)?;
        if run.status != Status::Running {
            let mut progress = self.lock_progress();
            if progress.running.remove(&run.id)
                && progress
                    .saved_at
                    .is_none_or(|at| at.elapsed() >= SNAPSHOT_EVERY)
            {
                // After the run's final record, so the snapshot that leaves it out cannot be
                // recovered without that record.
                self.save_snapshot(&mut progress).with_context(failed)?;
            }
        }
        Ok(())
    }
}

fn step_key(run_id: &str, index: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(run_id.len() + 5);
    key.extend_from_slice(run_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// State entries live in the `steps` tree, after a 0xff byte (which no run id starts with), so
/// that a step's record and its state writes are one atomic batch.
const STATE_MARK: u8 = 0xff;

fn state_key(scope: &StateScope, key: &str) -> Vec<u8> {
    let mut k = state_prefix(scope);
    k.extend_from_slice(key.as_bytes());
    k
}

fn state_prefix(scope: &StateScope) -> Vec<u8> {
    let mut k = vec![STATE_MARK];
    k.extend_from_slice(scope.0.as_bytes());
    k.push(0);
    k
}

/// The steps a run written whole carries in its record (`None` for a run written as it went,
/// whose steps are in the `steps` tree).
#[derive(Deserialize)]
struct EmbeddedSteps {
    #[serde(default)]
    steps: Option<Vec<StepRecord>>,
}

impl SledStore {
    fn runs_newest_first(&self) -> impl Iterator<Item = anyhow::Result<RunRecord>> + '_ {
        self.runs.iter().rev().map(|entry| {
            let (key, bytes) = entry?;
            serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the record of run `{}` is damaged",
                    String::from_utf8_lossy(&key)
                )
            })
        })
    }

    fn delete_run(&self, id: &str) -> anyhow::Result<()> {
        let mut batch = sled::Batch::default();
        for entry in self.steps.scan_prefix(step_prefix(id)) {
            let (key, _) = entry?;
            batch.remove(key);
        }
        self.steps.apply_batch(batch)?;
        self.runs.remove(id.as_bytes())?;
        Ok(())
    }
}

fn step_prefix(run_id: &str) -> Vec<u8> {
    let mut key = run_id.as_bytes().to_vec();
    key.push(0);
    key
}

impl RunStore for SledStore {
    fn put_run(&self, run: &RunRecord) -> anyhow::Result<()> {
        self.write_run(run, serde_json::to_vec(run)?)
    }

    fn put_whole_run(&self, run: &RunRecord, steps: &[StepRecord]) -> anyhow::Result<()> {
        // The run's record with one more field, `steps`: readers of the run alone skip it
        // (unknown fields are ignored), and `get_run` takes the steps from it.
        let mut bytes = serde_json::to_vec(run)?;
        debug_assert_eq!(bytes.last(), Some(&b'}'));
        bytes.pop();
        bytes.extend_from_slice(br#","steps":"#);
        serde_json::to_writer(&mut bytes, steps)?;
        bytes.push(b'}');
        self.write_run(run, bytes)
    }

    fn put_blobs(&self, blobs: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        for (sha256, data) in blobs {
            if !self.blobs.contains_key(sha256.as_bytes())? {
                self.blobs
                    .insert(sha256.as_bytes(), data.as_slice())
                    .with_context(|| format!("failed to store binary value {sha256}"))?;
            }
        }
        Ok(())
    }

    fn commit_step(
        &self,
        run_id: &str,
        step: &StepRecord,
        blobs: &[(String, Vec<u8>)],
        state: &[StateWrite],
    ) -> anyhow::Result<()> {
        let failed = |e: sled::Error| {
            anyhow::anyhow!("failed to record step `{}` of run `{run_id}`: {e}", step.id)
        };
        // Binary values are immutable and keyed by their content, so they can go first: a
        // crash before the record leaves only an unreferenced value, which pruning removes.
        self.put_blobs(blobs)
            .with_context(|| format!("failed to record step `{}` of run `{run_id}`", step.id))?;
        let key = step_key(run_id, step.index);
        let record = serde_json::to_vec(step)?;
        if state.is_empty() {
            // One insert is atomic by itself. (A sled batch takes a lock that stops every
            // other reader and writer of the database while it applies, so the common case of
            // a step that wrote no state goes without one.)
            self.steps.insert(key, record).map_err(failed)?;
            return Ok(());
        }
        // The record and the state writes are one batch on one tree: sled applies it whole.
        let mut batch = sled::Batch::default();
        for write in state {
            let key = state_key(&write.scope, &write.key);
            match &write.value {
                Some(v) => batch.insert(key, v.as_slice()),
                None => batch.remove(key),
            }
        }
        batch.insert(key, record);
        self.steps.apply_batch(batch).map_err(failed)
    }

    fn get_blob(&self, sha256: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.blobs.get(sha256.as_bytes())?.map(|v| v.to_vec()))
    }

    fn state_get(&self, scope: &StateScope, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.steps.get(state_key(scope, key))?.map(|v| v.to_vec()))
    }

    fn state_sizes(&self, scope: &StateScope) -> anyhow::Result<Vec<(String, u64)>> {
        let prefix = state_prefix(scope);
        self.steps
            .scan_prefix(&prefix)
            .map(|entry| {
                let (k, v) = entry?;
                Ok((
                    String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                    v.len() as u64,
                ))
            })
            .collect()
    }

    fn mark_interrupted(&self) -> anyhow::Result<Vec<RunRecord>> {
        // Where runs left `running` can be: the saved snapshot's runs and everything from its
        // floor on (none of it when no snapshot was ever saved, as no run was), the runs this
        // process has in progress, and the one-key-per-run entries of stores written before
        // snapshots.
        let mut candidates = BTreeSet::new();
        let mut legacy = Vec::new();
        for entry in self.running.iter() {
            let (key, _) = entry?;
            if key != SNAPSHOT_KEY {
                candidates.insert(String::from_utf8_lossy(&key).into_owned());
                legacy.push(key);
            }
        }
        let saved = {
            let progress = self.lock_progress();
            candidates.extend(progress.running.iter().cloned());
            progress.saved.clone()
        };
        if let Some(saved) = &saved {
            candidates.extend(saved.running.iter().cloned());
            for entry in self.runs.range(saved.floor.as_bytes()..) {
                let (key, _) = entry?;
                candidates.insert(String::from_utf8_lossy(&key).into_owned());
            }
        }
        let mut found = Vec::new();
        for id in candidates {
            let Some(bytes) = self.runs.get(id.as_bytes())? else {
                continue;
            };
            let mut run: RunRecord = serde_json::from_slice(&bytes)
                .with_context(|| format!("the record of run `{id}` is damaged"))?;
            if run.status == Status::Running {
                run.status = Status::Interrupted;
                run.error = Some(
                    "the run was interrupted (the process stopped before it ended); resume it with `weft runs resume` or replay it with `weft runs replay`".into(),
                );
                self.put_run(&run)?;
                found.push(run);
            }
        }
        if found.is_empty() && legacy.is_empty() {
            // Nothing changed: a command that only reads the store does not write to it.
            return Ok(found);
        }
        // A fresh snapshot, so the next open looks only at what runs after now.
        self.save_snapshot(&mut self.lock_progress())?;
        for key in legacy {
            self.running.remove(key)?;
        }
        self.flush()?;
        Ok(found)
    }

    fn prune(&self, before_ms: Option<u64>, keep: Option<usize>) -> anyhow::Result<Pruned> {
        let mut pruned = Pruned::default();
        let mut kept = 0usize;
        let mut doomed = Vec::new();
        for run in self.runs_newest_first() {
            let run = run?;
            if run.status == Status::Running {
                continue;
            }
            let too_old = before_ms.is_some_and(|t| run.started_at_ms < t);
            let too_many = keep.is_some_and(|k| kept >= k);
            if too_old || too_many {
                doomed.push(run.id);
            } else {
                kept += 1;
            }
        }
        for id in &doomed {
            self.delete_run(id)?;
            pruned.runs += 1;
        }
        if pruned.runs > 0 {
            let mut referenced = std::collections::HashSet::new();
            for entry in self.steps.iter() {
                let (key, bytes) = entry?;
                if key.first() == Some(&STATE_MARK) {
                    continue;
                }
                if let Ok(step) = serde_json::from_slice::<StepRecord>(&bytes) {
                    referenced.extend(blob_refs(&step).map(str::to_string));
                }
            }
            for entry in self.runs.iter() {
                let (_, bytes) = entry?;
                if let Ok(EmbeddedSteps { steps: Some(steps) }) = serde_json::from_slice(&bytes) {
                    for step in &steps {
                        referenced.extend(blob_refs(step).map(str::to_string));
                    }
                }
            }
            for entry in self.blobs.iter() {
                let (sha, _) = entry?;
                if !referenced.contains(String::from_utf8_lossy(&sha).as_ref()) {
                    self.blobs.remove(sha)?;
                    pruned.blobs += 1;
                }
            }
            self.flush()?;
        }
        Ok(pruned)
    }

    fn get_run(&self, id: &str) -> anyhow::Result<Option<RunWithSteps>> {
        let Some(bytes) = self.runs.get(id.as_bytes())? else {
            return Ok(None);
        };
        let run: RunRecord = serde_json::from_slice(&bytes)
            .with_context(|| format!("the record of run `{id}` is damaged"))?;
        let embedded: EmbeddedSteps = serde_json::from_slice(&bytes)
            .with_context(|| format!("the record of run `{id}` is damaged"))?;
        if let Some(steps) = embedded.steps {
            return Ok(Some(RunWithSteps { run, steps }));
        }
        let steps = self
            .steps
            .scan_prefix(step_prefix(id))
            .map(|entry| {
                let (_, bytes) = entry?;
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("a step record of run `{id}` is damaged"))
            })
            .collect::<anyhow::Result<Vec<StepRecord>>>()?;
        Ok(Some(RunWithSteps { run, steps }))
    }

    fn list_runs(&self, filter: &RunFilter) -> anyhow::Result<Vec<RunRecord>> {
        let mut out = Vec::new();
        for run in self.runs_newest_first() {
            let run = run?;
            if !filter.matches(&run) {
                continue;
            }
            out.push(run);
            if filter.limit.is_some_and(|limit| out.len() >= limit) {
                break;
            }
        }
        Ok(out)
    }

    fn flush(&self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        self.db
            .flush()
            .context("failed to flush the store to disk")?;
        crate::observe::metrics::store_flushed(started.elapsed());
        Ok(())
    }
}

#[cfg(test)]
#[path = "sled_store_tests.rs"]
mod tests;
