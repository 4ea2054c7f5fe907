//! Helpers for Weft's integration tests: plugin paths built by `build.rs`, a temporary
//! workspace directory, and the real `weft` binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use weft::integration::Workspace;
use weft::plugin::{HostOptions, PluginHost};
use weft::runner::{RunRequest, Runner};
use weft::store::{RunWithSteps, SledStore};

pub mod server;

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The path of the plugin built from package `stem` (`path_helper`, `testing_spin`, …).
pub fn plugin(stem: &str) -> &'static str {
    PLUGINS
        .iter()
        .find(|(s, _)| *s == stem)
        .map(|(_, path)| *path)
        .unwrap_or_else(|| panic!("no plugin `{stem}` was built; the built ones are {PLUGINS:?}"))
}

/// The repository's root directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repo")
        .to_path_buf()
}

/// The `weft` binary built for this test run (`target/<profile>/weft`).
pub fn weft_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/<profile>/deps/tests-<hash> → target/<profile>/weft
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(format!("weft{}", std::env::consts::EXE_SUFFIX)))
        .expect("the test binary lives in target/<profile>/deps");
    assert!(
        bin.is_file(),
        "`{}` is missing; run the tests with `cargo test --workspace` so the binary is built",
        bin.display()
    );
    bin
}

/// What a `weft` command printed and how it exited.
#[derive(Debug)]
pub struct Output {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// A temporary directory holding a workspace, with the `weft` binary to run against it.
#[derive(Debug)]
pub struct TestEnv {
    dir: tempfile::TempDir,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    /// An empty directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory can be created"),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("the test file can be written");
        path
    }

    /// Writes `weft.toml` and `integration.toml` and returns the workspace file's path.
    pub fn workspace(&self, workspace: &str, integration: &str) -> PathBuf {
        self.write("integration.toml", integration);
        self.write("weft.toml", workspace)
    }

    /// Runs `weft ARGS` in the directory.
    pub fn weft(&self, args: &[&str]) -> Output {
        self.weft_with(args, &[], None)
    }

    /// Runs `weft ARGS` in the directory with extra environment variables and, optionally,
    /// text on standard input.
    pub fn weft_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(weft_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("WEFT_STORE")
            .env_remove("WEFT_MASTER_KEY")
            .env_remove("WEFT_MASTER_KEY_FILE")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("the weft binary runs");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("the weft binary finishes");
        Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Loads the workspace at `weft.toml`, panicking with every problem if it is invalid.
    pub fn load(&self) -> Workspace {
        Workspace::load(&self.dir.path().join("weft.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A runner on the process-wide host, recording into `.weft/` in the directory.
    pub fn runner(&self) -> Runner {
        let store = SledStore::open(&self.dir.path().join(".weft")).expect("the store opens");
        Runner::new(host(), Arc::new(store))
    }
}

/// The process's one plugin host, as in the engine: one `wasmtime::Engine` per process.
/// Tests resolve `internal.test` to a private address and `public.test` to loopback through
/// the host's resolve overrides, since they cannot rely on DNS.
pub fn host() -> Arc<PluginHost> {
    static HOST: OnceLock<Arc<PluginHost>> = OnceLock::new();
    HOST.get_or_init(|| {
        let options = HostOptions {
            resolve: [
                (
                    "internal.test".to_string(),
                    vec!["10.0.0.5".parse().expect("ip")],
                ),
                (
                    "mixed.test".to_string(),
                    vec![
                        "93.184.216.34".parse().expect("ip"),
                        "192.168.1.9".parse().expect("ip"),
                    ],
                ),
            ]
            .into(),
            ..HostOptions::default()
        };
        Arc::new(PluginHost::new(options).expect("the host starts"))
    })
    .clone()
}

/// Runs `instance`'s first flow with `runner`.
pub async fn run(runner: &Runner, ws: &Workspace, instance: &str) -> RunWithSteps {
    runner
        .run(RunRequest {
            workspace: ws,
            instance,
            flow: None,
            trigger: serde_json::Value::Null,
        })
        .await
        .expect("the run starts")
}

/// A workspace with one customer and one instance of integration `test`, whose plugins are
/// the given `(name, path)` pairs.
pub fn one_instance_workspace(plugins: &[(&str, &str)]) -> String {
    let mut ws = String::from(
        r#"integrations = ["integration.toml"]

[[customers]]
id = "acme"
name = "Acme"
config = { customerName = "Acme Rockets", pokemonAvatar = "onix" }

[[instances]]
id = "acme-test"
customer = "acme"
integration = "test"
"#,
    );
    for (name, path) in plugins {
        ws.push_str(&format!("\n[plugins.{name}]\nsource = {path:?}\n"));
    }
    ws
}
