//! Wake-ups by `LISTEN`/`NOTIFY`: workers learn at once that a run was queued, front ends that
//! a run they wait for ended.
//!
//! One connection per process listens on two channels, once something asks for wake-ups:
//! - `weft_queue`: a run was queued (payload empty), or a slot of a concurrency-limited flow
//!   may have opened (payload `gated`: such a run was queued or ended);
//! - `weft_done`: the run whose id is the payload ended and left the queue (its records are
//!   committed before).
//!
//! A notification can be lost (the connection drops, the server restarts): every consumer
//! also looks on its own now and then, so a lost one only delays. After (re)connecting, the
//! listener wakes everyone once, since what was sent while it was not listening is gone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio_postgres::AsyncMessage;

/// What was announced on `weft_queue`, as counters: a consumer compares them with what it saw
/// last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Queued {
    /// Announcements of any kind.
    pub any: u64,
    /// Announcements that a concurrency-limited flow may have room.
    pub gated: u64,
}

/// The id [`Signals::ended`] carries when any waited-for run may have ended (after the
/// listener reconnected): every waiter looks at its run.
pub const ANY_RUN: &str = "";

/// Where the notifications go.
#[derive(Debug)]
pub(super) struct Signals {
    pub queued: watch::Sender<Queued>,
    pub ended: broadcast::Sender<String>,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            queued: watch::Sender::new(Queued::default()),
            ended: broadcast::Sender::new(1024),
        }
    }
}

impl Signals {
    fn queued(&self, gated: bool) {
        self.queued.send_modify(|q| {
            q.any += 1;
            if gated {
                q.gated += 1;
            }
        });
    }

    /// Everyone looks again: notifications may have been missed.
    fn everything(&self) {
        self.queued(true);
        let _ = self.ended.send(ANY_RUN.to_string());
    }
}

/// Listens for as long as the store's runtime runs, connecting again after a pause when the
/// connection is lost.
pub(super) async fn listen(config: tokio_postgres::Config, shown: String, signals: Arc<Signals>) {
    let mut pause = Duration::from_millis(100);
    loop {
        let outcome = session(&config, &signals).await;
        if let Err(e) = outcome {
            tracing::warn!(
                "stopped listening for queued and ended runs in `{shown}` ({e:#}); connecting again in {pause:?}, looking at the queue meanwhile"
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life: listens, and passes on what it hears until the connection ends.
async fn session(config: &tokio_postgres::Config, signals: &Signals) -> anyhow::Result<()> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (heard, mut inbox) = mpsc::unbounded_channel();
    // The connection hands notifications out as it is driven; it is driven by a task of its
    // own so that the client's LISTEN below can be answered.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if heard.send(n).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client
        .batch_execute("LISTEN weft_queue; LISTEN weft_done")
        .await?;
    signals.everything();
    while let Some(n) = inbox.recv().await {
        match n.channel() {
            "weft_queue" => signals.queued(n.payload() == "gated"),
            "weft_done" => {
                let _ = signals.ended.send(n.payload().to_string());
            }
            _ => {}
        }
    }
    drop(client);
    driver.await??;
    anyhow::bail!("the connection closed")
}
