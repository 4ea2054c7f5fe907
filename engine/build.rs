//! Builds the plugins that ship inside the `weft` binary from `plugins/` (their own
//! `wasm32-wasip2` workspace) and writes `builtins.rs`, which embeds them.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Packages in `plugins/` that are embedded, with the name steps use for them.
const BUILTINS: &[(&str, &str)] = &[("path-helper", "path_helper")];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("engine/ is inside the repository");
    let plugins = root.join("plugins");
    let target_dir = root.join("target").join("plugins");

    for dir in ["sdk", "path-helper"] {
        println!("cargo:rerun-if-changed={}", plugins.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.toml").display()
    );
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _) in BUILTINS {
        cmd.arg("-p").arg(package);
    }
    // The outer build's settings are for the host, not for wasm guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("failed to run cargo to build plugins/");
    if !status.success() {
        panic!(
            "building the built-in plugins in `{}` failed; is the wasm32-wasip2 target installed? (`rustup target add wasm32-wasip2`)",
            plugins.display()
        );
    }

    let out = target_dir.join("wasm32-wasip2").join("release");
    let mut code = String::from(
        "/// Built-in plugins: (name, component bytes).\npub(crate) const BUILTINS: &[(&str, &[u8])] = &[\n",
    );
    for (name, file) in BUILTINS {
        let wasm = out.join(format!("{file}.wasm"));
        assert!(wasm.is_file(), "`{}` was not built", wasm.display());
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            wasm.display().to_string()
        ));
    }
    code.push_str("];\n");
    let dest = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("builtins.rs");
    std::fs::write(&dest, code).expect("failed to write builtins.rs");
}
