//! The store on PostgreSQL: one database shared by any number of `weft` processes.
//!
//! Tables (see `migrations/`): `weft_runs` and `weft_steps` (records, as the JSON Weft writes),
//! `weft_blobs` and `weft_blob_refs` (binary values and which runs refer to them),
//! `weft_state` (step state), `weft_kv` (the managed state, sealed credentials, keys, schedule
//! ticks and webhook tokens, as small key-value trees) and `weft_processes` (who is alive).
//!
//! Writes of records go behind ([`writer`]); reads wait for this process's queued writes, then
//! query ([`bridge`]). Processes wake each other through `LISTEN`/`NOTIFY` ([`listen`]). Each process heartbeats in `weft_processes`; a run left `running` by a
//! process that stopped heartbeating for [`PROCESS_TIMEOUT`] was interrupted.

mod bridge;
mod kv;
mod listen;
mod migrate;
mod payloads;
mod queue;
mod runs;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::mpsc::UnboundedSender;

use bridge::Bridge;
pub use kv::PgTree;
pub use listen::{ANY_RUN, Queued};
pub use migrate::{Migrated, SCHEMA_VERSION};
pub use payloads::Payloads;
pub use queue::{Claimed, Claims, QueueDepth, ends_claim};
use writer::Message;

/// How often a process says it is alive.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// How long a process may go without a heartbeat before its runs count as interrupted.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections per process: the writer's, and the reads running at once.
const POOL_SIZE: usize = 8;

