//! Webhooks: secret addresses, signatures, what a caller is told, and replies from plugins.

use super::*;

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

#[test]
fn an_instance_removed_and_created_again_gets_new_addresses() {
    let server = TestServer::start();
    let env = env(&server, "");
    let mut served = serve(&env, &[]);
    let old = served.webhook("globex-sync", "paths");
    let kept = served.webhook("acme-sync", "paths");
    served.stop();

    let file = env.path().join("weft.toml");
    let with = std::fs::read_to_string(&file).unwrap();
    let instance =
        "[[instances]]\nid = \"globex-sync\"\ncustomer = \"globex\"\nintegration = \"avatars\"\n";
    assert!(with.contains(instance));
    std::fs::write(&file, with.replace(instance, "")).unwrap();
    let removed = env.weft(&["apply", "weft.toml"]);
    assert!(removed.success, "{}", removed.stderr);
    std::fs::write(&file, &with).unwrap();

    let served = serve(&env, &[]);
    let new = served.webhook("globex-sync", "paths");
    assert_ne!(new, old, "the instance created again has a new address");
    assert_eq!(served.call("POST", &old, &[], b"").status, 404);
    assert_eq!(served.call("POST", &new, &[], b"").status, 202);
    // An instance that stayed keeps its address across the apply and the restart.
    assert_eq!(served.webhook("acme-sync", "paths"), kept);
}

#[test]
fn a_stop_step_answers_a_sync_webhook_with_its_own_status() {
    let server = TestServer::start();
    let env = env(
        &server,
        r#"
[[flows]]
name = "gate"
webhook = { sync = true }
[[flows.steps]]
id = "check"
type = "branch"
[[flows.steps.branches]]
name = "refuse"
when = "!has(trigger.body.email)"
[[flows.steps.branches.steps]]
id = "refused"
type = "stop"
status = "failed"
message = "the request has no email"
result = { status = 422, headers = { "x-reason" = "missing-email" }, body = { error = "email is required" } }
[[flows.steps]]
id = "accepted"
type = "stop"
result = { status = 201, body = { ok = "{{ trigger.body.email }}" } }
"#,
    );
    let served = serve(&env, &[]);
    let hook = served.webhook("globex-sync", "gate");
    let json = [("content-type", "application/json")];

    let refused = served.call("POST", &hook, &json, b"{}");
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert_eq!(refused.header("x-reason"), Some("missing-email"));
    assert_eq!(refused.json(), json!({ "error": "email is required" }));

    let accepted = served.call("POST", &hook, &json, br#"{"email":"a@b.c"}"#);
    assert_eq!(accepted.status, 201, "{}", accepted.text());
    assert_eq!(accepted.json(), json!({ "ok": "a@b.c" }));

    // The refused run is recorded failed, with the stop's message and the step that stopped it.
    let runs = served.get("/api/v1/runs?flow=gate", &admin_token()).json();
    let refused_run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "failed")
        .unwrap_or_else(|| panic!("{runs:#}"))
        .clone();
    assert_eq!(refused_run["stopped_by"], "refused");
    assert!(
        refused_run["error"]
            .as_str()
            .unwrap()
            .contains("the request has no email"),
        "{refused_run:#}"
    );

    // Its steps a place at a time: the flow's own, then those inside the branch that ran.
    let id = refused_run["id"].as_str().unwrap();
    let top = served
        .get(&format!("/api/v1/runs/{id}?within="), &admin_token())
        .json();
    assert_eq!(top["steps_total"], 1, "{top:#}");
    assert_eq!(top["steps"][0]["id"], "check");
    assert_eq!(top["steps"][0]["detail"]["branch"], "refuse");
    let inside = served
        .get(
            &format!("/api/v1/runs/{id}?within=check:refuse&limit=1"),
            &admin_token(),
        )
        .json();
    assert_eq!(inside["steps"][0]["id"], "refused", "{inside:#}");
    assert_eq!(inside["steps"][0]["scope"][0]["branch"], "refuse");
}
