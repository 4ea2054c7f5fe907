//! The Pokemon Avatar Sync example end to end: the real `weft` binary against the demo's
//! stand-ins (a Pokemon API serving fixtures and an S3-compatible store checking signatures).

use serde_json::Value;
use weft::demo::{BUCKET, POKEMON};
use weft_tests::server::TestServer;
use weft_tests::{S3_SECRET, TestEnv, pokemon_example};

const SMITH: &str = "smith-rocket-avatar-sync";
const FTL: &str = "ftl-rockets-avatar-sync";

fn png(name: &str) -> &'static [u8] {
    POKEMON
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, png)| *png)
        .expect("a fixture")
}

fn runs(env: &TestEnv) -> Vec<Value> {
    let out = env.weft(&["runs", "list", "--workspace", "weft.toml", "--json"]);
    assert!(out.success, "{}", out.stderr);
    serde_json::from_str::<Value>(&out.stdout)
        .expect("runs list --json prints JSON")
        .as_array()
        .expect("an array")
        .clone()
}

fn show(env: &TestEnv, run_id: &str) -> Value {
    let out = env.weft(&["runs", "show", run_id, "--workspace", "weft.toml", "--json"]);
    assert!(out.success, "{}", out.stderr);
    serde_json::from_str(&out.stdout).expect("runs show --json prints JSON")
}

#[test]
fn both_customers_avatars_land_in_the_bucket() {
    let (env, stand_ins) = pokemon_example();
    for instance in [SMITH, FTL] {
        let out = env.weft(&["run", "weft.toml", "--instance", instance]);
        assert!(out.success, "{instance}: {}\n{}", out.stdout, out.stderr);
        for step in [
            "path_helper",
            "get_pokemon_data",
            "get_pokemon_avatar",
            "save_avatar",
        ] {
            assert!(out.stdout.contains(step), "{}", out.stdout);
        }
    }

    for (key, pokemon) in [
        ("Smith Rocket Company.png", "pikachu"),
        ("FTL Rockets.png", "onix"),
    ] {
        let (bytes, content_type) = stand_ins.get_object(BUCKET, key);
        assert_eq!(
            bytes,
            png(pokemon),
            "s3://{BUCKET}/{key} holds the served PNG"
        );
        assert_eq!(content_type.as_deref(), Some("image/png"));
    }

    let runs = runs(&env);
    assert_eq!(runs.len(), 2);
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        let details = show(&env, run["id"].as_str().unwrap());
        let steps = details["steps"].as_array().unwrap();
        let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "path_helper",
                "get_pokemon_data",
                "get_pokemon_avatar",
                "save_avatar"
            ]
        );
        for step in steps {
            assert_eq!(step["status"], "succeeded", "{step}");
            assert!(step["duration_us"].as_u64().unwrap() > 0, "{step}");
        }
        let saved = &steps[3]["output"]["json"];
        assert_eq!(saved["bucket"], BUCKET, "{saved}");
        assert_eq!(saved["content_type"], "image/png", "{saved}");
        // The avatar is recorded as a binary summary, not its bytes.
        let avatar = steps[2]["output"].to_string();
        assert!(avatar.contains("image/png"), "{avatar}");
    }
}

#[test]
fn weft_demo_runs_the_example_offline() {
    let env = TestEnv::new();
    let out = env.weft(&["demo", "--dir", "demo"]);
    assert!(out.success, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("2 of 2 runs succeeded"),
        "{}",
        out.stdout
    );
    for key in ["Smith Rocket Company.png", "FTL Rockets.png"] {
        assert!(
            out.stdout.contains(&format!("saved s3://{BUCKET}/{key}")),
            "{}",
            out.stdout
        );
    }
    let bucket = env.path().join("demo/s3").join(BUCKET);
    assert_eq!(
        std::fs::read(bucket.join("Smith Rocket Company.png")).unwrap(),
        png("pikachu")
    );
    assert_eq!(
        std::fs::read(bucket.join("FTL Rockets.png")).unwrap(),
        png("onix")
    );
    // The runs are in the demo's store for `weft runs`.
    let out = env.weft(&["runs", "list", "--store", "demo/store"]);
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.contains(SMITH) && out.stdout.contains(FTL),
        "{}",
        out.stdout
    );
}

