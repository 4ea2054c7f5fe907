// Shared by `engine/build.rs` and `tests/build.rs`: builds packages of `plugins/` (a workspace
// of its own, for `wasm32-wasip2`) into `target/plugins` and returns the directory holding the
// `.wasm` files.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `packages` (all of them when empty) of the plugin workspace under `repo`.
pub fn build_plugins(repo: &Path, packages: &[&str]) -> PathBuf {
    let mut cmd = plugin_build(repo);
    for package in packages {
        cmd.arg("-p").arg(package);
    }
    run(cmd, repo)
}

/// Builds `plugins/quickjs-runtime` with `features` (of `http`, `s3`, `state`) and returns the
/// component's path; each build overwrites the previous one's.
#[allow(dead_code)] // `tests/build.rs` shares this file and embeds no runtime.
pub fn build_quickjs_runtime(repo: &Path, features: &[&str]) -> PathBuf {
    let mut cmd = plugin_build(repo);
    cmd.args(["-p", "quickjs-runtime", "--features", &features.join(",")]);
    run(cmd, repo).join("quickjs_runtime.wasm")
}

/// `cargo build` of the plugin workspace for `wasm32-wasip2`, into `target/plugins`.
fn plugin_build(repo: &Path) -> Command {
    let plugins = repo.join("plugins");
    let target_dir = repo.join("target").join("plugins");
    println!("cargo:rerun-if-changed={}", repo.join("wit").display());
    println!(
        "cargo:rerun-if-changed={}",
        plugins.join("Cargo.toml").display()
    );

    // The guests may need another toolchain than the host build (a nightly host build for
    // fuzzing has no wasm32-wasip2 standard library): `WEFT_PLUGINS_TOOLCHAIN=stable` builds
    // them with rustup's `cargo +stable`.
    println!("cargo:rerun-if-env-changed=WEFT_PLUGINS_TOOLCHAIN");
    let toolchain = std::env::var("WEFT_PLUGINS_TOOLCHAIN").ok();
    let cargo = match &toolchain {
        Some(_) => "cargo".to_string(),
        None => std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
    };
    let mut cmd = Command::new(cargo);
    if let Some(toolchain) = &toolchain {
        cmd.env("RUSTUP_TOOLCHAIN", toolchain)
            .env_remove("RUSTC")
            .env_remove("RUSTDOC");
    }
    cmd.arg("build")
        .arg("--release")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // rquickjs compiles QuickJS's C with `$WASI_SDK/bin/clang`: Debian's clang, wrapped.
        .env("WASI_SDK", plugins.join("quickjs-runtime").join("wasi-sdk"));
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
    cmd
}

fn run(mut cmd: Command, repo: &Path) -> PathBuf {
    let plugins = repo.join("plugins");
    let status = cmd.status().expect("failed to run cargo to build plugins/");
    assert!(
        status.success(),
        "building the plugins in `{}` failed (the compiler's errors are above); if it says the `wasm32-wasip2` target is missing, run `rustup target add wasm32-wasip2`; if it cannot find clang or wasi-libc's headers, run `plugins/quickjs-runtime/install`",
        plugins.display()
    );
    repo.join("target")
        .join("plugins")
        .join("wasm32-wasip2")
        .join("release")
}
