//! Inline code steps: JavaScript written into the integration file, built by the `weft` binary
//! itself (QuickJS) at `validate`/`apply`/`serve` time, granted by the workspace's `[code]`
//! policy, and run like any plugin.

use serde_json::Value;
use weft::demo::{EXAMPLE_PATH_HELPER_INLINE_JS, PathHelper};
use weft_tests::server::TestServer;
use weft_tests::{Output, TestEnv, one_instance_workspace, pokemon_example, repo};

const SMITH: &str = "smith-rocket-avatar-sync";
const FTL: &str = "ftl-rockets-avatar-sync";

fn run_json(env: &TestEnv, instance: &str) -> Value {
    let out = env.weft(&["run", "weft.toml", "--instance", instance, "--json"]);
    assert!(out.success, "{instance}: {}\n{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).expect("weft run --json prints JSON")
}

fn path_helper_output(run: &Value) -> String {
    let step = run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == "path_helper"))
        .unwrap_or_else(|| panic!("no path_helper step in {run:#}"));
    serde_json::to_string(&step["output"]).unwrap()
}

/// The walkthrough's Path Helper pasted as-is (CommonJS, Prismatic's signature), the same in an
/// ES module, and the same on SpiderMonkey give byte-identical results to the Rust built-in, for
/// both customers, in the full Pokemon flow (the avatars land in the bucket).
#[test]
fn the_walkthroughs_path_helper_runs_as_written() {
    let (env, stand_ins) = pokemon_example();
    let es_module =
        EXAMPLE_PATH_HELPER_INLINE_JS.replace("module.exports = async", "export default async");
    assert_ne!(es_module, EXAMPLE_PATH_HELPER_INLINE_JS);
    let mut outputs = Vec::new();
    for variant in ["rust", "commonjs", "es-module", "spidermonkey"] {
        let helper = if variant == "rust" {
            PathHelper::Rust
        } else {
            PathHelper::JavaScript
        };
        weft::demo::write_workspace_with(env.path(), &stand_ins.servers, helper)
            .expect("the workspace is written");
        let integration = std::fs::read_to_string(env.path().join("integration.toml")).unwrap();
        match variant {
            "es-module" => env.write(
                "integration.toml",
                &integration.replace(EXAMPLE_PATH_HELPER_INLINE_JS, &es_module),
            ),
            "spidermonkey" => env.write(
                "integration.toml",
                &integration.replacen(
                    "language = \"javascript\"\n",
                    "language = \"javascript\"\nengine = \"spidermonkey\"\n",
                    1,
                ),
            ),
            _ => env.path().join("integration.toml"),
        };
        for instance in [SMITH, FTL] {
            let run = run_json(&env, instance);
            assert_eq!(run["status"], "succeeded", "{variant} {instance}: {run:#}");
            outputs.push((variant, instance, path_helper_output(&run)));
        }
    }
    for instance in [SMITH, FTL] {
        let of = |variant: &str| {
            outputs
                .iter()
                .find(|(v, i, _)| *v == variant && *i == instance)
                .map(|(_, _, o)| o.clone())
                .unwrap()
        };
        let rust = of("rust");
        assert!(rust.contains("/api/v2/pokemon/"), "{rust}");
        assert_eq!(of("commonjs"), rust, "{instance}: CommonJS vs Rust");
        assert_eq!(of("es-module"), rust, "{instance}: ES module vs Rust");
        assert_eq!(of("spidermonkey"), rust, "{instance}: SpiderMonkey vs Rust");
    }
    let (png, _) = stand_ins.get_object(weft::demo::BUCKET, "FTL Rockets.png");
    assert!(png.starts_with(b"\x89PNG"), "the avatar is in the bucket");
    // The README shows this very code, pasted into the step.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("code = '''\n{EXAMPLE_PATH_HELPER_INLINE_JS}'''")),
        "README.md shows the walkthrough's code as the demo runs it"
    );
}

