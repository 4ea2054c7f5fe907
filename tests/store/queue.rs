//! The PostgreSQL store's queue of runs: claims by several processes, leases, and the fence
//! that keeps a process that lost a run from writing over its new owner.

use std::collections::BTreeSet;
use std::time::Duration;

use weft::store::{PgStore, RunStore, Status};
use weft_tests::postgres::TestDatabase;

use super::{new_id, run};

const LEASE: Duration = Duration::from_secs(30);

fn connect(db: &TestDatabase) -> PgStore {
    PgStore::connect(db.url()).unwrap()
}

fn enqueue(store: &PgStore, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let id = new_id();
            store
                .enqueue(&id, "acme", "paths", &serde_json::json!({ "n": i }))
                .unwrap();
            id
        })
        .collect()
}

#[test]
fn workers_claiming_at_once_never_get_the_same_run() {
    let db = TestDatabase::new();
    let front = connect(&db);
    let queued = enqueue(&front, 200);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let worker = connect(&db);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let batch = worker.claim(7, LEASE).unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    // A batch comes oldest first.
                    let ids: Vec<&String> = batch.iter().map(|c| &c.run_id).collect();
                    let mut sorted = ids.clone();
                    sorted.sort();
                    assert_eq!(ids, sorted);
                    assert!(batch.iter().all(|c| c.claims == 1 && c.flow == "paths"));
                    mine.extend(batch.into_iter().map(|c| c.run_id));
                }
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.join().unwrap());
    }
    assert_eq!(claimed.len(), 200, "every run claimed once");
    let unique: BTreeSet<String> = claimed.into_iter().collect();
    assert_eq!(unique, queued.into_iter().collect::<BTreeSet<_>>());
    let depth = front.queue_depth().unwrap();
    assert_eq!((depth.waiting, depth.running), (0, 200));
}

#[test]
fn a_run_whose_lease_ran_out_moves_to_another_worker_and_the_first_is_fenced_off() {
    let db = TestDatabase::new();
    let (paused, other) = (connect(&db), connect(&db));
    let [id] = enqueue(&paused, 1).try_into().unwrap();
    let claimed = paused.claim(4, Duration::from_millis(300)).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].request, serde_json::json!({ "n": 0 }));
    let mut lost = paused.lost_runs();
    // While it holds the lease, its records commit.
    paused.put_run(&run(&id, Status::Running)).unwrap();
    paused.flush().unwrap();
    assert_eq!(
        db.query(&format!("SELECT status FROM weft_runs WHERE id = '{id}'")),
        vec!["running"]
    );

    // Paused past its lease: the other worker claims the run, to resume it.
    std::thread::sleep(Duration::from_millis(400));
    let again = other.claim(4, LEASE).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].run_id.as_str(), again[0].claims),
        (id.as_str(), 2)
    );

    // The first worker wakes and writes: refused, and told so.
    let mut stale = run(&id, Status::Failed);
    stale.error = Some("written by the worker that lost the run".into());
    paused.put_run(&stale).unwrap();
    paused.flush().unwrap();
    assert_eq!(lost.try_recv().unwrap(), id);
    assert_eq!(paused.renew(LEASE).unwrap(), vec![id.clone()]);
    assert!(
        !paused.finish(&id).unwrap(),
        "only the owner finishes a run"
    );
    // The new owner's records are the ones kept.
    other.put_run(&run(&id, Status::Succeeded)).unwrap();
    assert!(other.finish(&id).unwrap());
    assert_eq!(
        db.query(&format!("SELECT status FROM weft_runs WHERE id = '{id}'")),
        vec!["succeeded"]
    );
    assert_eq!(db.query("SELECT count(*) FROM weft_queue"), vec!["0"]);
}

#[test]
fn a_renewed_lease_keeps_the_run_and_the_depth_says_what_waits() {
    let db = TestDatabase::new();
    let (holder, other) = (connect(&db), connect(&db));
    enqueue(&holder, 3);
    let held = holder.claim(1, Duration::from_millis(300)).unwrap();
    assert_eq!(held.len(), 1);
    let depth = other.queue_depth().unwrap();
    assert_eq!((depth.waiting, depth.running), (2, 1));
    assert!(depth.oldest_wait_secs.is_some_and(|s| s >= 0.0));
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(
            holder.renew(Duration::from_millis(300)).unwrap(),
            Vec::<String>::new()
        );
    }
    // 600 ms on a 300 ms lease, renewed: the other worker gets only the two waiting runs.
    let rest = other.claim(10, LEASE).unwrap();
    assert_eq!(rest.len(), 2);
    assert!(rest.iter().all(|c| c.run_id != held[0].run_id));
    assert!(holder.finish(&held[0].run_id).unwrap());
    let depth = other.queue_depth().unwrap();
    assert_eq!(
        (depth.waiting, depth.running, depth.oldest_wait_secs),
        (0, 2, None)
    );
}
