//! `weft serve`, black box: the real binary on loopback, called over HTTP as an embedding app
//! would, with tokens made the way such an app makes them.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::Sha256;
use weft_tests::serve::Served;
use weft_tests::server::TestServer;
use weft_tests::{TestEnv, plugin};

const KEY: &str = "rocket-avatars";
const SECRET: &str = "an-hs256-workspace-secret-of-40-bytes-ok";
const HASH_SECRET: &str = "the-app-secret-for-user-hashes-32-bytes+";
const HOOK_SECRET: &str = "signing-secret-for-acme-webhooks";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token_with(header: Header, claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn customer_token(id: &str) -> String {
    token_with(
        Header::default(),
        json!({ "iss": KEY, "id": id, "name": format!("{id} Inc."), "exp": now() + 300 }),
        SECRET,
    )
}

fn admin_token() -> String {
    token_with(
        Header::default(),
        json!({ "iss": KEY, "isAdmin": "yes", "name": "ops", "exp": now() + 300 }),
        SECRET,
    )
}

/// Two customers with an instance each of an integration whose flows are all Path Helper
/// steps, plus `slow` (an HTTP call to `server`'s `/slow`) under several concurrency modes.
fn env(server: &TestServer, extra_flows: &str) -> TestEnv {
    let env = TestEnv::new();
    env.workspace(
        &format!(
            r#"integrations = ["integration.toml"]
[workspace]
name = "rocket-avatars"

[auth]
key = "{KEY}"
secret = "env:WEFT_TEST_SECRET"
user_hash_secret = "env:WEFT_TEST_HASH_SECRET"

[plugins.http-get]
source = "builtin:http-get"
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}

[plugins.hostile]
source = {hostile:?}
state = true
http = {{ allow = ["http://127.0.0.1:{port}"], allow_loopback = true }}

[[customers]]
id = "acme"
name = "Acme"
config = {{ customerName = "Acme Rockets", pokemonAvatar = "onix" }}

[[customers]]
id = "globex"
name = "Globex"
config = {{ customerName = "Globex", pokemonAvatar = "pikachu" }}

[[instances]]
id = "acme-sync"
customer = "acme"
integration = "avatars"
webhook_secret = "env:WEFT_TEST_HOOK_SECRET"

[[instances]]
id = "globex-sync"
customer = "globex"
integration = "avatars"
"#,
            port = server.port(),
            hostile = plugin("testing_hostile"),
        ),
        &format!(
            r#"name = "avatars"
[config_vars]
customerName = {{ required = true }}
pokemonAvatar = {{ required = true }}
secretToken = {{ secret = true }}

[[flows]]
name = "paths"
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"
inputs = {{ api_base = "https://api.example/{{{{ trigger.body.region }}}}" }}

[[flows]]
name = "reply"
webhook = {{ sync = true, response_step = "path_helper" }}
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"

[[flows]]
name = "slow_fifo"
concurrency = {{ mode = "fifo", queue = 2 }}
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}" }}

[[flows]]
name = "slow_throttled"
concurrency = {{ mode = "throttled", limit = 2 }}
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}" }}

[[flows]]
name = "slow"
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}" }}
{extra_flows}"#,
            slow = server.url("/slow?ms=400"),
        ),
    );
    env
}

fn serve(env: &TestEnv, args: &[&str]) -> Served {
    Served::start(
        env.path(),
        args,
        &[
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_TEST_HASH_SECRET", HASH_SECRET),
            ("WEFT_TEST_HOOK_SECRET", HOOK_SECRET),
        ],
    )
}

/// The headers of a request signed at `timestamp` (Unix seconds) with the test's webhook secret.
fn sign(timestamp: u64, body: &[u8]) -> Vec<(String, String)> {
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    vec![
        ("x-weft-timestamp".into(), timestamp.to_string()),
        ("x-weft-signature".into(), format!("sha256={hex}")),
    ]
}

fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Waits until run `id` is no longer `running`; its record.
fn finished(served: &Served, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = served.get(&format!("/api/v1/runs/{id}"), &admin_token());
        assert_eq!(run.status, 200, "{}", run.text());
        let run = run.json();
        if run["status"] != "running" {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_tokens_are_refused_with_their_reason_and_never_echoed() {
    let server = TestServer::start();
    let env = env(&server, "");
    let served = serve(&env, &[]);

    let rsa = EncodingKey::from_rsa_pem(include_bytes!("fixtures/rsa-private.pem")).unwrap();
    let rs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({ "iss": KEY, "id": "acme", "exp": now() + 300 }),
        &rsa,
    )
    .unwrap();
    let b64 = |v: Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(json!({ "alg": "none", "typ": "JWT" })),
        b64(json!({ "iss": KEY, "id": "acme", "exp": now() + 300 }))
    );
    let mut crit = Header::default();
    crit.extras.insert("crit".to_string(), "exp".to_string());
    let hs512 = token_with(
        Header::new(Algorithm::HS512),
        json!({ "iss": KEY, "id": "acme", "exp": now() + 300 }),
        SECRET,
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", alg_none, "algorithm_not_allowed"),
        (
            "RS256 where HS256 is configured",
            rs256,
            "algorithm_not_allowed",
        ),
        (
            "HS512 not on the allow-list",
            hs512,
            "algorithm_not_allowed",
        ),
        (
            "expired beyond the leeway",
            token_with(
                Header::default(),
                json!({ "iss": KEY, "id": "acme", "exp": now() - 60 }),
                SECRET,
            ),
            "expired",
        ),
        (
            "no exp",
            token_with(
                Header::default(),
                json!({ "iss": KEY, "id": "acme" }),
                SECRET,
            ),
            "missing_claim",
        ),
        (
            "no iss",
            token_with(
                Header::default(),
                json!({ "id": "acme", "exp": now() + 300 }),
                SECRET,
            ),
            "missing_claim",
        ),
        (
            "wrong iss",
            token_with(
                Header::default(),
                json!({ "iss": "another-workspace", "id": "acme", "exp": now() + 300 }),
                SECRET,
            ),
            "wrong_issuer",
        ),
        (
            "wrong secret",
            token_with(
                Header::default(),
                json!({ "iss": KEY, "id": "acme", "exp": now() + 300 }),
                "a-different-secret-that-is-also-long-enough",
            ),
            "bad_signature",
        ),
        (
            "crit header",
            token_with(
                crit,
                json!({ "iss": KEY, "id": "acme", "exp": now() + 300 }),
                SECRET,
            ),
            "unsupported_header",
        ),
        (
            "id with isAdmin",
            token_with(
                Header::default(),
                json!({ "iss": KEY, "id": "acme", "isAdmin": "yes", "exp": now() + 300 }),
                SECRET,
            ),
            "bad_claims",
        ),
        (
            "over 8 KiB",
            token_with(
                Header::default(),
                json!({ "iss": KEY, "id": "acme", "exp": now() + 300, "pad": "x".repeat(9000) }),
                SECRET,
            ),
            "token_too_large",
        ),
        ("not base64", "!!!.@@@.###".into(), "malformed_token"),
        (
            "an audience this workspace does not have",
            token_with(
                Header::default(),
                json!({ "iss": KEY, "id": "acme", "aud": "another-app", "exp": now() + 300 }),
                SECRET,
            ),
            "wrong_audience",
        ),
        (
            "not valid before a time in the future",
            token_with(
                Header::default(),
                json!({ "iss": KEY, "id": "acme", "nbf": now() + 120, "exp": now() + 300 }),
                SECRET,
            ),
            "not_yet_valid",
        ),
        (
            "exp that is not a number",
            token_with(
                Header::default(),
                json!({ "iss": KEY, "id": "acme", "exp": "soon" }),
                SECRET,
            ),
            "bad_claims",
        ),
        (
            "a customer id over 128 characters",
            token_with(
                Header::default(),
                json!({ "iss": KEY, "id": "a".repeat(129), "exp": now() + 300 }),
                SECRET,
            ),
            "bad_claims",
        ),
        (
            "isAdmin that reads as no",
            token_with(
                Header::default(),
                json!({ "iss": KEY, "isAdmin": "false", "exp": now() + 300 }),
                SECRET,
            ),
            "bad_claims",
        ),
        (
            "a token of another type",
            token_with(
                Header {
                    typ: Some("at+jwt".into()),
                    ..Header::default()
                },
                json!({ "iss": KEY, "id": "acme", "exp": now() + 300 }),
                SECRET,
            ),
            "unsupported_header",
        ),
        (
            "not JSON",
            format!("{}.{}.sig", b64(json!("just a string")), b64(json!(1))),
            "malformed_token",
        ),
    ];
    for (what, token, code) in &cases {
        let reply = served.get("/api/v1/instances", token);
        assert_eq!(reply.status, 401, "{what}: {}", reply.text());
        assert_eq!(reply.code(), *code, "{what}: {}", reply.text());
        assert!(
            !reply.text().contains(token.as_str()),
            "{what}: the token is echoed"
        );
    }
    let none = served.call("GET", "/api/v1/instances", &[], b"");
    assert_eq!(
        (none.status, none.code()),
        (401, "missing_credentials".into())
    );
    assert!(none.header("www-authenticate").is_some());

    // Within the leeway (30 s) an expired token still passes.
    let lenient = token_with(
        Header::default(),
        json!({ "iss": KEY, "id": "acme", "exp": now() - 10 }),
        SECRET,
    );
    assert_eq!(served.get("/api/v1/instances", &lenient).status, 200);
    // A fractional NumericDate is a NumericDate; isAdmin false with an id is a customer.
    let fractional = token_with(
        Header::default(),
        json!({ "iss": KEY, "id": "acme", "isAdmin": false, "exp": now() as f64 + 300.5 }),
        SECRET,
    );
    let me = served.get("/api/v1/me", &fractional);
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["customer"], "acme", "{}", me.text());
}

