//! What a component file is, without running it: for `weft plugins inspect` and `add`.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::policy::weft_interface;

/// What a component file is.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The interfaces it imports.
    pub imports: Vec<String>,
    /// What it exports.
    pub exports: Vec<String>,
    /// The `weft:step` version it was built against, if it imports or exports any of it.
    pub weft_version: Option<String>,
    /// Whether it exports the step world's `run`.
    pub exports_run: bool,
    /// The policy lines its imports need (`http`, `s3`, `state`).
    pub needs: Vec<String>,
}

/// Reads a component's imports and exports (it is compiled, never run).
pub fn inspect(bytes: &[u8]) -> anyhow::Result<Inspection> {
    let engine = wasmtime::Engine::new(&wasmtime::Config::new()).map_err(anyhow::Error::from)?;
    let component = wasmtime::component::Component::new(&engine, bytes)
        .map_err(anyhow::Error::from)
        .map_err(|e| e.context("not a valid WebAssembly component"))?;
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_string()).collect();
    let weft_version = imports
        .iter()
        .find_map(|i| weft_interface(i))
        .map(|(_, version)| version.to_string());
    let needs = imports
        .iter()
        .filter_map(|i| weft_interface(i))
        .filter(|(interface, _)| matches!(*interface, "http" | "s3" | "state"))
        .map(|(interface, _)| interface.to_string())
        .collect();
    Ok(Inspection {
        sha256: hex::encode(Sha256::digest(bytes)),
        size: bytes.len() as u64,
        exports_run: exports.iter().any(|e| e == "run"),
        imports,
        exports,
        weft_version,
        needs,
    })
}
