//! The embedded store: sled, one directory on disk.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{
    Pruned, RunFilter, RunRecord, RunStore, RunWithSteps, StateScope, StateWrite, Status,
    StepRecord,
};
use crate::value::RecordedValue;

/// Run records in a sled database. Trees: `runs` (run id → run), `steps` (run id, 0,
/// big-endian step index → step; and 0xff, scope, 0, key → a step's persisted state) and
/// `blobs` (SHA-256 → bytes of a binary value a step produced) and `running` (the ids of runs
/// in progress).
#[derive(Debug, Clone)]
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    runs: sled::Tree,
    steps: sled::Tree,
    blobs: sled::Tree,
    running: sled::Tree,
}

impl SledStore {
    /// Opens the store in `dir`, creating it if needed.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create store directory `{}`", dir.display()))?;
        let db = sled::Config::new()
            .path(dir.join("db"))
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
        let runs = db
            .open_tree("runs")
            .context("failed to open the `runs` tree")?;
        let steps = db
            .open_tree("steps")
            .context("failed to open the `steps` tree")?;
        let blobs = db
            .open_tree("blobs")
            .context("failed to open the `blobs` tree")?;
        let running = db
            .open_tree("running")
            .context("failed to open the `running` tree")?;
        Ok(Self {
            path: dir.to_path_buf(),
            db,
            runs,
            steps,
            blobs,
            running,
        })
    }

    /// The underlying database, for other parts of the engine that keep data in the store.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
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

/// The SHA-256 of every binary value `step` refers to.
fn blob_refs(step: &StepRecord) -> impl Iterator<Item = &str> {
    step.output
        .iter()
        .chain(step.inputs.iter().map(|(_, v)| v))
        .filter_map(|v| match v {
            RecordedValue::Bytes(b) => Some(b.sha256.as_str()),
            RecordedValue::Json(_) => None,
        })
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
        let bytes = serde_json::to_vec(run)?;
        let failed = || format!("failed to record run `{}`", run.id);
        // The `running` index lists the runs in progress, so finding the ones a crash left
        // behind does not read the whole history. It is set before the record says `running`
        // and cleared after it says anything else: a stale entry is harmless, a missing one
        // is not possible.
        if run.status == Status::Running {
            self.running
                .insert(run.id.as_bytes(), &[])
                .with_context(failed)?;
        }
        self.runs
            .insert(run.id.as_bytes(), bytes)
            .with_context(failed)?;
        if run.status != Status::Running {
            self.running
                .remove(run.id.as_bytes())
                .with_context(failed)?;
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
        for (sha256, data) in blobs {
            if !self.blobs.contains_key(sha256.as_bytes()).map_err(failed)? {
                self.blobs
                    .insert(sha256.as_bytes(), data.as_slice())
                    .map_err(failed)?;
            }
        }
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
        let mut found = Vec::new();
        for entry in self.running.iter() {
            let (id, _) = entry?;
            let Some(bytes) = self.runs.get(&id)? else {
                self.running.remove(&id)?;
                continue;
            };
            let mut run: RunRecord = serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the record of run `{}` is damaged",
                    String::from_utf8_lossy(&id)
                )
            })?;
            if run.status == Status::Running {
                run.status = Status::Interrupted;
                run.error = Some(
                    "the run was interrupted (the process stopped before it ended); resume it with `weft runs resume` or replay it with `weft runs replay`".into(),
                );
                self.put_run(&run)?;
                found.push(run);
            } else {
                self.running.remove(&id)?;
            }
        }
        if !found.is_empty() {
            self.flush()?;
        }
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
        self.db
            .flush()
            .context("failed to flush the store to disk")?;
        Ok(())
    }
}
