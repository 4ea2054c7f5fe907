//! Weft's model: everything about an integration that can be known without running it.
//!
//! Layers, bottom to top; each module imports only the ones above it in this list:
//! - **core**: [`value`] (values between steps), [`limits`] (limits and units), [`redact`],
//!   [`auth`] (verifying apps' workspace JWTs and HMAC user hashes);
//! - **grants**: [`grants`] (HTTP and S3 grants, host patterns, the address policy);
//! - **model**: [`credential`] and [`spec`] (what the files say), [`template`], [`condition`]
//!   and [`control`] (flow control), [`manifest`]
//!   and [`builtin`] (what plugins declare), [`config`] (config var resolution), [`workspace`]
//!   (a validated workspace, built by the private `validate`), [`records`] (what a run
//!   leaves behind), [`trigger`] (what a webhook request becomes) and [`reply`] (what a step
//!   may answer it with).
//!
//! The crate has no runtime: no wasmtime, tokio, sled or AWS SDK. The engine (`weft`) runs
//! what this crate describes; what is here can be tested and fuzzed without it.

#![deny(missing_docs)]

pub mod auth;
pub mod limits;
pub mod redact;
pub mod value;

pub mod grants;

pub mod builtin;
pub mod code;
pub mod condition;
pub mod config;
pub mod control;
pub mod credential;
pub mod manifest;
pub mod records;
pub mod reply;
pub mod spec;
pub mod template;
pub mod trigger;
mod validate;
pub mod workspace;

pub use workspace::{Diagnostic, ValidationErrors, Workspace};
