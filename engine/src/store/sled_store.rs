//! The embedded store: sled, one directory on disk.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{RunFilter, RunRecord, RunStore, RunWithSteps, StepRecord};

/// Run records in a sled database. Trees: `runs` (run id → run) and `steps`
/// (run id, 0, big-endian step index → step).
#[derive(Debug, Clone)]
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    runs: sled::Tree,
    steps: sled::Tree,
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
        Ok(Self {
            path: dir.to_path_buf(),
            db,
            runs,
            steps,
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

fn step_prefix(run_id: &str) -> Vec<u8> {
    let mut key = run_id.as_bytes().to_vec();
    key.push(0);
    key
}

impl RunStore for SledStore {
    fn put_run(&self, run: &RunRecord) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(run)?;
        self.runs
            .insert(run.id.as_bytes(), bytes)
            .with_context(|| format!("failed to record run `{}`", run.id))?;
        Ok(())
    }

    fn put_step(&self, run_id: &str, step: &StepRecord) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(step)?;
        self.steps
            .insert(step_key(run_id, step.index), bytes)
            .with_context(|| format!("failed to record step `{}` of run `{run_id}`", step.id))?;
        Ok(())
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
        for entry in self.runs.iter().rev() {
            let (key, bytes) = entry?;
            let run: RunRecord = serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the record of run `{}` is damaged",
                    String::from_utf8_lossy(&key)
                )
            })?;
            if filter.instance.as_ref().is_some_and(|i| *i != run.instance) {
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
