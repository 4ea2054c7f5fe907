//! Code steps in JavaScript and Python built with `weft build` (JavaScript on QuickJS by `weft`
//! itself, or on SpiderMonkey with componentize-js; Python with componentize-py; the tools are
//! installed by `plugins/code-tools/install`), then run by the real `weft` binary as ordinary
//! plugins. Inline code steps are in `inline_code.rs`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use weft::demo::{BUCKET, POKEMON, PathHelper};
use weft_tests::server::TestServer;
use weft_tests::{Output, TestEnv, one_instance_workspace, pokemon_example, repo};

const SMITH: &str = "smith-rocket-avatar-sync";
const FTL: &str = "ftl-rockets-avatar-sync";

/// A JavaScript step with a mode per behaviour under test. Line numbers matter: the tests
/// look for `misbehave.js:12:` (the throw) in the stack.
const MISBEHAVE_JS: &str = r#"// A code step that misbehaves on request.
export async function run({ log, state, http }, inputs) {
  const { mode } = inputs;
  log.info('mode', mode);
  if (mode === 'loop') {
    while (true) {}
  }
  if (mode === 'reject') {
    await null;
    throw new RangeError('rejected after an await');
  }
  if (mode === 'throw') throw new TypeError(`the avatar is missing for ${mode}`);
  if (mode === 'count') {
    const count = (state.get('count') ?? 0) + 1;
    state.set('count', count);
    return { count };
  }
  if (mode === 'fetch') {
    const response = http.send({ url: inputs.url, headers: { 'x-from': 'js' } });
    return { status: response.status, hello: response.json().hello };
  }
  return { ok: true };
}
"#;

/// Its manifest: a `mode` input and state, so the build imports `weft:step/state`.
const MISBEHAVE_MANIFEST: &str = r#"name = "misbehave"
version = "0.1.0"

[inputs]
mode = { type = "string", required = true }
url = { type = "string" }

[capabilities]
state = true
http = ["http://*:*"]
"#;

const RAISING_PY: &str = r#"# A code step that raises on request.


def run(context, inputs):
    context.log.info("mode", inputs["mode"])
    if inputs["mode"] == "raise":
        return lookup({}, "sprites")
    return {"ok": True}


def lookup(data, key):
    return data[key]
"#;

/// The components every test shares, built once per test process with `weft build`.
struct Built {
    _dir: tempfile::TempDir,
    js_path_helper: PathBuf,
    py_path_helper: PathBuf,
    misbehave_js: PathBuf,
    raising_py: PathBuf,
}

fn weft_build(dir: &Path, source: &str) -> PathBuf {
    let env = TestEnv::new();
    let out = env.weft(&["build", &dir.join(source).display().to_string()]);
    assert!(
        out.success,
        "weft build {source} failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    let wasm = dir.join(source).with_extension("wasm");
    assert!(wasm.is_file(), "{} was not written", wasm.display());
    wasm
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let example = repo().join("examples/pokemon-avatar-sync");
        for file in [
            "path-helper.js",
            "path-helper.plugin.toml",
            "path_helper.py",
            "path_helper.plugin.toml",
        ] {
            std::fs::copy(example.join(file), dir.path().join(file)).expect("copy the example");
        }
        std::fs::write(dir.path().join("misbehave.js"), MISBEHAVE_JS).expect("write");
        std::fs::write(dir.path().join("misbehave.plugin.toml"), MISBEHAVE_MANIFEST)
            .expect("write");
        std::fs::write(dir.path().join("raising.py"), RAISING_PY).expect("write");
        // Two builds at a time: one JavaScript and one Python, on this two-core machine.
        let (js, py) = std::thread::scope(|s| {
            let js = s.spawn(|| {
                (
                    weft_build(dir.path(), "path-helper.js"),
                    weft_build(dir.path(), "misbehave.js"),
                )
            });
            let py = s.spawn(|| {
                (
                    weft_build(dir.path(), "path_helper.py"),
                    weft_build(dir.path(), "raising.py"),
                )
            });
            (js.join().expect("js builds"), py.join().expect("py builds"))
        });
        Built {
            _dir: dir,
            js_path_helper: js.0,
            misbehave_js: js.1,
            py_path_helper: py.0,
            raising_py: py.1,
        }
    })
}

