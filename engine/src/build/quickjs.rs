//! Building JavaScript steps on QuickJS inside `weft` itself, with no Node.js: componentize-qjs
//! links its QuickJS runtime with bindings for the step's world and pre-initializes the result
//! (wizer) with the step's modules already evaluated, so every execution starts from that
//! snapshot instead of parsing the code again.

use std::path::Path;

use componentize_qjs::{ComponentizeOpts, Runtime};

/// The runtime's name and version, as run records and `weft build` report it; part of the
/// compile cache's key for inline code, so a new runtime rebuilds every step.
pub const RUNTIME: &str = "componentize-qjs 0.4.5 (QuickJS)";

/// Builds the component whose entry module is `dir/entry` (modules it imports are resolved
/// inside `dir`) for the world `world` of the WIT package in `dir/wit`. The error is the
/// runtime's own report: an exception thrown while evaluating the modules, with its stack.
pub(super) fn componentize(dir: &Path, entry: &str, world: &str) -> Result<Vec<u8>, String> {
    let entry_path = dir.join(entry);
    let source = std::fs::read_to_string(&entry_path)
        .map_err(|e| format!("failed to read `{}`: {e}", entry_path.display()))?;
    let wit = dir.join("wit");
    let dir = dir.to_path_buf();
    let world = world.to_string();
    // componentize-qjs is async (its wasmtime runs the snapshot); give it a runtime of its own
    // on a thread of its own, so a build works from inside or outside the caller's runtime.
    let build = std::thread::Builder::new()
        .name("weft-build-js".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("failed to start the build: {e}"))?;
            runtime.block_on(async {
                let options = ComponentizeOpts {
                    wit_path: &wit,
                    js_source: &source,
                    js_path: Some(&entry_path),
                    module_root: Some(&dir),
                    world_name: Some(&world),
                    stub_wasi: false,
                    disable_gc: false,
                    runtime: Runtime::DefaultSync,
                };
                componentize_qjs::componentize(&options)
                    .await
                    .map_err(|e| format!("{e:#}"))
            })
        })
        .map_err(|e| format!("failed to start the build: {e}"))?;
    build
        .join()
        .unwrap_or_else(|_| Err("the QuickJS build panicked".into()))
}
