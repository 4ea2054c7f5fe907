//! Loading plugins and executing one step in a fresh sandbox.
//!
//! [`PluginHost`] owns the process's single [`wasmtime::Engine`] (pooling allocator, epoch
//! interruption driven by a ticker thread) and a linker with every host interface. Each plugin
//! is compiled once and pre-instantiated; each step execution gets a new [`Store`] and a new
//! instance, with its own time, memory and output limits.

pub mod builtin;
pub mod cache;
mod code;
mod fetch;
pub mod inspect;
pub mod policy;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use wire::{from_wit, to_wit};

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
};

use crate::host::bindings::{Step as StepBindings, StepPre};
use crate::host::config::ConfigVars;
use crate::host::http::{HttpClients, HttpContext, HttpHost};
use crate::host::s3::{S3Clients, S3Context, S3Host};
use crate::host::state::{StateHost, StateLocation};
use crate::host::{self, ErrorKind, MemoryLimitExceeded, StepData, Value};
use crate::store::StateWrite;
use cache::CacheCounters;
pub use cache::CompileCache;
use weft_model::limits::{Bytes, Human, StepLimits};
use weft_model::records::LogLine;
use weft_model::value::Val;
use weft_model::workspace::PluginSource;

/// Whether the machine has an active swap area (a line after the header of `/proc/swaps`);
/// when that cannot be read, it is taken to be on.
fn swap_is_on() -> bool {
    std::fs::read_to_string("/proc/swaps").map_or(cfg!(target_os = "linux"), |swaps| {
        swaps.lines().skip(1).any(|line| !line.trim().is_empty())
    })
}

/// How often the ticker thread advances the engine's epoch; the granularity of time limits.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings for a [`PluginHost`].
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// How many steps may execute at once; the instance pool is sized for this many.
    pub max_concurrent_steps: u32,
    /// Names the HTTP capability resolves to fixed addresses instead of asking DNS (the
    /// addresses are still checked against each plugin's grant).
    pub resolve: HashMap<String, Vec<std::net::IpAddr>>,
    /// Where compiled components are kept between processes; `None` compiles every time.
    pub compile_cache: Option<CompileCache>,
    /// Where plugins fetched from URLs are kept (as `SHA256.wasm`); `None` keeps them in
    /// memory only.
    pub download_dir: Option<std::path::PathBuf>,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            max_concurrent_steps: 128,
            resolve: HashMap::new(),
            compile_cache: None,
            download_dir: None,
        }
    }
}

/// A compiled, pre-instantiated plugin.
pub struct Plugin {
    /// The name steps use for it.
    pub name: String,
    /// Lower-case hex SHA-256 of the component bytes.
    pub sha256: String,
    /// The interfaces the component imports, as `package/interface@version`.
    pub imports: Vec<String>,
    /// For a code step, its source: its errors' places are moved into the file it is written in.
    code: Option<Arc<weft_model::code::CodeSource>>,
    pre: StepPre<StepData>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// What the compile cache did since the host started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Components compiled.
    pub compiled: u64,
    /// Components loaded from the cache without compiling.
    pub hits: u64,
    /// Cache entries refused (bad seal, damaged, incompatible) and rebuilt.
    pub rejected: u64,
    /// Code steps built from their source.
    pub code_built: u64,
    /// Code steps whose component was already built.
    pub code_reused: u64,
}

/// One step execution to perform.
#[derive(Debug)]
pub struct StepCall<'a> {
    /// The step's id, for messages.
    pub step_id: &'a str,
    /// Rendered inputs, in order.
    pub inputs: Vec<(String, Val)>,
    /// The instance's config vars.
    pub config: ConfigVars,
    /// The limits to enforce.
    pub limits: StepLimits,
    /// What the step may reach over HTTP; `None` when its plugin has no grant.
    pub http: Option<HttpContext>,
    /// What the step may do with S3; `None` when S3 is not available to it.
    pub s3: Option<S3Context>,
    /// Where the step's persisted state lives; `None` outside a run.
    pub state: Option<StateLocation>,
    /// How many steps of this plugin may execute at once, if its policy limits it.
    pub concurrency: Option<u32>,
}

