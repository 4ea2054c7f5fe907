//! Run records, binary values and step state: what every backend must do alike.

use std::collections::BTreeSet;

use weft::store::{RunFilter, RunStore, StateScope, StateWrite, Status, StepRecord, Store};
use weft_model::records::Frame;
use weft_model::value::{BytesSummary, RecordedValue};

use super::{Place, both, id_from, new_id, run};

fn step(index: u32, output: Option<RecordedValue>) -> StepRecord {
    StepRecord {
        index,
        scope: Vec::new(),
        detail: None,
        id: format!("step{index}"),
        plugin: "http-get".into(),
        status: Status::Succeeded,
        started_at_ms: 1,
        duration_us: 2,
        inputs: Vec::new(),
        output,
        logs: Vec::new(),
        error: None,
        attempts: Vec::new(),
    }
}

fn png() -> (String, Vec<u8>, RecordedValue) {
    let data = b"\x89PNG not really".to_vec();
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
    let value = RecordedValue::Bytes(BytesSummary {
        content_type: "image/png".into(),
        size: data.len() as u64,
        sha256: sha256.clone(),
    });
    (sha256, data, value)
}

fn interrupted_ids(store: &Store) -> BTreeSet<String> {
    let found = store.mark_interrupted().unwrap();
    for run in &found {
        let stored = store.get_run(&run.id).unwrap().unwrap().run;
        assert_eq!(stored.status, Status::Interrupted);
        assert!(stored.error.unwrap().contains("weft runs resume"));
    }
    found.into_iter().map(|r| r.id).collect()
}

both!(
    runs_left_running_are_found_after_a_restart_and_only_they,
    left_running
);
fn left_running(place: Place) {
    let left = {
        let store = place.open();
        let mut left = BTreeSet::new();
        for i in 0..300 {
            let id = new_id();
            store.put_run(&run(&id, Status::Running)).unwrap();
            if i % 100 == 7 {
                left.insert(id);
            } else {
                store.put_run(&run(&id, Status::Succeeded)).unwrap();
            }
        }
        // Resumed: started long ago.
        let old = id_from(3600);
        store.put_run(&run(&old, Status::Running)).unwrap();
        left.insert(old);
        store.flush().unwrap();
        left
    };
    let store = place.open();
    assert_eq!(interrupted_ids(&store), left);
    // Found once; the next open finds nothing.
    drop(store);
    let store = place.open();
    assert_eq!(interrupted_ids(&store), BTreeSet::new());
}

both!(
    a_run_written_whole_reads_like_a_run_written_as_it_went,
    whole_and_as_it_went
);
fn whole_and_as_it_went(place: Place) {
    let store = place.open();
    let (sha256, data, value) = png();
    let step = step(0, Some(value));
    // Written as it went.
    let went = run(&new_id(), Status::Succeeded);
    store.put_blobs(&[(sha256.clone(), data.clone())]).unwrap();
    store.put_step(&went.id, &step).unwrap();
    store.put_run(&went).unwrap();
    // Written whole, over the record it had while it ran.
    let mut whole = run(&new_id(), Status::Running);
    store.put_run(&whole).unwrap();
    whole.status = Status::Succeeded;
    store
        .put_whole_run(&whole, std::slice::from_ref(&step))
        .unwrap();

    for expected in [&whole, &went] {
        let got = store.get_run(&expected.id).unwrap().unwrap();
        assert_eq!(&got.run, expected);
        assert_eq!(got.steps, vec![step.clone()]);
    }
    let listed = store.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(listed, vec![whole.clone(), went.clone()]);
    // Nothing is left running, and the binary value stays while the run written whole
    // refers to it.
    assert_eq!(interrupted_ids(&store), BTreeSet::new());
    assert_eq!(store.prune(None, Some(1)).unwrap().blobs, 0);
    assert!(store.get_run(&went.id).unwrap().is_none());
    assert_eq!(store.get_blob(&sha256).unwrap(), Some(data));
    let pruned = store.prune(None, Some(0)).unwrap();
    assert_eq!((pruned.runs, pruned.blobs), (1, 1));
    assert!(store.get_run(&whole.id).unwrap().is_none());
    assert_eq!(store.get_blob(&sha256).unwrap(), None);
}

both!(steps_come_back_in_order_with_their_scopes, steps_in_order);
fn steps_in_order(place: Place) {
    let store = place.open();
    let id = new_id();
    store.put_run(&run(&id, Status::Running)).unwrap();
    let mut written = Vec::new();
    // A loop's iterations, recorded out of order as they end, then the loop itself.
    for (index, iteration) in [(2u32, 1u64), (1, 0), (3, 2)] {
        let mut s = step(
            index,
            Some(RecordedValue::Json(serde_json::json!({"i": iteration}))),
        );
        s.scope = vec![Frame {
            step: "each".into(),
            iteration: Some(iteration),
            branch: None,
        }];
        store.commit_step(&id, &s, &[], &[]).unwrap();
        written.push(s);
    }
    store.commit_step(&id, &step(0, None), &[], &[]).unwrap();
    written.push(step(0, None));
    let mut ended = run(&id, Status::Succeeded);
    ended.duration_us = Some(5);
    store.put_run(&ended).unwrap();
    store.flush().unwrap();
    drop(store);

    let got = place.open().get_run(&id).unwrap().unwrap();
    written.sort_by_key(|s| s.index);
    assert_eq!(got.steps, written);
    assert_eq!(got.run, ended);
}

