//! What operators see of a running engine: metrics in the Prometheus text format
//! ([`metrics`]) and structured logs through `tracing` ([`logs`]).
//!
//! Both are process-global and both are optional: a program that installs neither (a library
//! user, a test) runs exactly the same, the recording calls being no-ops then. `weft serve`
//! installs both when it starts.

pub mod logs;
pub mod metrics;