#[test]
fn customers_see_only_their_own_and_admin_routes_need_an_admin() {
    let server = TestServer::start();
    let env = env(&server, "");
    let served = serve(&env, &[]);
    let acme = customer_token("acme");
    let globex = customer_token("globex");
    let admin = admin_token();

    let mine = served.get("/api/v1/instances", &acme).json();
    let ids: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-sync"]);

    // Globex's run, then every way Acme could reach it: 404, as if it did not exist.
    let started = served.call(
        "POST",
        "/api/v1/instances/globex-sync/flows/paths/runs?wait=true",
        &[("authorization", &format!("Bearer {globex}"))],
        br#"{"region": "eu"}"#,
    );
    assert_eq!(started.status, 200, "{}", started.text());
    let globex_run = started.json()["id"].as_str().unwrap().to_string();
    for (method, path, body) in [
        ("GET", "/api/v1/instances/globex-sync".to_string(), ""),
        ("GET", format!("/api/v1/runs/{globex_run}"), ""),
        (
            "POST",
            "/api/v1/instances/globex-sync/flows/paths/runs".to_string(),
            "{}",
        ),
        (
            "PUT",
            "/api/v1/instances/globex-sync/config/customerName".to_string(),
            "\"pwned\"",
        ),
        ("GET", "/api/v1/instances/nobody-has-this".to_string(), ""),
    ] {
        let reply = served.call(
            method,
            &path,
            &[("authorization", &format!("Bearer {acme}"))],
            body.as_bytes(),
        );
        assert_eq!(
            (reply.status, reply.code()),
            (404, "not_found".into()),
            "{method} {path}"
        );
    }
    let acme_runs = served.get("/api/v1/runs", &acme).json();
    assert_eq!(acme_runs.as_array().map(Vec::len), Some(0), "{acme_runs}");
    let acme_runs = served.get("/api/v1/runs?customer=globex", &acme).json();
    assert_eq!(acme_runs.as_array().map(Vec::len), Some(0));
    assert_eq!(
        served
            .get("/api/v1/runs", &globex)
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // A customer sets its own instance's var (checked against the declared type) …
    let auth = format!("Bearer {acme}");
    let set = served.call(
        "PUT",
        "/api/v1/instances/acme-sync/config/customerName",
        &[("authorization", &auth)],
        b"\"Acme Rockets International\"",
    );
    assert_eq!(set.status, 200, "{}", set.text());
    let wrong = served.call(
        "PUT",
        "/api/v1/instances/acme-sync/config/customerName",
        &[("authorization", &auth)],
        b"42",
    );
    assert_eq!((wrong.status, wrong.code()), (400, "bad_request".into()));
    let run = served.call(
        "POST",
        "/api/v1/instances/acme-sync/flows/paths/runs?wait=true",
        &[("authorization", &auth)],
        br#"{"region": "us"}"#,
    );
    assert_eq!(
        run.json()["result"]["json"]["s3ObjectPath"],
        "Acme Rockets International.png"
    );
    // … and secret vars never come back.
    served.call(
        "PUT",
        "/api/v1/instances/acme-sync/config/secretToken",
        &[("authorization", &auth)],
        b"\"s3cr3t-value\"",
    );
    let shown = served.get("/api/v1/instances/acme-sync", &acme);
    assert_eq!(shown.json()["config"]["secretToken"], "[redacted]");
    assert!(!shown.text().contains("s3cr3t-value"));

    // Admin-only routes: refused to customers, served to admins.
    for path in [
        "/api/v1/customers",
        "/api/v1/integrations",
        "/api/v1/customers/acme",
    ] {
        let reply = served.get(path, &acme);
        assert_eq!(
            (reply.status, reply.code()),
            (403, "admin_only".into()),
            "{path}"
        );
        assert_eq!(served.get(path, &admin).status, 200, "{path}");
    }
    let put = served.call(
        "PUT",
        "/api/v1/config/pokemonAvatar",
        &[("authorization", &auth)],
        b"\"mew\"",
    );
    assert_eq!(put.status, 403);
    let unknown = served.call(
        "PUT",
        "/api/v1/customers/nobody/config/customerName",
        &[("authorization", &format!("Bearer {admin}"))],
        b"\"x\"",
    );
    assert_eq!((unknown.status, unknown.code()), (404, "not_found".into()));
    assert_eq!(
        served
            .get("/api/v1/instances", &admin)
            .json()
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // A token for a customer the store does not know yet creates it from its claims.
    assert_eq!(
        served.get("/api/v1/me", &customer_token("initech")).status,
        200
    );
    let initech = served.get("/api/v1/customers/initech", &admin).json();
    assert_eq!(initech["name"], "initech Inc.");

    // HMAC user hashes grant the same scope as a token with that id.
    let hash = {
        let mut mac = Hmac::<Sha256>::new_from_slice(HASH_SECRET.as_bytes()).unwrap();
        mac.update(b"acme");
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let by_hash = |key: &str, user: &str, hash: &str| {
        served.call(
            "GET",
            "/api/v1/instances",
            &[
                ("x-weft-app-key", key),
                ("x-weft-user-id", user),
                ("x-weft-user-hash", hash),
            ],
            b"",
        )
    };
    let ok = by_hash(KEY, "acme", &hash);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()[0]["id"], "acme-sync");
    let other_user = by_hash(KEY, "globex", &hash);
    assert_eq!(
        (other_user.status, other_user.code()),
        (401, "bad_user_hash".into())
    );
    let other_app = by_hash("someone-else", "acme", &hash);
    assert_eq!(
        (other_app.status, other_app.code()),
        (401, "unknown_app_key".into())
    );
}

#[test]
fn webhooks_async_and_sync_with_body_cap_and_signatures() {
    let server = TestServer::start();
    let env = env(&server, "");
    let served = serve(&env, &[]);

    // Unsigned instance, at its secret address: 202 at once, the request recorded as the
    // trigger (without the token or the credentials).
    let paths = served.webhook("globex-sync", "paths");
    let body = br#"{"region":"eu"}"#;
    let accepted = served.call(
        "POST",
        &format!("{paths}?source=crm"),
        &[
            ("content-type", "application/json"),
            ("x-request-id", "r-1"),
            ("authorization", "Bearer not-for-the-record"),
        ],
        body,
    );
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    let id = accepted.json()["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        accepted.header("location"),
        Some(format!("/api/v1/runs/{id}").as_str())
    );
    let run = finished(&served, &id);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let trigger = &run["trigger"];
    assert_eq!(trigger["method"], "POST");
    assert_eq!(trigger["query"]["source"], "crm");
    assert_eq!(trigger["body"]["region"], "eu");
    assert_eq!(trigger["headers"]["x-request-id"], "r-1");
    assert!(
        !run.to_string().contains("not-for-the-record"),
        "the Authorization header is not recorded"
    );
    assert_eq!(trigger["path"], "/webhooks/{token}");
    assert!(!run.to_string().contains(&paths["/webhooks/".len()..]));
    assert_eq!(
        run["result"]["json"]["pokemonUrl"],
        "https://api.example/eu/pikachu"
    );

    // Synchronous: on request, or by the flow's `webhook.sync`, answered from the step.
    let sync = served.call(
        "POST",
        &format!("{paths}?wait=true"),
        &[("content-type", "application/json")],
        br#"{"region":"us"}"#,
    );
    assert_eq!(sync.status, 200, "{}", sync.text());
    assert_eq!(sync.json()["pokemonUrl"], "https://api.example/us/pikachu");
    assert!(sync.header("x-weft-run-id").is_some());
    assert_eq!(sync.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(sync.header("content-security-policy"), Some("sandbox"));
    let reply = served.call("GET", &served.webhook("globex-sync", "reply"), &[], b"");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["s3ObjectPath"], "Globex.png");

    // The body cap (6 MiB by default).
    let big = vec![b'x'; (6 << 20) + 1];
    let too_big = served.call("POST", &paths, &[], &big);
    assert_eq!(
        (too_big.status, too_big.code()),
        (413, "body_too_large".into())
    );

    // Guessing finds nothing: an instance without a secret has no readable address, and an
    // unknown token, instance or flow all answer the same 404.
    for guess in [
        "/webhooks/globex-sync/paths",
        "/webhooks/nobody/paths",
        "/webhooks/acme-sync/nothing",
        "/webhooks/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let reply = served.call("POST", guess, &[], body);
        assert_eq!(
            (reply.status, reply.code()),
            (404, "not_found".into()),
            "{guess}"
        );
        assert_eq!(
            reply.json()["error"]["message"],
            "no webhook at this address"
        );
    }

    // The signed instance, at its readable address and at its token: no signature, a wrong
    // one, a replay outside the window all answer 404; the right one runs.
    for address in [
        "/webhooks/acme-sync/paths".to_string(),
        served.webhook("acme-sync", "paths"),
    ] {
        let unsigned = served.call("POST", &address, &[], body);
        assert_eq!(unsigned.status, 404, "{address}: {}", unsigned.text());
        let wrong = served.call(
            "POST",
            &address,
            &pairs(&sign(now(), b"another body")),
            body,
        );
        assert_eq!(wrong.status, 404, "{address}: {}", wrong.text());
        let replayed = served.call("POST", &address, &pairs(&sign(now() - 301, body)), body);
        assert_eq!(replayed.status, 404, "{address}: {}", replayed.text());
        let mut headers = sign(now(), body);
        headers.push(("content-type".into(), "application/json".into()));
        let signed = served.call("POST", &address, &pairs(&headers), body);
        assert_eq!(signed.status, 202, "{address}: {}", signed.text());
        let run = finished(&served, signed.json()["run_id"].as_str().unwrap());
        assert_eq!(run["status"], "succeeded");
        assert!(
            !run.to_string().contains("sha256="),
            "the signature is not recorded"
        );
    }
}

#[test]
fn webhook_addresses_rotate_and_errors_tell_callers_nothing_internal() {
    let server = TestServer::start();
    let env = env(&server, BROKEN_AND_REPLY_FLOWS);
    let served = serve(&env, &[]);

    // The API shows each flow's address to whoever sees the instance, and rotates it.
    let old = served.webhook("globex-sync", "paths");
    let shown = served.get("/api/v1/instances/globex-sync", &customer_token("globex"));
    assert_eq!(shown.json()["webhooks"]["paths"], old.as_str());
    let rotated = served.call(
        "POST",
        "/api/v1/instances/globex-sync/flows/paths/webhook/rotate",
        &[(
            "authorization",
            &format!("Bearer {}", customer_token("globex")),
        )],
        b"",
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    let new = rotated.json()["webhook"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        served.call("POST", &old, &[], b"").status,
        404,
        "the old address is gone"
    );
    assert_eq!(served.call("POST", &new, &[], b"").status, 202);
    let foreign = served.call(
        "POST",
        "/api/v1/instances/globex-sync/flows/paths/webhook/rotate",
        &[(
            "authorization",
            &format!("Bearer {}", customer_token("acme")),
        )],
        b"",
    );
    assert_eq!(
        foreign.status, 404,
        "another customer's instance does not exist for acme"
    );

    // A failed sync run answers 502 with its id only: no step, template or error text.
    let failed = served.call("POST", &served.webhook("globex-sync", "broken"), &[], b"");
    assert_eq!(
        (failed.status, failed.code()),
        (502, "run_failed".into()),
        "{}",
        failed.text()
    );
    let text = failed.text();
    for internal in ["path_helper", "trigger", "missing", "api_base", "{{"] {
        assert!(
            !text.contains(internal),
            "the error body names `{internal}`: {text}"
        );
    }
    let run_id = failed.header("x-weft-run-id").unwrap().to_string();
    let run = finished(&served, &run_id);
    assert!(
        run["error"].as_str().unwrap().contains("api_base"),
        "the record has it: {run:#}"
    );

    // A plugin's reply: a CR/LF in a header fails the run, naming the step; headers that are
    // not a step's to set are left out; an HTML body is sandboxed and never sniffed.
    let split = served.call(
        "POST",
        &served.webhook("globex-sync", "split_header"),
        &[],
        b"",
    );
    assert_eq!(split.status, 502, "{}", split.text());
    assert!(split.header("set-cookie").is_none());
    let run = finished(&served, split.header("x-weft-run-id").unwrap());
    assert_eq!(run["status"], "failed");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains("step `answer` (plugin `hostile`) answers the webhook")
            && error.contains("header `x-note`"),
        "{error}"
    );
    let html = served.call("POST", &served.webhook("globex-sync", "html"), &[], b"");
    assert_eq!(html.status, 201, "{}", html.text());
    assert_eq!(html.header("content-type"), Some("text/html"));
    assert_eq!(html.header("content-security-policy"), Some("sandbox"));
    assert_eq!(html.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(html.header("x-extra"), Some("kept"));
    assert!(
        html.header("set-cookie").is_none(),
        "a step cannot set cookies"
    );
    assert!(html.header("access-control-allow-origin").is_none());
    assert_eq!(html.text(), "<script>alert(document.cookie)</script>");
}

/// Flows whose webhook replies a server must not send as they are, and one that fails.
const BROKEN_AND_REPLY_FLOWS: &str = r#"
[[flows]]
name = "broken"
webhook = { sync = true }
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"
inputs = { api_base = "{{ trigger.body.missing.deep }}" }

[[flows]]
name = "split_header"
webhook = { sync = true }
[[flows.steps]]
id = "answer"
plugin = "hostile"
inputs = { mode = "reply", reply = { status = 200, headers = { "x-note" = "a\r\nset-cookie: session=stolen" }, body = "hi" } }

[[flows]]
name = "html"
webhook = { sync = true }
[[flows.steps]]
id = "answer"
plugin = "hostile"
inputs = { mode = "reply", reply = { status = 201, headers = { "content-type" = "text/html", "set-cookie" = "a=b", "access-control-allow-origin" = "*", "x-extra" = "kept" }, body = "<script>alert(document.cookie)</script>" } }
"#;

/// `(first step start, end)` in ms of each run, in the order given.
fn step_windows(served: &Served, ids: &[String]) -> Vec<(u64, u64)> {
    ids.iter()
        .map(|id| {
            let run = finished(served, id);
            assert_eq!(run["status"], "succeeded", "{run:#}");
            let step = &run["steps"][0];
            let start = step["started_at_ms"].as_u64().unwrap();
            (start, start + step["duration_us"].as_u64().unwrap() / 1000)
        })
        .collect()
}

#[test]
fn fifo_runs_one_at_a_time_in_order_throttled_two_and_a_full_queue_is_429() {
    let server = TestServer::start();
    let env = env(&server, "");
    let served = serve(&env, &[]);
    let fire = |flow: &str, n: usize| {
        served.call(
            "POST",
            &served.webhook("globex-sync", flow),
            &[("content-type", "application/json")],
            format!("{{\"n\":{n}}}").as_bytes(),
        )
    };

    // FIFO with a queue of 2: one runs, two wait, the fourth is refused.
    let mut ids = Vec::new();
    for n in 0..3 {
        let reply = fire("slow_fifo", n);
        assert_eq!(reply.status, 202, "{}", reply.text());
        ids.push(reply.json()["run_id"].as_str().unwrap().to_string());
    }
    let refused = fire("slow_fifo", 3);
    assert_eq!(
        (refused.status, refused.code()),
        (429, "queue_full".into()),
        "{}",
        refused.text()
    );
    let windows = step_windows(&served, &ids);
    for pair in windows.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "FIFO runs overlap or ran out of order: {windows:?}"
        );
    }

    // Throttled to 2: four at once never have more than two steps going.
    let ids: Vec<String> = (0..4)
        .map(|n| {
            let reply = fire("slow_throttled", n);
            assert_eq!(reply.status, 202, "{}", reply.text());
            reply.json()["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    let windows = step_windows(&served, &ids);
    for (start, _) in &windows {
        let overlapping = windows
            .iter()
            .filter(|(s, e)| s <= start && start < e)
            .count();
        assert!(overlapping <= 2, "more than two at once: {windows:?}");
    }
    // Parallel (the default) really runs together: four 400 ms calls well under 1.6 s.
    let started = Instant::now();
    let ids: Vec<String> = (0..4)
        .map(|n| {
            fire("slow", n).json()["run_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    step_windows(&served, &ids);
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn schedules_fire_do_not_overlap_and_catch_up_once_after_downtime() {
    let server = TestServer::start();
    let slow = server.url("/slow?ms=2500");
    let env = env(
        &server,
        &format!(
            r#"
[[flows]]
name = "every_second"
trigger = {{ schedule = "* * * * * *", timezone = "Europe/Paris" }}
[[flows.steps]]
id = "path_helper"
plugin = "path-helper"

[[flows]]
name = "slow_every_second"
trigger = {{ schedule = "* * * * * *" }}
[[flows.steps]]
id = "wait"
plugin = "http-get"
inputs = {{ url = "{slow}" }}
"#
        ),
    );
    let runs_of = |served: &Served, flow: &str| -> Vec<Value> {
        served
            .get(
                &format!("/api/v1/runs?instance=acme-sync&flow={flow}&limit=1000"),
                &admin_token(),
            )
            .json()
            .as_array()
            .unwrap()
            .clone()
    };

    let mut served = serve(&env, &[]);
    assert!(
        served.banner.contains("schedule `every_second`"),
        "{}",
        served.banner
    );
    std::thread::sleep(Duration::from_millis(5500));
    let fired = runs_of(&served, "every_second");
    assert!(fired.len() >= 3, "{} runs in 5.5 s", fired.len());
    assert_eq!(fired[0]["trigger"]["timezone"], "Europe/Paris");
    // 2.5 s runs on a 1 s schedule: at most one at a time, so at most three in 5.5 s.
    let slow_runs = runs_of(&served, "slow_every_second");
    assert!(
        (1..=3).contains(&slow_runs.len()),
        "{} slow runs",
        slow_runs.len()
    );
    assert!(served.stop().is_some_and(|s| s.success()));

    // Down for 3 s: the schedule missed about three ticks, and runs once for them at start.
    std::thread::sleep(Duration::from_secs(3));
    let served = serve(&env, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let catch_ups: Vec<Value> = runs_of(&served, "every_second")
        .into_iter()
        .filter(|r| r["trigger"]["catch_up"] == true)
        .collect();
    assert_eq!(catch_ups.len(), 1, "{catch_ups:#?}");
    assert!(catch_ups[0]["trigger"]["missed_ticks"].as_u64().unwrap() >= 2);
}

#[test]
fn stopping_lets_runs_in_flight_finish_or_records_them_interrupted() {
    let server = TestServer::start();
    let env = env(&server, "");
    let mut served = serve(&env, &[]);
    let reply = served.call("POST", &served.webhook("globex-sync", "slow"), &[], b"");
    let finishing = reply.json()["run_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(100));
    assert!(served.stop().is_some_and(|s| s.success()));
    let show = env.weft(&[
        "runs",
        "show",
        &finishing,
        "--workspace",
        "weft.toml",
        "--json",
    ]);
    assert!(show.success, "{}", show.stderr);
    let run: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(run["status"], "succeeded", "the run in flight finished");

    // With no grace, the run in flight is recorded as interrupted, and can be resumed.
    let mut served = serve(&env, &["--grace", "0"]);
    let reply = served.call("POST", &served.webhook("globex-sync", "slow"), &[], b"");
    let cut = reply.json()["run_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(100));
    served.stop();
    let show = env.weft(&["runs", "show", &cut, "--workspace", "weft.toml", "--json"]);
    let run: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(run["status"], "interrupted", "{run:#}");
    let resumed = env.weft(&["runs", "resume", &cut, "--workspace", "weft.toml"]);
    assert!(resumed.success, "{}\n{}", resumed.stdout, resumed.stderr);
}

/// The runs of flow `flow` the API lists with `status`.
fn runs_with(served: &Served, flow: &str, status: &str) -> Vec<Value> {
    let reply = served.get(
        &format!("/api/v1/runs?flow={flow}&status={status}"),
        &admin_token(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json().as_array().cloned().unwrap_or_default()
}

#[test]
fn a_sync_run_is_seen_running_while_it_goes_on_and_recorded_interrupted_if_cut_short() {
    let server = TestServer::start();
    let env = env(&server, "");
    let mut served = serve(&env, &["--grace", "0"]);
    // A sync run of 400 ms writes its record only when it needs to (a run that ends sooner is
    // written once, whole): after a short while it is listed as running, with its config.
    let addr = served.addr.clone();
    let slow = served.webhook("globex-sync", "slow");
    let waiting = std::thread::spawn({
        let slow = slow.clone();
        move || weft_tests::serve::request(&addr, "POST", &format!("{slow}?wait=true"), &[], b"")
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let running = loop {
        let running = runs_with(&served, "slow", "running");
        if !running.is_empty() || Instant::now() > deadline {
            break running;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        running.len(),
        1,
        "the run in progress is listed: {running:#?}"
    );
    assert_eq!(running[0]["config"]["customerName"]["value"], "Globex");
    let reply = waiting.join().expect("the sync call returns");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply
        .header("x-weft-run-id")
        .expect("the run id")
        .to_string();
    assert_eq!(id, running[0]["id"], "the same run");
    let run = served
        .get(&format!("/api/v1/runs/{id}"), &admin_token())
        .json();
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["steps"].as_array().map(Vec::len), Some(1), "{run:#}");
    assert_eq!(run["steps"][0]["id"], "wait");
    assert_eq!(run["steps"][0]["status"], "succeeded");

    // A short sync run (one Path Helper step) is written once, whole, and reads the same.
    let reply = served.call("POST", &served.webhook("globex-sync", "reply"), &[], b"");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply
        .header("x-weft-run-id")
        .expect("the run id")
        .to_string();
    let run = served
        .get(&format!("/api/v1/runs/{id}"), &admin_token())
        .json();
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["steps"][0]["id"], "path_helper", "{run:#}");
    assert_eq!(run["steps"][0]["output"], run["result"], "{run:#}");

    // A sync run stopped (no grace) before it needed to write anything is found at the stop
    // and recorded as interrupted, like any run in flight.
    let mut stream = std::net::TcpStream::connect(&served.addr).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!("POST {slow}?wait=true HTTP/1.1\r\nhost: weft\r\ncontent-length: 0\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(40));
    served.stop();
    let list = env.weft(&[
        "runs",
        "list",
        "--workspace",
        "weft.toml",
        "--flow",
        "slow",
        "--status",
        "interrupted",
        "--json",
    ]);
    assert!(list.success, "{}", list.stderr);
    let interrupted: Vec<Value> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(interrupted.len(), 1, "{interrupted:#?}");
    assert_eq!(interrupted[0]["instance"], "globex-sync");
    drop(stream);
}

#[test]
fn the_openapi_document_lists_every_route() {
    let server = TestServer::start();
    let env = env(&server, "");
    let served = serve(&env, &[]);
    let doc = served.call("GET", "/openapi.json", &[], b"");
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/instances",
        "/api/v1/instances/{instance}/flows/{flow}/runs",
        "/api/v1/runs/{run}",
        "/api/v1/customers",
        "/webhooks/{token}",
        "/webhooks/{instance}/{flow}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
    let unknown = served.call("GET", "/api/v2/nothing", &[], b"");
    assert_eq!((unknown.status, unknown.code()), (404, "not_found".into()));
}

/// Every route of `weft serve`'s router, with its methods (the router in
/// `engine/src/serve/mod.rs`; a route added there and not here fails the test below only if it
/// is also missing from the document, so keep the two together).
const ROUTES: &[(&str, &[&str])] = &[
    ("/openapi.json", &["get"]),
    ("/health", &["get"]),
    ("/api/v1/me", &["get"]),
    ("/api/v1/integrations", &["get"]),
    ("/api/v1/customers", &["get"]),
    ("/api/v1/customers/{customer}", &["get"]),
    (
        "/api/v1/customers/{customer}/config/{name}",
        &["put", "delete"],
    ),
    ("/api/v1/config/{name}", &["put", "delete"]),
    ("/api/v1/credentials", &["get"]),
    ("/api/v1/credentials/{name}", &["put", "delete"]),
    (
        "/api/v1/customers/{customer}/credentials/{name}",
        &["put", "delete"],
    ),
    ("/api/v1/instances", &["get"]),
    ("/api/v1/instances/{instance}", &["get"]),
    (
        "/api/v1/instances/{instance}/config/{name}",
        &["put", "delete"],
    ),
    ("/api/v1/instances/{instance}/flows/{flow}/runs", &["post"]),
    (
        "/api/v1/instances/{instance}/flows/{flow}/webhook/rotate",
        &["post"],
    ),
    ("/api/v1/runs", &["get"]),
    ("/api/v1/runs/{run}", &["get"]),
    (
        "/webhooks/{token}",
        &["get", "post", "put", "patch", "delete"],
    ),
    (
        "/webhooks/{instance}/{flow}",
        &["get", "post", "put", "patch", "delete"],
    ),
];

#[test]
fn the_document_and_the_router_agree_on_every_route_method_and_parameter() {
    let server = TestServer::start();
    let env = env(&server, "");
    let served = serve(&env, &[]);
    let doc = served.call("GET", "/openapi.json", &[], b"").json();
    let paths = doc["paths"].as_object().expect("the document has paths");
    let documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|ops| ops.keys())
                .filter(|m| ["get", "put", "post", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| (path.clone(), m.clone()))
        })
        .collect();
    let routed: Vec<(String, String)> = ROUTES
        .iter()
        .flat_map(|(path, methods)| methods.iter().map(|m| (path.to_string(), m.to_string())))
        .collect();
    for route in &routed {
        assert!(
            documented.contains(route),
            "{route:?} is routed but not documented"
        );
    }
    for route in &documented {
        assert!(
            routed.contains(route),
            "{route:?} is documented but not routed"
        );
    }
    // Path parameters: the names in the path are the ones the operation declares.
    for (path, item) in paths {
        let in_path: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(item["parameters"].as_array().into_iter().flatten())
                .map(|p| match p["$ref"].as_str() {
                    Some(r) => doc
                        .pointer(r.trim_start_matches('#'))
                        .unwrap_or(&Value::Null),
                    None => p,
                })
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for name in &in_path {
                assert!(
                    declared.contains(name),
                    "{method} {path}: parameter `{name}` is not declared"
                );
            }
            for name in &declared {
                assert!(
                    in_path.contains(name),
                    "{method} {path}: declares `{name}`, which is not in the path"
                );
            }
        }
    }
    // Every documented route is served: nothing falls through to the router's fallback.
    for (path, method) in &documented {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let reply = served.call(&method.to_uppercase(), &concrete, &[], b"");
        assert!(
            !(reply.status == 404 && reply.text().contains("no such route")),
            "{method} {path} is documented but falls through to the fallback"
        );
    }
}

#[test]
fn a_bad_query_string_answers_in_the_documented_error_shape() {
    let server = TestServer::start();
    let env = env(&server, "");
    let served = serve(&env, &[]);
    let admin = format!("Bearer {}", admin_token());
    let auth = [("Authorization", admin.as_str())];
    for path in ["/api/v1/runs?limit=abc", "/api/v1/runs?limit=-1"] {
        let reply = served.call("GET", path, &auth, b"");
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.code(), "bad_request", "{path}");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains("limit"), "{path}: {message}");
    }
    // A caller without credentials learns nothing about the query: it is refused first.
    let reply = served.call("GET", "/api/v1/runs?limit=abc", &[], b"");
    assert_eq!(
        (reply.status, reply.code()),
        (401, "missing_credentials".into())
    );
}

#[test]
fn credentials_are_write_only_through_the_api() {
    let server = TestServer::start();
    let env = env(&server, "");
    let key = "78d9184c5c26f0d853128890a7ff307862cdb5a3a9890a2aa7db51ece95b2869";
    let served = Served::start(
        env.path(),
        &[],
        &[
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_TEST_HASH_SECRET", HASH_SECRET),
            ("WEFT_TEST_HOOK_SECRET", HOOK_SECRET),
            ("WEFT_MASTER_KEY", key),
        ],
    );
    let admin = format!("Bearer {}", admin_token());
    let put = served.call(
        "PUT",
        "/api/v1/customers/acme/credentials/crm",
        &[("authorization", &admin)],
        br#"{"kind": "bearer", "token": "tok-very-secret-123"}"#,
    );
    assert_eq!(put.status, 200, "{}", put.text());
    assert!(
        !put.text().contains("tok-very-secret-123"),
        "{}",
        put.text()
    );
    let listed = served.get("/api/v1/credentials", &admin_token());
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json()[0]["name"], "crm");
    assert!(!listed.text().contains("tok-very-secret-123"));

    // A reference would read the server's own environment or files: refused.
    let sneaky = served.call(
        "PUT",
        "/api/v1/credentials/leak",
        &[("authorization", &admin)],
        br#"{"kind": "bearer", "token": "env:WEFT_TEST_SECRET"}"#,
    );
    assert_eq!((sneaky.status, sneaky.code()), (400, "bad_request".into()));
    let customer = served.call(
        "PUT",
        "/api/v1/credentials/mine",
        &[(
            "authorization",
            &format!("Bearer {}", customer_token("acme")),
        )],
        br#"{"kind": "bearer", "token": "x"}"#,
    );
    assert_eq!(customer.status, 403);
    let deleted = served.call(
        "DELETE",
        "/api/v1/customers/acme/credentials/crm",
        &[("authorization", &admin)],
        b"",
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text());

    // Without a master key there is nowhere to keep them.
    drop(served);
    let served = serve(&env, &[]);
    let put = served.call(
        "PUT",
        "/api/v1/credentials/crm",
        &[("authorization", &admin)],
        br#"{"kind": "bearer", "token": "x"}"#,
    );
    assert_eq!(
        (put.status, put.code()),
        (409, "vault_not_configured".into())
    );
}
