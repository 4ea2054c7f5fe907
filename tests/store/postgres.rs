//! What only the PostgreSQL store has: its schema's migrations, and several processes sharing
//! one database.

use weft::store::{PgStore, RunStore, Status, Store, StoreLocation};
use weft_tests::postgres::TestDatabase;

use super::{Place, new_id, run};

#[test]
fn processes_opening_a_new_database_at_once_migrate_it_once() {
    let db = TestDatabase::new();
    let url = db.url().to_string();
    let opened: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::connect(&url).map(drop))
        })
        .collect();
    for process in opened {
        process.join().unwrap().unwrap();
    }
    assert_eq!(
        db.query("SELECT version || ' ' || name FROM weft_schema ORDER BY version"),
        vec!["1 store", "2 queue", "3 gates"]
    );
    assert_eq!(weft::store::postgres::SCHEMA_VERSION, 3);
    // Migrating again finds nothing to do.
    let migrated = PgStore::migrate(&url).unwrap();
    assert_eq!(migrated.from, migrated.to);
}

#[test]
fn a_schema_newer_than_this_weft_is_refused() {
    let db = TestDatabase::new();
    PgStore::migrate(db.url()).unwrap();
    db.query("INSERT INTO weft_schema (version, name) VALUES (999, 'from the future')");
    let err = PgStore::connect(db.url()).unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("schema is version 999, newer than this `weft` knows"),
        "{message}"
    );
}

#[test]
fn errors_never_show_the_password() {
    let db = TestDatabase::new();
    let wrong = db.url().replace("weft:weft@", "weft:hunter2-secret@");
    let err = Store::open(&StoreLocation::Postgres {
        url: wrong,
        local: std::env::temp_dir(),
    })
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(!message.contains("hunter2-secret"), "{message}");
    assert!(message.contains("***"), "{message}");
    assert!(message.contains("failed to open the store"), "{message}");
}

#[test]
fn a_process_sees_what_another_wrote_and_leaves_its_live_runs_alone() {
    let place = Place::postgres();
    let first = place.open();
    let second = place.open();
    let id = new_id();
    first.put_run(&run(&id, Status::Running)).unwrap();
    first.flush().unwrap();
    // The first process is alive: its run is not interrupted by the second's start-up check.
    assert_eq!(second.mark_interrupted().unwrap(), Vec::new());
    assert_eq!(
        second.get_run(&id).unwrap().unwrap().run.status,
        Status::Running
    );
    first.put_run(&run(&id, Status::Succeeded)).unwrap();
    first.flush().unwrap();
    assert_eq!(
        second.get_run(&id).unwrap().unwrap().run.status,
        Status::Succeeded
    );
    // Each process is listed while it lives, and leaves the list when it closes the store.
    let Place::Postgres { db, .. } = &place else {
        unreachable!()
    };
    assert_eq!(db.query("SELECT count(*) FROM weft_processes"), vec!["2"]);
    drop(first);
    assert_eq!(db.query("SELECT count(*) FROM weft_processes"), vec!["1"]);
    drop(second);
}

#[test]
fn records_are_rows_an_operator_can_query() {
    let place = Place::postgres();
    let store = place.open();
    let id = new_id();
    store.put_run(&run(&id, Status::Failed)).unwrap();
    drop(store);
    let Place::Postgres { db, .. } = &place else {
        unreachable!()
    };
    assert_eq!(
        db.query(&format!(
            "SELECT instance || ' ' || flow || ' ' || status FROM weft_runs WHERE id = '{id}'"
        )),
        vec!["acme paths failed"]
    );
    assert_eq!(
        db.query(&format!(
            "SELECT convert_from(record, 'UTF8')::json ->> 'status' FROM weft_runs WHERE id = '{id}'"
        )),
        vec!["failed"]
    );
}

#[test]
fn a_run_left_by_a_process_that_stopped_heartbeating_is_interrupted() {
    let place = Place::postgres();
    let Place::Postgres { db, .. } = &place else {
        unreachable!()
    };
    let store = place.open();
    let id = new_id();
    store.put_run(&run(&id, Status::Running)).unwrap();
    store.flush().unwrap();
    let other = place.open();
    assert_eq!(other.mark_interrupted().unwrap(), Vec::new());
    // As if the process that wrote it had been killed 31 seconds ago: its row stays, its
    // heartbeat stopped.
    db.query(
        "INSERT INTO weft_processes (id, host, heartbeat_at) \
         VALUES ('killed', 'elsewhere', now() - interval '31 seconds')",
    );
    db.query(&format!(
        "UPDATE weft_runs SET owner = 'killed' WHERE id = '{id}'"
    ));
    let found = other.mark_interrupted().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    assert_eq!(
        other.get_run(&id).unwrap().unwrap().run.status,
        Status::Interrupted
    );
}
