//! Builds every plugin in `plugins/` (the shipped ones and the misbehaving ones under
//! `plugins/testing/`) and writes `plugins.rs` with the path of each `.wasm`.

#[path = "../engine/build_plugins.rs"]
mod build_plugins;

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let repo = manifest_dir
        .parent()
        .expect("tests/ is inside the repository");
    println!("cargo:rerun-if-changed={}", repo.join("plugins").display());
    let out = build_plugins::build_plugins(repo, &[]);

    let mut code =
        String::from("/// Every plugin built from `plugins/`: (file stem, path of the `.wasm`).\n");
    code.push_str("pub const PLUGINS: &[(&str, &str)] = &[\n");
    let mut entries: Vec<_> = std::fs::read_dir(&out)
        .expect("the plugin output directory exists after a build")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    entries.sort();
    for path in entries {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        code.push_str(&format!(
            "    ({stem:?}, {:?}),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let dest = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("plugins.rs");
    std::fs::write(&dest, code).expect("failed to write plugins.rs");
}
