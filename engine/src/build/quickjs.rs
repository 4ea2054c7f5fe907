//! Building JavaScript steps on QuickJS inside `weft` itself, with no Node.js.
//!
//! `plugins/quickjs-runtime` is QuickJS (through rquickjs) and the `weft:step` bindings in one
//! statically linked component, built into `weft` once per set of optional imports. A step is
//! built by pre-initializing the runtime with the step's modules ([`super::snapshot`]): every
//! execution starts from that snapshot with the modules already evaluated. Being one module,
//! its function table can be initialized lazily by wasmtime, so an execution touches only the
//! functions it calls.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::plugin::builtin::QUICKJS_RUNTIMES;

/// The runtime's name, as run records and `weft build` report it.
pub const RUNTIME: &str = "weft QuickJS runtime (rquickjs 0.14, QuickJS-NG)";

/// The digest of every embedded runtime: part of the compile cache's key for JavaScript, so a
/// `weft` with another runtime rebuilds every step.
pub fn runtime_digest() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| {
        let mut digest = Sha256::new();
        for (_, bytes) in QUICKJS_RUNTIMES {
            digest.update(bytes);
        }
        hex::encode(digest.finalize())
    })
}

/// Builds the component for `modules` (name and source), entered at `entry`, importing
/// `config`, `log` and those of `http`, `s3` and `state` in `imports`. The error is the
/// runtime's report: an exception thrown while evaluating the modules, with its stack.
pub(super) fn componentize(
    modules: Vec<(String, String)>,
    entry: &str,
    imports: &[&str],
) -> Result<Vec<u8>, String> {
    let wanted = ["http", "s3", "state"].map(|interface| imports.contains(&interface));
    let runtime = QUICKJS_RUNTIMES
        .iter()
        .find(|(features, _)| *features == wanted)
        .map(|(_, bytes)| *bytes)
        .expect("engine/build.rs embeds a runtime for every combination");
    super::snapshot::snapshot(runtime, modules, entry)
}
