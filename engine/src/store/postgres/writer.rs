//! Writing behind: run and step records are queued by the engine and committed in batches.
//!
//! A step's record is handed over without waiting (the engine's hot path never waits for a
//! round trip); one task takes everything queued, commits it in one transaction with the
//! statements pipelined, and answers the flushes that were queued behind it. So runs in
//! progress at once share their transactions, as they share their flushes on sled, and a
//! flush returns once what was queued before it is committed (durable: PostgreSQL syncs its
//! log at commit).
//!
//! A batch that fails is retried (a connection lost to a restart of the server); one that still
//! fails is reported to the flushes waiting behind it, or to the next flush if none is.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::broadcast;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use super::Payloads;
use crate::store::StateWrite;

/// A run's row: its record and the columns queries select on.
#[derive(Debug)]
pub(super) struct RunRow {
    pub id: String,
    pub instance: String,
    pub customer: String,
    pub flow: String,
    pub status: String,
    pub started_at_ms: i64,
    pub owner: String,
    pub record: Vec<u8>,
    /// Whether this process holds the run by a lease: then it is written only while it does.
    pub fenced: bool,
    /// Whether this is the final record of a run this process holds: the run leaves the queue
    /// in the same transaction ([`FINISH`]).
    pub leaves_queue: bool,
}

/// One write, as the engine handed it over.
#[derive(Debug)]
pub(super) enum Write {
    /// A run's own record.
    Run(RunRow),
    /// A step of a run written as it went, with the binary values it produced and its state.
    Step {
        run_id: String,
        index: i32,
        record: Vec<u8>,
        blobs: Vec<(String, Vec<u8>)>,
        refs: Vec<String>,
        state: Vec<StateWrite>,
        fenced: bool,
    },
    /// A run that ended, with all its steps.
    WholeRun {
        run: RunRow,
        indexes: Vec<i32>,
        records: Vec<Vec<u8>>,
        refs: Vec<String>,
    },
    /// Binary values, ahead of the records that refer to them.
    Blobs(Vec<(String, Vec<u8>)>),
    /// A leased run that ended: its row leaves the queue, in the transaction of its last
    /// records, and those waiting for it are told. `done` hears whether it left (only the
    /// run's owner takes it off); it is told with `try_send`, never waited on, since a batch
    /// tried again would tell it twice.
    Finish {
        run_id: String,
        done: SyncSender<bool>,
    },
}

impl Write {
    /// The run whose lease this write needs, if it needs one.
    fn fenced_run(&self) -> Option<&str> {
        match self {
            Write::Run(row) | Write::WholeRun { run: row, .. } if row.fenced => Some(&row.id),
            Write::Step {
                run_id,
                fenced: true,
                ..
            }
            | Write::Finish { run_id, .. } => Some(run_id),
            _ => None,
        }
    }
}

/// What the writer task is sent.
#[derive(Debug)]
pub(super) enum Message {
    Write(Box<Write>),
    /// Answer once everything queued before is committed.
    Flush(SyncSender<Result<(), String>>),
}

/// The most writes one transaction takes.
const MAX_BATCH: usize = 512;

/// Waits between the attempts at a failing batch.
const RETRY_AFTER: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(500)];

/// The writer task of process `owner`: runs until every sender is gone. Runs whose writes the
/// fence refused are sent on `lost`.
pub(super) async fn write_behind(
    pool: Pool,
    owner: String,
    mut inbox: UnboundedReceiver<Message>,
    lost: broadcast::Sender<String>,
    payloads: Option<Arc<Payloads>>,
) {
    // A failure nobody was waiting to hear about yet.
    let mut unreported: Option<String> = None;
    while let Some(first) = inbox.recv().await {
        let mut writes = Vec::new();
        let mut waiters = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Write(write) => writes.push(*write),
                Message::Flush(waiter) => waiters.push(waiter),
            }
            next = if writes.len() < MAX_BATCH {
                inbox.try_recv().ok()
            } else {
                None
            };
        }
        if let Some(payloads) = &payloads
            && let Err(e) = offload(payloads, &mut writes).await
        {
            tracing::error!(
                "{} record writes to PostgreSQL were lost: {e:#}",
                writes.len()
            );
            unreported = Some(format!("{e:#}"));
            writes.clear();
        }
        if !writes.is_empty() {
            match commit_with_retries(&pool, &owner, &writes).await {
                Ok(refused) => {
                    for run in refused {
                        tracing::warn!(
                            run_id = %run,
                            "the run is no longer held by this process (its lease ran out): its records were refused"
                        );
                        // Nobody listening: no worker runs leased runs in this process.
                        let _ = lost.send(run);
                    }
                }
                Err(e) => {
                    tracing::error!(
                        "{} record writes to PostgreSQL were lost: {e}",
                        writes.len()
                    );
                    unreported = Some(e);
                }
            }
        }
        if !waiters.is_empty() {
            let answer = match unreported.take() {
                Some(e) => Err(e),
                None => Ok(()),
            };
            for waiter in waiters {
                // A flush whose caller went away needs no answer.
                let _ = waiter.send(answer.clone());
            }
        }
    }
}