both!(state_commits_with_its_step_and_reads_back, state_with_steps);
fn state_with_steps(place: Place) {
    let store = place.open();
    let flow = StateScope("acme/paths".into());
    let instance = StateScope("acme".into());
    let id = new_id();
    let write = |scope: &StateScope, key: &str, value: Option<&[u8]>| StateWrite {
        scope: scope.clone(),
        key: key.into(),
        value: value.map(<[u8]>::to_vec),
    };
    store
        .commit_step(
            &id,
            &step(0, None),
            &[],
            &[
                write(&flow, "cursor", Some(b"41")),
                write(&flow, "seen", Some(b"[1,2,3]")),
                write(&instance, "token-age", Some(b"7")),
            ],
        )
        .unwrap();
    store
        .commit_step(
            &id,
            &step(1, None),
            &[],
            &[
                write(&flow, "cursor", Some(b"42")),
                write(&flow, "seen", None),
            ],
        )
        .unwrap();
    store.flush().unwrap();
    drop(store);
    let store = place.open();
    assert_eq!(
        store.state_get(&flow, "cursor").unwrap(),
        Some(b"42".to_vec())
    );
    assert_eq!(store.state_get(&flow, "seen").unwrap(), None);
    assert_eq!(store.state_get(&instance, "cursor").unwrap(), None);
    assert_eq!(
        store.state_sizes(&flow).unwrap(),
        vec![("cursor".to_string(), 2)]
    );
    assert_eq!(
        store.state_sizes(&instance).unwrap(),
        vec![("token-age".to_string(), 1)]
    );
}

both!(list_filters_and_orders_newest_first, list_filters);
fn list_filters(place: Place) {
    let store = place.open();
    let mut all = Vec::new();
    for i in 0..12u64 {
        let mut r = run(
            &new_id(),
            [Status::Succeeded, Status::Failed][(i % 2) as usize],
        );
        r.instance = format!("inst{}", i % 3);
        r.customer = format!("cust{}", i % 2);
        r.flow = ["sync", "nightly"][(i % 4 / 2) as usize].into();
        r.started_at_ms = 1_000 + i;
        store.put_run(&r).unwrap();
        all.push(r);
    }
    all.reverse();
    let list = |filter: RunFilter| store.list_runs(&filter).unwrap();
    let expect = |keep: &dyn Fn(&weft::store::RunRecord) -> bool| -> Vec<_> {
        all.iter().filter(|r| keep(r)).cloned().collect()
    };
    assert_eq!(list(RunFilter::default()), all);
    assert_eq!(
        list(RunFilter {
            limit: Some(3),
            ..RunFilter::default()
        }),
        all[..3].to_vec()
    );
    assert_eq!(
        list(RunFilter {
            instance: Some("inst1".into()),
            ..RunFilter::default()
        }),
        expect(&|r| r.instance == "inst1")
    );
    assert_eq!(
        list(RunFilter {
            customer: Some("cust0".into()),
            status: Some(Status::Succeeded),
            ..RunFilter::default()
        }),
        expect(&|r| r.customer == "cust0" && r.status == Status::Succeeded)
    );
    assert_eq!(
        list(RunFilter {
            flow: Some("nightly".into()),
            since_ms: Some(1_004),
            until_ms: Some(1_010),
            ..RunFilter::default()
        }),
        expect(&|r| r.flow == "nightly" && (1_004..1_010).contains(&r.started_at_ms))
    );
    assert_eq!(
        list(RunFilter {
            status: Some(Status::Running),
            ..RunFilter::default()
        }),
        Vec::new()
    );
}

both!(pruning_keeps_running_runs_and_the_newest, pruning);
fn pruning(place: Place) {
    let store = place.open();
    let running = run(&id_from(7200), Status::Running);
    store.put_run(&running).unwrap();
    let mut ended = Vec::new();
    for i in 0..7u64 {
        let mut r = run(&new_id(), Status::Succeeded);
        r.started_at_ms = 1_000 * i;
        store.commit_step(&r.id, &step(0, None), &[], &[]).unwrap();
        store.put_run(&r).unwrap();
        ended.push(r);
    }
    // Older than 2,000 ms: the first two.
    let pruned = store.prune(Some(2_000), None).unwrap();
    assert_eq!(pruned.runs, 2);
    // Then all but the newest three (the running one is not counted, and stays).
    let pruned = store.prune(None, Some(3)).unwrap();
    assert_eq!(pruned.runs, 2);
    let left: Vec<String> = store
        .list_runs(&Default::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut expected: Vec<String> = ended[4..].iter().rev().map(|r| r.id.clone()).collect();
    expected.push(running.id.clone());
    assert_eq!(left, expected);
    assert!(store.get_run(&ended[0].id).unwrap().is_none());
    assert_eq!(store.get_run(&ended[6].id).unwrap().unwrap().steps.len(), 1);
}
