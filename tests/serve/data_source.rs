//! A picklist whose options a flow lists (a data source): the customer's channels, fetched by
//! the integration's `list-channels` flow with the customer's own connection, from a loopback
//! API that answers only that token. Until the customer connects, the wizard says why there
//! are no choices; a value the flow did not list is refused on the server.

use super::*;

fn integration(api: &str) -> String {
    format!(
        r#"name = "channel-digest"
version = 1
description = "Posts a digest to a channel"

[marketplace]
listed = true

[[marketplace.pages]]
title = "Where to post"
vars = ["channel"]

[connections.chat]
kind = "bearer"
label = "Chat token"
hosts = ["{api}"]

[config_vars]
channel = {{ type = "picklist", required = true, label = "Channel", options_from = "list-channels" }}

[[flows]]
name = "post"

[[flows.steps]]
id = "post"
plugin = "http-get"
credential = "chat"
inputs = {{ url = "{api}/echo?channel={{{{ config.channel }}}}", response_type = "json" }}

[[flows]]
name = "list-channels"

[[flows.steps]]
id = "list"
plugin = "http-get"
credential = "chat"
inputs = {{ url = "{api}/channels", response_type = "json" }}
"#
    )
}

fn workspace(api: &str) -> String {
    format!(
        r#"integrations = ["channel-digest.toml"]

[workspace]
name = "data-sources"

[auth]
key = "{KEY}"
secret = "env:WEFT_TEST_SECRET"

[plugins.http-get]
source = "builtin:http-get"
http = {{ allow = ["{api}"], allow_loopback = true }}
"#
    )
}

#[test]
fn a_picklist_lists_the_choices_its_flow_fetches_with_the_customers_connection() {
    let api_server = TestServer::start();
    let api = format!("http://{}", api_server.addr);
    let env = TestEnv::new();
    std::fs::write(env.path().join("channel-digest.toml"), integration(&api)).unwrap();
    std::fs::write(env.path().join("weft.toml"), workspace(&api)).unwrap();
    let served = Served::start(
        env.path(),
        &[],
        &[
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_MASTER_KEY", &"3a".repeat(32)),
        ],
    );
    let token = customer_token("ds-carol");
    let send = |method: &str, path: &str, body: &str| {
        super::marketplace::send(&served, method, path, &token, body)
    };

    let activated = send("POST", "/api/v1/marketplace/channel-digest", "");
    assert_eq!(activated.status, 201, "{}", activated.text());
    let id = activated.json()["id"].as_str().unwrap().to_string();
    let channel = |wizard: &Value| wizard["pages"][0]["vars"][0].clone();

    // Not connected yet: no choices, and the wizard says why.
    let wizard = send("GET", &format!("/api/v1/instances/{id}/wizard"), "").json();
    let var = channel(&wizard);
    assert_eq!(var["options_from"], "list-channels", "{wizard:#}");
    assert_eq!(var["options"], json!([]));
    let why = var["options_error"].as_str().unwrap();
    assert!(why.contains("connection `chat` is not connected"), "{why}");

    // Connected: the flow lists the customer's channels with its token.
    let connected = send(
        "PUT",
        &format!("/api/v1/instances/{id}/connections/chat"),
        r#"{"token": "good-token"}"#,
    );
    assert_eq!(connected.status, 200, "{}", connected.text());
    let wizard = send("GET", &format!("/api/v1/instances/{id}/wizard"), "").json();
    assert_eq!(
        channel(&wizard)["options"],
        json!([
            { "label": "#general", "value": "C01" },
            { "label": "#random", "value": "C02" },
        ]),
        "{wizard:#}"
    );
    assert!(channel(&wizard)["options_error"].is_null());

    // A channel the flow did not list is refused; a listed one is kept and used.
    let refused = send(
        "PUT",
        &format!("/api/v1/instances/{id}/config"),
        r#"{"channel": "C99"}"#,
    );
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert!(
        refused.json()["error"]["fields"]["channel"]
            .as_str()
            .unwrap()
            .contains("not one of the choices Channel offers now"),
        "{}",
        refused.text()
    );
    let saved = send(
        "PUT",
        &format!("/api/v1/instances/{id}/config"),
        r#"{"channel": "C02"}"#,
    );
    assert_eq!(saved.status, 200, "{}", saved.text());
    assert_eq!(
        send("POST", &format!("/api/v1/instances/{id}/enable"), "").status,
        200
    );
    let run = send(
        "POST",
        &format!("/api/v1/instances/{id}/flows/post/runs?wait=true"),
        "",
    );
    assert_eq!(run.json()["status"], "succeeded", "{}", run.text());
    assert_eq!(run.json()["result"]["json"]["query"]["channel"], "C02");
    // The token was applied by the host and never recorded.
    assert!(!run.text().contains("good-token"), "{}", run.text());

    // A stored value is the value itself: a token typed as `env:NAME` is sent as typed, never
    // looked up in the server's environment.
    let typed = send(
        "PUT",
        &format!("/api/v1/instances/{id}/connections/chat"),
        r#"{"token": "env:WEFT_TEST_SECRET"}"#,
    );
    assert_eq!(typed.status, 200, "{}", typed.text());
    let wizard = send("GET", &format!("/api/v1/instances/{id}/wizard"), "").json();
    assert!(
        channel(&wizard)["options_error"]
            .as_str()
            .unwrap()
            .contains("401"),
        "{wizard:#}"
    );
    let sent: Vec<String> = api_server
        .seen_at("/channels")
        .iter()
        .filter_map(|s| s.headers.get("authorization").cloned())
        .collect();
    assert_eq!(sent.last().unwrap(), "Bearer env:WEFT_TEST_SECRET");
    assert!(sent.iter().all(|h| !h.contains(SECRET)), "{sent:?}");
}