fn run_json(env: &TestEnv, instance: &str) -> (Output, Value) {
    let out = env.weft(&["run", "weft.toml", "--instance", instance, "--json"]);
    let json = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "weft run --json printed no JSON ({e}):\n{}\n{}",
            out.stdout, out.stderr
        )
    });
    (out, json)
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no step `{id}` in {run:#}"))
}

#[test]
fn js_and_python_path_helpers_give_the_rust_ones_results_for_both_customers() {
    let (env, stand_ins) = pokemon_example();
    let mut results = Vec::new();
    // The walkthrough's JavaScript pasted into the integration file (Prismatic's CommonJS
    // signature) and the example's Python as the step's `code_file`: built by `weft` itself.
    for (variant, path_helper) in [
        ("rust", PathHelper::Rust),
        ("js", PathHelper::JavaScript),
        ("python", PathHelper::Python),
    ] {
        weft::demo::write_workspace_with(env.path(), &stand_ins.servers, path_helper)
            .expect("the workspace is written");
        for instance in [SMITH, FTL] {
            let (out, run) = run_json(&env, instance);
            assert!(out.success, "{variant} {instance}: {}", out.stderr);
            assert_eq!(run["status"], "succeeded", "{variant} {instance}: {run:#}");
            let output = serde_json::to_string(&step(&run, "path_helper")["output"]).unwrap();
            results.push((variant, instance, output));
        }
    }
    for instance in [SMITH, FTL] {
        let of = |variant: &str| {
            results
                .iter()
                .find(|(v, i, _)| *v == variant && *i == instance)
                .map(|(_, _, o)| o.clone())
                .unwrap()
        };
        let rust = of("rust");
        assert!(
            rust.contains("Rocket") && rust.contains("/api/v2/pokemon/"),
            "{rust}"
        );
        assert_eq!(of("js"), rust, "{instance}: JavaScript vs Rust");
        assert_eq!(of("python"), rust, "{instance}: Python vs Rust");
    }
    // The Python variant ran last: its avatars are the ones in the bucket now.
    for (key, pokemon) in [
        ("Smith Rocket Company.png", "pikachu"),
        ("FTL Rockets.png", "onix"),
    ] {
        let png = POKEMON.iter().find(|(n, _, _)| *n == pokemon).unwrap().2;
        assert_eq!(stand_ins.get_object(BUCKET, key).0, png, "{key}");
    }
}

fn misbehave_env(component: &Path, language: &str, server: Option<&TestServer>) -> TestEnv {
    let env = TestEnv::new();
    let path = component.display().to_string();
    let mut ws = one_instance_workspace(&[("misbehave", &path)]);
    ws.push_str("state = true\n");
    if let Some(server) = server {
        ws.push_str(&format!(
            "http = {{ allow = [\"http://127.0.0.1:{}\"], allow_loopback = true }}\n",
            server.port()
        ));
    }
    let modes: &[&str] = if language == "js" {
        &["ok", "throw", "reject", "loop", "count"]
    } else {
        &["ok", "raise"]
    };
    let mut integration = String::from("name = \"test\"\nversion = 1\n");
    for mode in modes {
        integration.push_str(&format!(
            "\n[[flows]]\nname = \"{mode}\"\n[[flows.steps]]\nid = \"misbehave\"\nplugin = \"misbehave\"\ninputs = {{ mode = \"{mode}\" }}\nlimits = {{ time = \"1s\" }}\n"
        ));
    }
    if let Some(server) = server {
        for (flow, url) in [
            ("fetch", server.url("/json")),
            ("fetch_denied", "http://203.0.113.7/".to_string()),
        ] {
            integration.push_str(&format!(
                "\n[[flows]]\nname = \"{flow}\"\n[[flows.steps]]\nid = \"misbehave\"\nplugin = \"misbehave\"\ninputs = {{ mode = \"fetch\", url = \"{url}\" }}\n"
            ));
        }
    }
    env.workspace(&ws, &integration);
    env
}

