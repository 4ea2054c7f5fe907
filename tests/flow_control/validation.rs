//! What `weft validate` says about flow control.

use super::*;

#[test]
fn every_flow_control_mistake_is_reported_at_once() {
    let env = TestEnv::new();
    env.workspace(
        r#"integrations = ["integration.toml"]
[[customers]]
id = "acme"
name = "Acme"
[[instances]]
id = "acme-test"
customer = "acme"
integration = "test"
"#,
        r#"name = "test"
[[flows]]
name = "main"
[[flows.steps]]
id = "guarded"
plugin = "path-helper"
if = "trigger.a =="
[[flows.steps]]
id = "each"
type = "loop"
items = "{{ trigger.items }}"
[[flows.steps.steps]]
id = "inner"
plugin = "path-helper"
[[flows.steps]]
id = "peek"
plugin = "path-helper"
inputs = { api_base = "{{ steps.inner.results.pokemonUrl }}" }
[[flows.steps]]
id = "spin"
type = "loop"
while = "true"
[[flows.steps.steps]]
id = "spun"
plugin = "path-helper"
[[flows.steps]]
id = "odd"
type = "fork"
[[flows.steps]]
id = "both"
type = "stop"
plugin = "path-helper"
"#,
    );
    let out = env.weft(&["validate", "weft.toml"]);
    assert!(!out.success);
    let errors = out.stderr;
    for expected in [
        // A bad expression, with where it goes wrong.
        "step `guarded`, field `if`",
        "does not parse: line 1, column 13",
        // A reference into another scope.
        "`steps.inner.results.pokemonUrl` refers to step `inner`, which is inside step `each`",
        // `while` without `max_iterations`.
        "a `while` loop needs `max_iterations`",
        // An unknown step kind.
        "unknown step type `fork`",
        // Both `plugin` and `type`.
        "the step has both `plugin` and `type`",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
}