/// Puts the payloads of `writes` that are too large for a row in S3, leaving references in
/// their place; before the transaction, so that no committed row refers to a missing object.
async fn offload(payloads: &Payloads, writes: &mut [Write]) -> anyhow::Result<()> {
    for write in writes {
        match write {
            Write::Run(row) => payloads.offload(&mut row.record).await?,
            Write::Blobs(blobs) => {
                for (_, data) in blobs {
                    payloads.offload(data).await?;
                }
            }
            Write::Step { record, blobs, .. } => {
                for (_, data) in blobs {
                    payloads.offload(data).await?;
                }
                payloads.offload(record).await?;
            }
            Write::WholeRun { run, records, .. } => {
                for record in records {
                    payloads.offload(record).await?;
                }
                payloads.offload(&mut run.record).await?;
            }
            Write::Finish { .. } => {}
        }
    }
    Ok(())
}

async fn commit_with_retries(
    pool: &Pool,
    owner: &str,
    writes: &[Write],
) -> Result<BTreeSet<String>, String> {
    let mut attempt = 0;
    loop {
        match commit(pool, owner, writes).await {
            Ok(refused) => return Ok(refused),
            Err(e) if attempt < RETRY_AFTER.len() => {
                tracing::warn!("writing records to PostgreSQL failed, retrying: {e:#}");
                tokio::time::sleep(RETRY_AFTER[attempt]).await;
                attempt += 1;
            }
            Err(e) => return Err(format!("failed to write records to PostgreSQL: {e:#}")),
        }
    }
}

/// Which of the runs $1 process $2 still holds, locked to the commit: nobody claims them from
/// under the writes.
const HELD: &str = "SELECT run_id FROM weft_queue WHERE run_id = ANY($1) AND owner = $2 \
     AND lease_until > now() FOR UPDATE";
const UPSERT_RUN: &str = "INSERT INTO weft_runs \
     (id, instance, customer, flow, status, started_at_ms, owner, record) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, owner = EXCLUDED.owner, \
     record = EXCLUDED.record";
const UPSERT_STEP: &str = "INSERT INTO weft_steps (run_id, idx, record) VALUES ($1, $2, $3) \
     ON CONFLICT (run_id, idx) DO UPDATE SET record = EXCLUDED.record";
const UPSERT_STEPS: &str = "INSERT INTO weft_steps (run_id, idx, record) \
     SELECT $1, * FROM unnest($2::int4[], $3::bytea[]) \
     ON CONFLICT (run_id, idx) DO UPDATE SET record = EXCLUDED.record";
const INSERT_BLOB: &str =
    "INSERT INTO weft_blobs (sha256, data) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING";
const INSERT_REFS: &str = "INSERT INTO weft_blob_refs (run_id, sha256) \
     SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING";
const UPSERT_STATE: &str = "INSERT INTO weft_state (scope, key, value) VALUES ($1, $2, $3) \
     ON CONFLICT (scope, key) DO UPDATE SET value = EXCLUDED.value";
const DELETE_STATE: &str = "DELETE FROM weft_state WHERE scope = $1 AND key = $2";
/// Takes a run off the queue and tells its waiters, and the workers when a flow with a
/// concurrency limit has room again; a row per notification, none if the run was not there.
const FINISH: &str = "WITH gone AS (DELETE FROM weft_queue WHERE run_id = $1 AND owner = $2 \
     RETURNING run_id, gate) \
     SELECT pg_notify('weft_done', run_id) FROM gone \
     UNION ALL \
     SELECT pg_notify('weft_queue', 'gated') FROM gone WHERE gate IS NOT NULL";