fn run_flow(env: &TestEnv, flow: &str) -> Output {
    env.weft(&[
        "run",
        "weft.toml",
        "--instance",
        "acme-test",
        "--flow",
        flow,
    ])
}

#[test]
fn javascript_errors_loops_and_state() {
    let server = TestServer::start();
    let env = misbehave_env(&built().misbehave_js, "js", Some(&server));

    let ok = run_flow(&env, "ok");
    assert!(ok.success, "{}\n{}", ok.stdout, ok.stderr);

    let thrown = run_flow(&env, "throw");
    assert!(!thrown.success);
    assert!(
        thrown
            .stderr
            .contains("failed (internal): TypeError: the avatar is missing for throw"),
        "{}",
        thrown.stderr
    );
    assert!(
        thrown.stderr.contains("at run (misbehave.js:12:"),
        "the stack names the line: {}",
        thrown.stderr
    );
    assert!(
        !thrown.stderr.contains("__weft_runtime__"),
        "{}",
        thrown.stderr
    );

    let rejected = run_flow(&env, "reject");
    assert!(!rejected.success);
    assert!(
        rejected
            .stderr
            .contains("RangeError: rejected after an await"),
        "{}",
        rejected.stderr
    );

    let looped = run_flow(&env, "loop");
    assert!(!looped.success);
    assert!(
        looped
            .stderr
            .contains("step `misbehave` (plugin `misbehave`) exceeded its 1 s time limit"),
        "{}",
        looped.stderr
    );

    // The state import is there because the manifest asks for it; values persist.
    for expected in [1, 2] {
        let out = env.weft(&[
            "run",
            "weft.toml",
            "--instance",
            "acme-test",
            "--flow",
            "count",
            "--json",
        ]);
        assert!(out.success, "{}", out.stderr);
        let run: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(step(&run, "misbehave")["output"]["json"]["count"], expected);
        assert_eq!(step(&run, "misbehave")["logs"][0]["message"], "mode count");
    }

    // HTTP through the host, within the grant; outside it, a `denied` step error.
    let fetched = env.weft(&[
        "run",
        "weft.toml",
        "--instance",
        "acme-test",
        "--flow",
        "fetch",
        "--json",
    ]);
    assert!(fetched.success, "{}", fetched.stderr);
    let run: Value = serde_json::from_str(&fetched.stdout).unwrap();
    assert_eq!(
        step(&run, "misbehave")["output"]["json"],
        serde_json::json!({ "status": 200, "hello": "world" })
    );
    assert_eq!(
        server.seen_at("/json")[0]
            .headers
            .get("x-from")
            .map(String::as_str),
        Some("js")
    );
    let denied = run_flow(&env, "fetch_denied");
    assert!(!denied.success);
    assert!(
        denied.stderr.contains("failed (denied)") && denied.stderr.contains("203.0.113.7"),
        "{}",
        denied.stderr
    );

    // The failed runs are recorded with the same error.
    let list = env.weft(&[
        "runs",
        "list",
        "--workspace",
        "weft.toml",
        "--status",
        "failed",
        "--json",
    ]);
    assert!(list.success, "{}", list.stderr);
    let failed: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(failed.as_array().map(Vec::len), Some(4), "{failed:#}");
}

#[test]
fn a_python_exception_carries_its_traceback() {
    let env = misbehave_env(&built().raising_py, "python", None);
    let ok = run_flow(&env, "ok");
    assert!(ok.success, "{}\n{}", ok.stdout, ok.stderr);

    let raised = run_flow(&env, "raise");
    assert!(!raised.success);
    assert!(
        raised.stderr.contains("KeyError: 'sprites'"),
        "{}",
        raised.stderr
    );
    assert!(
        raised.stderr.contains("raising.py\", line 12, in lookup"),
        "the traceback names the line: {}",
        raised.stderr
    );
    assert!(
        !raised.stderr.contains("__weft_runtime__"),
        "{}",
        raised.stderr
    );
}

