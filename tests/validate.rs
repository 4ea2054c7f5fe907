//! `weft validate`: every problem in a workspace is reported at once, each naming the file,
//! flow, step and field and saying what would fix it.

use weft_tests::TestEnv;

const WORKSPACE: &str = r#"integrations = ["integration.toml"]

[plugins.missing-file]
source = "plugins/not-built.wasm"

[[customers]]
id = "acme"
name = "Acme"

[[instances]]
id = "acme-sync"
customer = "acme"
integration = "broken"
"#;

const INTEGRATION: &str = r#"name = "broken"

[config_vars]
customerName = { required = true }
region = { default = "us-east-1" }

[[flows]]
name = "sync"

[[flows.steps]]
id = "first"
plugin = "path-helper"
inputs = { a = "{{ steps.second.results.x }}", b = "{{ steps.first.results }}", c = "{{ config.custmerName }}" }

[[flows.steps]]
id = "second"
plugin = "no-such-plugin"
inputs = { d = "{{ steps.nowhere.results }}", e = "{{ config.region ", f = "{{ steps.first.results }}" }

[[flows.steps]]
id = "second"
plugin = "missing-file"
timeout = "5 fortnights"
"#;

#[test]
fn every_problem_is_reported_with_where_and_how_to_fix_it() {
    let env = TestEnv::new();
    let ws = env.workspace(WORKSPACE, INTEGRATION);
    let out = env.weft(&["validate", ws.to_str().unwrap()]);
    assert!(!out.success);
    let integration = env.path().join("integration.toml").display().to_string();
    let workspace = ws.display().to_string();
    let expected = [
        // plugin file missing
        format!(
            "{workspace}, plugin `missing-file`, field `source`: plugin file `{}` does not exist",
            env.path().join("plugins/not-built.wasm").display()
        ),
        // reference to a later step
        format!(
            "{integration}, flow `sync`, step `first`, field `inputs.a`: `steps.second.results.x` refers to step `second`, which runs later; a step can only use the results of steps before it"
        ),
        // reference to itself
        format!(
            "{integration}, flow `sync`, step `first`, field `inputs.b`: `steps.first.results` refers to the step itself"
        ),
        // unknown config var, with a suggestion
        format!(
            "{integration}, flow `sync`, step `first`, field `inputs.c`: `config.custmerName` names config var `custmerName`, which the integration does not declare; declare it under `[config_vars]` (did you mean `customerName`?)"
        ),
        // inputs the plugin's manifest does not list
        format!(
            "{integration}, flow `sync`, step `first`, field `inputs.a`: plugin `path-helper` takes no input `a`; its inputs are `api_base`"
        ),
        format!(
            "{integration}, flow `sync`, step `first`, field `inputs.b`: plugin `path-helper` takes no input `b`"
        ),
        format!(
            "{integration}, flow `sync`, step `first`, field `inputs.c`: plugin `path-helper` takes no input `c`"
        ),
        // unknown plugin
        format!(
            "{integration}, flow `sync`, step `second`, field `plugin`: unknown plugin `no-such-plugin`; add it to `[plugins]` in the workspace file or use a built-in plugin (`path-helper`, `http-get`, `http-request`, `s3-put-object`)"
        ),
        // unknown step
        format!(
            "{integration}, flow `sync`, step `second`, field `inputs.d`: `steps.nowhere.results` refers to step `nowhere`, which is not in this flow"
        ),
        // malformed template
        format!(
            "{integration}, flow `sync`, step `second`, field `inputs.e`: malformed template: `{{{{` is never closed with `}}}}` in `{{{{ config.region `"
        ),
        // duplicate step id
        format!("{integration}, flow `sync`, step `second`: duplicate step id"),
        // bad limit
        format!(
            "{integration}, flow `sync`, step `second`, field `timeout`: `5 fortnights` has unknown unit `fortnights`"
        ),
        // missing required var for an instance
        format!(
            "{workspace}, instance `acme-sync`, config var `customerName`: required config var `customerName` has no value; searched instance `acme-sync`, customer `acme`, workspace and integration default"
        ),
    ];
    for line in &expected {
        assert!(
            out.stderr.contains(line.as_str()),
            "missing:\n{line}\nin:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr
            .contains(&format!("{} problems found", expected.len())),
        "all problems, and only these, are reported:\n{}",
        out.stderr
    );
    // A valid reference to an earlier step is not reported.
    assert!(!out.stderr.contains("inputs.f"), "{}", out.stderr);
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let env = TestEnv::new();
    let ws = env.workspace(
        "integrations = [\"integration.toml\"]\n",
        "name = \"x\"\n[[flows]]\nname = \"sync\"\n[[flows.steps]]\nid = \"a\"\nplugn = \"path-helper\"\n",
    );
    let out = env.weft(&["validate", ws.to_str().unwrap()]);
    assert!(!out.success);
    assert!(
        out.stderr.contains("integration.toml` is not a valid file"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("line 6"), "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown field `plugn`"),
        "{}",
        out.stderr
    );

    let out = env.weft(&["validate", "nowhere.toml"]);
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("workspace file `nowhere.toml` does not exist"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_valid_workspace_is_summarised() {
    let env = TestEnv::new();
    let ws = env.workspace(
        &weft_tests::one_instance_workspace(&[]),
        "name = \"test\"\n[config_vars]\ncustomerName = {}\npokemonAvatar = {}\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nid = \"a\"\nplugin = \"path-helper\"\n",
    );
    let out = env.weft(&["validate", ws.to_str().unwrap()]);
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout
            .contains("is valid: 1 integration(s), 1 step(s), 1 customer(s), 1 instance(s)"),
        "{}",
        out.stdout
    );
}
