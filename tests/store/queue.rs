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
                .enqueue(&id, "acme", "paths", &serde_json::json!({ "n": i }), None)
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
                    let batch = worker.claim(7, LEASE, true).unwrap().runs;
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
    let claimed = paused
        .claim(4, Duration::from_millis(300), false)
        .unwrap()
        .runs;
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
    let again = other.claim(4, LEASE, false).unwrap().runs;
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
    // The new owner's records are the ones kept; its final record takes the run off the
    // queue in the same transaction.
    other.put_run(&run(&id, Status::Succeeded)).unwrap();
    other.flush().unwrap();
    other.release(&id);
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
    let held = holder
        .claim(1, Duration::from_millis(300), false)
        .unwrap()
        .runs;
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
    let rest = other.claim(10, LEASE, true).unwrap().runs;
    assert_eq!(rest.len(), 2);
    assert!(rest.iter().all(|c| c.run_id != held[0].run_id));
    assert!(holder.finish(&held[0].run_id).unwrap());
    let depth = other.queue_depth().unwrap();
    assert_eq!(
        (depth.waiting, depth.running, depth.oldest_wait_secs),
        (0, 2, None)
    );
}

/// Queues `n` runs of flow `flow` limited to `limit` at once.
fn enqueue_limited(store: &PgStore, flow: &str, limit: u32, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let id = new_id();
            store
                .enqueue(
                    &id,
                    "acme",
                    flow,
                    &serde_json::json!({ "n": i }),
                    Some(limit),
                )
                .unwrap();
            id
        })
        .collect()
}

#[test]
fn a_limited_flow_runs_at_most_its_limit_across_workers_oldest_first() {
    let db = TestDatabase::new();
    let front = connect(&db);
    let throttled = enqueue_limited(&front, "throttled", 2, 5);
    let fifo = enqueue_limited(&front, "fifo", 1, 3);
    let open = enqueue(&front, 3);
    let workers: Vec<PgStore> = (0..3).map(|_| connect(&db)).collect();

    // Three workers claiming at once, each with room for everything.
    let claims: Vec<Vec<String>> = std::thread::scope(|scope| {
        let claiming: Vec<_> = workers
            .iter()
            .map(|w| scope.spawn(move || w.claim(20, LEASE, true).unwrap().runs))
            .collect();
        claiming
            .into_iter()
            .map(|c| c.join().unwrap().into_iter().map(|r| r.run_id).collect())
            .collect()
    });
    let claimed: BTreeSet<String> = claims.iter().flatten().cloned().collect();
    let expected: BTreeSet<String> = throttled[..2]
        .iter()
        .chain(&fifo[..1])
        .chain(&open)
        .cloned()
        .collect();
    assert_eq!(claimed, expected, "two throttled, one FIFO, every open run");
    assert_eq!(claims.iter().map(Vec::len).sum::<usize>(), expected.len());

    // Nothing more of either flow while those run.
    assert!(workers[0].claim(20, LEASE, true).unwrap().runs.is_empty());
    // A worker that does not look at limited flows leaves them alone.
    let holder = |id: &String| {
        workers
            .iter()
            .zip(&claims)
            .find(|(_, mine)| mine.contains(id))
            .map(|(w, _)| w)
            .unwrap()
    };
    assert!(holder(&throttled[0]).finish(&throttled[0]).unwrap());
    assert!(holder(&fifo[0]).finish(&fifo[0]).unwrap());
    assert!(workers[1].claim(20, LEASE, false).unwrap().runs.is_empty());
    // One slot each opened: the next oldest of each.
    let next: BTreeSet<String> = workers[1]
        .claim(20, LEASE, true)
        .unwrap()
        .runs
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(
        next,
        [throttled[2].clone(), fifo[1].clone()]
            .into_iter()
            .collect()
    );
}

#[test]
fn a_fifo_run_whose_worker_stopped_is_taken_again_before_the_runs_behind_it() {
    let db = TestDatabase::new();
    let (stopped, other) = (connect(&db), connect(&db));
    let fifo = enqueue_limited(&stopped, "fifo", 1, 2);
    let first = stopped
        .claim(5, Duration::from_millis(300), true)
        .unwrap()
        .runs;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].run_id, fifo[0]);
    // While its lease holds, the one behind it waits.
    assert!(other.claim(5, LEASE, true).unwrap().runs.is_empty());
    std::thread::sleep(Duration::from_millis(400));
    let again = other.claim(5, LEASE, true).unwrap().runs;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].run_id.as_str(), again[0].claims),
        (fifo[0].as_str(), 2)
    );
}

/// Waits up to 10 s for `f` on `rt`, failing with `what`.
fn within<T>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    f: impl std::future::Future<Output = T>,
) -> T {
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), f).await })
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"))
}

#[test]
fn processes_hear_of_queued_and_ended_runs() {
    let db = TestDatabase::new();
    let (front, worker) = (connect(&db), connect(&db));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut queued = worker.queued();
    let mut ended = front.ended_runs();
    // Once listening, each says so by waking everyone.
    within(&rt, "the worker listens", queued.changed()).unwrap();
    let first = *queued.borrow_and_update();
    assert!(first.gated >= 1);
    assert_eq!(
        within(&rt, "the front end listens", ended.recv()).unwrap(),
        weft::store::postgres::ANY_RUN
    );

    let [open] = enqueue(&front, 1).try_into().unwrap();
    within(&rt, "a queued run is announced", queued.changed()).unwrap();
    let seen = *queued.borrow_and_update();
    assert_eq!((seen.any, seen.gated), (first.any + 1, first.gated));
    enqueue_limited(&front, "fifo", 1, 1);
    within(&rt, "a queued limited run is announced", queued.changed()).unwrap();
    assert_eq!(queued.borrow_and_update().gated, first.gated + 1);

    let claimed = worker.claim(5, LEASE, false).unwrap().runs;
    assert_eq!(claimed.len(), 1);
    assert!(worker.finish(&open).unwrap());
    assert_eq!(
        within(&rt, "an ended run is announced", ended.recv()).unwrap(),
        open
    );
}