#[test]
fn components_import_only_what_their_manifest_requests() {
    let env = TestEnv::new();
    let inspect = |path: &Path| -> Value {
        let out = env.weft(&["plugins", "inspect", &path.display().to_string(), "--json"]);
        assert!(out.success, "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    };
    let built = built();
    let imports = |v: &Value| {
        v["inspection"]["imports"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .filter(|i| i.starts_with("weft:step/"))
            .collect::<Vec<_>>()
    };
    let helper = inspect(&built.js_path_helper);
    assert!(
        !imports(&helper)
            .iter()
            .any(|i| i.contains("http") || i.contains("state") || i.contains("s3")),
        "{helper:#}"
    );
    let misbehave = inspect(&built.misbehave_js);
    assert!(
        imports(&misbehave)
            .iter()
            .any(|i| i == "weft:step/state@0.1.0"),
        "{misbehave:#}"
    );
    let python = inspect(&built.py_path_helper);
    assert_eq!(python["inspection"]["exports_run"], true, "{python:#}");
    // The manifest was copied beside the component, so it applies when the component loads.
    assert!(
        built
            .py_path_helper
            .with_file_name("path_helper.plugin.toml")
            .is_file()
    );
    assert_eq!(
        std::fs::read_to_string(
            built
                .js_path_helper
                .with_file_name("path-helper.plugin.toml")
        )
        .unwrap(),
        std::fs::read_to_string(
            repo().join("examples/pokemon-avatar-sync/path-helper.plugin.toml")
        )
        .unwrap()
    );
}

#[test]
fn build_errors_name_the_file_line_and_column() {
    let env = TestEnv::new();
    let build = |file: &str, text: &str| {
        env.write(file, text);
        let out = env.weft(&["build", file]);
        assert!(!out.success, "{file} built: {}", out.stdout);
        out.stderr
    };

    let broken_js = "export function run(context, inputs) {\n  return { url: };\n}\n";
    let js = build("broken.js", broken_js);
    assert!(
        js.contains("broken.js:2:17: SyntaxError: unexpected token in expression: '}'"),
        "{js}"
    );
    // The same on SpiderMonkey (componentize-js), without the tool's own stack.
    env.write("broken-sm.js", broken_js);
    let sm = env.weft(&["build", "broken-sm.js", "--engine", "spidermonkey"]);
    assert!(!sm.success, "{}", sm.stdout);
    assert!(
        sm.stderr
            .contains("broken-sm.js:2:17 SyntaxError: expected expression"),
        "{}",
        sm.stderr
    );
    assert!(
        !sm.stderr.contains("componentize.js:"),
        "no tool stack: {}",
        sm.stderr
    );

    let no_run = build("no-run.js", "export function handler() { return 1; }\n");
    assert!(
        no_run.contains("no-run.js exports no step function: add `export function run"),
        "{no_run}"
    );

    let py = build(
        "broken.py",
        "def run(context, inputs):\n    return {'url': }\n",
    );
    assert!(py.contains("broken.py:2:"), "{py}");
    assert!(py.contains("SyntaxError"), "{py}");
    assert!(!py.contains("Stack backtrace"), "{py}");

    let py_no_run = build("no_run.py", "def handler(context, inputs):\n    pass\n");
    assert!(
        py_no_run.contains("no_run.py does not define a function `run`"),
        "{py_no_run}"
    );

    env.write("step.js", "export function run() { return 1; }\n");
    let missing = env.weft_with(
        &["build", "step.js", "--engine", "spidermonkey"],
        &[("WEFT_COMPONENTIZE_JS", "/nonexistent/componentize-js")],
        None,
    );
    assert!(!missing.success);
    assert!(
        missing.stderr.contains(
            "WEFT_COMPONENTIZE_JS is set to `/nonexistent/componentize-js`, which does not exist"
        ),
        "{}",
        missing.stderr
    );
    assert!(
        missing
            .stderr
            .contains("npm install -g @bytecodealliance/componentize-js"),
        "{}",
        missing.stderr
    );

    let other = build("step.rb", "def run; end\n");
    assert!(
        other.contains("is not a code step weft can build"),
        "{other}"
    );
}
