//! The HTTP capability: credentials applied by the host, secrets kept from plugins, and the
//! egress policy, against a real server on loopback.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use weft::store::{RunStore, Status};
use weft_model::value::RecordedValue;
use weft_tests::TestEnv;
use weft_tests::server::{PNG, TestServer};

const SECRET_TOKEN: &str = "tok-3f9a1c77e2b54d08";
const SECRET_PASSWORD: &str = "pw-8e1d2a9b66c4";
const API_KEY: &str = "key-51c0de9a7f3e";
const HS_SECRET: &str = "hs-secret-0123456789abcdef0123456789abcdef0123456789abcdef01234567";

fn fixture(name: &str) -> String {
    weft_tests::repo()
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// A workspace whose `http-get` is granted the test server (loopback allowed), with one
/// credential of every kind, secrets in files.
fn credentials_env(server: &TestServer) -> TestEnv {
    let env = TestEnv::new();
    env.write("token.txt", SECRET_TOKEN);
    env.write("password.txt", SECRET_PASSWORD);
    env.write("api-key.txt", API_KEY);
    env.write("hs.txt", HS_SECRET);
    // A PEM pasted on one line with `\n` sequences, as users paste keys into forms.
    let rsa_one_line = std::fs::read_to_string(fixture("rsa-private.pem"))
        .unwrap()
        .replace('\n', "\\n");
    env.write("rsa-one-line.txt", &rsa_one_line);
    let origin = format!("http://127.0.0.1:{}", server.port());
    let jwt = |name: &str, alg: &str, key: &str| {
        format!(
            r#"
[credentials.{name}]
kind = "jwt-bearer"
algorithm = "{alg}"
{key}
hosts = ["{origin}"]
lifetime = "10m"
payload = {{ iss = "weft-tests", sub = "{{{{ customer.id }}}}", aud = "partner", avatar = "{{{{ config.pokemonAvatar }}}}" }}
jwt_headers = {{ kid = "key-{alg}", typ = "JWT" }}
"#
        )
    };
    let mut ws = weft_tests::one_instance_workspace(&[]);
    ws.push_str(&format!(
        r#"
[plugins.http-get]
source = "builtin:http-get"
http = {{ allow = ["{origin}"], allow_loopback = true }}

[credentials.bearer]
kind = "bearer"
token = "file:token.txt"
hosts = ["{origin}"]

[credentials.basic]
kind = "basic"
username = "weft-user"
password = "file:password.txt"

[credentials.header-key]
kind = "api-key"
key = "file:api-key.txt"
header = "X-Partner-Key"

[credentials.query-key]
kind = "api-key"
key = "file:api-key.txt"
query = "api_key"
"#
    ));
    ws.push_str(&jwt("jwt-hs256", "HS256", "secret = \"file:hs.txt\""));
    ws.push_str(&jwt("jwt-hs512", "HS512", "secret = \"file:hs.txt\""));
    ws.push_str(&jwt(
        "jwt-rs256",
        "RS256",
        "private_key = \"file:rsa-one-line.txt\"",
    ));
    ws.push_str(&jwt(
        "jwt-es256",
        "ES256",
        &format!("private_key = \"file:{}\"", fixture("ec-private.pem")),
    ));

    let mut integration =
        String::from("name = \"test\"\n[config_vars]\ncustomerName = {}\npokemonAvatar = {}\n");
    for name in [
        "bearer",
        "basic",
        "header-key",
        "query-key",
        "jwt-hs256",
        "jwt-hs512",
        "jwt-rs256",
        "jwt-es256",
    ] {
        integration.push_str(&format!(
            "[[flows]]\nname = \"{name}\"\n[[flows.steps]]\nid = \"call\"\nplugin = \"http-get\"\ncredential = \"{name}\"\ninputs = {{ url = \"{}\" }}\n",
            server.url(&format!("/echo?via={name}"))
        ));
    }
    env.workspace(&ws, &integration);
    env
}

async fn run_flow(env: &TestEnv, flow: &str) -> weft::store::RunWithSteps {
    let ws = env.load();
    env.runner()
        .run(weft::runner::RunRequest {
            workspace: &ws,
            instance: "acme-test",
            flow: Some(flow),
            trigger: Value::Null,
        })
        .await
        .expect("the run starts")
}

fn seen_for(server: &TestServer, via: &str) -> weft_tests::server::Seen {
    server
        .seen_at("/echo")
        .into_iter()
        .rfind(|s| s.query.get("via").map(String::as_str) == Some(via))
        .unwrap_or_else(|| panic!("no request via {via}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_credential_kind_arrives_as_the_server_expects() {
    let server = TestServer::start();
    let env = credentials_env(&server);

    for flow in ["bearer", "basic", "header-key", "query-key"] {
        let run = run_flow(&env, flow).await;
        assert_eq!(
            run.run.status,
            Status::Succeeded,
            "{flow}: {:?}",
            run.run.error
        );
    }
    assert_eq!(
        seen_for(&server, "bearer").headers["authorization"],
        format!("Bearer {SECRET_TOKEN}")
    );
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("weft-user:{SECRET_PASSWORD}"),
    );
    assert_eq!(
        seen_for(&server, "basic").headers["authorization"],
        format!("Basic {basic}")
    );
    assert_eq!(
        seen_for(&server, "header-key").headers["x-partner-key"],
        API_KEY
    );
    assert_eq!(seen_for(&server, "query-key").query["api_key"], API_KEY);

    let cases = [
        (
            "jwt-hs256",
            Algorithm::HS256,
            DecodingKey::from_secret(HS_SECRET.as_bytes()),
        ),
        (
            "jwt-hs512",
            Algorithm::HS512,
            DecodingKey::from_secret(HS_SECRET.as_bytes()),
        ),
        (
            "jwt-rs256",
            Algorithm::RS256,
            DecodingKey::from_rsa_pem(std::fs::read(fixture("rsa-public.pem")).unwrap().as_slice())
                .unwrap(),
        ),
        (
            "jwt-es256",
            Algorithm::ES256,
            DecodingKey::from_ec_pem(std::fs::read(fixture("ec-public.pem")).unwrap().as_slice())
                .unwrap(),
        ),
    ];
    for (flow, alg, key) in cases {
        let run = run_flow(&env, flow).await;
        assert_eq!(
            run.run.status,
            Status::Succeeded,
            "{flow}: {:?}",
            run.run.error
        );
        let auth = seen_for(&server, flow).headers["authorization"].clone();
        let token = auth.strip_prefix("Bearer ").expect("a bearer token");
        let mut validation = Validation::new(alg);
        validation.set_audience(&["partner"]);
        validation.set_issuer(&["weft-tests"]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .unwrap_or_else(|e| panic!("{flow}: the server rejects the token: {e}"));
        assert_eq!(
            data.header.kid.as_deref(),
            Some(format!("key-{alg:?}").as_str()),
            "{flow}"
        );
        assert_eq!(data.header.typ.as_deref(), Some("JWT"));
        assert_eq!(
            data.claims["sub"], "acme",
            "{flow}: claims are filled from the customer"
        );
        assert_eq!(
            data.claims["avatar"], "onix",
            "{flow}: and from config vars"
        );
        let (iat, exp) = (
            data.claims["iat"].as_u64().unwrap(),
            data.claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, 600, "{flow}: lifetime");
        // The plugin saw the echo of its own request, with the token redacted.
        let RecordedValue::Json(result) = run.run.result.clone().unwrap() else {
            panic!()
        };
        assert_eq!(
            result["headers"]["authorization"], "Bearer [redacted]",
            "{flow}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_never_obtains_a_secret_even_when_upstream_echoes_it() {
    let server = TestServer::start();
    let env = credentials_env(&server);
    // The echo answers with every header the host sent, credential included.
    let run = run_flow(&env, "bearer").await;
    assert_eq!(run.run.status, Status::Succeeded);
    let RecordedValue::Json(result) = run.run.result.clone().unwrap() else {
        panic!()
    };
    assert_eq!(result["headers"]["authorization"], "Bearer [redacted]");

    // An upstream error whose body echoes the credential: the step's error is redacted too.
    let integration = std::fs::read_to_string(env.path().join("integration.toml"))
        .unwrap()
        .replace(&server.url("/echo?via=basic"), &server.url("/status/500"));
    env.write("integration.toml", &integration);
    let failed = run_flow(&env, "basic").await;
    assert_eq!(failed.run.status, Status::Failed);
    let error = failed.run.error.clone().unwrap();
    assert!(error.contains("answered 500"), "{error}");
    assert!(error.contains("Basic [redacted]"), "{error}");

    // Nothing stored anywhere holds a secret or its base64 form.
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("weft-user:{SECRET_PASSWORD}"),
    );
    let store = weft::store::SledStore::open(&env.path().join(".weft")).unwrap();
    for listed in store.list_runs(&Default::default()).unwrap() {
        let record = serde_json::to_string(&store.get_run(&listed.id).unwrap().unwrap()).unwrap();
        for secret in [SECRET_TOKEN, SECRET_PASSWORD, basic.as_str()] {
            assert!(
                !record.contains(secret),
                "run {} holds a secret: {record}",
                listed.id
            );
        }
    }
    // A bare credential Debug does not show it either.
    let ws = env.load();
    let credential = weft::secrets::find(&ws, None, Some("acme"), "bearer").unwrap();
    assert!(!format!("{credential:?}").contains(SECRET_TOKEN));
}

/// A workspace whose `http-get` has grant `allow` (plus extra grant keys) and one flow per URL.
fn egress_env(grant: &str, urls: &[&str]) -> TestEnv {
    let env = TestEnv::new();
    let mut ws = weft_tests::one_instance_workspace(&[]);
    ws.push_str(&format!(
        "\n[plugins.http-get]\nsource = \"builtin:http-get\"\nhttp = {{ {grant} }}\n"
    ));
    let mut integration =
        String::from("name = \"test\"\n[config_vars]\ncustomerName = {}\npokemonAvatar = {}\n");
    for (i, url) in urls.iter().enumerate() {
        integration.push_str(&format!(
            "[[flows]]\nname = \"f{i}\"\n[[flows.steps]]\nid = \"get\"\nplugin = \"http-get\"\ninputs = {{ url = \"{url}\", response_type = \"text\" }}\n"
        ));
    }
    env.workspace(&ws, &integration);
    env
}

async fn error_of(env: &TestEnv, flow: &str) -> String {
    let run = run_flow(env, flow).await;
    assert_eq!(
        run.run.status,
        Status::Failed,
        "{flow} should have been refused: {:?}",
        run.run.result
    );
    run.run.error.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn egress_to_forbidden_addresses_is_refused() {
    let server = TestServer::start();
    let port = server.port();
    let urls = [
        format!("http://127.0.0.1:{port}/json"),
        format!("http://127.1:{port}/json"),
        format!("http://0x7f.1:{port}/json"),
        format!("http://2130706433:{port}/json"),
        format!("http://[::1]:{port}/json"),
        format!("http://[::ffff:127.0.0.1]:{port}/json"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://localhost:{port}/json"),
        "http://internal.test/".to_string(),
        "http://mixed.test/".to_string(),
    ];
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    // Any host, any port: only the address checks stand in the way.
    let env = egress_env(r#"allow = ["http://*:*"]"#, &url_refs);
    let expectations = [
        "127.0.0.1 is a loopback address",
        "127.0.0.1 is a loopback address",
        "127.0.0.1 is a loopback address",
        "127.0.0.1 is a loopback address",
        "::1 is a loopback address",
        "127.0.0.1 is a loopback address",
        "169.254.169.254 is a cloud metadata address",
        "`localhost` resolves to",
        "`internal.test` resolves to 10.0.0.5 is a private address",
        "`mixed.test` resolves to 192.168.1.9 is a private address",
    ];
    for (i, expected) in expectations.iter().enumerate() {
        let error = error_of(&env, &format!("f{i}")).await;
        assert!(
            error.starts_with("step `get` (plugin `http-get`) failed (denied): plugin `http-get` (step `get`) may not reach"),
            "{}: {error}",
            urls[i]
        );
        assert!(
            error.contains(expected),
            "{}: expected {expected:?} in {error}",
            urls[i]
        );
    }
    assert!(
        server.seen().is_empty(),
        "no request reached the server: {:?}",
        server.seen()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_redirects_and_sizes_are_checked() {
    let server = TestServer::start();
    let port = server.port();
    let urls = [
        // Not granted at all.
        "https://example.com/".to_string(),
        // Granted, then redirected to a port that is not.
        server.url(&format!("/redirect?to=http://127.0.0.1:{}/json", port + 1)),
        // Granted, then redirected to the metadata address.
        server.url("/redirect?to=http://169.254.169.254/latest/"),
        // Over the response cap.
        server.url("/big?size=4096"),
        // Fine: a redirect within the grant, followed.
        server.url("/redirect?to=/json"),
        // Fine: binary.
        server.url("/png"),
    ];
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let env = egress_env(
        &format!(
            r#"allow = ["http://127.0.0.1:{port}", "http://169.254.169.254"], allow_loopback = true, max_response = "1 KiB""#
        ),
        &url_refs,
    );
    let error = error_of(&env, "f0").await;
    assert!(
        error.contains(&format!(
            "may not reach `https://example.com/`: its grant allows `http://127.0.0.1:{port}`, `http://169.254.169.254`; add `https://example.com:443` to `http.allow` of `[plugins.http-get]` to allow it"
        )),
        "{error}"
    );
    let error = error_of(&env, "f1").await;
    assert!(
        error.contains(&format!(
            "may not reach `http://127.0.0.1:{}/json`",
            port + 1
        )),
        "{error}"
    );
    let error = error_of(&env, "f2").await;
    assert!(
        error.contains("169.254.169.254 is a cloud metadata address"),
        "{error}"
    );
    let error = error_of(&env, "f3").await;
    assert!(
        error.contains("over the 1 KiB response limit of plugin `http-get`"),
        "{error}"
    );

    let ok = run_flow(&env, "f4").await;
    assert_eq!(ok.run.status, Status::Succeeded, "{:?}", ok.run.error);
    assert_eq!(
        ok.run.result,
        Some(RecordedValue::Json(json!(
            r#"{"hello":"world","items":[1,2,3]}"#
        )))
    );

    let integration = std::fs::read_to_string(env.path().join("integration.toml"))
        .unwrap()
        .replace(
            &format!(
                "inputs = {{ url = \"{}\", response_type = \"text\" }}",
                urls[5]
            ),
            &format!(
                "inputs = {{ url = \"{}\", response_type = \"binary\" }}",
                urls[5]
            ),
        );
    env.write("integration.toml", &integration);
    let png = run_flow(&env, "f5").await;
    let RecordedValue::Bytes(summary) = png.run.result.unwrap() else {
        panic!("binary result")
    };
    assert_eq!(summary.content_type, "image/png");
    assert_eq!(summary.size, PNG.len() as u64);
}

#[test]
fn stored_credentials_survive_a_restart_and_a_wrong_key_changes_nothing() {
    let server = TestServer::start();
    let env = TestEnv::new();
    let origin = format!("http://127.0.0.1:{}", server.port());
    let mut ws = weft_tests::one_instance_workspace(&[]);
    ws.push_str(&format!(
        "\n[plugins.http-get]\nsource = \"builtin:http-get\"\nhttp = {{ allow = [\"{origin}\"], allow_loopback = true }}\n"
    ));
    env.workspace(
        &ws,
        &format!(
            "name = \"test\"\n[config_vars]\ncustomerName = {{}}\npokemonAvatar = {{}}\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nid = \"call\"\nplugin = \"http-get\"\ncredential = \"partner\"\ninputs = {{ url = \"{}\" }}\n",
            server.url("/protected")
        ),
    );
    let key = env
        .weft(&["credentials", "new-key"])
        .stdout
        .trim()
        .to_string();
    assert_eq!(key.len(), 64);
    let other_key = "ab".repeat(32);
    let with_key = [("WEFT_MASTER_KEY", key.as_str())];
    let test_partner = [
        "credentials",
        "test",
        "partner",
        "-w",
        "weft.toml",
        "--allow-loopback",
    ];

    // A secret on the command line is refused.
    let out = env.weft_with(
        &[
            "credentials",
            "set",
            "partner",
            "-w",
            "weft.toml",
            "--kind",
            "bearer",
            "--field",
            "token=good-token",
        ],
        &with_key,
        None,
    );
    assert!(!out.success);
    assert!(
        out.stderr.contains("field `token` is secret"),
        "{}",
        out.stderr
    );

    // Set from standard input, with a test request.
    let test_url = server.url("/protected");
    let set = [
        "credentials",
        "set",
        "partner",
        "-w",
        "weft.toml",
        "--kind",
        "bearer",
        "--field",
        "token=-",
        "--host",
        &origin,
        "--test-url",
        &test_url,
    ];
    let out = env.weft_with(&set, &with_key, Some("good-token\n"));
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout
            .contains("Stored credential `partner` (bearer, workspace), encrypted."),
        "{}",
        out.stdout
    );

    // Nothing in the store files holds the token in clear.
    for entry in walk(&env.path().join(".weft")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(10).any(|w| w == b"good-token"),
            "{} holds the token",
            entry.display()
        );
    }

    // A new process (a restart) decrypts it and the run authenticates.
    let out = env.weft_with(
        &["run", "weft.toml", "--instance", "acme-test", "--json"],
        &with_key,
        None,
    );
    assert!(out.success, "{out:?}");
    assert_eq!(
        server.seen_at("/protected").last().unwrap().headers["authorization"],
        "Bearer good-token"
    );
    let out = env.weft_with(&test_partner, &with_key, None);
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains("Credential `partner` works: GET"),
        "{}",
        out.stdout
    );

    // A wrong key: a clear error, and the stored credential is untouched.
    let wrong = [("WEFT_MASTER_KEY", other_key.as_str())];
    // The same command without the host and test URL.
    let set_wrong = &set[..9];
    let out = env.weft_with(set_wrong, &wrong, Some("bad-token\n"));
    assert!(!out.success);
    assert!(out.stderr.contains("the master key is not the one this store's credentials were sealed with; nothing was changed"), "{}", out.stderr);
    let out = env.weft_with(
        &["run", "weft.toml", "--instance", "acme-test"],
        &wrong,
        None,
    );
    assert!(!out.success);
    assert!(
        out.stderr.contains("the master key is not the one"),
        "{}",
        out.stderr
    );
    let out = env.weft_with(
        &["run", "weft.toml", "--instance", "acme-test", "--json"],
        &with_key,
        None,
    );
    assert!(
        out.success,
        "the right key still works after the refused write: {out:?}"
    );

    // Without any key, the run says where it looked and how to use stored credentials.
    let out = env.weft(&["run", "weft.toml", "--instance", "acme-test"]);
    assert!(!out.success);
    assert!(
        out.stderr.contains("no credential `partner`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("set `WEFT_MASTER_KEY` to use them"),
        "{}",
        out.stderr
    );

    // A failing test request reports the upstream status.
    let out = env.weft_with(&set, &with_key, Some("stale-token\n"));
    assert!(out.success, "{out:?}");
    let out = env.weft_with(&test_partner, &with_key, None);
    assert!(!out.success);
    assert!(out.stderr.contains("answered 401"), "{}", out.stderr);
    assert!(out.stderr.contains("bad token"), "{}", out.stderr);
    assert!(!out.stderr.contains("stale-token"), "{}", out.stderr);

    let out = env.weft_with(&["credentials", "list", "-w", "weft.toml"], &with_key, None);
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains("partner")
            && out.stdout.contains("bearer")
            && out.stdout.contains("store"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("stale-token"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn secrets_written_into_the_workspace_file_are_refused() {
    let env = TestEnv::new();
    let mut ws = weft_tests::one_instance_workspace(&[]);
    ws.push_str("\n[credentials.inline]\nkind = \"bearer\"\ntoken = \"plain-text-token\"\n\n[credentials.rsa]\nkind = \"jwt-bearer\"\nalgorithm = \"RS999\"\nprivate_key = \"file:key.pem\"\n");
    env.workspace(&ws, "name = \"test\"\n[config_vars]\ncustomerName = {}\npokemonAvatar = {}\n[[flows]]\nname = \"f\"\n[[flows.steps]]\nid = \"a\"\nplugin = \"path-helper\"\n");
    let out = env.weft(&["validate", "weft.toml"]);
    assert!(!out.success);
    assert!(out.stderr.contains("credential `inline`: field `token` holds a secret written into the file; use `env:NAME` or `file:PATH`"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("credential `rsa`: unknown JWT algorithm `RS999`"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("plain-text-token"), "{}", out.stderr);
}