/// What a step execution produced: its result and its log.
#[derive(Debug)]
pub struct StepOutcome {
    /// The result value, or why there is none.
    pub result: Result<Val, StepFailure>,
    /// The step's log, stdout and stderr included.
    pub logs: Vec<LogLine>,
    /// The state the step wrote; to be stored only if it succeeded.
    pub state_writes: Vec<StateWrite>,
    /// Whether the step may have changed something outside Weft: an HTTP request other than
    /// a safe one, or an object written. Its record is then made durable before the run goes
    /// on (see [`crate::store::Durability::Step`]).
    pub changed_outside: bool,
}

/// Why a step execution did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepFailure {
    /// The step returned a `step-error`.
    #[error("{message}")]
    Error {
        /// The kind the step gave.
        kind: ErrorKindName,
        /// The step's message.
        message: String,
        /// Whether the step said a retry might succeed.
        retryable: bool,
    },
    /// The step ran past its time limit.
    #[error("exceeded its {} time limit", Human(*.0))]
    TimeLimit(Duration),
    /// The step tried to grow its memory past its limit.
    #[error("exceeded its {} memory limit (it asked for {})", Bytes(*limit), Bytes(*requested))]
    MemoryLimit {
        /// The limit.
        limit: u64,
        /// What the step asked for.
        requested: u64,
    },
    /// The step's result was larger than its limit.
    #[error("returned {} of output, over its {} output limit", Bytes(*size), Bytes(*limit))]
    OutputLimit {
        /// The limit.
        limit: u64,
        /// The result's size.
        size: u64,
    },
    /// The step exhausted its stack (usually unbounded recursion).
    #[error("exhausted its stack (unbounded recursion?)")]
    StackOverflow,
    /// The step trapped for another reason, such as a panic.
    #[error("crashed: {0}")]
    Trap(String),
    /// The result could not be used.
    #[error("{0}")]
    BadOutput(String),
}

/// The kind of a step's own error, as written in run records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKindName {
    /// Bad input.
    InvalidInput,
    /// A capability was refused.
    Denied,
    /// An upstream service failed.
    Upstream,
    /// Something timed out.
    Timeout,
    /// A bug in the step.
    Internal,
}

impl From<ErrorKind> for ErrorKindName {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidInput => Self::InvalidInput,
            ErrorKind::Denied => Self::Denied,
            ErrorKind::Upstream => Self::Upstream,
            ErrorKind::Timeout => Self::Timeout,
            ErrorKind::Internal => Self::Internal,
        }
    }
}

/// A file's size and modification time, to notice that a plugin file changed.
type FileStamp = Option<(u64, Option<std::time::SystemTime>)>;

/// Plugins by (name, source), with the stamp of the file they were read from.
type LoadedPlugins = HashMap<(String, PluginSource), (FileStamp, Arc<Plugin>)>;

