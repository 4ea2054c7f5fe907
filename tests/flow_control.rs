//! Flow control: branches, loops, `if`, stop and call steps, checked before anything runs,
//! recorded step by step, resumable in the middle of a loop. Real plugins, the real store,
//! a real HTTP server on loopback.

use serde_json::{Value, json};
use weft::runner::RunRequest;
use weft::store::Status;
use weft_tests::TestEnv;

mod branches;
mod examples;
mod loops;
mod resume;
mod validation;
use weft_tests::server::TestServer;

/// A workspace whose `http-request` may reach `server`, with integration `test` made of
/// `flows` (TOML), for instance `acme-test`.
fn workspace(server: &TestServer, flows: &str) -> TestEnv {
    let env = TestEnv::new();
    env.workspace(
        &format!(
            r#"integrations = ["integration.toml"]
[plugins.http-request]
source = "builtin:http-request"
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}
[[customers]]
id = "acme"
name = "Acme"
[[instances]]
id = "acme-test"
customer = "acme"
integration = "test"
"#,
            port = server.port()
        ),
        &format!("name = \"test\"\n{flows}"),
    );
    env
}

async fn run_flow(env: &TestEnv, flow: &str, trigger: Value) -> weft::store::RunWithSteps {
    let ws = env.load();
    let runner = env.runner();
    runner
        .run(RunRequest {
            workspace: &ws,
            instance: "acme-test",
            flow: Some(flow),
            trigger,
        })
        .await
        .expect("the run starts")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
