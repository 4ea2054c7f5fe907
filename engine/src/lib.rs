//! Weft: an integration step engine.
//!
//! An integration is a set of flows; each flow is a list of steps; each step runs a plugin, a
//! WebAssembly component targeting the `weft:step` world, in a fresh sandbox that can reach
//! only what it was granted. Everything is driven by config files: a workspace file lists the
//! plugins, customers and instances, and integration files describe the flows.
//!
//! Load a workspace, then run a flow of one of its instances:
//!
//! ```
//! use std::sync::Arc;
//! use weft_model::workspace::Workspace;
//! use weft::plugin::{HostOptions, PluginHost};
//! use weft::runner::{RunRequest, Runner};
//! use weft::store::{SledStore, Status};
//!
//! # fn main() -> anyhow::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(dir.path().join("integration.toml"), r#"
//! # name = "avatar"
//! # [config_vars]
//! # customerName = { required = true }
//! # pokemonAvatar = { default = "pikachu" }
//! # [[flows]]
//! # name = "sync"
//! # [[flows.steps]]
//! # id = "path_helper"
//! # plugin = "path-helper"
//! # "#)?;
//! # std::fs::write(dir.path().join("weft.toml"), r#"
//! # integrations = ["integration.toml"]
//! # [[customers]]
//! # id = "ftl"
//! # name = "FTL Rockets"
//! # config = { customerName = "FTL Rockets", pokemonAvatar = "onix" }
//! # [[instances]]
//! # id = "ftl-avatar"
//! # customer = "ftl"
//! # integration = "avatar"
//! # "#)?;
//! # let path = dir.path().join("weft.toml");
//! let workspace = Workspace::load(&path)?;
//! let host = Arc::new(PluginHost::new(HostOptions::default())?);
//! let store = Arc::new(SledStore::open(&dir.path().join(".weft"))?);
//! let runner = Runner::new(host, store);
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! let run = rt.block_on(runner.run(RunRequest {
//!     workspace: &workspace,
//!     instance: "ftl-avatar",
//!     flow: None,
//!     trigger: serde_json::Value::Null,
//! }))?;
//! assert_eq!(run.run.status, Status::Succeeded);
//! assert_eq!(
//!     run.steps[0].output,
//!     Some(weft_model::value::RecordedValue::Json(serde_json::json!({
//!         "pokemonUrl": "https://pokeapi.co/api/v2/pokemon/onix",
//!         "s3ObjectPath": "FTL Rockets.png",
//!     })))
//! );
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub use weft_model as model;

pub use weft_model::auth;
pub mod build;
#[cfg(feature = "demo")]
pub mod demo;
pub mod host;
pub mod observe;
pub mod plugin;
pub mod runner;
pub mod secrets;
pub mod serve;
pub mod store;
pub mod worker;