/// Stops the epoch ticker thread when the host is dropped.
struct Ticker(Arc<AtomicBool>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The engine, the linker and the loaded plugins. One per process.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<StepData>,
    /// Plugins already compiled, by SHA-256 of their bytes.
    compiled: Mutex<HashMap<String, Arc<Plugin>>>,
    /// Plugins by where they were loaded from, to skip reading and hashing them again.
    loaded: Mutex<LoadedPlugins>,
    permits: Semaphore,
    http: Arc<HttpClients>,
    s3: Arc<S3Clients>,
    cache: Option<CompileCache>,
    counters: CacheCounters,
    download_dir: Option<std::path::PathBuf>,
    /// Per-plugin concurrency limits, by plugin name and limit.
    plugin_permits: Mutex<HashMap<(String, u32), Arc<Semaphore>>>,
    _ticker: Ticker,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Creates the engine (pooling allocator, epoch interruption), the linker with every host
    /// interface, and the ticker thread.
    pub fn new(options: HostOptions) -> anyhow::Result<Self> {
        let slots = options.max_concurrent_steps.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 8)
            .total_stacks(slots)
            .max_memory_size(usize::try_from(StepLimits::MAX_MEMORY).unwrap_or(usize::MAX))
            // Reset only the pages a step dirtied and keep them mapped, so the next step in
            // the slot takes no page faults; without PAGEMAP_SCAN (Linux < 6.7) this memsets.
            // Not where swap is on: a dirty page the kernel swapped out is not reported present,
            // so it would not be reset and the next step in the slot could read it
            // (wasmtime#14357, open).
            .pagemap_scan(if swap_is_on() {
                Enabled::No
            } else {
                Enabled::Auto
            })
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .wasm_backtrace_max_frames(None)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wt(Engine::new(&config)).context("failed to create the wasmtime engine")?;

        let mut linker: Linker<StepData> = Linker::new(&engine);
        wt(wasmtime_wasi::p2::add_to_linker_async(&mut linker)).context("failed to link WASI")?;
        host::config::add_to_linker(&mut linker, |s| &mut s.config)?;
        host::log::add_to_linker(&mut linker, |s| &mut s.log)?;
        host::http::add_to_linker(&mut linker, |s| &mut s.http)?;
        host::s3::add_to_linker(&mut linker, |s| &mut s.s3)?;
        host::state::add_to_linker(&mut linker, |s| &mut s.state)?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let ticker_stop = stop.clone();
        thread::Builder::new()
            .name("weft-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .context("failed to start the epoch ticker thread")?;

        Ok(Self {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashMap::new()),
            permits: Semaphore::new(slots as usize),
            http: Arc::new(HttpClients::with_overrides(options.resolve.clone())),
            s3: Arc::new(S3Clients::with_overrides(options.resolve.clone())),
            cache: options.compile_cache,
            download_dir: options.download_dir,
            counters: CacheCounters::default(),
            plugin_permits: Mutex::default(),
            _ticker: Ticker(stop),
        })
    }

    /// Loads plugin `name` from `source`: reads, compiles and pre-instantiates it. A plugin
    /// loaded before from the same source (and, for a file, the same size and modification
    /// time) is returned without reading it again.
    pub fn load(&self, name: &str, source: &PluginSource) -> anyhow::Result<Arc<Plugin>> {
        let stamp = match source {
            PluginSource::Builtin(_) | PluginSource::Url { .. } | PluginSource::Code(_) => None,
            PluginSource::File(path) => std::fs::metadata(path)
                .ok()
                .map(|m| (m.len(), m.modified().ok())),
        };
        let key = (name.to_string(), source.clone());
        if let Some((seen, plugin)) = self.lock_loaded().get(&key)
            && *seen == stamp
        {
            return Ok(plugin.clone());
        }
        let bytes: std::borrow::Cow<'static, [u8]> = match source {
            PluginSource::Builtin(builtin) => builtin::get(builtin)
                .with_context(|| format!("there is no built-in plugin `{builtin}`"))?
                .into(),
            PluginSource::File(path) => std::fs::read(path)
                .with_context(|| {
                    format!("failed to read plugin `{name}` from `{}`", path.display())
                })?
                .into(),
            PluginSource::Url { url, sha256 } => self
                .fetch(url, sha256)
                .with_context(|| format!("failed to fetch plugin `{name}` from `{url}`"))?
                .into(),
            PluginSource::Code(source) => {
                code::component(source, self.cache.as_ref(), &self.counters)?.into()
            }
        };
        let code = match source {
            PluginSource::Code(code) => Some(code.clone()),
            _ => None,
        };
        let plugin = self.load_component(name, &bytes, code).with_context(|| {
            format!(
                "failed to load plugin `{name}` (sha256 {}) from `{source}`",
                hex::encode(Sha256::digest(&bytes))
            )
        })?;
        self.lock_loaded().insert(key, (stamp, plugin.clone()));
        Ok(plugin)
    }

    /// Compiles and pre-instantiates a component from its bytes.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> anyhow::Result<Arc<Plugin>> {
        self.load_component(name, bytes, None)
    }

    fn load_component(
        &self,
        name: &str,
        bytes: &[u8],
        code: Option<Arc<weft_model::code::CodeSource>>,
    ) -> anyhow::Result<Arc<Plugin>> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        // A code step moved within its file keeps its component but not its places.
        let origin = code.as_ref().map(|c| &c.origin);
        let key = format!("{name}\0{sha256}\0{origin:?}");
        if let Some(plugin) = self.lock_compiled().get(&key) {
            return Ok(plugin.clone());
        }
        let cached = self
            .cache
            .as_ref()
            .and_then(|cache| cache.load(&self.engine, &sha256, &self.counters));
        let component = match cached {
            Some(component) => component,
            None => {
                let component = wt(Component::new(&self.engine, bytes))
                    .context("not a valid WebAssembly component")?;
                self.counters.compiled.fetch_add(1, Ordering::Relaxed);
                if let Some(cache) = &self.cache {
                    cache.store(&self.engine, &sha256, &component);
                }
                component
            }
        };
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        for import in &imports {
            policy::check_version(import)?;
        }
        let instance_pre = wt(self.linker.instantiate_pre(&component))
            .context("the component imports something the host does not provide")?;
        let pre = wt(StepPre::new(instance_pre))
            .context("the component does not export the `weft:step/step` world's `run`")?;
        let plugin = Arc::new(Plugin {
            name: name.to_string(),
            sha256,
            imports,
            code,
            pre,
        });
        self.lock_compiled().insert(key, plugin.clone());
        Ok(plugin)
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, LoadedPlugins> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_compiled(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Plugin>>> {
        // A panic while holding the lock cannot leave the map half-updated.
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many components were compiled, loaded from the compile cache, and refused by it.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.counters.compiled.load(Ordering::Relaxed),
            hits: self.counters.hits.load(Ordering::Relaxed),
            rejected: self.counters.rejected.load(Ordering::Relaxed),
            code_built: self.counters.code_built.load(Ordering::Relaxed),
            code_reused: self.counters.code_reused.load(Ordering::Relaxed),
        }
    }

    /// The HTTP clients steps share.
    pub fn http_clients(&self) -> &Arc<HttpClients> {
        &self.http
    }

    /// The S3 clients steps share.
    pub fn s3_clients(&self) -> &Arc<S3Clients> {
        &self.s3
    }

    /// Executes one step in a fresh store and instance, enforcing its limits.
    pub async fn execute(&self, plugin: &Plugin, call: StepCall<'_>) -> StepOutcome {
        let plugin_semaphore = call.concurrency.map(|n| {
            self.plugin_permits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((plugin.name.clone(), n))
                .or_insert_with(|| Arc::new(Semaphore::new(n as usize)))
                .clone()
        });
        let _plugin_permit = match &plugin_semaphore {
            Some(s) => Some(s.acquire().await),
            None => None,
        };
        let _permit = self.permits.acquire().await;
        let limits = call.limits;
        let deadline = std::time::Instant::now() + limits.time;
        let http = HttpHost::new(call.http, deadline);
        let s3 = S3Host::new(call.s3, deadline);
        let mut store = Store::new(
            &self.engine,
            StepData::new(
                call.config,
                http,
                s3,
                StateHost::new(call.state),
                limits.memory,
            ),
        );
        store.limiter(|s| &mut s.limiter);
        let ticks = limits.time.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64;
        store.set_epoch_deadline(ticks.max(1));
        store.epoch_deadline_trap();

        let inputs: Vec<(String, Value)> = call
            .inputs
            .into_iter()
            .map(|(k, v)| (k, to_wit(v)))
            .collect();
        let run = async {
            let bindings: StepBindings = plugin.pre.instantiate_async(&mut store).await?;
            bindings.call_run(&mut store, &inputs).await
        };
        let outcome = tokio::time::timeout(limits.time, run).await;
        drop(inputs);

        let result = match outcome {
            Err(_elapsed) => Err(StepFailure::TimeLimit(limits.time)),
            Ok(Err(error)) => Err(classify_trap(&error, store.data(), limits)),
            Ok(Ok(Err(e))) => Err(StepFailure::Error {
                kind: e.kind.into(),
                message: match &plugin.code {
                    Some(code) => code::step_message(code, &e.message),
                    None => e.message,
                },
                retryable: e.retryable,
            }),
            Ok(Ok(Ok(value))) => from_wit(value, limits.output),
        };
        let state = store.data_mut();
        state.take_stdio();
        let logs = std::mem::take(&mut state.log).finish();
        let state_writes = if result.is_ok() {
            state.state.take_writes()
        } else {
            Vec::new()
        };
        StepOutcome {
            result,
            logs,
            state_writes,
            changed_outside: state.http.changed_outside() || state.s3.changed_outside(),
        }
    }
}

/// Converts wasmtime's error type so that `anyhow::Context` applies.
fn wt<T>(result: wasmtime::Result<T>) -> anyhow::Result<T> {
    result.map_err(anyhow::Error::from)
}

fn classify_trap(error: &wasmtime::Error, state: &StepData, limits: StepLimits) -> StepFailure {
    if let Some(desired) = state.limiter.exceeded {
        return StepFailure::MemoryLimit {
            limit: limits.memory,
            requested: desired as u64,
        };
    }
    if error.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return StepFailure::MemoryLimit {
            limit: limits.memory,
            requested: limits.memory,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => StepFailure::TimeLimit(limits.time),
        Some(Trap::StackOverflow) => StepFailure::StackOverflow,
        Some(trap) => StepFailure::Trap(trap.to_string()),
        None => StepFailure::Trap(format!("{error:#}")),
    }
}
