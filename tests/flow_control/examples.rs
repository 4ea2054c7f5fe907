//! The Contacts Sync example and the README's snippets, run as written.

use super::*;

#[test]
fn the_contacts_example_creates_and_updates_exactly_what_changed() {
    use weft::demo::contacts::{ContactStandIns, write_workspace};
    let rt = rt();
    let stand_ins = rt
        .block_on(ContactStandIns::start(3, 250))
        .expect("the stand-ins start");
    let env = TestEnv::new();
    write_workspace(env.path(), &stand_ins).expect("the workspace is written");

    let out = env.weft(&[
        "run",
        "weft.toml",
        "-i",
        "acme-contacts",
        "-f",
        "sync",
        "--json",
    ]);
    assert!(out.success, "{out:?}");
    let run: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(run["status"], "succeeded", "{}", run["error"]);
    assert_eq!(run["stopped_by"], "summary");

    // Contacts n % 3 == 2 are new, n % 3 == 1 changed, the rest unchanged: each new one
    // created once, each changed one updated once, nothing else sent.
    let log = stand_ins.log();
    let ids = |rest: usize| -> Vec<String> {
        (0..750)
            .filter(|n| n % 3 == rest)
            .map(|n| format!("c{n:05}"))
            .collect()
    };
    let mut created = log.created.clone();
    created.sort();
    let mut updated = log.updated.clone();
    updated.sort();
    assert_eq!(created, ids(2));
    assert_eq!(updated, ids(1));

    // The run's tree: the pages loop with its three iterations, none failed.
    let id = run["id"].as_str().unwrap();
    let out = env.weft(&["runs", "show", id, "-w", "weft.toml"]);
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains("Step 1 `pages` (loop): succeeded")
            && out.stdout.contains("3 iteration(s), 0 failed")
            && out.stdout.contains("Stopped by   step `summary`"),
        "{}",
        out.stdout
    );
    // One iteration opened: its page branch and the contacts loop of that page.
    let out = env.weft(&["runs", "show", id, "-w", "weft.toml", "--iteration", "1"]);
    assert!(
        out.stdout.contains("Iteration 1")
            && out.stdout.contains("(branch): succeeded")
            && out.stdout.contains(", branch `next`")
            && out.stdout.contains("250 iteration(s), 0 failed"),
        "{}",
        out.stdout
    );

    // `weft demo contacts-sync` runs the same against stand-ins of its own.
    let demo = env.weft(&["demo", "contacts-sync", "--dir", "demo"]);
    assert!(demo.success, "{demo:?}");
    assert!(
        demo.stdout
            .contains("250 created, 250 updated, 250 skipped (unchanged) of 750 contacts"),
        "{}",
        demo.stdout
    );
}

/// The `toml` blocks of the README's flow-control section, joined: one integration's flows.
fn readme_flows() -> String {
    let readme = std::fs::read_to_string(weft_tests::repo().join("README.md")).expect("README");
    let start = readme
        .find("## Flow control")
        .expect("the README has a flow-control section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut flows = String::new();
    for block in section.split("```toml\n").skip(1) {
        flows.push_str(&block[..block.find("```").expect("a closed block")]);
        flows.push('\n');
    }
    flows
}

#[test]
fn the_readme_flow_control_snippets_validate_and_run_as_written() {
    let server = TestServer::start();
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
integration = "readme"
config = {{ api = "{api}" }}
"#,
            port = server.port(),
            api = server.url("")
        ),
        &format!("name = \"readme\"\n{}", readme_flows()),
    );
    let rt = rt();
    let json = |run: &weft::store::RunWithSteps| match &run.run.result {
        Some(weft_model::value::RecordedValue::Json(v)) => v.clone(),
        other => panic!("{other:?}"),
    };

    let run = rt.block_on(run_flow(
        &env,
        "route-order",
        json!({ "id": "o1", "total": 5000, "gift": true }),
    ));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    assert_eq!(json(&run), json!({ "branch": "large" }));
    assert_eq!(server.seen_at("/echo").len(), 2);
    let run = rt.block_on(run_flow(
        &env,
        "route-order",
        json!({ "id": "o2", "total": 5 }),
    ));
    assert_eq!(json(&run), json!({ "branch": "small" }));
    assert_eq!(
        server.seen_at("/echo").len(),
        2,
        "a small order without a gift sends nothing"
    );

    let run = rt.block_on(run_flow(&env, "ping-all", json!({ "ids": [7, 8, 9] })));
    assert_eq!(json(&run), json!([{ "n": 7 }, { "n": 8 }, { "n": 9 }]));

    let run = rt.block_on(run_flow(&env, "all-pages", Value::Null));
    assert_eq!(run.steps[0].detail.as_ref().unwrap()["iterations"], 4);

    let run = rt.block_on(run_flow(&env, "signup", json!({ "email": "a@b.c" })));
    assert_eq!(run.run.status, Status::Succeeded, "{:?}", run.run.error);
    assert_eq!(
        json(&run),
        json!({ "status": 201, "body": { "welcome": "a@b.c" } })
    );
    let run = rt.block_on(run_flow(&env, "signup", json!({})));
    assert_eq!(run.run.status, Status::Failed);
    let error = run.run.error.unwrap();
    assert!(
        error.contains(
            "flow `require-email` stopped failed at step `missing`: an email is required"
        ),
        "{error}"
    );
}
