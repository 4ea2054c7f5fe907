//! Who may call: workspace JWTs and user hashes, refused with their reason, and what each
//! customer may see.

use super::*;

#[test]
fn bad_tokens_are_refused_with_their_reason_and_never_echoed() {
    let server = TestServer::start();
    let env = env(&server, "");
    let served = serve(&env, &[]);

    let rsa = EncodingKey::from_rsa_pem(include_bytes!("../fixtures/rsa-private.pem")).unwrap();
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
