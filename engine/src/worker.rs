//! `weft worker`: claims runs from the PostgreSQL store's queue and runs them.
//!
//! A worker has a number of slots. It claims as many queued runs as it has free slots (oldest
//! first; waiting ones, and ones whose worker's lease ran out), runs each under the lease it
//! renews every third of the lease, and takes a run off the queue when it ends. A run claimed
//! for the second time was lost by a worker that stopped: it is resumed after its last
//! committed step (or run from the start if nothing of it was recorded). A run whose lease
//! this worker lost (it was paused, or cut off from the database, for longer than the lease)
//! is abandoned: its records are refused by the store's fence, and its task is stopped.
//!
//! A worker hears of queued runs at once (`LISTEN`/`NOTIFY`, see [`PgStore::queued`]) and also
//! looks every [`WorkerOptions::poll`] while it has room, which finds runs whose lease ran out
//! and bounds the delay a lost notification causes. Runs of concurrency-limited flows are
//! claimed when a notification says one of them was queued or ended, and on those looks.
//!
//! The workspace a run needs (its instance's config, the integration version it is pinned to)
//! takes several reads of the store and a validation to build, so a worker keeps each
//! instance's for [`WORKSPACE_TTL`]: a change made through another process (`weft config set`,
//! an upgrade) reaches runs started here within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::observe::metrics;
use crate::runner::{RunRequest, Runner};
use crate::store::postgres::{Claimed, Claims, ends_claim};
use crate::store::{PgStore, RunStore, Status, Store};
use weft_model::workspace::Workspace;

/// How long a worker reuses an instance's workspace.
pub const WORKSPACE_TTL: Duration = Duration::from_secs(2);

/// Each instance's workspace at its pinned version, and when it was read.
type Workspaces = HashMap<String, (Instant, Arc<Workspace>)>;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Runs at once.
    pub slots: usize,
    /// How long a claimed run is held without a renewal.
    pub lease: Duration,
    /// How often the queue is looked at when there is room, notifications aside.
    pub poll: Duration,
    /// How long stopping waits for runs in flight; those still going are left to their
    /// leases, and another worker resumes them.
    pub grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            slots: 32,
            lease: Duration::from_secs(15),
            poll: Duration::from_millis(250),
            grace: Duration::from_secs(30),
        }
    }
}

/// A worker on a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct Worker {
    store: Arc<Store>,
    runner: Arc<Runner>,
    options: WorkerOptions,
    /// The workspaces read lately ([`WORKSPACE_TTL`]).
    workspaces: Arc<Mutex<Workspaces>>,
}

impl Worker {
    /// A worker running the queued runs of `store` (which must be a PostgreSQL store) with
    /// `runner`.
    pub fn new(store: Arc<Store>, runner: Runner, options: WorkerOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(
            store.queue().is_some(),
            "a worker takes runs from a queue shared with other processes, which needs a PostgreSQL store: pass `--store postgres://…` (or set WEFT_STORE)"
        );
        Ok(Self {
            store,
            runner: Arc::new(runner),
            options,
            workspaces: Arc::default(),
        })
    }

    fn queue(&self) -> &PgStore {
        self.store
            .queue()
            .expect("checked when the worker was made")
    }

