//! Group commit: one flush of the store makes the records of every run waiting for it durable.
//!
//! A flush writes and syncs the store's log, which takes a disk round trip (a millisecond or
//! more). When every run flushed for itself, runs queued behind each other's flushes, and each
//! flush held a thread of the async runtime while it waited for the disk. Here a run asks for a
//! flush and awaits it; one blocking task flushes for everyone who asked before it started,
//! then again for those who asked meanwhile, until nobody is waiting.

use std::sync::{Arc, Mutex, Weak};

use tokio::sync::oneshot;

use super::RunStore;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Flushes a store on behalf of many callers at once.
pub struct GroupFlush {
    /// Weak, so that the flushing task never keeps the store open (sled locks its directory
    /// while open) after the last of its users dropped it.
    store: Weak<dyn RunStore>,
    pending: Arc<Mutex<Pending>>,
}

#[derive(Default)]
struct Pending {
    /// Whether a blocking task is flushing (it takes the waiters when it starts a flush).
    flushing: bool,
    waiters: Vec<Waiter>,
}

impl std::fmt::Debug for GroupFlush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupFlush").finish_non_exhaustive()
    }
}

impl GroupFlush {
    /// Flushes `store` for its callers.
    pub fn new(store: &Arc<dyn RunStore>) -> Self {
        Self {
            store: Arc::downgrade(store),
            pending: Arc::default(),
        }
    }

    /// Returns once everything the caller wrote before calling is durable: after a flush that
    /// started after the call. Must be called within a tokio runtime.
    pub async fn flush(&self) -> anyhow::Result<()> {
        let (done, wait) = oneshot::channel();
        let start = {
            let mut pending = self.lock();
            pending.waiters.push(done);
            !std::mem::replace(&mut pending.flushing, true)
        };
        if start {
            let store = self.store.clone();
            let pending = self.pending.clone();
            tokio::task::spawn_blocking(move || flush_while_waited_for(&store, &pending));
        }
        match wait.await {
            Ok(result) => result.map_err(anyhow::Error::msg),
            // The blocking task ended without answering: the runtime is shutting down.
            Err(_) => Err(anyhow::anyhow!(
                "the store was not flushed: the engine is shutting down"
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        lock(&self.pending)
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    // Nothing panics while holding the lock; a poisoned one still holds a consistent list.
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

fn flush_while_waited_for(store: &Weak<dyn RunStore>, pending: &Mutex<Pending>) {
    loop {
        let waiters = {
            let mut pending = lock(pending);
            if pending.waiters.is_empty() {
                pending.flushing = false;
                return;
            }
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
}
