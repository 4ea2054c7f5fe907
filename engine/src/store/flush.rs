//! Group commit: one flush of the store makes the records of every run waiting for it durable.
//!
//! A flush writes and syncs the store's log, which takes a disk round trip (a millisecond or
//! more). When every run flushed for itself, runs queued behind each other's flushes, and each
//! flush held a thread of the async runtime while it waited for the disk. Here a run asks for a
//! flush and awaits it; one blocking task flushes for everyone who asked before it started,
//! then again for those who asked meanwhile, until nobody is waiting.
//!
//! When the cores, not the disk, are what runs wait for, flushing as soon as one run asks
//! makes each flush cover a run or two, and the flushes' own cost (a write, a sync, the
//! threads woken) takes the cores from the runs. So a flush waits, at most [`GATHER`], for the
//! runs in progress ([`GroupFlush::enter`]) that have not asked yet: it starts as soon as every
//! run in progress is waiting for it. A run alone is flushed at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::RunStore;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Flushes a store on behalf of many callers at once.
pub struct GroupFlush {
    /// Weak, so that the flushing task never keeps the store open (sled locks its directory
    /// while open) after the last of its users dropped it.
    store: Weak<dyn RunStore>,
    shared: Arc<Shared>,
}

/// The longest a flush waits for runs in progress to ask for it.
pub const GATHER: Duration = Duration::from_micros(500);

struct Shared {
    /// How long a flush waits at most for the runs in progress to ask ([`GATHER`]).
    gather: Duration,
    pending: Mutex<Pending>,
    /// Signalled when the last run in progress asks for the flush being gathered.
    all_waiting: Condvar,
    /// Runs in progress ([`GroupFlush::enter`]).
    active: AtomicUsize,
}

#[derive(Default)]
struct Pending {
    /// Whether a blocking task is flushing (it takes the waiters when it starts a flush).
    flushing: bool,
    /// Whether that task is waiting for more runs to ask before it flushes.
    gathering: bool,
    waiters: Vec<Waiter>,
}

/// A run in progress, counted until dropped.
pub struct InProgress(Arc<Shared>);

impl std::fmt::Debug for InProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProgress").finish_non_exhaustive()
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        // One fewer to wait for: the gathering flush may be complete now.
        let pending = lock(&self.0.pending);
        if pending.gathering && pending.waiters.len() >= self.0.active.load(Ordering::SeqCst) {
            self.0.all_waiting.notify_one();
        }
    }
}

impl std::fmt::Debug for GroupFlush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupFlush").finish_non_exhaustive()
    }
}

impl GroupFlush {
    /// Flushes `store` for its callers.
    pub fn new(store: &Arc<dyn RunStore>) -> Self {
        Self::gathering_for(store, GATHER)
    }

    fn gathering_for(store: &Arc<dyn RunStore>, gather: Duration) -> Self {
        Self {
            store: Arc::downgrade(store),
            shared: Arc::new(Shared {
                gather,
                pending: Mutex::default(),
                all_waiting: Condvar::new(),
                active: AtomicUsize::new(0),
            }),
        }
    }

    /// Counts a run in progress until the guard is dropped: a flush waits (briefly) for the
    /// runs in progress to ask for it too.
    pub fn enter(&self) -> InProgress {
        self.shared.active.fetch_add(1, Ordering::SeqCst);
        InProgress(self.shared.clone())
    }