    /// Claims and runs queued runs until `shutdown` turns true, then waits up to the grace
    /// period for the runs in flight. Returns how many runs it finished.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<usize> {
        let mut tasks: JoinSet<(String, anyhow::Result<Status>)> = JoinSet::new();
        let mut running: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
        let mut lost = self.queue().lost_runs();
        let mut queued = self.queue().queued();
        let mut gated_seen = queued.borrow_and_update().gated;
        // Whether runs of concurrency-limited flows may be due: looked at first thing.
        let mut gated = true;
        let mut renewal = tokio::time::interval(self.options.lease / 3);
        renewal.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut finished = 0;
        loop {
            // Every run that ended meanwhile at once, so that the claim below fills all their
            // slots in one round trip.
            while let Some(done) = tasks.try_join_next() {
                ended(done, &mut running, &mut finished);
            }
            let free = self.options.slots.saturating_sub(running.len());
            // Claimed when a quarter of the slots are free (or none is busy): claims come in
            // batches, not one per run that ends.
            let mut queue_empty = false;
            if free > 0 && (free >= self.options.slots.div_ceil(4) || running.is_empty()) {
                let claims = match self.queue().claim(free, self.options.lease, gated) {
                    Ok(claims) => claims,
                    Err(e) => {
                        // The database is away (restarting, cut off): looked at again after
                        // the poll; the runs in flight go on, and keep their leases as long
                        // as renewals get through.
                        tracing::error!("failed to claim queued runs: {e:#}");
                        Claims::default()
                    }
                };
                gated = claims.gated_left;
                queue_empty = claims.runs.len() < free;
                for run in claims.runs {
                    metrics::run_claimed(&run.flow, &run.instance, run.waited, run.claims > 1);
                    let id = run.run_id.clone();
                    let worker = self.clone();
                    let handle = tasks.spawn(async move {
                        let id = run.run_id.clone();
                        (id, worker.execute(run).await)
                    });
                    running.insert(id, handle);
                }
            }
            // Looked at again when told of a run, or soon when it had no more to give;
            // otherwise when a run ends.
            let poll = if queue_empty {
                self.options.poll
            } else {
                self.options.lease
            };
            tokio::select! {
                Some(done) = tasks.join_next() => ended(done, &mut running, &mut finished),
                Ok(id) = lost.recv() => abandon(&mut running, &id),
                _ = renewal.tick() => self.renew(&mut running),
                Ok(()) = queued.changed() => {
                    let now = queued.borrow_and_update().gated;
                    gated |= now != gated_seen;
                    gated_seen = now;
                }
                _ = tokio::time::sleep(poll) => gated = true,
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
            }
        }
        // Stopping: no new claims; the runs in flight get the grace period, renewed.
        let deadline = tokio::time::Instant::now() + self.options.grace;
        while !running.is_empty() {
            tokio::select! {
                Some(done) = tasks.join_next() => {
                    if let Ok((id, _)) = done {
                        running.remove(&id);
                        finished += 1;
                    }
                }
                _ = renewal.tick() => self.renew(&mut running),
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        Ok(finished)
    }

    /// Renews the leases of the runs in flight, abandoning those another worker took. A
    /// renewal that fails is logged and tried at the next tick: a worker cut off for longer
    /// than its lease loses its runs (their writes are fenced) rather than stopping.
    fn renew(&self, running: &mut HashMap<String, tokio::task::AbortHandle>) {
        match self.queue().renew(self.options.lease) {
            Ok(lost) => {
                for id in lost {
                    abandon(running, &id);
                }
            }
            Err(e) => tracing::error!("failed to renew the leases of the runs in flight: {e:#}"),
        }
    }

    /// Runs (or resumes) one claimed run, then takes it off the queue, whether it succeeded
    /// or not (its record says how it ended; a run that failed is not run again).
    async fn execute(&self, claimed: Claimed) -> anyhow::Result<Status> {
        let id = claimed.run_id.clone();
        match self.run_claimed(claimed).await {
            // Its final record, written here, took it off the queue with it.
            Ok((status, true)) if ends_claim(status) => {
                self.queue().release(&id);
                Ok(status)
            }
            outcome => {
                self.queue().finish(&id)?;
                outcome.map(|(status, _)| status)
            }
        }
    }

    /// The workspace to run a new run of `instance` with ([`WORKSPACE_TTL`]).
    fn workspace(&self, instance: &str) -> anyhow::Result<Arc<Workspace>> {
        let cached = |cache: &Workspaces| {
            cache
                .get(instance)
                .filter(|(read, _)| read.elapsed() < WORKSPACE_TTL)
                .map(|(_, ws)| ws.clone())
        };
        // Every update of the cache is one map operation.
        let lock = || self.workspaces.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ws) = cached(&lock()) {
            return Ok(ws);
        }
        let ws = Arc::new(self.store.registry()?.workspace_for(instance, None)?);
        lock().insert(instance.to_string(), (Instant::now(), ws.clone()));
        Ok(ws)
    }

    /// Runs (or resumes) a claimed run; its status, and whether its final record was written
    /// here.
    async fn run_claimed(&self, claimed: Claimed) -> anyhow::Result<(Status, bool)> {
        let id = claimed.run_id.clone();
        // Claimed before: something of it may be recorded already by the worker that lost it.
        let existing = if claimed.claims > 1 {
            self.store.get_run(&id)?
        } else {
            None
        };
        let resumable = existing.as_ref().filter(|found| !found.steps.is_empty());
        Ok(match resumable {
            Some(found) if found.run.status != Status::Running => {
                // Its worker ended it but stopped before taking it off the queue.
                (found.run.status, false)
            }
            Some(found) => {
                // Lost by a worker that stopped: continue after its last committed step.
                let ws = self
                    .store
                    .registry()?
                    .workspace_for(&found.run.instance, Some(found.run.integration_version))?;
                let mut interrupted = found.run.clone();
                interrupted.status = Status::Interrupted;
                self.store.put_run(&interrupted)?;
                (self.runner.resume(&ws, &id).await?.run.status, true)
            }
            None => {
                let ws = self.workspace(&claimed.instance)?;
                let trigger = claimed.request["trigger"].clone();
                let mut prepared = self
                    .runner
                    .prepare(RunRequest {
                        workspace: &ws,
                        instance: &claimed.instance,
                        flow: Some(&claimed.flow),
                        trigger,
                    })?
                    .with_id(id.clone())
                    .queued_for(claimed.waited);
                if let Some(step) = claimed.request["answer"].as_str() {
                    prepared = prepared.answering(step);
                }
                (
                    self.runner.run_prepared(&ws, prepared).await?.run.status,
                    true,
                )
            }
        })
    }
}

type Ended = Result<(String, anyhow::Result<Status>), tokio::task::JoinError>;

/// Counts a run's task that ended (one stopped by [`abandon`] is already gone from `running`).
fn ended(
    done: Ended,
    running: &mut HashMap<String, tokio::task::AbortHandle>,
    finished: &mut usize,
) {
    if let Ok((id, outcome)) = done {
        running.remove(&id);
        *finished += 1;
        if let Err(e) = outcome {
            tracing::error!(run_id = %id, "the run could not be run: {e:#}");
        }
    }
}

/// Stops the task of run `id`, which this worker no longer holds.
fn abandon(running: &mut HashMap<String, tokio::task::AbortHandle>, id: &str) {
    if let Some(task) = running.remove(id) {
        tracing::warn!(
            run_id = %id,
            "the run was taken over by another worker (this one held it past its lease); abandoned here"
        );
        task.abort();
        metrics::run_abandoned();
    }
}
