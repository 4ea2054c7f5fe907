//! OAuth 2.0 connections end to end: a real OpenID provider (`oidc-provider`, started by
//! `tests/browser/oauth.mjs` on loopback), the real `weft serve`, and Chromium. A customer
//! connects its own client (client credentials) and signs in at the provider in the popup
//! (authorization code with PKCE); its steps call the provider's API with tokens the host
//! applies and refreshes; a refresh the provider refuses marks the connection failed in the
//! marketplace and the console, and its runs say to reconnect, until the customer does.

use super::browser::{event_types, free_port, run_script};
use super::*;
use std::fmt::Write as _;

/// The integration: one OAuth connection and one client-credentials connection, each used by
/// a flow whose step reads `/api/whoami` from the provider's API.
fn integration(idp: u16) -> String {
    let mut text = format!(
        r#"name = "idp-profile"
version = 1
description = "Reads who the connected account is"

[marketplace]
listed = true
category = "Identity"

[connections.idp]
kind = "oauth2"
label = "Example ID account"
authorize_url = "http://127.0.0.1:{idp}/auth"
token_url = "http://127.0.0.1:{idp}/token"
scopes = ["openid", "offline_access"]
params = {{ prompt = "consent" }}
client_id = "weft-marketplace"
client_secret = "env:IDP_CLIENT_SECRET"
hosts = ["http://127.0.0.1:{idp}"]

[connections.service]
kind = "oauth2-client-credentials"
label = "Service client"
token_url = "http://127.0.0.1:{idp}/token"
scopes = ["api"]
hosts = ["http://127.0.0.1:{idp}"]
"#
    );
    for (flow, connection) in [("whoami", "idp"), ("service", "service")] {
        write!(
            text,
            r#"
[[flows]]
name = "{flow}"

[[flows.steps]]
id = "whoami"
plugin = "http-get"
credential = "{connection}"
inputs = {{ url = "http://127.0.0.1:{idp}/api/whoami", response_type = "json" }}
"#
        )
        .unwrap();
    }
    text
}

fn workspace(host: u16, idp: u16) -> String {
    format!(
        r#"integrations = ["idp-profile.toml"]

[workspace]
name = "oauth-test"

[auth]
key = "{KEY}"
secret = "env:WEFT_TEST_SECRET"

[embed]
origins = ["http://127.0.0.1:{host}"]

[plugins.http-get]
source = "builtin:http-get"
http = {{ allow = ["http://127.0.0.1:{idp}"], allow_loopback = true }}

[[customers]]
id = "oauth-alice"
name = "Alice"
"#
    )
}

const CLIENT_SECRET: &str = "the-integration-client-secret-1f0c";

#[test]
fn customers_connect_oauth_accounts_tokens_are_refreshed_and_a_revoked_one_says_reconnect() {
    let (idp, host) = (free_port(), free_port());
    let env = TestEnv::new();
    std::fs::write(env.path().join("idp-profile.toml"), integration(idp)).unwrap();
    std::fs::write(env.path().join("weft.toml"), workspace(host, idp)).unwrap();
    let served = Served::start_capturing_stderr(
        env.path(),
        &[],
        &[
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_MASTER_KEY", &"5c".repeat(32)),
            ("IDP_CLIENT_SECRET", CLIENT_SECRET),
        ],
    );

    let result = run_script(
        "oauth.mjs",
        &served,
        &[
            ("WEFT_IDP_PORT", idp.to_string()),
            ("WEFT_HOST_PORT", host.to_string()),
            ("WEFT_CUSTOMER_TOKEN", customer_token("oauth-alice")),
            ("WEFT_ADMIN_TOKEN", admin_token()),
            ("IDP_CLIENT_SECRET", CLIENT_SECRET.to_string()),
        ],
    );

    assert_eq!(result["violations"], json!([]), "{result:#}");
    // The host page heard both connections made, then the instance enabled.
    let events = event_types(&result, "events");
    assert_eq!(
        events,
        [
            "ready",
            "activated",
            "connection_failed",
            "connection_added",
            "connection_added",
            "configured",
            "enabled"
        ],
        "{result:#}"
    );

    // The steps reached the API with the signed-in user's token and the customer's client's.
    assert_eq!(result["first"]["status"], "succeeded", "{result:#}");
    assert_eq!(
        result["first"]["output"],
        json!({ "json": { "sub": "alice" } })
    );
    assert_eq!(
        result["service"]["output"],
        json!({ "json": { "client": "svc-client" } })
    );
    // After the 4-second tokens expired, the host refreshed them and the runs still worked.
    assert_eq!(
        result["afterExpiry"]["output"],
        json!({ "json": { "sub": "alice" } }),
        "{result:#}"
    );
    assert_eq!(
        result["serviceAfterExpiry"]["output"],
        json!({ "json": { "client": "svc-client" } }),
        "{result:#}"
    );
    let grants = event_types(&result, "grants");
    assert_eq!(
        grants
            .iter()
            .filter(|g| **g == "authorization_code")
            .count(),
        1,
        "{grants:?}"
    );
    assert!(grants.contains(&"refresh_token"), "{grants:?}");
    assert!(
        grants
            .iter()
            .filter(|g| **g == "client_credentials")
            .count()
            >= 2,
        "{grants:?}"
    );

    // Revoked at the provider: the refresh is refused, the run says to reconnect, and so does
    // the next one without asking the provider again.
    assert!(result["forgotten"].as_u64().unwrap() >= 1, "{result:#}");
    for run in ["revoked", "revokedAgain"] {
        assert_eq!(result[run]["status"], "failed", "{result:#}");
        let error = result[run]["error"].as_str().unwrap();
        assert!(
            error.contains("connection `idp` stopped working")
                && error.contains("invalid_grant")
                && error.contains("connect it again in the marketplace"),
            "{error}"
        );
    }
    let idp_status = result["statusAfterRevoke"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "idp")
        .unwrap();
    assert_eq!(idp_status["status"], "failed", "{result:#}");
    assert_eq!(result["marketplaceSays"], "Stopped working: connect again");
    assert_eq!(result["failedInList"], json!(["idp"]), "{result:#}");
    assert!(
        result["overviewSays"]
            .as_str()
            .unwrap()
            .contains("1 of 2 connected, 1 failed"),
        "{result:#}"
    );
    assert!(
        result["consoleSays"]
            .as_str()
            .unwrap()
            .starts_with("failed: the provider refused to refresh its token"),
        "{result:#}"
    );
    // Signing in again mends it.
    assert_eq!(
        result["reconnected"]["output"],
        json!({ "json": { "sub": "alice" } }),
        "{result:#}"
    );

    // No secret reached the server's log.
    let log = served.stderr();
    for secret in [CLIENT_SECRET, "svc-secret-5b2e"] {
        assert!(!log.contains(secret), "`{secret}` is in the log:\n{log}");
    }
}
