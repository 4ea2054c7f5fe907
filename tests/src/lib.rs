//! Helpers for Weft's integration tests: plugin paths built by `build.rs`, a temporary
//! workspace directory, and the real `weft` binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use weft::plugin::{HostOptions, PluginHost};
use weft::runner::{RunRequest, Runner};
use weft::store::{RunWithSteps, SledStore};
use weft_model::workspace::Workspace;

pub mod crash;
pub mod hostile;
pub mod load;
pub mod postgres;
pub mod proxy;
pub mod serve;
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
        let dir = self.dir.path().join(".weft");
        // A store dropped a moment ago may still be closing in sled's background thread.
        let mut tries = 0;
        let store = loop {
            match SledStore::open(&dir) {
                Ok(store) => break store,
                Err(e) if tries < 250 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("the store opens: {e:#}"),
            }
        };
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

/// The demo's stand-ins for the Pokemon API and S3, on a runtime of their own so that a test
/// can block on the `weft` binary while they serve.
#[derive(Debug)]
pub struct StandIns {
    /// The servers.
    pub servers: weft::demo::StandIns,
    rt: tokio::runtime::Runtime,
}

/// A test directory holding the Pokemon Avatar Sync example (`weft.toml`, `integration.toml`,
/// the credential's secret file) pointed at fresh stand-ins, as `weft demo` writes it.
pub fn pokemon_example() -> (TestEnv, StandIns) {
    let env = TestEnv::new();
    let stand_ins = StandIns::start(&env.path().join("s3"));
    weft::demo::write_workspace(env.path(), &stand_ins.servers).expect("the workspace is written");
    (env, stand_ins)
}

/// The secret access key the tests' S3 stand-in accepts.
pub const S3_SECRET: &str = "test-secret-7d1e0c5a9b3f";

impl StandIns {
    /// Starts both stand-ins, the S3 one keeping its buckets under `root`.
    pub fn start(root: &Path) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let servers = rt
            .block_on(weft::demo::StandIns::start(root, S3_SECRET))
            .expect("the stand-ins start");
        Self { servers, rt }
    }

    /// Reads object `key` of `bucket` back through the S3 API, as a user would check it:
    /// (bytes, content type).
    pub fn get_object(&self, bucket: &str, key: &str) -> (Vec<u8>, Option<String>) {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(format!("http://{}", self.servers.s3))
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                weft::demo::ACCESS_KEY,
                S3_SECRET,
                None,
                None,
                "tests",
            ))
            .build();
        let client = aws_sdk_s3::Client::from_conf(config);
        self.rt.block_on(async {
            let object = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "s3://{bucket}/{key} cannot be read: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    )
                });
            let content_type = object.content_type().map(str::to_string);
            let bytes = object.body.collect().await.expect("the body arrives");
            (bytes.into_bytes().to_vec(), content_type)
        })
    }
}