#[test]
fn a_wrong_secret_fails_with_the_s3_code_and_a_later_run_succeeds() {
    let (env, stand_ins) = pokemon_example();
    let wrong = "wrong-secret-2b8f41c9";
    env.write("secrets/aws-secret-access-key", wrong);
    let out = env.weft(&["run", "weft.toml", "--instance", SMITH]);
    assert!(!out.success);
    let printed = format!("{}{}", out.stdout, out.stderr);
    assert!(printed.contains("SignatureDoesNotMatch"), "{printed}");
    assert!(printed.contains("save_avatar"), "{printed}");
    assert!(!printed.contains(wrong), "the secret leaked: {printed}");

    let failed = runs(&env);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status"], "failed");
    let record = show(&env, failed[0]["id"].as_str().unwrap());
    assert!(
        !record.to_string().contains(wrong),
        "the secret is in the record"
    );
    let steps = record["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    assert_eq!(steps[2]["status"], "succeeded");
    assert_eq!(steps[3]["status"], "failed");
    assert!(
        steps[3]["error"]
            .as_str()
            .unwrap()
            .contains("SignatureDoesNotMatch"),
        "{}",
        steps[3]
    );

    env.write("secrets/aws-secret-access-key", S3_SECRET);
    let out = env.weft(&["run", "weft.toml", "--instance", SMITH]);
    assert!(out.success, "{}\n{}", out.stdout, out.stderr);
    let (bytes, _) = stand_ins.get_object(BUCKET, "Smith Rocket Company.png");
    assert_eq!(bytes, png("pikachu"));
}

/// Runs SMITH with the example workspace edited by `edit`; returns the failed step's id and
/// error.
fn failing_step(edit: impl Fn(String) -> String) -> (String, String) {
    let (env, _stand_ins) = pokemon_example();
    let text = std::fs::read_to_string(env.path().join("weft.toml")).unwrap();
    env.write("weft.toml", &edit(text));
    let out = env.weft(&["run", "weft.toml", "--instance", SMITH, "--json"]);
    assert!(!out.success, "{}", out.stdout);
    let run: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(run["status"], "failed");
    let step = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == "failed")
        .expect("a failed step")
        .clone();
    (
        step["id"].as_str().unwrap().to_string(),
        step["error"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_missing_bucket_is_named() {
    let (step, error) = failing_step(|ws| ws.replace(BUCKET, "no-such-bucket"));
    assert_eq!(step, "save_avatar");
    assert!(error.contains("NoSuchBucket"), "{error}");
    assert!(
        error.contains("s3://no-such-bucket/Smith Rocket Company.png"),
        "{error}"
    );
}

#[test]
fn an_unreachable_endpoint_is_a_connection_error() {
    let (step, error) = failing_step(|ws| {
        // Port 9 (discard) on loopback: nothing listens there.
        let endpoint = regex_like_replace(&ws, "s3Endpoint = \"", "\"", "http://127.0.0.1:9");
        endpoint.replace(
            "endpoints = [\"http://127.0.0.1:",
            "endpoints = [\"http://127.0.0.1:9\", \"http://127.0.0.1:",
        )
    });
    assert_eq!(step, "save_avatar");
    assert!(error.contains("http://127.0.0.1:9"), "{error}");
    assert!(error.contains("failed"), "{error}");
}

#[test]
fn an_unknown_pokemon_and_an_avatar_that_404s_fail_their_steps() {
    let (step, error) = failing_step(|ws| {
        ws.replace(
            "pokemonAvatar = \"pikachu\"",
            "pokemonAvatar = \"missingno\"",
        )
    });
    assert_eq!(step, "get_pokemon_data");
    assert!(error.contains("404"), "{error}");

    // An API whose data points the avatar at a URL that 404s.
    let api = TestServer::start();
    let origin = format!("http://127.0.0.1:{}", api.port());
    let (step, error) = failing_step(|ws| {
        let ws = regex_like_replace(
            &ws,
            "pokeApiBaseUrl = \"",
            "\"",
            &format!("{origin}/api/v2/pokemon"),
        );
        ws.replace("allow = [\"", &format!("allow = [\"{origin}\", \""))
    });
    assert_eq!(step, "get_pokemon_avatar");
    assert!(error.contains("404"), "{error}");
    assert!(error.contains("/status/404"), "{error}");
}

/// Replaces the text between `start` and the next `end` with `with`.
fn regex_like_replace(text: &str, start: &str, end: &str, with: &str) -> String {
    let from = text.find(start).expect("the start marker") + start.len();
    let to = from + text[from..].find(end).expect("the end marker");
    format!("{}{with}{}", &text[..from], &text[to..])
}

#[test]
fn the_s3_grant_is_enforced_before_anything_is_sent() {
    // A bucket the grant does not list.
    let (step, error) = failing_step(|ws| {
        ws.replace(
            &format!("buckets = [\"{BUCKET}\"]"),
            "buckets = [\"other-bucket\", \"weft-demo-avatars/customers/\"]",
        )
    });
    assert_eq!(step, "save_avatar");
    assert!(error.contains("(denied)"), "{error}");
    assert!(
        error.contains("may not write `s3://weft-demo-avatars/Smith Rocket Company.png`"),
        "{error}"
    );
    assert!(error.contains("`weft-demo-avatars/customers/`"), "{error}");

    // An endpoint the grant does not list.
    let (_, error) = failing_step(|ws| {
        ws.replace(
            "endpoints = [\"http://127.0.0.1:",
            "endpoints = [\"http://127.0.0.2:",
        )
    });
    assert!(error.contains("may not use the S3 endpoint"), "{error}");
    assert!(error.contains("to `s3.endpoints`"), "{error}");

    // A loopback endpoint without `allow_loopback` in the S3 grant.
    let (_, error) = failing_step(|ws| {
        let at = ws.find("[plugins.s3-put-object.s3]").expect("the s3 grant");
        let (head, tail) = ws.split_at(at);
        format!(
            "{head}{}",
            tail.replacen("allow_loopback = true", "allow_loopback = false", 1)
        )
    });
    assert!(error.contains("is a loopback address"), "{error}");
    assert!(error.contains("`s3` grant"), "{error}");

    // No grant at all: the plugin imports `weft:step/s3` and is refused at load, before any
    // step runs.
    let (env, _stand_ins) = pokemon_example();
    let ws = std::fs::read_to_string(env.path().join("weft.toml")).unwrap();
    let at = ws.find("[plugins.s3-put-object.s3]").expect("the s3 grant");
    let end = ws[at..].find("\n\n").map(|n| at + n).unwrap_or(ws.len());
    env.write("weft.toml", &format!("{}{}", &ws[..at], &ws[end..]));
    let out = env.weft(&["run", "weft.toml", "--instance", SMITH, "--json"]);
    assert!(!out.success);
    let run: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let error = run["error"].as_str().unwrap();
    assert!(run["steps"].as_array().unwrap().is_empty(), "{run:#}");
    assert!(error.contains("plugin `s3-put-object` (sha256 "), "{error}");
    assert!(
        error.contains("imports `weft:step/s3@0.1.0`, which its policy does not grant; to allow it, add `s3 = { buckets = [\"BUCKET\"] }` to `[plugins.s3-put-object]`"),
        "{error}"
    );
}

#[test]
fn an_s3_step_needs_an_api_key_secret_credential() {
    let (_, error) = failing_step(|ws| {
        ws.replace(
            "kind = \"api-key-secret\"\nkey = \"weft-demo\"\nsecret =",
            "kind = \"bearer\"\ntoken =",
        )
    });
    assert!(
        error.contains("credential `aws` is a `bearer` credential; S3 requests are signed with an `api-key-secret` credential"),
        "{error}"
    );
}

#[test]
fn the_example_runs_on_a_postgres_store_applied_and_recorded_there() {
    let (env, stand_ins) = pokemon_example();
    let db = weft_tests::postgres::TestDatabase::new();
    let on_db = [("WEFT_STORE", db.url())];
    let out = env.weft_with(&["apply", "weft.toml"], &on_db, None);
    assert!(out.success, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("***"),
        "the URL is shown without its password: {}",
        out.stdout
    );
    assert!(!out.stdout.contains("weft:weft@"), "{}", out.stdout);
    // From the store alone: the workspace, versions and instances were applied to it.
    for instance in [SMITH, FTL] {
        let out = env.weft_with(&["run", "--instance", instance], &on_db, None);
        assert!(out.success, "{instance}: {}\n{}", out.stdout, out.stderr);
    }
    let (bytes, _) = stand_ins.get_object(BUCKET, "FTL Rockets.png");
    assert_eq!(bytes, png("onix"));

    assert_eq!(
        db.query("SELECT status || ' ' || count(*) FROM weft_runs GROUP BY status"),
        vec!["succeeded 2"]
    );
    assert_eq!(
        db.query(
            "SELECT string_agg(convert_from(s.record, 'UTF8')::json ->> 'id', ',' ORDER BY s.idx) \
             FROM weft_steps s JOIN weft_runs r ON r.id = s.run_id WHERE r.instance = 'ftl-rockets-avatar-sync'"
        ),
        vec!["path_helper,get_pokemon_data,get_pokemon_avatar,save_avatar"]
    );
    // The avatar the step fetched is kept once, by its SHA-256, and referenced by its run.
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(png("onix")));
    assert_eq!(
        db.query(&format!(
            "SELECT octet_length(b.data) || ' ' || count(r.run_id) FROM weft_blobs b \
             JOIN weft_blob_refs r USING (sha256) WHERE b.sha256 = '{sha}' GROUP BY b.data"
        )),
        vec![format!("{} 1", png("onix").len())]
    );
    // And the CLI reads it back from there.
    let out = env.weft_with(&["runs", "list", "--json"], &on_db, None);
    assert!(out.success, "{}", out.stderr);
    let listed: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2);
}
