//! The marketplace through the API, as an embedding app's customers use it: Pokemon Avatar Sync
//! offered, activated, configured against its declarations, connected with the customer's own
//! AWS key, run (the avatar lands in the S3 stand-in), kept across `weft apply`, and invisible
//! to every other customer.

use super::*;
use weft_tests::{S3_SECRET, StandIns, pokemon_example};

/// The Pokemon example (pointed at fresh stand-ins) with `[auth]` for the test's tokens and
/// `[embed]` allowing `origins` to frame the marketplace.
pub(crate) fn marketplace_example(origins: &[String]) -> (TestEnv, StandIns) {
    let (env, stand_ins) = pokemon_example();
    let path = env.path().join("weft.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        r#"
[auth]
key = "{KEY}"
secret = "env:WEFT_TEST_SECRET"
user_hash_secret = "env:WEFT_TEST_HASH_SECRET"

[embed]
origins = {origins:?}
"#
    ));
    std::fs::write(&path, text).unwrap();
    (env, stand_ins)
}

/// `weft serve` of `env` with the test's secrets and a master key for the vault.
pub(crate) fn serve_marketplace(env: &TestEnv) -> Served {
    Served::start(
        env.path(),
        &[],
        &[
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_TEST_HASH_SECRET", HASH_SECRET),
            ("WEFT_MASTER_KEY", &"7e".repeat(32)),
        ],
    )
}

