//! The hostile-plugin workspace shared by the hostile suite (`tests/hostile.rs`) and the
//! isolation-under-load test (`tests/isolation.rs`, a test binary of its own).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::server::TestServer;
use crate::{TestEnv, plugin};

/// One flow per kind of misbehaviour, plus `ok`, a normal Path Helper flow.
pub fn env(server: &TestServer) -> TestEnv {
    let env = TestEnv::new();
    let flows: &[(&str, &str, &str)] = &[
        ("ok", "path-helper", ""),
        ("spin", "spin", "timeout = \"200ms\""),
        ("hog", "hog", "limits = { memory = \"32 MiB\" }"),
        ("recurse", "hostile", "inputs = { mode = \"recurse\" }"),
        (
            "bloat",
            "bloat",
            "inputs = { size = 2000000 }\nlimits = { output = \"1 MiB\" }",
        ),
        ("trap", "trap", ""),
        ("log_flood", "hostile", "inputs = { mode = \"log-flood\" }"),
        (
            "state_flood",
            "hostile",
            "inputs = { mode = \"state-flood\" }",
        ),
        (
            "forbidden_host",
            "hostile",
            "inputs = { mode = \"forbidden-host\", url = \"http://203.0.113.7/\" }",
        ),
        (
            "block",
            "hostile",
            "timeout = \"300ms\"\ninputs = { mode = \"block\", url = \"SLOW\" }",
        ),
        (
            "unbound_var",
            "hostile",
            "inputs = { mode = \"unbound-var\", name = \"apiToken\" }",
        ),
    ];
    let mut integration =
        String::from("name = \"test\"\n[config_vars]\ncustomerName = {}\npokemonAvatar = {}\n");
    for (flow, plugin_name, options) in flows {
        integration.push_str(&format!(
            "\n[[flows]]\nname = \"{flow}\"\n[[flows.steps]]\nid = \"{flow}\"\nplugin = \"{plugin_name}\"\n{}\n",
            options.replace("SLOW", &server.url("/slow?ms=5000"))
        ));
    }
    env.workspace(
        &format!(
            r#"integrations = ["integration.toml"]
[plugins.hostile]
source = {hostile:?}
state = true
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}
[plugins.spin]
source = {spin:?}
[plugins.hog]
source = {hog:?}
[plugins.bloat]
source = {bloat:?}
[plugins.trap]
source = {trap:?}
[[customers]]
id = "acme"
name = "Acme"
config = {{ customerName = "Acme Rockets", pokemonAvatar = "onix" }}
[[instances]]
id = "acme-test"
customer = "acme"
integration = "test"
"#,
            port = server.port(),
            hostile = plugin("testing_hostile"),
            spin = plugin("testing_spin"),
            hog = plugin("testing_hog"),
            bloat = plugin("testing_bloat"),
            trap = plugin("testing_trap"),
        ),
        &integration,
    );
    env
}

/// What each hostile flow's step error must say.
pub fn expected() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("spin", "exceeded its 200 ms time limit"),
        ("hog", "exceeded its 32 MiB memory limit"),
        ("recurse", "exhausted its stack"),
        ("bloat", "over its 1 MiB output limit"),
        ("trap", "crashed"),
        ("state_flood", "over its 1 MiB limit"),
        ("forbidden_host", "may not reach `http://203.0.113.7/`"),
        // The blocked host call and the step share one deadline: either the call gives up
        // ("did not answer in time", the step sees the error) or the step's timer fires first.
        (
            "block",
            "did not answer in time|exceeded its 300 ms time limit",
        ),
        (
            "unbound_var",
            "config var `apiToken` is not bound for this instance",
        ),
    ])
}

/// Runs `flow` of the hostile workspace with the `weft` binary; its run record as JSON.
pub fn run_flow(env: &TestEnv, flow: &str) -> Value {
    let out = env.weft(&[
        "run",
        "weft.toml",
        "-i",
        "acme-test",
        "--flow",
        flow,
        "--json",
    ]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}
