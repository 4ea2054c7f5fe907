//! Large payloads on a PostgreSQL store with `payloads=s3://…`: a webhook body and step
//! records over the threshold go to the S3 stand-in, content-addressed, and their rows hold a
//! reference; everything reads back whole, through a front end and a worker.

use std::process::Stdio;

use weft::demo::{ACCESS_KEY, BUCKET};
use weft_tests::postgres::TestDatabase;
use weft_tests::serve::Served;
use weft_tests::server::TestServer;
use weft_tests::{S3_SECRET, StandIns};

use super::scale_out::{WorkerProcess, until};
use super::{HASH_SECRET, HOOK_SECRET, SECRET, env};

#[test]
fn large_bodies_and_records_live_in_s3_and_read_back_whole() {
    let server = TestServer::start();
    let env = env(&server, "");
    let stand_ins = StandIns::start(&env.path().join("s3"));
    let db = TestDatabase::new();
    let store = format!(
        "{}?payloads=s3://{BUCKET}/payloads/&payloads_endpoint=http://{}&payloads_over=4096",
        db.url(),
        stand_ins.servers.s3
    );
    let aws = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
    ];
    let _worker = WorkerProcess::spawn(&env, &store, &[], &aws, Stdio::inherit());
    let front = Served::start(
        env.path(),
        &["--role", "front"],
        &[
            ("WEFT_STORE", store.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
            ("WEFT_TEST_SECRET", SECRET),
            ("WEFT_TEST_HASH_SECRET", HASH_SECRET),
            ("WEFT_TEST_HOOK_SECRET", HOOK_SECRET),
        ],
    );

    // A 20 KB region: the webhook body, the run's trigger and the step's inputs and result
    // all carry it.
    let region = "eu-".repeat(7_000);
    let body = format!(r#"{{"region": "{region}"}}"#);
    let reply = front.call(
        "POST",
        &format!("{}?wait=true", front.webhook("globex-sync", "paths")),
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply.header("x-weft-run-id").map(str::to_string);
    let answer = reply.text();
    assert!(
        answer.contains(&format!("https://api.example/{region}")),
        "the reply lacks the step's large result: {} bytes",
        answer.len()
    );
    until(&db, "SELECT count(*) FROM weft_queue", "0");
    let id = id.unwrap_or_else(|| db.query("SELECT id FROM weft_runs")[0].clone());

    // The rows hold references, not the payloads.
    for sql in [
        format!(
            "SELECT octet_length(record) || ' ' || get_byte(record, 0) FROM weft_runs WHERE id = '{id}'"
        ),
        format!(
            "SELECT octet_length(record) || ' ' || get_byte(record, 0) FROM weft_steps WHERE run_id = '{id}'"
        ),
    ] {
        let row = db.query(&sql);
        let (length, first): (usize, u8) = {
            let (l, f) = row[0].split_once(' ').unwrap();
            (l.parse().unwrap(), f.parse().unwrap())
        };
        assert!(
            length < 200 && first == 0,
            "`{sql}`: {row:?} is not a reference"
        );
    }
    // The payloads are objects named by their SHA-256, holding what was recorded.
    let objects: Vec<String> = std::fs::read_dir(stand_ins.servers.object_path(BUCKET, "payloads"))
        .expect("the payloads prefix exists in the bucket")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.len() == 64)
        .collect();
    assert!(objects.len() >= 2, "{objects:?}");
    for name in &objects {
        let (bytes, _) = stand_ins.get_object(BUCKET, &format!("payloads/{name}"));
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), *name);
    }

    // And they read back whole, through the CLI.
    let shown = env.weft_with(
        &["runs", "show", &id, "--json"],
        &[
            ("WEFT_STORE", store.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
        ],
        None,
    );
    assert!(shown.success, "{}", shown.stderr);
    let run: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(run["status"], "succeeded", "{}", shown.stdout);
    assert_eq!(run["trigger"]["body"]["region"], region.as_str());
    // Without the key, the store says what it needs rather than showing a reference.
    let refused = env.weft_with(
        &["runs", "show", &id],
        &[("WEFT_STORE", store.as_str())],
        None,
    );
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("AWS_ACCESS_KEY_ID"),
        "{}",
        refused.stderr
    );
}