/// `method path` as the holder of `token`, with a JSON `body`.
pub(crate) fn send(
    served: &Served,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> weft_tests::serve::Reply {
    let auth = format!("Bearer {token}");
    served.call(
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
}

const INTEGRATION: &str = "pokemon-avatar-sync";

#[test]
fn a_customer_activates_configures_connects_and_runs_an_offered_integration() {
    let (env, stand_ins) = marketplace_example(&[]);
    let mut served = serve_marketplace(&env);
    let alice = customer_token("mp-alice");
    let bob = customer_token("mp-bob");

    // Offered, with its icon inlined; admins act through the admin API instead.
    let offers = served.get("/api/v1/marketplace", &alice);
    assert_eq!(offers.status, 200, "{}", offers.text());
    let offers = offers.json();
    assert_eq!(offers[0]["integration"], INTEGRATION, "{offers:#}");
    assert_eq!(offers[0]["category"], "Storage");
    assert!(
        offers[0]["icon"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );
    assert_eq!(offers[0]["instance"], Value::Null);
    let admin = served.get("/api/v1/marketplace", &admin_token());
    assert_eq!((admin.status, admin.code()), (403, "customer_only".into()));

    // Activated: a new instance, disabled until configured; once per customer.
    let path = format!("/api/v1/marketplace/{INTEGRATION}");
    let made = send(&served, "POST", &path, &alice, "");
    assert_eq!(made.status, 201, "{}", made.text());
    let id = made.json()["id"].as_str().unwrap().to_string();
    assert_eq!(made.json()["enabled"], false);
    let again = send(&served, "POST", &path, &alice, "");
    assert_eq!((again.status, again.code()), (409, "already_active".into()));

    // The wizard asks what the integration declares, minus what the workspace sets (the
    // bucket, the API and S3 endpoints): a picklist and a name on page 1, the region on page 2.
    let wizard = served
        .get(&format!("/api/v1/instances/{id}/wizard"), &alice)
        .json();
    let names = |page: usize| -> Vec<String> {
        wizard["pages"][page]["vars"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(0), ["pokemonAvatar", "customerName"], "{wizard:#}");
    assert_eq!(names(1), ["awsRegion"], "{wizard:#}");
    assert_eq!(wizard["pages"][0]["vars"][0]["type"], "picklist");
    assert_eq!(wizard["pages"][0]["vars"][0]["options"][1]["label"], "Onix");
    assert_eq!(wizard["connections"][0]["name"], "aws");
    assert_eq!(wizard["connections"][0]["connected"], false);
    assert_eq!(wizard["missing"], json!(["Your name", "AWS access key"]));

    // Values are checked on the server; one refused value stores none.
    let config = format!("/api/v1/instances/{id}/config");
    let refused = send(
        &served,
        "PUT",
        &config,
        &alice,
        r#"{"pokemonAvatar": "mew", "customerName": "a/b", "awsRegion": "eu-west-1"}"#,
    );
    assert_eq!(
        (refused.status, refused.code()),
        (422, "invalid_fields".into())
    );
    let fields = &refused.json()["error"]["fields"];
    assert!(
        fields["pokemonAvatar"]
            .as_str()
            .unwrap()
            .contains("must be one of"),
        "{fields}"
    );
    assert_eq!(
        fields["customerName"],
        "Use up to 64 letters, digits, spaces, dots, dashes or underscores"
    );
    assert_eq!(
        served
            .get(&format!("/api/v1/instances/{id}"), &alice)
            .json()["config"],
        json!({})
    );
    let hidden = send(
        &served,
        "PUT",
        &config,
        &alice,
        r#"{"pokemonAvatarS3BucketName": "mine"}"#,
    );
    assert_eq!(hidden.status, 422, "{}", hidden.text());
    let saved = send(
        &served,
        "PUT",
        &config,
        &alice,
        r#"{"pokemonAvatar": "onix", "customerName": "Marketplace Alice"}"#,
    );
    assert_eq!(saved.status, 200, "{}", saved.text());

    // Not enabled while the AWS key is missing.
    let enable = format!("/api/v1/instances/{id}/enable");
    let early = send(&served, "POST", &enable, &alice, "");
    assert_eq!((early.status, early.code()), (409, "not_configured".into()));
    assert!(early.text().contains("AWS access key"), "{}", early.text());

    // Another customer finds nothing of it.
    for (method, route) in [
        ("GET", format!("/api/v1/instances/{id}")),
        ("GET", format!("/api/v1/instances/{id}/wizard")),
        ("PUT", config.clone()),
        ("PUT", format!("/api/v1/instances/{id}/connections/aws")),
        ("POST", enable.clone()),
        ("DELETE", format!("/api/v1/instances/{id}")),
    ] {
        let reply = send(
            &served,
            method,
            &route,
            &bob,
            r#"{"key": "k", "secret": "s"}"#,
        );
        assert_eq!(
            (reply.status, reply.code()),
            (404, "not_found".into()),
            "{method} {route}"
        );
    }
    assert_eq!(
        served.get("/api/v1/marketplace", &bob).json()[0]["instance"],
        Value::Null
    );

    // The customer's own key, sealed: a missing field is named, the secret never comes back.
    let connection = format!("/api/v1/instances/{id}/connections/aws");
    let half = send(
        &served,
        "PUT",
        &connection,
        &alice,
        r#"{"key": "weft-demo"}"#,
    );
    assert_eq!(half.status, 422, "{}", half.text());
    assert_eq!(
        half.json()["error"]["fields"]["secret"],
        "`secret` is required"
    );
    let body = json!({ "key": weft::demo::ACCESS_KEY, "secret": S3_SECRET }).to_string();
    let connected = send(&served, "PUT", &connection, &alice, &body);
    assert_eq!(connected.status, 200, "{}", connected.text());
    let wizard = served.get(&format!("/api/v1/instances/{id}/wizard"), &alice);
    assert_eq!(wizard.json()["connections"][0]["connected"], true);
    assert!(!wizard.text().contains(S3_SECRET));

    // Enabled and run: the avatar of the Pokemon it picked lands under the name it gave.
    assert_eq!(send(&served, "POST", &enable, &alice, "").status, 200);
    let run = send(
        &served,
        "POST",
        &format!("/api/v1/instances/{id}/flows/sync/runs?wait=true"),
        &alice,
        "",
    );
    assert_eq!(run.status, 200, "{}", run.text());
    assert_eq!(run.json()["status"], "succeeded", "{:#}", run.json());
    let (png, content_type) = stand_ins.get_object(weft::demo::BUCKET, "Marketplace Alice.png");
    assert_eq!(
        png,
        std::fs::read(weft_tests::repo().join("examples/pokemon-avatar-sync/fixtures/onix.png"))
            .unwrap()
    );
    assert_eq!(content_type.as_deref(), Some("image/png"));

    // Without its connection the run says what to do; the workspace's `aws` is never used.
    let gone = send(&served, "DELETE", &connection, &alice, "");
    assert_eq!(gone.status, 200, "{}", gone.text());
    let run = send(
        &served,
        "POST",
        &format!("/api/v1/instances/{id}/flows/sync/runs?wait=true"),
        &alice,
        "",
    );
    let text = run.text();
    assert!(text.contains("connection `aws` is not connected"), "{text}");
    assert!(text.contains("marketplace"), "{text}");
    let connected = send(&served, "PUT", &connection, &alice, &body);
    assert_eq!(connected.status, 200);

    // `weft apply` of the file (which does not list it) keeps it.
    served.stop();
    let applied = env.weft(&["apply", "weft.toml"]);
    assert!(applied.success, "{}", applied.stderr);
    assert!(!applied.stdout.contains(&id), "{}", applied.stdout);
    let served = serve_marketplace(&env);
    let kept = served.get(&format!("/api/v1/instances/{id}"), &alice);
    assert_eq!(kept.status, 200, "{}", kept.text());
    assert_eq!(kept.json()["config"]["customerName"], "Marketplace Alice");

    // Removed by its customer; an instance of the file is not the customer's to remove.
    let removed = send(
        &served,
        "DELETE",
        &format!("/api/v1/instances/{id}"),
        &alice,
        "",
    );
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(
        served
            .get(&format!("/api/v1/instances/{id}"), &alice)
            .status,
        404
    );
    let file_one = send(
        &served,
        "DELETE",
        "/api/v1/instances/smith-rocket-avatar-sync",
        &admin_token(),
        "",
    );
    assert_eq!(
        (file_one.status, file_one.code()),
        (409, "managed_by_file".into())
    );
}