/// An integration with one flow per step, each a code step written inline.
fn code_workspace(env: &TestEnv, code_policy: &str, steps: &[(&str, &str)]) {
    let mut ws = one_instance_workspace(&[]);
    ws.push_str(code_policy);
    let mut integration = String::from("name = \"test\"\nversion = 1\n");
    for (flow, step) in steps {
        integration.push_str(&format!(
            "\n[[flows]]\nname = \"{flow}\"\n\n[[flows.steps]]\nid = \"{flow}\"\n{step}\n"
        ));
    }
    env.workspace(&ws, &integration);
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
fn errors_point_into_the_integration_file() {
    let env = TestEnv::new();
    // The code's first line is line 11 of integration.toml (see `code_workspace`).
    code_workspace(
        &env,
        "",
        &[(
            "broken",
            "language = \"javascript\"\ncode = '''\nmodule.exports = async ({ configVars }) => {\n  return { data: { url: } };\n};\n'''",
        )],
    );
    let out = env.weft(&["validate", "weft.toml"]);
    assert!(!out.success, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("the code of step `test/broken/broken` does not build"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("SyntaxError"), "{}", out.stderr);
    assert!(
        out.stderr.contains("integration.toml:12:"),
        "the error is on line 12 of integration.toml:\n{}",
        out.stderr
    );

    let env = TestEnv::new();
    code_workspace(
        &env,
        "",
        &[
            (
                "throws",
                "language = \"javascript\"\ncode = '''\nexport function run(context, inputs) {\n  const avatar = undefined;\n  return avatar.url;\n}\n'''",
            ),
            (
                "spins",
                "language = \"javascript\"\nlimits = { time = \"300ms\" }\ncode = '''\nexport function run() {\n  while (true) {}\n}\n'''",
            ),
        ],
    );
    let thrown = run_flow(&env, "throws");
    assert!(!thrown.success);
    assert!(thrown.stderr.contains("TypeError"), "{}", thrown.stderr);
    // `return avatar.url;` is line 3 of the code, written on line 13 of integration.toml.
    assert!(
        thrown.stderr.contains("integration.toml:13"),
        "the author's line:\n{}",
        thrown.stderr
    );
    let spun = run_flow(&env, "spins");
    assert!(!spun.success);
    assert!(spun.stderr.contains("time limit"), "{}", spun.stderr);
}

#[test]
fn capabilities_need_the_code_policy() {
    let server = TestServer::start();
    let origin = format!("http://127.0.0.1:{}", server.port());
    let fetch = format!(
        "language = \"javascript\"\ncapabilities = {{ http = [\"{origin}\"] }}\ncode = '''\nexport function run({{ http }}) {{\n  return http.send({{ url: '{}' }}).json();\n}}\n'''",
        server.url("/json")
    );

    let env = TestEnv::new();
    code_workspace(&env, "", &[("fetch", &fetch)]);
    let refused = env.weft(&["validate", "weft.toml"]);
    assert!(!refused.success, "{}", refused.stdout);
    assert!(
        refused.stderr.contains(&format!(
            "the step asks for `{origin}`, which the workspace's `[code]` policy does not grant"
        )),
        "{}",
        refused.stderr
    );

    let env = TestEnv::new();
    let policy = format!("\n[code]\nhttp = {{ allow = [\"{origin}\"], allow_loopback = true }}\n");
    code_workspace(&env, &policy, &[("fetch", &fetch)]);
    let out = run_flow(&env, "fetch");
    assert!(out.success, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(server.seen().len(), 1, "the code step reached the server");
}

#[test]
fn an_unchanged_step_is_not_built_again() {
    let env = TestEnv::new();
    let step = |greeting: &str| {
        format!(
            "language = \"javascript\"\ncode = '''\nmodule.exports = async () => ({{ data: '{greeting}' }});\n'''"
        )
    };
    code_workspace(&env, "", &[("greet", &step("hello"))]);
    let built = |out: &Output| {
        assert!(out.success, "{}\n{}", out.stdout, out.stderr);
        out.stderr
            .lines()
            .find(|l| l.starts_with("code steps: "))
            .unwrap_or_else(|| panic!("no code step summary in:\n{}", out.stderr))
            .to_string()
    };
    assert_eq!(
        built(&env.weft(&["validate", "weft.toml"])),
        "code steps: 1 (1 built, 0 unchanged)"
    );
    assert_eq!(
        built(&env.weft(&["apply", "weft.toml"])),
        "code steps: 1 (0 built, 1 unchanged)"
    );
    let run = run_flow(&env, "greet");
    assert!(run.success, "{}", run.stderr);

    code_workspace(&env, "", &[("greet", &step("hello again"))]);
    assert_eq!(
        built(&env.weft(&["apply", "weft.toml"])),
        "code steps: 1 (1 built, 0 unchanged)"
    );
    let out = env.weft(&[
        "run",
        "weft.toml",
        "--instance",
        "acme-test",
        "--flow",
        "greet",
        "--json",
    ]);
    assert!(out.success, "{}", out.stderr);
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(run["result"]["json"], "hello again", "{run:#}");
}

#[test]
fn javascript_that_cannot_finish_says_so() {
    // A module that never finishes evaluating fails the build, not hangs it.
    let env = TestEnv::new();
    code_workspace(
        &env,
        "",
        &[(
            "hangs",
            "language = \"javascript\"\ncode = '''\nwhile (true) {}\nexport function run() {\n  return 1;\n}\n'''",
        )],
    );
    let out = env.weft(&["validate", "weft.toml"]);
    assert!(!out.success, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("the code of step `test/hangs/hangs` does not build"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("endless loop at the top level"),
        "{}",
        out.stderr
    );

    // A promise nothing can settle fails the step, saying so.
    let env = TestEnv::new();
    code_workspace(
        &env,
        "",
        &[(
            "waits",
            "language = \"javascript\"\ncode = '''\nexport async function run() {\n  await new Promise(() => {});\n  return 1;\n}\n'''",
        )],
    );
    let out = run_flow(&env, "waits");
    assert!(!out.success, "{}", out.stdout);
    assert!(out.stderr.contains("never settled"), "{}", out.stderr);

    // Endless recursion is QuickJS's own error, thrown before the stack runs out.
    let env = TestEnv::new();
    code_workspace(
        &env,
        "",
        &[(
            "recurses",
            "language = \"javascript\"\ncode = '''\nconst down = (n) => down(n + 1) + 1;\nexport function run() {\n  return down(0);\n}\n'''",
        )],
    );
    let out = run_flow(&env, "recurses");
    assert!(!out.success, "{}", out.stdout);
    assert!(out.stderr.contains("stack"), "{}", out.stderr);
}