    /// Returns once everything the caller wrote before calling is durable: after a flush that
    /// started after the call. Must be called within a tokio runtime.
    pub async fn flush(&self) -> anyhow::Result<()> {
        let (done, wait) = oneshot::channel();
        let start = {
            let mut pending = lock(&self.shared.pending);
            pending.waiters.push(done);
            if pending.gathering
                && pending.waiters.len() >= self.shared.active.load(Ordering::SeqCst)
            {
                self.shared.all_waiting.notify_one();
            }
            !std::mem::replace(&mut pending.flushing, true)
        };
        if start {
            let store = self.store.clone();
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || flush_while_waited_for(&store, &shared));
        }
        match wait.await {
            Ok(result) => result.map_err(anyhow::Error::msg),
            // The blocking task ended without answering: the runtime is shutting down.
            Err(_) => Err(anyhow::anyhow!(
                "the store was not flushed: the engine is shutting down"
            )),
        }
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    // Nothing panics while holding the lock; a poisoned one still holds a consistent list.
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

fn flush_while_waited_for(store: &Weak<dyn RunStore>, shared: &Shared) {
    loop {
        let waiters = {
            let mut pending = lock(&shared.pending);
            if pending.waiters.is_empty() {
                pending.flushing = false;
                return;
            }
            // Wait for the runs in progress that have not asked yet, for at most `GATHER`.
            let deadline = Instant::now() + shared.gather;
            pending.gathering = true;
            while pending.waiters.len() < shared.active.load(Ordering::SeqCst) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                pending = shared
                    .all_waiting
                    .wait_timeout(pending, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            pending.gathering = false;
            std::mem::take(&mut pending.waiters)
        };
        // Everyone in `waiters` wrote before asking, so this flush covers their writes. They
        // hold the store while they wait, so it is still there.
        let result = match store.upgrade() {
            Some(store) => store.flush().map_err(|e| format!("{e:#}")),
            None => Err("the store was closed before it was flushed".to_string()),
        };
        for waiter in waiters {
            // A caller that stopped waiting (its task was cancelled) needs no answer.
            let _ = waiter.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::{DiscardStore, RunFilter, RunRecord, RunWithSteps, StateWrite, StepRecord};

    /// Counts flushes, each taking a few milliseconds like a disk's.
    #[derive(Default)]
    struct SlowStore {
        flushes: AtomicUsize,
    }

    impl RunStore for SlowStore {
        fn put_run(&self, run: &RunRecord) -> anyhow::Result<()> {
            DiscardStore.put_run(run)
        }
        fn commit_step(
            &self,
            run_id: &str,
            step: &StepRecord,
            blobs: &[(String, Vec<u8>)],
            state: &[StateWrite],
        ) -> anyhow::Result<()> {
            DiscardStore.commit_step(run_id, step, blobs, state)
        }
        fn get_run(&self, id: &str) -> anyhow::Result<Option<RunWithSteps>> {
            DiscardStore.get_run(id)
        }
        fn list_runs(&self, filter: &RunFilter) -> anyhow::Result<Vec<RunRecord>> {
            DiscardStore.list_runs(filter)
        }
        fn flush(&self) -> anyhow::Result<()> {
            std::thread::sleep(std::time::Duration::from_millis(5));
            self.flushes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_callers_share_few_flushes() {
        let store = Arc::new(SlowStore::default());
        let dyn_store: Arc<dyn RunStore> = store.clone();
        let group = Arc::new(GroupFlush::new(&dyn_store));
        let callers: Vec<_> = (0..64)
            .map(|_| {
                let group = group.clone();
                tokio::spawn(async move { group.flush().await })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        let flushes = store.flushes.load(Ordering::SeqCst);
        assert!(
            (1..=8).contains(&flushes),
            "64 callers at once should share a few flushes, not take {flushes}"
        );
        // A later caller gets a flush of its own.
        group.flush().await.unwrap();
        assert_eq!(store.flushes.load(Ordering::SeqCst), flushes + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_waits_for_every_run_in_progress_to_ask() {
        let store = Arc::new(SlowStore::default());
        let dyn_store: Arc<dyn RunStore> = store.clone();
        // A window far longer than the callers need, so the count below does not depend on
        // how fast this machine is today.
        let group = Arc::new(GroupFlush::gathering_for(
            &dyn_store,
            Duration::from_secs(30),
        ));
        let runs = 8;
        let callers: Vec<_> = (0..runs)
            .map(|i| {
                let group = group.clone();
                let in_progress = group.enter();
                tokio::spawn(async move {
                    // The runs ask one after another, while the first one's flush gathers.
                    tokio::time::sleep(Duration::from_millis(2 * i)).await;
                    let flushed = group.flush().await;
                    drop(in_progress);
                    flushed
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        assert_eq!(store.flushes.load(Ordering::SeqCst), 1, "one flush for all");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_does_not_wait_for_runs_that_end_without_asking() {
        let store = Arc::new(SlowStore::default());
        let dyn_store: Arc<dyn RunStore> = store.clone();
        let group = Arc::new(GroupFlush::gathering_for(
            &dyn_store,
            Duration::from_secs(30),
        ));
        let asking = group.enter();
        let other = group.enter();
        let flush = tokio::spawn({
            let group = group.clone();
            async move { group.flush().await }
        });
        // The other run ends without a flush: the one asking is all that is left to wait for.
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(other);
        tokio::time::timeout(Duration::from_secs(10), flush)
            .await
            .expect("the flush went ahead once the other run ended")
            .unwrap()
            .unwrap();
        drop(asking);
        assert_eq!(store.flushes.load(Ordering::SeqCst), 1);
    }
}
