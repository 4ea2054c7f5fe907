//! Builds the plugins that ship inside the `weft` binary from `plugins/` and writes
//! `builtins.rs`, which embeds them.

#[path = "build_plugins.rs"]
mod build_plugins;

use std::env;
use std::path::PathBuf;

/// Packages in `plugins/` that are embedded: (name steps use, package, file stem).
const BUILTINS: &[(&str, &str, &str)] = &[
    ("path-helper", "path-helper", "path_helper"),
    ("http-get", "http-get", "http_get"),
    ("http-request", "http-request", "http_request"),
    ("s3-put-object", "s3-put-object", "s3_put_object"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let repo = manifest_dir
        .parent()
        .expect("engine/ is inside the repository");
    for dir in [
        "sdk",
        "path-helper",
        "http-common",
        "http-get",
        "http-request",
        "s3-put-object",
        "quickjs-runtime",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            repo.join("plugins").join(dir).display()
        );
    }
    let packages: Vec<&str> = BUILTINS.iter().map(|(_, package, _)| *package).collect();
    let out = build_plugins::build_plugins(repo, &packages);

    let mut code = String::from("/// Built-in plugins: (name, component bytes).\n");
    code.push_str("pub(crate) const BUILTINS: &[(&str, &[u8])] = &[\n");
    for (name, _, stem) in BUILTINS {
        let wasm = out.join(format!("{stem}.wasm"));
        assert!(wasm.is_file(), "`{}` was not built", wasm.display());
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            wasm.display().to_string()
        ));
    }
    code.push_str("];\n");
    code.push_str(&quickjs_runtimes(repo));
    let dest = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("builtins.rs");
    std::fs::write(&dest, code).expect("failed to write builtins.rs");
}

/// Builds Weft's QuickJS runtime once per combination of the optional imports a JavaScript step
/// may ask for, and returns the code embedding them.
fn quickjs_runtimes(repo: &std::path::Path) -> String {
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let mut code = String::from(
        "/// Weft's QuickJS runtime, per set of optional imports: ([http, s3, state], bytes).\n",
    );
    code.push_str("pub(crate) const QUICKJS_RUNTIMES: &[([bool; 3], &[u8])] = &[\n");
    for mask in 0..8u8 {
        let wanted = [mask & 1 != 0, mask & 2 != 0, mask & 4 != 0];
        let features: Vec<&str> = ["http", "s3", "state"]
            .iter()
            .zip(wanted)
            .filter_map(|(feature, on)| on.then_some(*feature))
            .collect();
        let built = build_plugins::build_quickjs_runtime(repo, &features);
        let wasm = out.join(format!("quickjs_runtime_{mask}.wasm"));
        std::fs::copy(&built, &wasm).expect("failed to copy the QuickJS runtime");
        code.push_str(&format!(
            "    ({wanted:?}, include_bytes!({:?})),\n",
            wasm.display().to_string()
        ));
    }
    code.push_str("];\n");
    code
}
