//! Managed state: `weft apply` makes the store match the workspace file, integrations are
//! versioned, instances stay pinned until upgraded, and config set in the store reaches the
//! next run.

use serde_json::Value;
use weft_tests::TestEnv;

const WORKSPACE: &str = r#"integrations = ["integration.toml"]
config = { region = "eu" }

[[customers]]
id = "acme"
name = "Acme"
config = { customerName = "Acme Rockets", pokemonAvatar = "onix" }

[[customers]]
id = "globex"
name = "Globex"
config = { customerName = "Globex", pokemonAvatar = "mew" }

[[instances]]
id = "acme-sync"
customer = "acme"
integration = "avatar"

[[instances]]
id = "globex-sync"
customer = "globex"
integration = "avatar"
"#;

fn integration(api_base: &str) -> String {
    format!(
        r#"name = "avatar"
[config_vars]
customerName = {{ required = true }}
pokemonAvatar = {{}}
region = {{}}
[[flows]]
name = "sync"
[[flows.steps]]
id = "paths"
plugin = "path-helper"
inputs = {{ api_base = "{api_base}/{{{{ config.region }}}}" }}
"#
    )
}

/// Runs `instance` from the store (no workspace file) and returns its Path Helper URL.
fn url_from_store(env: &TestEnv, instance: &str) -> String {
    let out = env.weft(&["--store", ".weft", "run", "--instance", instance, "--json"]);
    assert!(out.success, "{out:?}");
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    run["result"]["json"]["pokemonUrl"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn instances_stay_on_their_version_until_upgraded() {
    let env = TestEnv::new();
    env.workspace(WORKSPACE, &integration("https://v1.example"));

    let out = env.weft(&["apply", "weft.toml"]);
    assert!(out.success, "{out:?}");
    for line in [
        "integration `avatar`: published v1",
        "customer `acme`: created",
        "instance `acme-sync`: created, pinned to `avatar` v1",
        "instance `globex-sync`: created, pinned to `avatar` v1",
    ] {
        assert!(
            out.stdout.contains(line),
            "missing {line:?}:\n{}",
            out.stdout
        );
    }
    // Applying the same files again changes nothing.
    let out = env.weft(&["apply", "weft.toml"]);
    assert!(out.stdout.contains("nothing changed"), "{}", out.stdout);

    assert_eq!(
        url_from_store(&env, "acme-sync"),
        "https://v1.example/eu/onix"
    );

    // A changed integration file is published as v2; the instances stay on v1.
    env.write("integration.toml", &integration("https://v2.example"));
    let out = env.weft(&["apply", "weft.toml"]);
    assert!(
        out.stdout.contains("integration `avatar`: published v2"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("instance `acme-sync`: stays on `avatar` v1 (v2 is published; `weft instances upgrade acme-sync` moves it)"),
        "{}",
        out.stdout
    );
    assert_eq!(
        url_from_store(&env, "acme-sync"),
        "https://v1.example/eu/onix"
    );
    let out = env.weft(&[
        "--store",
        ".weft",
        "run",
        "--instance",
        "acme-sync",
        "--json",
    ]);
    let run: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(run["integration_version"], 1);

    // Upgrading one instance moves only that one.
    let out = env.weft(&["instances", "upgrade", "acme-sync", "-w", "weft.toml"]);
    assert!(out.stdout.contains("moved from v1 to v2"), "{out:?}");
    assert_eq!(
        url_from_store(&env, "acme-sync"),
        "https://v2.example/eu/onix"
    );
    assert_eq!(
        url_from_store(&env, "globex-sync"),
        "https://v1.example/eu/mew"
    );

    let out = env.weft(&["instances", "list", "-w", "weft.toml"]);
    let acme = out
        .stdout
        .lines()
        .find(|l| l.starts_with("acme-sync"))
        .unwrap();
    let globex = out
        .stdout
        .lines()
        .find(|l| l.starts_with("globex-sync"))
        .unwrap();
    assert!(acme.contains("v2") && !acme.contains("v1"), "{acme}");
    assert!(globex.contains("v1") && globex.contains("v2"), "{globex}");
    let out = env.weft(&["integrations", "list", "-w", "weft.toml"]);
    assert!(out.stdout.contains("v1 v2"), "{}", out.stdout);

    // Back to v1 on request; a version that does not exist is refused.
    let out = env.weft(&[
        "instances",
        "upgrade",
        "acme-sync",
        "--to",
        "7",
        "-w",
        "weft.toml",
    ]);
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("integration `avatar` has no v7; its versions are v1, v2"),
        "{}",
        out.stderr
    );

    // A disabled instance does not run.
    env.weft(&["instances", "disable", "globex-sync", "-w", "weft.toml"]);
    let out = env.weft(&["--store", ".weft", "run", "--instance", "globex-sync"]);
    assert!(!out.success);
    assert!(
        out.stderr.contains("instance `globex-sync` is disabled"),
        "{}",
        out.stderr
    );

    // A customer removed from the file is removed from the store, with its instance.
    let without_globex = WORKSPACE
        .split("[[customers]]\nid = \"globex\"")
        .next()
        .unwrap()
        .to_string()
        + "[[instances]]\nid = \"acme-sync\"\ncustomer = \"acme\"\nintegration = \"avatar\"\n";
    env.write("weft.toml", &without_globex);
    let out = env.weft(&["apply", "weft.toml"]);
    assert!(
        out.stdout.contains("customer `globex`: removed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("instance `globex-sync`: removed"),
        "{}",
        out.stdout
    );
    // The upgraded instance keeps its version across applies.
    assert_eq!(
        url_from_store(&env, "acme-sync"),
        "https://v2.example/eu/onix"
    );
}

#[test]
fn config_set_in_the_store_reaches_the_next_run_at_each_level() {
    let env = TestEnv::new();
    env.workspace(WORKSPACE, &integration("https://api.example"));
    assert!(env.weft(&["apply", "weft.toml"]).success);
    assert_eq!(
        url_from_store(&env, "acme-sync"),
        "https://api.example/eu/onix"
    );

    let set = |args: &[&str]| {
        let mut all = vec!["config", "set"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-w", "weft.toml"]);
        let out = env.weft(&all);
        assert!(out.success, "{out:?}");
    };
    set(&["region", "us"]);
    assert_eq!(
        url_from_store(&env, "acme-sync"),
        "https://api.example/us/onix"
    );
    set(&["pokemonAvatar", "pikachu", "--customer", "acme"]);
    assert_eq!(
        url_from_store(&env, "acme-sync"),
        "https://api.example/us/pikachu"
    );
    set(&["pokemonAvatar", "snorlax", "--instance", "acme-sync"]);
    assert_eq!(
        url_from_store(&env, "acme-sync"),
        "https://api.example/us/snorlax"
    );
    // Other customers are untouched by customer- and instance-level values.
    assert_eq!(
        url_from_store(&env, "globex-sync"),
        "https://api.example/us/mew"
    );

    let out = env.weft(&["customers", "show", "acme", "-w", "weft.toml"]);
    assert!(
        out.stdout
            .contains("Config       pokemonAvatar = \"pikachu\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Instance     acme-sync (`avatar` v1)"),
        "{}",
        out.stdout
    );

    // Apply puts back what the file says.
    let out = env.weft(&["apply", "weft.toml"]);
    assert!(
        out.stdout.contains("customer `acme`: updated"),
        "{}",
        out.stdout
    );
    assert_eq!(
        url_from_store(&env, "acme-sync"),
        "https://api.example/eu/onix"
    );
}

#[test]
fn running_from_an_empty_store_says_what_to_do() {
    let env = TestEnv::new();
    let out = env.weft(&["run", "--instance", "acme-sync"]);
    assert!(!out.success);
    assert!(
        out.stderr.contains("weft apply weft.toml"),
        "{}",
        out.stderr
    );
}
