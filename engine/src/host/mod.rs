//! The host side of the `weft:step` world: one module per interface, and the per-step state
//! that a fresh [`wasmtime::Store`] holds for exactly one step execution.

pub mod config;
pub mod http;
pub mod log;
pub mod s3;
pub mod state;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bindings generated from `wit/`, the single source of truth for the contract.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "step",
        path: "../wit",
        imports: { "weft:step/http.send": async, "weft:step/s3.put-object": async },
        exports: { default: async },
    });
}

pub use bindings::weft::step::types::{Blob, ErrorKind, StepError, Value};

/// How much a step may write to stdout or stderr; the rest is dropped.
const STDIO_CAPTURE: usize = 64 << 10;

/// Everything a step's [`wasmtime::Store`] holds. A new one is made for every execution, so
/// nothing a step leaves behind reaches the next one.
pub struct StepData {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The instance's config vars, read through `weft:step/config`.
    pub config: config::ConfigVars,
    /// What the step logged through `weft:step/log`.
    pub log: log::StepLog,
    /// Outbound HTTP through `weft:step/http`.
    pub http: http::HttpHost,
    /// Object writes through `weft:step/s3`.
    pub s3: s3::S3Host,
    /// Persisted key-value state through `weft:step/state`.
    pub state: state::StateHost,
    pub(crate) limiter: StepLimiter,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl std::fmt::Debug for StepData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepData")
            .field("config", &self.config)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl StepData {
    /// State for one execution: no files, no network, no environment, stdio captured.
    pub fn new(
        config: config::ConfigVars,
        http: http::HttpHost,
        s3: s3::S3Host,
        state: state::StateHost,
        memory_limit: u64,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(STDIO_CAPTURE);
        let stderr = MemoryOutputPipe::new(STDIO_CAPTURE);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            config,
            log: log::StepLog::default(),
            http,
            s3,
            state,
            limiter: StepLimiter {
                memory: usize::try_from(memory_limit).unwrap_or(usize::MAX),
                exceeded: None,
            },
            stdout,
            stderr,
        }
    }

    /// What the step wrote to stdout and stderr, as log lines.
    pub fn take_stdio(&mut self) {
        for (pipe, name) in [(&self.stdout, "stdout"), (&self.stderr, "stderr")] {
            let bytes = pipe.contents();
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                self.log.push_stdio(name, line);
            }
        }
    }
}

impl WasiView for StepData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The error a step traps with when it tries to grow memory past its limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: tried to grow linear memory to {desired} bytes")]
pub struct MemoryLimitExceeded {
    /// The size the step asked for.
    pub desired: usize,
}

/// Enforces the step's memory limit and remembers that it tripped, so the failure can name it.
#[derive(Debug)]
pub(crate) struct StepLimiter {
    memory: usize,
    pub(crate) exceeded: Option<usize>,
}

impl ResourceLimiter for StepLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        if desired > self.memory {
            self.exceeded = Some(desired);
            return Err(MemoryLimitExceeded { desired }.into());
        }
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        // Tables hold function references; a million entries is far past any real step.
        Ok(desired <= 1_000_000 && maximum.is_none_or(|max| desired <= max))
    }
}
