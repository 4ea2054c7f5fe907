//! Operator policy for plugins: digest pins, granted interfaces, supported versions, the
//! `weft:step` world, per-plugin limits, and the compile cache.

use std::sync::Arc;

use serde_json::Value;
use weft::plugin::{CompileCache, HostOptions, PluginHost};
use weft_model::workspace::PluginSource;
use weft_tests::{TestEnv, one_instance_workspace, plugin};

/// Runs flow `test` of a one-step workspace whose step uses plugin `name` from `stem`, with
/// `policy` added to its `[plugins.NAME]` entry; returns the run as JSON.
fn run_with(stem: &str, policy: &str, step: &str) -> Value {
    let env = TestEnv::new();
    let mut ws = one_instance_workspace(&[]);
    ws.push_str(&format!(
        "\n[plugins.p]\nsource = {:?}\n{policy}\n",
        plugin(stem)
    ));
    env.workspace(
        &ws,
        &format!("name = \"test\"\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nid = \"s\"\nplugin = \"p\"\n{step}\n"),
    );
    let out = env.weft(&["run", "weft.toml", "-i", "acme-test", "--json"]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn sha256_of(path: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

fn refused(run: &Value) -> String {
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        run["steps"].as_array().unwrap().is_empty(),
        "nothing ran: {run:#}"
    );
    run["error"].as_str().unwrap().to_string()
}

#[test]
fn a_digest_mismatch_is_refused() {
    let wrong = "0".repeat(64);
    let error = refused(&run_with(
        "testing_counter",
        &format!("state = true\nsha256 = \"{wrong}\""),
        "",
    ));
    let actual = sha256_of(plugin("testing_counter"));
    assert!(
        error.contains(&format!(
            "plugin `p` has sha256 {actual}, but `[plugins.p]` pins sha256 = \"{wrong}\""
        )),
        "{error}"
    );
    // The right pin runs.
    let run = run_with(
        "testing_counter",
        &format!("state = true\nsha256 = \"{actual}\""),
        "",
    );
    assert_eq!(run["status"], "succeeded", "{run:#}");
}

#[test]
fn an_interface_the_policy_does_not_grant_is_refused_at_load() {
    let error = refused(&run_with("testing_counter", "", ""));
    let short = &sha256_of(plugin("testing_counter"))[..12];
    assert!(
        error.contains(&format!(
            "plugin `p` (sha256 {short}…) imports `weft:step/state@0.1.0`, which its policy does not grant; to allow it, add `state = true` to `[plugins.p]`"
        )),
        "{error}"
    );
    let error = refused(&run_with(
        "testing_hostile",
        "",
        "inputs = { mode = \"ok\" }",
    ));
    assert!(
        error.contains("imports `weft:step/http@0.1.0`, which its policy does not grant"),
        "{error}"
    );
}

#[test]
fn another_world_or_version_is_refused() {
    let error = refused(&run_with("testing_future", "", ""));
    assert!(
        error.contains("failed to load plugin `p` (sha256 ")
            && error.contains("it imports `weft:step/config@0.2.0`, built for `weft:step@0.2.0`; this engine serves `weft:step@0.1`"),
        "{error}"
    );
    let error = refused(&run_with("testing_not_a_step", "", ""));
    assert!(
        error.contains("failed to load plugin `p` (sha256 "),
        "{error}"
    );
    assert!(
        error.contains("does not export the `weft:step/step` world's `run`"),
        "{error}"
    );

    let env = TestEnv::new();
    env.write("junk.wasm", "this is not WebAssembly");
    let mut ws = one_instance_workspace(&[]);
    ws.push_str("\n[plugins.p]\nsource = \"junk.wasm\"\n");
    env.workspace(
        &ws,
        "name = \"test\"\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nid = \"s\"\nplugin = \"p\"\n",
    );
    let out = env.weft(&["run", "weft.toml", "-i", "acme-test"]);
    assert!(
        out.stderr.contains("not a valid WebAssembly component"),
        "{out:?}"
    );
}

#[test]
fn policy_limits_are_defaults_and_caps() {
    let run = run_with("testing_hog", "limits = { memory = \"32 MiB\" }", "");
    let error = run["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("exceeded its 32 MiB memory limit"),
        "{error}"
    );

    let env = TestEnv::new();
    let mut ws = one_instance_workspace(&[]);
    ws.push_str(&format!(
        "\n[plugins.p]\nsource = {:?}\nlimits = {{ memory = \"32 MiB\", time = \"1s\" }}\n",
        plugin("testing_hog")
    ));
    env.workspace(&ws, "name = \"test\"\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nid = \"s\"\nplugin = \"p\"\ntimeout = \"5s\"\nlimits = { memory = \"64 MiB\" }\n");
    let out = env.weft(&["validate", "weft.toml"]);
    assert!(!out.success);
    for needle in [
        "the step asks for 5 s of time, but the policy of plugin `p` allows at most 1 s",
        "the step asks for 64 MiB of memory, but the policy of plugin `p` allows at most 32 MiB",
    ] {
        assert!(
            out.stderr.contains(needle),
            "missing {needle:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn cached_compilations_load_without_compiling_and_a_damaged_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path().join("cache"), [7; 32]);
    let plugins = [
        "path_helper",
        "http_get",
        "http_request",
        "s3_put_object",
        "testing_spin",
        "testing_hog",
        "testing_bloat",
        "testing_trap",
        "testing_counter",
        "testing_hostile",
    ];
    let load_all = || {
        let host = PluginHost::new(HostOptions {
            compile_cache: Some(cache.clone()),
            ..HostOptions::default()
        })
        .unwrap();
        for stem in plugins {
            host.load(stem, &PluginSource::File(plugin(stem).into()))
                .unwrap();
        }
        host.cache_stats()
    };
    let first = load_all();
    assert_eq!((first.compiled, first.hits, first.rejected), (10, 0, 0));
    let second = load_all();
    assert_eq!(
        (second.compiled, second.hits, second.rejected),
        (0, 10, 0),
        "a restart compiles nothing"
    );

    // Flip one byte in one entry: it is refused, compiled again and stored again.
    let entry = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&entry, bytes).unwrap();
    let third = load_all();
    assert_eq!((third.compiled, third.hits, third.rejected), (1, 9, 1));
    let fourth = load_all();
    assert_eq!((fourth.compiled, fourth.hits, fourth.rejected), (0, 10, 0));

    // A file of another key (copied from elsewhere) is never loaded.
    let foreign = CompileCache::new(dir.path().join("cache"), [9; 32]);
    let host = PluginHost::new(HostOptions {
        compile_cache: Some(foreign),
        ..HostOptions::default()
    })
    .unwrap();
    host.load(
        "path_helper",
        &PluginSource::File(plugin("path_helper").into()),
    )
    .unwrap();
    let stats = host.cache_stats();
    assert_eq!((stats.compiled, stats.hits, stats.rejected), (1, 0, 1));
    let _ = Arc::new(host);
}

/// A directory with the hostile plugin copied in as `hostile.wasm`, with `manifest` beside it.
fn with_manifest(manifest: &str) -> TestEnv {
    let env = TestEnv::new();
    std::fs::copy(plugin("testing_hostile"), env.path().join("hostile.wasm")).unwrap();
    env.write("hostile.plugin.toml", manifest);
    env
}

const MANIFEST: &str = r#"name = "hostile"
version = "1.0.0"
description = "misbehaves on request"
[inputs]
mode = { type = "string", required = true }
url = { type = "string" }
name = { type = "string" }
[capabilities]
http = ["http://127.0.0.1:*"]
config = ["customerName"]
"#;

fn hostile_workspace(env: &TestEnv, policy: &str, inputs: &str) {
    let mut ws = one_instance_workspace(&[]);
    ws.push_str(&format!(
        "\n[plugins.hostile]\nsource = \"hostile.wasm\"\n{policy}\n"
    ));
    env.workspace(
        &ws,
        &format!("name = \"test\"\n[config_vars]\ncustomerName = {{}}\npokemonAvatar = {{}}\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nid = \"s\"\nplugin = \"hostile\"\ninputs = {inputs}\n"),
    );
}

#[test]
fn grants_stay_within_the_manifest_and_inputs_are_checked() {
    let env = with_manifest(MANIFEST);
    hostile_workspace(
        &env,
        "http = { allow = [\"https://evil.example\"] }\nstate = true",
        "{ mode = \"ok\", colour = \"red\" }",
    );
    let out = env.weft(&["validate", "weft.toml"]);
    assert!(!out.success);
    for needle in [
        "plugin `hostile`, field `http.allow`: `https://evil.example` is more than plugin `hostile` requests in its manifest (`http://127.0.0.1:*`)",
        "plugin `hostile`, field `state`: plugin `hostile` does not request persisted state in its manifest",
        "step `s`, field `inputs.colour`: plugin `hostile` takes no input `colour`; its inputs are `mode`, `name`, `url`",
    ] {
        assert!(
            out.stderr.contains(needle),
            "missing {needle:?} in {}",
            out.stderr
        );
    }

    // Types are checked on the rendered values, before the step runs. (The plugin imports
    // state, so from here on its manifest asks for it and its policy grants it.)
    env.write(
        "hostile.plugin.toml",
        &MANIFEST.replace("[capabilities]", "[capabilities]\nstate = true"),
    );
    let granted =
        "http = { allow = [\"http://127.0.0.1:*\"], allow_loopback = true }\nstate = true";
    hostile_workspace(&env, granted, "{ mode = 5 }");
    let out = env.weft(&["run", "weft.toml", "-i", "acme-test", "--json"]);
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    let error = run["steps"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(
            "step `s`: input `mode` of plugin `hostile` must be a string, but it is a number"
        ),
        "{error}"
    );

    // The plugin reads only the config vars its manifest lists.
    hostile_workspace(
        &env,
        granted,
        "{ mode = \"unbound-var\", name = \"pokemonAvatar\" }",
    );
    let out = env.weft(&["run", "weft.toml", "-i", "acme-test", "--json"]);
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        run["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("config var `pokemonAvatar` is not bound"),
        "{run:#}"
    );
    hostile_workspace(
        &env,
        granted,
        "{ mode = \"unbound-var\", name = \"customerName\" }",
    );
    let out = env.weft(&["run", "weft.toml", "-i", "acme-test", "--json"]);
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(run["result"]["json"]["value"], "Acme Rockets", "{run:#}");
}

#[test]
fn inspect_and_add_describe_the_component_and_its_policy() {
    let env = with_manifest(MANIFEST);
    let digest = sha256_of(env.path().join("hostile.wasm").to_str().unwrap());
    let out = env.weft(&["plugins", "inspect", "hostile.wasm"]);
    assert!(out.success, "{out:?}");
    for needle in [
        format!("sha256       {digest}"),
        "World        weft:step@0.1.0 (served by this engine)".into(),
        "  weft:step/state@0.1.0".into(),
        "Needs grants http, state".into(),
        "Manifest     hostile 1.0.0 — misbehaves on request".into(),
    ] {
        assert!(
            out.stdout.contains(&needle),
            "missing {needle:?} in {}",
            out.stdout
        );
    }

    let out = env.weft(&["plugins", "add", "hostile.wasm"]);
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout
            .starts_with("[plugins.hostile]\nsource = \"hostile.wasm\"\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("sha256 = \"{digest}\"")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("http = { allow = [\"http://127.0.0.1:*\"] }"),
        "{}",
        out.stdout
    );

    // The printed entry, pasted into a workspace as it is (the manifest asks for no state, so
    // the operator drops that line), loads the plugin with its digest pinned.
    let snippet = out.stdout.replace("state = true\n", "");
    let mut ws = one_instance_workspace(&[]);
    ws.push_str(&format!("\n{snippet}"));
    ws = ws.replace(
        "http = { allow = [\"http://127.0.0.1:*\"] }",
        "http = { allow = [\"http://127.0.0.1:*\"], allow_loopback = true }",
    );
    env.workspace(&ws, "name = \"test\"\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nid = \"s\"\nplugin = \"hostile\"\ninputs = { mode = \"ok\" }\n");
    let out = env.weft(&["run", "weft.toml", "-i", "acme-test", "--json"]);
    let run: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    // The hostile plugin imports state, which the manifest does not request: refused at load.
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("imports `weft:step/state@0.1.0`, which its policy does not grant"),
        "{run:#}"
    );

    let out = env.weft(&["plugins", "inspect", "missing.wasm"]);
    assert!(!out.success);
    assert!(
        out.stderr.contains("failed to read `missing.wasm`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_plugin_from_a_url_is_pinned_fetched_once_and_checked() {
    let server = weft_tests::server::TestServer::start();
    let url = server.url("/plugins/path_helper.wasm");
    let digest = sha256_of(plugin("path_helper"));
    let env = TestEnv::new();
    let integration = "name = \"test\"\n[config_vars]\ncustomerName = {}\npokemonAvatar = {}\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nid = \"s\"\nplugin = \"remote\"\n";
    let workspace = |pin: &str| {
        let mut ws = one_instance_workspace(&[]);
        ws.push_str(&format!("\n[plugins.remote]\nsource = \"{url}\"\n{pin}\n"));
        ws
    };

    // A URL source must be pinned.
    env.workspace(&workspace(""), integration);
    let out = env.weft(&["validate", "weft.toml"]);
    assert!(
        out.stderr.contains(
            "plugin `remote`, field `sha256`: a plugin fetched from a URL must be pinned"
        ),
        "{out:?}"
    );

    // A download that does not match the pin is not loaded.
    let wrong = "ab".repeat(32);
    env.write("weft.toml", &workspace(&format!("sha256 = \"{wrong}\"")));
    let out = env.weft(&["run", "weft.toml", "-i", "acme-test", "--json"]);
    let run: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("failed to fetch plugin `remote` from `{url}`"))
            && error.contains(&format!(
                "the download has sha256 {digest}, but the policy pins sha256 = \"{wrong}\""
            )),
        "{error}"
    );

    // Pinned right: fetched once, kept in the store, and run.
    env.write("weft.toml", &workspace(&format!("sha256 = \"{digest}\"")));
    for _ in 0..2 {
        let run = {
            let out = env.weft(&["run", "weft.toml", "-i", "acme-test", "--json"]);
            serde_json::from_str::<Value>(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
        };
        assert_eq!(run["status"], "succeeded", "{run:#}");
        assert_eq!(run["result"]["json"]["s3ObjectPath"], "Acme Rockets.png");
    }
    assert_eq!(
        server.seen_at("/plugins/path_helper.wasm").len(),
        2,
        "one refused download, then one kept for both runs"
    );
    assert!(
        env.path()
            .join(format!(".weft/plugins/{digest}.wasm"))
            .is_file()
    );
}
