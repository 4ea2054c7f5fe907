//! The PostgreSQL store's own runtime, and the bridge from the store's synchronous contract to
//! it.
//!
//! The store's contract ([`crate::store::RunStore`] and the typed accessors) is synchronous: the
//! sled store answers from memory, and the engine's hot path (recording a step) must not wait
//! for a round trip. The PostgreSQL store keeps that contract by writing behind (writes are
//! queued and committed in batches by a task; a flush waits for the commit) and by running its
//! reads on a runtime of its own, which any thread can wait on: a runtime thread (the wait is
//! then marked with `block_in_place`, so the runtime moves its other tasks off that thread), a
//! plain thread, or one of a current-thread runtime.

use std::future::Future;

use anyhow::Context as _;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// A runtime with one worker thread that drives the store's connections and tasks.
pub(super) struct Bridge {
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

impl Bridge {
    /// Starts the runtime.
    pub(super) fn start() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weft-postgres")
            .enable_all()
            .build()
            .context("failed to start the PostgreSQL store's runtime")?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// The runtime's handle, to spawn the store's tasks on.
    pub(super) fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the bridge")
            .handle()
    }

    /// Runs `work` on the store's runtime and waits for it on the calling thread. Never call
    /// it from a task of the store's own runtime.
    pub(super) fn wait<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        self.handle().spawn(async move {
            // The caller waits for the answer; it cannot have gone.
            let _ = done.send(work.await);
        });
        let receive = || {
            answer
                .recv()
                .map_err(|_| anyhow::anyhow!("the PostgreSQL store's runtime stopped"))
        };
        match Handle::try_current() {
            Ok(caller) if caller.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(receive)
            }
            _ => receive(),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which a runtime thread may not do;
        // the store's tasks hold nothing that needs an orderly end (its writes were flushed
        // by whoever needed them durable).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