type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

fn push_blobs<'a>(
    insert: &'a Statement,
    blobs: &'a [(String, Vec<u8>)],
    into: &mut Vec<(&'a Statement, Params<'a>)>,
) {
    for (sha256, data) in blobs {
        into.push((insert, vec![sha256, data]));
    }
}

fn run_params(row: &RunRow) -> Params<'_> {
    vec![
        &row.id,
        &row.instance,
        &row.customer,
        &row.flow,
        &row.status,
        &row.started_at_ms,
        &row.owner,
        &row.record,
    ]
}

/// Commits `writes` in one transaction, the statements sent without waiting for each other's
/// answers (in order: the server runs them in the order sent). Writes of leased runs whose
/// lease `owner` no longer holds are left out; returns those runs.
async fn commit(pool: &Pool, owner: &str, writes: &[Write]) -> anyhow::Result<BTreeSet<String>> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let leased: BTreeSet<&str> = writes.iter().filter_map(Write::fenced_run).collect();
    let mut refused: BTreeSet<String> = BTreeSet::new();
    if !leased.is_empty() {
        let asked: Vec<&str> = leased.iter().copied().collect();
        let check = tx.prepare_cached(HELD).await?;
        let held: BTreeSet<String> = tx
            .query(&check, &[&asked, &owner])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        refused.extend(
            leased
                .iter()
                .filter(|id| !held.contains(**id))
                .map(|id| id.to_string()),
        );
    }
    let run = tx.prepare_cached(UPSERT_RUN).await?;
    let step = tx.prepare_cached(UPSERT_STEP).await?;
    let steps = tx.prepare_cached(UPSERT_STEPS).await?;
    let blob = tx.prepare_cached(INSERT_BLOB).await?;
    let refs = tx.prepare_cached(INSERT_REFS).await?;
    let put_state = tx.prepare_cached(UPSERT_STATE).await?;
    let delete_state = tx.prepare_cached(DELETE_STATE).await?;
    let finish = tx.prepare_cached(FINISH).await?;
    // The finishes, with where their statement is in `statements`.
    let mut finishes: Vec<(usize, &SyncSender<bool>)> = Vec::new();

    let mut statements: Vec<(&Statement, Params<'_>)> = Vec::new();
    for write in writes {
        if write.fenced_run().is_some_and(|id| refused.contains(id)) {
            if let Write::Finish { done, .. } = write {
                // Not this process's to finish any more.
                let _ = done.try_send(false);
            }
            continue;
        }
        match write {
            Write::Finish { run_id, done } => {
                finishes.push((statements.len(), done));
                statements.push((&finish, vec![run_id, &owner]));
            }
            Write::Run(row) => {
                statements.push((&run, run_params(row)));
                if row.leaves_queue {
                    statements.push((&finish, vec![&row.id, &owner]));
                }
            }
            Write::Blobs(list) => push_blobs(&blob, list, &mut statements),
            Write::Step {
                run_id,
                index,
                record,
                blobs: values,
                refs: shas,
                state,
                fenced: _,
            } => {
                push_blobs(&blob, values, &mut statements);
                if !shas.is_empty() {
                    statements.push((&refs, vec![run_id, shas]));
                }
                for change in state {
                    match &change.value {
                        Some(value) => {
                            statements.push((&put_state, vec![&change.scope.0, &change.key, value]))
                        }
                        None => {
                            statements.push((&delete_state, vec![&change.scope.0, &change.key]))
                        }
                    }
                }
                statements.push((&step, vec![run_id, index, record]));
            }
            Write::WholeRun {
                run: row,
                indexes,
                records,
                refs: shas,
            } => {
                if !indexes.is_empty() {
                    statements.push((&steps, vec![&row.id, indexes, records]));
                }
                if !shas.is_empty() {
                    statements.push((&refs, vec![&row.id, shas]));
                }
                statements.push((&run, run_params(row)));
                if row.leaves_queue {
                    statements.push((&finish, vec![&row.id, &owner]));
                }
            }
        }
    }
    let rows = futures_util::future::try_join_all(
        statements
            .into_iter()
            .map(|(statement, params)| tx.execute_raw(statement, params)),
    )
    .await?;
    tx.commit().await?;
    for (at, done) in finishes {
        // The caller may have gone; nothing to tell then.
        let _ = done.try_send(rows[at] > 0);
    }
    Ok(refused)
}
