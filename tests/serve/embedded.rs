//! The embedded marketplace and the console in a real browser: Debian's Chromium driven by
//! Playwright (`tests/browser/marketplace.mjs`, which reports what it saw), against the real
//! `weft serve` with the Pokemon example's stand-ins. Screenshots of the marketplace and a run's
//! timeline are kept under `target/browser-screenshots/`.

use super::browser::{event_types, free_port, run_script};
use super::marketplace::{marketplace_example, serve_marketplace};
use super::*;
use weft_tests::S3_SECRET;

fn user_hash(user: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HASH_SECRET.as_bytes()).unwrap();
    mac.update(user.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn customers_use_the_embedded_marketplace_and_operators_find_a_failed_run_in_the_console() {
    let (host_port, other_port) = (free_port(), free_port());
    let (env, stand_ins) = marketplace_example(&[format!("http://localhost:{host_port}")]);
    let served = serve_marketplace(&env);
    let admin = format!("Bearer {}", admin_token());

    // A failed run for the console: the instance pointed at an API path that answers 404.
    let nowhere = json!(format!(
        "http://{}/api/v2/nothing",
        stand_ins.servers.pokeapi
    ))
    .to_string();
    let set = served.call(
        "PUT",
        "/api/v1/instances/smith-rocket-avatar-sync/config/pokeApiBaseUrl",
        &[
            ("authorization", &admin),
            ("content-type", "application/json"),
        ],
        nowhere.as_bytes(),
    );
    assert_eq!(set.status, 200, "{}", set.text());
    let failed = served.call(
        "POST",
        "/api/v1/instances/smith-rocket-avatar-sync/flows/sync/runs?wait=true",
        &[("authorization", &admin)],
        b"",
    );
    assert_eq!(failed.json()["status"], "failed", "{}", failed.text());
    let failed_run = failed.json()["id"].as_str().unwrap().to_string();

    let hash = json!({ "appKey": KEY, "userId": "mp-keyboard", "hash": user_hash("mp-keyboard") });
    let result = run_script(
        "marketplace.mjs",
        &served,
        &[
            ("WEFT_HOST_PORT", host_port.to_string()),
            ("WEFT_OTHER_PORT", other_port.to_string()),
            ("WEFT_CUSTOMER_TOKEN", customer_token("mp-jwt")),
            ("WEFT_USER_HASH", hash.to_string()),
            ("WEFT_ADMIN_TOKEN", admin_token()),
            ("WEFT_S3_KEY", weft::demo::ACCESS_KEY.to_string()),
            ("WEFT_S3_SECRET", S3_SECRET.to_string()),
            ("WEFT_CUSTOMER_NAME", "Embedded Customer".to_string()),
            ("WEFT_FAILED_RUN", failed_run.clone()),
        ],
    );

    // No serious or critical accessibility problem on any page shown.
    assert_eq!(result["violations"], json!([]), "{result:#}");

    // The host page heard the events in order, and its styles stayed out of the frame.
    let events = event_types(&result, "jwtEvents");
    assert_eq!(
        events,
        [
            "ready",
            "activated",
            "connection_failed",
            "connection_added",
            "configured",
            "enabled",
            "closed"
        ],
        "{result:#}"
    );
    assert!(result["frameGoneAfterClose"].as_bool().unwrap());
    assert!(
        result["fontInFrame"]
            .as_str()
            .unwrap()
            .starts_with("system-ui"),
        "{result:#}"
    );
    assert_eq!(
        result["invalidFieldFocused"], "field-customerName",
        "{result:#}"
    );
    assert_eq!(result["eventDetails"]["integration"], "pokemon-avatar-sync");

    // What the customer did is what the store holds, and the run put its avatar in the bucket.
    let instance = result["eventDetails"]["instance"].as_str().unwrap();
    let stored = served
        .get(&format!("/api/v1/instances/{instance}"), &admin_token())
        .json();
    assert_eq!(stored["customer"], "mp-jwt");
    assert_eq!(stored["enabled"], true);
    assert_eq!(stored["config"]["pokemonAvatar"], "onix");
    let (png, _) = stand_ins.get_object(weft::demo::BUCKET, "Embedded Customer.png");
    assert_eq!(
        png,
        std::fs::read(weft_tests::repo().join("examples/pokemon-avatar-sync/fixtures/onix.png"))
            .unwrap()
    );

    // The second customer (user hash, keyboard only) saw nothing of the first's and activated
    // its own, moving through the wizard with the keys.
    assert_eq!(result["secondSees"], "Not active", "{result:#}");
    assert_eq!(result["focusAfterActivate"], "H2");
    // Shown as a modal, Escape inside the frame closes it.
    assert_eq!(
        result["modalEscape"],
        json!({ "events": ["ready", "closed"], "frameGone": true }),
        "{result:#}"
    );
    assert_eq!(
        result["hashEvents"],
        json!(["ready", "activated"]),
        "{result:#}"
    );
    let theirs = served.get("/api/v1/instances", &admin_token()).json();
    let keyboard = theirs
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["customer"] == "mp-keyboard")
        .unwrap_or_else(|| panic!("no instance of the keyboard customer: {theirs:#}"));
    assert_eq!(keyboard["config"]["pokemonAvatar"], "onix", "{keyboard:#}");
    assert_eq!(keyboard["config"]["customerName"], "Keyboard Customer");

    // An origin `[embed]` does not list gets no marketplace.
    assert_eq!(result["otherOrigin"]["rendered"], false, "{result:#}");
    assert_eq!(result["otherOrigin"]["events"], json!([]), "{result:#}");

    // The console marks the failing step of the failed run red, its error one click away.
    assert_eq!(
        result["failedSteps"],
        json!(["get_pokemon_data"]),
        "{result:#}"
    );
    assert_eq!(result["failedBarColour"], "rgb(220, 38, 38)");
    assert_eq!(result["failedDetailsOpen"], true);
    assert!(
        result["failedError"].as_str().unwrap().contains("404"),
        "{result:#}"
    );
    let provenance = result["provenance"].to_string();
    assert!(
        provenance.contains("pokeApiBaseUrl")
            && provenance.contains("/api/v2/nothing")
            && provenance.contains("instance"),
        "{provenance}"
    );
    assert!(
        provenance.contains("pokemonAvatarS3BucketName") && provenance.contains("workspace"),
        "{provenance}"
    );
    for shot in result["screenshots"].as_array().unwrap() {
        let bytes = std::fs::read(shot.as_str().unwrap()).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 2000,
            "{shot}"
        );
    }
}
