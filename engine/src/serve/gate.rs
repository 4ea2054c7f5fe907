//! Concurrency per flow and instance: parallel, throttled to N, or FIFO, with a bounded queue.
//!
//! A [`Gate`] hands out [`Pass`]es: at most `limit` at once, the rest wait in a queue of at most
//! `queue` in arrival order (a caller beyond that is refused, which the server answers with
//! 429). A pass dropped hands itself to the next waiter directly, so the order is exactly the
//! order in which tickets were taken, whatever order the tasks happen to be polled in.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use weft_model::spec::{ConcurrencyMode, ConcurrencySpec};

/// The queue depth when a flow sets none.
pub const DEFAULT_QUEUE: u32 = 1000;

/// The admission control of one flow of one instance.
#[derive(Debug)]
pub struct Gate {
    limit: usize,
    queue: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    /// Each waiter with when it came, for the age of the oldest (`/metrics`).
    waiting: VecDeque<(Instant, oneshot::Sender<Pass>)>,
}

/// The right to run; dropping it lets the next waiter in.
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
}

/// A place in the gate, taken when the request arrives: either a pass at once or a place in
/// the queue.
#[derive(Debug)]
pub enum Ticket {
    /// The flow has no limit.
    Free,
    /// In at once.
    Go(Pass),
    /// Queued; resolves to a pass in arrival order.
    Wait(oneshot::Receiver<Pass>),
}

/// The queue was full.
#[derive(Debug)]
pub struct QueueFull {
    /// How many were waiting.
    pub waiting: usize,
}

/// What a flow's concurrency setting allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Runs at once (1 for FIFO).
    pub limit: u32,
    /// Runs waiting for their turn at most.
    pub queue: u32,
}

impl Limits {
    /// The limits of `spec`; `None` for a parallel flow.
    pub fn of(spec: Option<&ConcurrencySpec>) -> Option<Self> {
        let spec = spec?;
        let limit = match spec.mode {
            ConcurrencyMode::Parallel => return None,
            ConcurrencyMode::Fifo => 1,
            ConcurrencyMode::Throttled => spec.limit.unwrap_or(1).max(1),
        };
        Some(Self {
            limit,
            queue: spec.queue.unwrap_or(DEFAULT_QUEUE),
        })
    }
}

impl Gate {
    /// The gate for `spec`; `None` for a parallel flow (no gate at all).
    pub fn new(spec: Option<&ConcurrencySpec>) -> Option<Arc<Self>> {
        let Limits { limit, queue } = Limits::of(spec)?;
        Some(Arc::new(Self {
            limit: limit as usize,
            queue: queue as usize,
            state: Mutex::new(State::default()),
        }))
    }

    /// Takes a ticket: in at once if fewer than `limit` runs go, else a place in the queue.
    pub fn ticket(self: &Arc<Self>) -> Result<Ticket, QueueFull> {
        let mut state = self
            .state
            .lock()
            .expect("the gate's lock is never poisoned");
        if state.running < self.limit && state.waiting.is_empty() {
            state.running += 1;
            return Ok(Ticket::Go(Pass { gate: self.clone() }));
        }
        if state.waiting.len() >= self.queue {
            return Err(QueueFull {
                waiting: state.waiting.len(),
            });
        }
        let (tx, rx) = oneshot::channel();
        state.waiting.push_back((Instant::now(), tx));
        Ok(Ticket::Wait(rx))
    }

    /// How many runs wait for their turn, and how long the oldest of them has waited (zero
    /// when none does). A waiter that gave up is not counted, though it keeps its place until
    /// its turn comes and passes.
    pub fn queue(&self) -> (usize, Duration) {
        let state = self
            .state
            .lock()
            .expect("the gate's lock is never poisoned");
        let mut waiting = state.waiting.iter().filter(|(_, tx)| !tx.is_closed());
        match waiting.next() {
            None => (0, Duration::ZERO),
            Some((since, _)) => (1 + waiting.count(), since.elapsed()),
        }
    }

    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut state = self
                    .state
                    .lock()
                    .expect("the gate's lock is never poisoned");
                match state.waiting.pop_front() {
                    Some((_, next)) => next,
                    None => {
                        state.running -= 1;
                        return;
                    }
                }
            };
            match next.send(Pass { gate: self.clone() }) {
                Ok(()) => return,
                // That waiter went away; the pass goes to the one after it (without running
                // this function again from the pass's own drop).
                Err(pass) => std::mem::forget(pass),
            }
        }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.gate.release();
    }
}

impl Ticket {
    /// Waits for the turn; `None` for a flow without a gate.
    pub async fn wait(self) -> Option<Pass> {
        match self {
            Ticket::Free => None,
            Ticket::Go(pass) => Some(pass),
            // The sender is only dropped with a pass sent or with the gate gone.
            Ticket::Wait(rx) => rx.await.ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: ConcurrencyMode, limit: Option<u32>, queue: Option<u32>) -> ConcurrencySpec {
        ConcurrencySpec { mode, limit, queue }
    }

    #[tokio::test]
    async fn fifo_lets_one_in_at_a_time_in_arrival_order_and_refuses_past_the_queue() {
        let gate = Gate::new(Some(&spec(ConcurrencyMode::Fifo, None, Some(2)))).unwrap();
        let first = gate.ticket().unwrap().wait().await.unwrap();
        let second = gate.ticket().unwrap();
        let third = gate.ticket().unwrap();
        assert_eq!(gate.ticket().unwrap_err().waiting, 2);
        // Waiting in the queue: the third cannot overtake the second.
        drop(first);
        let second = second.wait().await.unwrap();
        let mut third = Box::pin(third.wait());
        assert!(futures_poll_once(&mut third).is_none());
        drop(second);
        assert!(third.await.is_some());
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_passes_its_turn_on() {
        let gate = Gate::new(Some(&spec(ConcurrencyMode::Throttled, Some(1), None))).unwrap();
        let first = gate.ticket().unwrap().wait().await.unwrap();
        let gone = gate.ticket().unwrap();
        let next = gate.ticket().unwrap();
        drop(gone);
        drop(first);
        assert!(next.wait().await.is_some());
        // And with everyone done, the gate is empty again.
        assert!(matches!(gate.ticket().unwrap(), Ticket::Go(_)));
    }

    #[tokio::test]
    async fn the_queue_counts_the_waiters_still_there_and_ages_the_oldest() {
        let gate = Gate::new(Some(&spec(ConcurrencyMode::Fifo, None, None))).unwrap();
        assert_eq!(gate.queue(), (0, Duration::ZERO));
        let first = gate.ticket().unwrap().wait().await.unwrap();
        assert_eq!(
            gate.queue(),
            (0, Duration::ZERO),
            "the run going does not wait"
        );
        let gone = gate.ticket().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let next = gate.ticket().unwrap();
        let (depth, oldest) = gate.queue();
        assert_eq!(depth, 2);
        assert!(oldest >= Duration::from_millis(200), "{oldest:?}");
        // A waiter that gave up is no longer counted, nor is its age.
        drop(gone);
        let (depth, younger) = gate.queue();
        assert_eq!(depth, 1);
        assert!(younger < oldest, "{younger:?} after {oldest:?}");
        drop(first);
        let _pass = next.wait().await.unwrap();
        assert_eq!(gate.queue(), (0, Duration::ZERO));
    }

    #[test]
    fn parallel_has_no_gate() {
        assert!(Gate::new(Some(&spec(ConcurrencyMode::Parallel, None, None))).is_none());
        assert!(Gate::new(None).is_none());
    }

    fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
