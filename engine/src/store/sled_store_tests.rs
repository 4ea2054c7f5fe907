//! Unit tests of what only the sled store has: the snapshot of where runs in progress can be,
//! and stores written by earlier versions. What every backend must do is in the store contract
//! suite (`tests/store/`), run against sled and PostgreSQL alike.

use super::*;
use weft_model::config::ResolvedConfig;

fn run(id: &str, status: Status) -> RunRecord {
    RunRecord {
        id: id.to_string(),
        instance: "acme".into(),
        customer: "acme".into(),
        integration: "avatars".into(),
        integration_version: 1,
        flow: "paths".into(),
        status,
        started_at_ms: 0,
        duration_us: None,
        config: ResolvedConfig::default(),
        result: None,
        error: None,
        trigger: serde_json::Value::Null,
        replay_of: None,
        resumed: 0,
        stopped_by: None,
        queued_us: None,
    }
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The id of a run started an hour ago (a resumed run keeps its old id).
fn old_id() -> String {
    let secs = now_ms() / 1000 - 3600;
    uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, 0)).to_string()
}

fn interrupted_ids(store: &SledStore) -> BTreeSet<String> {
    let found = store.mark_interrupted().unwrap();
    for run in &found {
        let stored = store.get_run(&run.id).unwrap().unwrap().run;
        assert_eq!(stored.status, Status::Interrupted);
    }
    found.into_iter().map(|r| r.id).collect()
}

#[test]
fn runs_left_running_are_found_after_a_restart_and_only_they() {
    let dir = tempfile::tempdir().unwrap();
    let (left, old) = {
        let store = SledStore::open(dir.path()).unwrap();
        let mut left = BTreeSet::new();
        for i in 0..400 {
            let id = new_id();
            store.put_run(&run(&id, Status::Running)).unwrap();
            if i % 100 == 7 {
                left.insert(id);
            } else {
                store.put_run(&run(&id, Status::Succeeded)).unwrap();
            }
            if i == 200 {
                // Long enough for snapshots to be saved as runs end.
                std::thread::sleep(SNAPSHOT_EVERY * 2);
            }
        }
        // Resumed: below every floor saved so far.
        let old = old_id();
        store.put_run(&run(&old, Status::Running)).unwrap();
        left.insert(old.clone());
        store.flush().unwrap();
        (left, old)
    };
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(interrupted_ids(&store), left);
    assert!(left.contains(&old));
    // Found once; the next open finds nothing and writes nothing.
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(interrupted_ids(&store), BTreeSet::new());
}

#[test]
fn runs_indexed_one_key_each_by_earlier_versions_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let id = old_id();
    {
        let store = SledStore::open(dir.path()).unwrap();
        // What an earlier version wrote for a run in progress: an index key, then the
        // record, and no snapshot.
        store.running.insert(id.as_bytes(), &[]).unwrap();
        let bytes = serde_json::to_vec(&run(&id, Status::Running)).unwrap();
        store.runs.insert(id.as_bytes(), bytes).unwrap();
        store.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(interrupted_ids(&store), BTreeSet::from([id.clone()]));
    assert!(store.running.get(id.as_bytes()).unwrap().is_none());
}

#[test]
fn a_snapshot_cut_short_by_a_kill_does_not_keep_the_store_from_opening() {
    let dir = tempfile::tempdir().unwrap();
    let id = new_id();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.put_run(&run(&id, Status::Succeeded)).unwrap();
        store.flush().unwrap();
    }
    // What a process killed while sled wrote a snapshot leaves behind: a partial file under
    // the name sled gives a snapshot in progress, newer than any complete one.
    std::fs::write(
        dir.path()
            .join("db")
            .join("snap.FFFFFFFFFFFFFFFF.generating"),
        b"cut short by SIGKILL",
    )
    .unwrap();
    let store = SledStore::open(dir.path()).expect("the store opens");
    let found = store.get_run(&id).unwrap().expect("the run is still there");
    assert_eq!(found.run.status, Status::Succeeded);
    assert!(
        !dir.path()
            .join("db")
            .join("snap.FFFFFFFFFFFFFFFF.generating")
            .exists()
    );
}