/// The store on PostgreSQL. Cloning it shares the connections.
#[derive(Debug, Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The URL without its password, for messages.
    shown: String,
    /// This process's id in `weft_processes`, and the owner of the runs it writes.
    process: String,
    /// Where to connect, for the listening connection.
    config: tokio_postgres::Config,
    /// Where payloads too large for a row go, if anywhere.
    payloads: Option<Arc<Payloads>>,
    pool: Pool,
    writes: UnboundedSender<Message>,
    /// The runs this process claimed and has not finished, and whether it still holds each
    /// one's lease ([`queue`]).
    leases: std::sync::Mutex<std::collections::HashMap<String, bool>>,
    /// Runs whose records the fence refused.
    lost: tokio::sync::broadcast::Sender<String>,
    /// What the listening connection heard; it is started by the first who asks.
    signals: std::sync::OnceLock<Arc<listen::Signals>>,
    // Last, so the tasks it drives stop after everything above is dropped.
    bridge: Bridge,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`),
    /// brings its schema up to date and registers this process.
    pub fn connect(url: &str) -> anyhow::Result<Self> {
        let shown = without_password(url);
        let (url, payloads) = Payloads::from_url(url)?;
        let payloads = payloads.map(Arc::new);
        let config: tokio_postgres::Config = url
            .parse()
            .with_context(|| format!("`{shown}` is not a PostgreSQL connection URL"))?;
        let bridge = Bridge::start()?;
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(10)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .context("failed to set up the PostgreSQL connection pool")?;
        let process = uuid::Uuid::now_v7().to_string();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into());
        {
            let (pool, process, host) = (pool.clone(), process.clone(), host.clone());
            bridge
                .wait(async move {
                    let mut client = pool.get().await?;
                    migrate::migrate(&mut client).await?;
                    client
                        .execute(
                            "INSERT INTO weft_processes (id, host) VALUES ($1, $2)",
                            &[&process, &host],
                        )
                        .await?;
                    anyhow::Ok(())
                })?
                .with_context(|| {
                    format!(
                        "failed to open the store at `{shown}` (is PostgreSQL running there, and the database created?)"
                    )
                })?;
        }
        let (writes, inbox) = tokio::sync::mpsc::unbounded_channel();
        let (lost, _) = tokio::sync::broadcast::channel(256);
        bridge.handle().spawn(writer::write_behind(
            pool.clone(),
            process.clone(),
            inbox,
            lost.clone(),
            payloads.clone(),
        ));
        bridge
            .handle()
            .spawn(heartbeat(pool.clone(), process.clone(), host));
        Ok(Self {
            inner: Arc::new(Inner {
                shown,
                process,
                config,
                payloads,
                pool,
                writes,
                leases: Default::default(),
                lost,
                signals: Default::default(),
                bridge,
            }),
        })
    }

    /// Brings the schema of the database at `url` up to date, and says from which version.
    pub fn migrate(url: &str) -> anyhow::Result<Migrated> {
        let shown = without_password(url);
        let bridge = Bridge::start()?;
        let (url, _) = payloads::split_url(url);
        bridge
            .wait(async move {
                let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .context("failed to connect")?;
                tokio::spawn(connection);
                migrate::migrate(&mut client).await
            })?
            .with_context(|| format!("failed to migrate the store at `{shown}`"))
    }

    /// The database's URL without its password.
    pub fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// This process's id among the processes sharing the database.
    pub fn process(&self) -> &str {
        &self.inner.process
    }

    /// Runs this process held by a lease whose records were refused because it no longer
    /// held them: the worker running one abandons it.
    pub fn lost_runs(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.inner.lost.subscribe()
    }

    /// The announcements of queued runs (and of room in concurrency-limited flows); the first
    /// call starts listening.
    pub fn queued(&self) -> tokio::sync::watch::Receiver<Queued> {
        self.signals().queued.subscribe()
    }

    /// The ids of runs that ended and left the queue ([`ANY_RUN`] when any may have); the
    /// first call starts listening.
    pub fn ended_runs(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.signals().ended.subscribe()
    }

    fn signals(&self) -> &listen::Signals {
        self.inner.signals.get_or_init(|| {
            let signals = Arc::new(listen::Signals::default());
            self.inner.bridge.handle().spawn(listen::listen(
                self.inner.config.clone(),
                self.inner.shown.clone(),
                signals.clone(),
            ));
            signals
        })
    }

    /// Runs `query` with a pooled connection on the store's runtime and waits for it.
    fn query<T: Send + 'static, F>(
        &self,
        what: &str,
        query: impl FnOnce(deadpool_postgres::Object) -> F + Send + 'static,
    ) -> anyhow::Result<T>
    where
        F: std::future::Future<Output = anyhow::Result<T>> + Send,
    {
        let pool = self.inner.pool.clone();
        self.inner
            .bridge
            .wait(async move { query(pool.get().await?).await })?
            .with_context(|| format!("failed to {what} in `{}`", self.inner.shown))
    }

    fn send(&self, message: Message) -> anyhow::Result<()> {
        self.inner
            .writes
            .send(message)
            .map_err(|_| anyhow::anyhow!("the PostgreSQL store's writer stopped"))
    }

    /// Waits until everything this process queued is committed.
    fn settle(&self) -> anyhow::Result<()> {
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        self.send(Message::Flush(done))?;
        self.wait_for(answer)
            .map_err(|_| anyhow::anyhow!("the PostgreSQL store's writer stopped"))?
            .map_err(anyhow::Error::msg)
    }

    /// Waits for the writer's `answer` on this thread (moving a runtime's other tasks off it);
    /// `Err` when the writer dropped it unanswered.
    fn wait_for<T>(
        &self,
        answer: std::sync::mpsc::Receiver<T>,
    ) -> Result<T, std::sync::mpsc::RecvError> {
        let receive = || answer.recv();
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(receive)
            }
            _ => receive(),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Commit what is queued, then leave: records written behind must not be lost when a
        // command ends, and the process row would otherwise linger until it times out.
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        if self.writes.send(Message::Flush(done)).is_ok() {
            let wait = || answer.recv_timeout(Duration::from_secs(30));
            let flushed = match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(wait)
                }
                _ => wait(),
            };
            if let Ok(Err(e)) = flushed {
                tracing::error!("{e}");
            }
        }
        let (pool, process) = (self.pool.clone(), self.process.clone());
        let _ = self.bridge.wait(async move {
            if let Ok(client) = pool.get().await {
                let _ = client
                    .execute("DELETE FROM weft_processes WHERE id = $1", &[&process])
                    .await;
            }
        });
    }
}

/// Says every [`HEARTBEAT_EVERY`] that process `process` is alive (putting its row back if
/// something removed it).
async fn heartbeat(pool: Pool, process: String, host: String) {
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let beat = async {
            pool.get()
                .await?
                .execute(
                    "INSERT INTO weft_processes (id, host) VALUES ($1, $2) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
                    &[&process, &host],
                )
                .await?;
            anyhow::Ok(())
        };
        if let Err(e) = beat.await {
            tracing::warn!("failed to record that this process is alive in PostgreSQL: {e:#}");
        }
    }
}

/// `url` with its password, if any, replaced by `***`.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        // Not a URL (a key=value string): show no part of it that could hold a password.
        Err(_) => "the configured PostgreSQL database".into(),
    }
}
