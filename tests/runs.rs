//! Running the example end to end through the `weft` binary, and reading the runs back.

use serde_json::{Value, json};
use weft_tests::{TestEnv, pokemon_example};

#[test]
fn both_customers_runs_are_recorded_and_read_back() {
    let (env, stand_ins) = pokemon_example();
    let store = env.path().join("store").display().to_string();
    let api = format!("http://{}/api/v2/pokemon", stand_ins.servers.pokeapi);
    let cases = [
        (
            "smith-rocket-avatar-sync",
            json!({ "pokemonUrl": format!("{api}/pikachu"), "s3ObjectPath": "Smith Rocket Company.png" }),
        ),
        (
            "ftl-rockets-avatar-sync",
            json!({ "pokemonUrl": format!("{api}/onix"), "s3ObjectPath": "FTL Rockets.png" }),
        ),
    ];
    let mut ids = Vec::new();
    for (instance, expected) in &cases {
        let out = env.weft(&[
            "--store",
            &store,
            "run",
            "weft.toml",
            "--instance",
            instance,
            "--json",
        ]);
        assert!(out.success, "{out:?}");
        let run: Value = serde_json::from_str(&out.stdout).expect("--json prints JSON");
        assert_eq!(run["status"], "succeeded");
        assert_eq!(run["steps"][0]["id"], "path_helper");
        assert_eq!(run["steps"][0]["output"]["json"], *expected);
        // The run's result is its last step's: where the avatar was saved.
        assert_eq!(
            run["result"]["json"]["key"], expected["s3ObjectPath"],
            "{}",
            run["result"]
        );
        ids.push(run["id"].as_str().unwrap().to_string());
    }

    // The table form names each step, its plugin and its status.
    let out = env.weft(&[
        "--store",
        &store,
        "run",
        "weft.toml",
        "--instance",
        "ftl-rockets-avatar-sync",
    ]);
    assert!(out.success, "{out:?}");
    for (step, plugin) in [
        ("path_helper", "path-helper"),
        ("get_pokemon_data", "http-get"),
        ("get_pokemon_avatar", "http-get"),
        ("save_avatar", "s3-put-object"),
    ] {
        assert!(
            out.stdout.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.starts_with(&[step, plugin, "succeeded"])
            }),
            "{}",
            out.stdout
        );
    }
    assert!(
        out.stdout
            .contains(r#""location": "s3://weft-demo-avatars/FTL Rockets.png""#),
        "{}",
        out.stdout
    );

    let out = env.weft(&["--store", &store, "runs", "list", "--json"]);
    assert!(out.success, "{out:?}");
    let runs: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[2]["id"], ids[0], "oldest last");

    let out = env.weft(&[
        "--store",
        &store,
        "runs",
        "list",
        "--instance",
        "smith-rocket-avatar-sync",
    ]);
    assert!(out.success, "{out:?}");
    assert_eq!(
        out.stdout.lines().count(),
        2,
        "a header and one run: {}",
        out.stdout
    );
    assert!(out.stdout.contains(&ids[0]));

    let out = env.weft(&["--store", &store, "runs", "show", &ids[0]]);
    assert!(out.success, "{out:?}");
    let path_helper = format!(
        r#"Output     {{"pokemonUrl":"{api}/pikachu","s3ObjectPath":"Smith Rocket Company.png"}}"#
    );
    for needle in [
        "Status       succeeded",
        "customerName = \"Smith Rocket Company\" (customer)",
        "pokemonAvatarS3BucketName = \"weft-demo-avatars\" (workspace)",
        "Step 1 `path_helper` (plugin path-helper): succeeded in",
        &path_helper,
        "Step 3 `get_pokemon_avatar` (plugin http-get): succeeded in",
        "Step 4 `save_avatar` (plugin s3-put-object): succeeded in",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle:?} in:\n{}",
            out.stdout
        );
    }

    let out = env.weft(&["--store", &store, "runs", "show", "no-such-run"]);
    assert!(!out.success);
    assert!(
        out.stderr.contains("no run `no-such-run` in the store"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_required_var_stops_before_any_step() {
    let env = TestEnv::new();
    let ws = env.workspace(
        r#"integrations = ["integration.toml"]
[[customers]]
id = "acme"
name = "Acme"
config = { pokemonAvatar = "onix" }
[[instances]]
id = "acme-sync"
customer = "acme"
integration = "avatar"
"#,
        r#"name = "avatar"
[config_vars]
customerName = { required = true }
pokemonAvatar = {}
[[flows]]
name = "sync"
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"
"#,
    );
    let out = env.weft(&["run", ws.to_str().unwrap(), "--instance", "acme-sync"]);
    assert!(!out.success);
    assert!(
        out.stderr.contains(
            "instance `acme-sync`, config var `customerName`: required config var `customerName` has no value; searched instance `acme-sync`, customer `acme`, workspace and integration default"
        ),
        "{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("path_helper"),
        "no step ran: {}",
        out.stdout
    );
    assert!(!env.path().join(".weft").exists(), "nothing was recorded");

    // Set at the workspace level, the var is found and the run goes ahead.
    std::fs::write(
        &ws,
        std::fs::read_to_string(&ws).unwrap().replace(
            "integrations = [\"integration.toml\"]",
            "integrations = [\"integration.toml\"]\nconfig = { customerName = \"Acme Workspace\" }",
        ),
    )
    .unwrap();
    let out = env.weft(&[
        "run",
        ws.to_str().unwrap(),
        "--instance",
        "acme-sync",
        "--json",
    ]);
    assert!(out.success, "{out:?}");
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(run["result"]["json"]["s3ObjectPath"], "Acme Workspace.png");
    assert_eq!(run["config"]["customerName"]["level"], "workspace");
}

#[test]
fn json_workspace_files_work_like_toml() {
    let env = TestEnv::new();
    env.write(
        "integration.json",
        r#"{ "name": "avatar", "config_vars": { "customerName": { "required": true }, "pokemonAvatar": { "default": "mew" } },
             "flows": [{ "name": "sync", "steps": [{ "id": "paths", "plugin": "path-helper",
                         "inputs": { "api_base": "https://example.test/{{ customer.id }}" } }] }] }"#,
    );
    let ws = env.write(
        "weft.json",
        r#"{ "integrations": ["integration.json"],
             "customers": [{ "id": "c1", "name": "C One", "config": { "customerName": "C One" } }],
             "instances": [{ "id": "c1-sync", "customer": "c1", "integration": "avatar" }] }"#,
    );
    let out = env.weft(&["run", ws.to_str().unwrap(), "-i", "c1-sync", "--json"]);
    assert!(out.success, "{out:?}");
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        run["result"]["json"],
        json!({ "pokemonUrl": "https://example.test/c1/mew", "s3ObjectPath": "C One.png" })
    );
    assert_eq!(
        run["steps"][0]["inputs"][0],
        json!(["api_base", { "json": "https://example.test/c1" }])
    );
}
