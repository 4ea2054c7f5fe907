//! The queue of runs shared by the processes on one database, with leases.
//!
//! A run is enqueued when it arrives; a worker claims runs with `FOR UPDATE SKIP LOCKED` (a
//! batch the size of its free slots, oldest first), holds each by a lease it renews, and
//! finishes it by deleting its row. Runs of a flow with a concurrency limit (`throttled`,
//! `fifo`) are claimed under a lock the claimers share, each gate (a flow of an instance) up to
//! its limit, oldest first, so the limit and the order hold whichever workers run them. A run whose worker stopped renewing is claimed again once
//! its lease ran out. Records of a claimed run are fenced: the writer commits them only while
//! this process still holds the run's lease (see [`super::writer`]), so a worker that lost a
//! run (paused past its lease, cut off) cannot write over the run's new owner; the runs whose
//! writes were refused are announced on [`PgStore::lost_runs`] so their worker abandons them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context as _;

use tokio_postgres::types::ToSql;

use super::PgStore;
use super::payloads::inline;
use super::writer::{Message, Write};
use crate::store::{RunRecord, Status};

/// A claimed run.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The run's id (given when it was enqueued).
    pub run_id: String,
    /// The instance.
    pub instance: String,
    /// The flow.
    pub flow: String,
    /// What was enqueued with it.
    pub request: serde_json::Value,
    /// How many times it has been claimed, this time included: more than once means a worker
    /// lost it and it is to be resumed.
    pub claims: i32,
    /// When it was queued.
    pub enqueued_at: std::time::SystemTime,
    /// How long it waited in the queue until this claim (by the database's clock).
    pub waited: Duration,
}

/// How many runs wait, and for how long the oldest has.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueDepth {
    /// Runs not held by any worker (new, or whose lease ran out).
    pub waiting: i64,
    /// Runs held by a worker.
    pub running: i64,
    /// Seconds since the oldest waiting run was enqueued.
    pub oldest_wait_secs: Option<f64>,
}

fn interval(lease: Duration) -> String {
    format!("{} milliseconds", lease.as_millis())
}

/// The advisory lock held while claiming runs of concurrency-limited flows (`weft` in ASCII,
/// then `gates`): the claimer counts a gate's running runs and takes its oldest waiting ones
/// while no other can.
const GATE_LOCK: i64 = 0x7765_6674_6761_7465;

/// Queues run $1 of instance $2's flow $3 with request $4 and concurrency limit $5 (its gate
/// is the instance and flow), and wakes the workers, in one statement.
const ENQUEUE: &str = "\
    WITH queued AS ( \
        INSERT INTO weft_queue (run_id, instance, flow, request, gate, gate_limit) \
        VALUES ($1, $2, $3, $4, CASE WHEN $5::integer IS NULL THEN NULL ELSE $2 || '/' || $3 END, $5) \
        RETURNING gate) \
    SELECT pg_notify('weft_queue', CASE WHEN gate IS NULL THEN '' ELSE 'gated' END) FROM queued";

/// As [`ENQUEUE`], recording the run too: customer $6, status $7, start $8, owner $9,
/// record $10.
const ENQUEUE_RECORDED: &str = "\
    WITH run AS ( \
        INSERT INTO weft_runs (id, instance, customer, flow, status, started_at_ms, owner, record) \
        VALUES ($1, $2, $6, $3, $7, $8, $9, $10) \
        ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, owner = EXCLUDED.owner, \
            record = EXCLUDED.record), \
    queued AS ( \
        INSERT INTO weft_queue (run_id, instance, flow, request, gate, gate_limit) \
        VALUES ($1, $2, $3, $4, CASE WHEN $5::integer IS NULL THEN NULL ELSE $2 || '/' || $3 END, $5) \
        RETURNING gate) \
    SELECT pg_notify('weft_queue', CASE WHEN gate IS NULL THEN '' ELSE 'gated' END) FROM queued";

/// Whether a run that ended with `status` is done with its claim: its final record, written
/// by the worker holding it, takes it off the queue in the same transaction (and a worker that
/// wrote it needs no [`PgStore::finish`]). A run recorded `interrupted` (about to be resumed)
/// or still `running` stays.
pub fn ends_claim(status: Status) -> bool {
    matches!(
        status,
        Status::Succeeded | Status::Failed | Status::SucceededWithErrors
    )
}

/// A flow's concurrency limit as the queue holds it.
fn gate_limit(limit: u32) -> i32 {
    i32::try_from(limit.max(1)).unwrap_or(i32::MAX)
}

/// Claims open runs (of flows without a concurrency limit): the oldest waiting ones, passing over
/// those another claimer has locked.
const CLAIM_OPEN: &str = "\
    UPDATE weft_queue q \
    SET owner = $1, lease_until = now() + $3::text::interval, claims = q.claims + 1 \
    FROM ( \
        SELECT run_id FROM weft_queue \
        WHERE gate IS NULL AND (owner IS NULL OR lease_until < now()) \
        ORDER BY enqueued_at, run_id \
        LIMIT $2 FOR UPDATE SKIP LOCKED) due \
    WHERE q.run_id = due.run_id \
    RETURNING q.run_id, q.instance, q.flow, q.request, q.claims, q.enqueued_at, \
              (extract(epoch FROM clock_timestamp() - q.enqueued_at) * 1000000)::int8";

/// Claims runs of concurrency-limited flows, under [`GATE_LOCK`]: of each gate, its oldest
/// waiting runs, as many as its limit leaves room for next to its running ones.
const CLAIM_GATED: &str = "\
    WITH busy AS ( \
        SELECT gate, count(*) AS n FROM weft_queue \
        WHERE gate IS NOT NULL AND owner IS NOT NULL AND lease_until >= now() \
        GROUP BY gate), \
    waiting AS ( \
        SELECT run_id, gate, gate_limit, enqueued_at, \
               row_number() OVER (PARTITION BY gate ORDER BY enqueued_at, run_id) AS place \
        FROM weft_queue \
        WHERE gate IS NOT NULL AND (owner IS NULL OR lease_until < now())), \
    due AS ( \
        SELECT w.run_id FROM waiting w LEFT JOIN busy b ON b.gate = w.gate \
        WHERE w.place <= w.gate_limit - coalesce(b.n, 0) \
        ORDER BY w.enqueued_at, w.run_id \
        LIMIT $2) \
    UPDATE weft_queue q \
    SET owner = $1, lease_until = now() + $3::text::interval, claims = q.claims + 1 \
    FROM due \
    WHERE q.run_id = due.run_id AND (q.owner IS NULL OR q.lease_until < now()) \
    RETURNING q.run_id, q.instance, q.flow, q.request, q.claims, q.enqueued_at, \
              (extract(epoch FROM clock_timestamp() - q.enqueued_at) * 1000000)::int8";

/// What a claim got.
#[derive(Debug, Default)]
pub struct Claims {
    /// The runs, oldest first.
    pub runs: Vec<Claimed>,
    /// Whether runs of concurrency-limited flows filled every slot offered: more of them may
    /// be due, so the next claim should look at them again.
    pub gated_left: bool,
}

impl PgStore {
    /// Adds run `run_id` of `instance`'s flow `flow` to the queue, with `request`, and wakes
    /// the workers listening. With a `limit`, at most that many runs of this flow of this
    /// instance run at once, across all workers, in the order they were queued (a limit of 1
    /// is first in, first out).
    pub fn enqueue(
        &self,
        run_id: &str,
        instance: &str,
        flow: &str,
        request: &serde_json::Value,
        limit: Option<u32>,
    ) -> anyhow::Result<()> {
        let (run_id, instance, flow) = (run_id.to_string(), instance.to_string(), flow.to_string());
        let mut request = serde_json::to_vec(request)?;
        let limit = limit.map(gate_limit);
        let payloads = self.inner.payloads.clone();
        self.query("enqueue a run", move |client| async move {
            if let Some(payloads) = &payloads {
                payloads.offload(&mut request).await?;
            }
            let queue: [&(dyn ToSql + Sync); 5] = [&run_id, &instance, &flow, &request, &limit];
            client
                .execute(&client.prepare_cached(ENQUEUE).await?, &queue)
                .await?;
            Ok(())
        })
    }

    /// Records the new run `run` and queues it, with `request` and `limit` as
    /// [`PgStore::enqueue`] takes them, in one statement: its record is there as soon as it is
    /// queued, and the worker's records, which come after, replace it.
    pub fn enqueue_recorded(
        &self,
        run: &RunRecord,
        request: &serde_json::Value,
        limit: Option<u32>,
    ) -> anyhow::Result<()> {
        let mut row = self.run_row(run)?;
        let mut request = serde_json::to_vec(request)?;
        let limit = limit.map(gate_limit);
        let payloads = self.inner.payloads.clone();
        self.query("record and enqueue a run", move |client| async move {
            if let Some(payloads) = &payloads {
                payloads.offload(&mut request).await?;
                payloads.offload(&mut row.record).await?;
            }
            let params: [&(dyn ToSql + Sync); 10] = [
                &row.id,
                &row.instance,
                &row.flow,
                &request,
                &limit,
                &row.customer,
                &row.status,
                &row.started_at_ms,
                &row.owner,
                &row.record,
            ];
            client
                .execute(&client.prepare_cached(ENQUEUE_RECORDED).await?, &params)
                .await?;
            Ok(())
        })
    }

    /// Claims up to `slots` runs (waiting ones, and ones whose lease ran out), oldest first,
    /// each held until now + `lease`. Runs of concurrency-limited flows are looked at only
    /// when `gated` (a worker does when told they may have room, and now and then): that
    /// takes a lock the claimers share, which open runs do without.
    pub fn claim(&self, slots: usize, lease: Duration, gated: bool) -> anyhow::Result<Claims> {
        let mut claims = Claims::default();
        if slots == 0 {
            return Ok(claims);
        }
        if gated {
            let rows = self.claim_with(CLAIM_GATED, slots, lease, true)?;
            claims.gated_left = rows.len() == slots;
            claims.runs = rows;
        }
        let open = slots - claims.runs.len();
        if open > 0 {
            claims
                .runs
                .extend(self.claim_with(CLAIM_OPEN, open, lease, false)?);
        }
        // RETURNING does not keep the subquery's order, and the two kinds are claimed apart.
        claims.runs.sort_by(|a, b| {
            a.enqueued_at
                .cmp(&b.enqueued_at)
                .then_with(|| a.run_id.cmp(&b.run_id))
        });
        self.leases()
            .extend(claims.runs.iter().map(|c| (c.run_id.clone(), true)));
        Ok(claims)
    }

    /// Runs `statement` (a claim of up to `slots` runs), under [`GATE_LOCK`] when `locked`.
    fn claim_with(
        &self,
        statement: &'static str,
        slots: usize,
        lease: Duration,
        locked: bool,
    ) -> anyhow::Result<Vec<Claimed>> {
        let me = self.inner.process.clone();
        let slots = i64::try_from(slots)?;
        let lease = interval(lease);
        let payloads = self.inner.payloads.clone();
        let rows = self.query("claim runs", move |mut client| async move {
            let rows = if locked {
                // The lock is taken by a statement of its own, so that the claim's snapshot,
                // taken after it, sees every claim committed before.
                let tx = client.transaction().await?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&GATE_LOCK])
                    .await?;
                let rows = tx
                    .query(&tx.prepare_cached(statement).await?, &[&me, &slots, &lease])
                    .await?;
                tx.commit().await?;
                rows
            } else {
                let statement = client.prepare_cached(statement).await?;
                client.query(&statement, &[&me, &slots, &lease]).await?
            };
            let mut claimed = Vec::with_capacity(rows.len());
            for row in rows {
                let request = inline(payloads.as_deref(), row.get(3)).await?;
                claimed.push((row, request));
            }
            Ok(claimed)
        })?;
        rows.into_iter()
            .map(|(row, request)| {
                let run_id: String = row.get(0);
                Ok(Claimed {
                    request: serde_json::from_slice(&request).with_context(|| {
                        format!("the queued request of run `{run_id}` is damaged")
                    })?,
                    run_id,
                    instance: row.get(1),
                    flow: row.get(2),
                    claims: row.get(4),
                    enqueued_at: row.get(5),
                    waited: Duration::from_micros(row.get::<_, i64>(6).max(0).unsigned_abs()),
                })
            })
            .collect()
    }

    /// How many runs of `instance`'s flow `flow` are queued and not yet running (`waiting`),
    /// and how many are queued or running (`unfinished`).
    pub fn flow_load(&self, instance: &str, flow: &str) -> anyhow::Result<(i64, i64)> {
        let (instance, flow) = (instance.to_string(), flow.to_string());
        self.query("read the queue", move |client| async move {
            let row = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE owner IS NULL OR lease_until < now()), \
                            count(*) \
                     FROM weft_queue WHERE instance = $1 AND flow = $2",
                    &[&instance, &flow],
                )
                .await?;
            Ok((row.get(0), row.get(1)))
        })
    }

    /// Extends the lease of every run this process holds to now + `lease`; returns the runs it
    /// no longer holds (their leases ran out and another worker claimed them), which it must
    /// abandon.
    pub fn renew(&self, lease: Duration) -> anyhow::Result<Vec<String>> {
        let held: Vec<String> = self
            .leases()
            .iter()
            .filter(|(_, held)| **held)
            .map(|(id, _)| id.clone())
            .collect();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let me = self.inner.process.clone();
        let lease = interval(lease);
        let asked = held.clone();
        let kept: HashSet<String> = self
            .query("renew leases", move |client| async move {
                Ok(client
                    .query(
                        "UPDATE weft_queue SET lease_until = now() + $3::text::interval \
                         WHERE run_id = ANY($1) AND owner = $2 RETURNING run_id",
                        &[&asked, &me, &lease],
                    )
                    .await?)
            })?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let lost: Vec<String> = held.into_iter().filter(|id| !kept.contains(id)).collect();
        let mut leases = self.leases();
        for id in &lost {
            // No longer renewed, but still fenced: the abandoned run's last writes (its task
            // being stopped records it as cancelled) must be refused too.
            leases.insert(id.clone(), false);
        }
        Ok(lost)
    }

    /// Takes run `run_id`, which ended, off the queue, if this process still holds it; whether
    /// it did. It leaves in the transaction that commits the run's last records, behind
    /// everything this process queued for writing before (fenced by the row, as they are), and
    /// the callers waiting for it are told then.
    pub fn finish(&self, run_id: &str) -> anyhow::Result<bool> {
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        self.send(Message::Write(Box::new(Write::Finish {
            run_id: run_id.to_string(),
            done,
        })))?;
        // Still fenced until the answer: the finish itself needs the lease.
        let finished = self.wait_for(answer);
        self.leases().remove(run_id);
        finished.map_err(|_| {
            anyhow::anyhow!(
                "failed to take run `{run_id}` off the queue in `{}`: the write failed (see the log)",
                self.inner.shown
            )
        })
    }

    /// Forgets run `run_id`, whose final record this process wrote (which took it off the
    /// queue, see [`ends_claim`]).
    pub fn release(&self, run_id: &str) {
        self.leases().remove(run_id);
    }

    /// How many runs wait and run, and how long the oldest waiting one has waited.
    pub fn queue_depth(&self) -> anyhow::Result<QueueDepth> {
        self.query("read the queue", move |client| async move {
            let row = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE owner IS NULL OR lease_until < now()), \
                            count(*) FILTER (WHERE owner IS NOT NULL AND lease_until >= now()), \
                            extract(epoch FROM now() - min(enqueued_at) \
                                FILTER (WHERE owner IS NULL OR lease_until < now()))::float8 \
                     FROM weft_queue",
                    &[],
                )
                .await?;
            Ok(QueueDepth {
                waiting: row.get(0),
                running: row.get(1),
                oldest_wait_secs: row.get(2),
            })
        })
    }

    /// Whether run `run_id` was claimed by this process and not finished: its writes are
    /// then fenced (committed only while the lease is still this process's).
    pub(super) fn fenced(&self, run_id: &str) -> bool {
        self.leases().contains_key(run_id)
    }

    /// The runs this process claimed and has not finished, each with whether it still holds
    /// the lease (a lost run stays, fenced, until finished).
    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<String, bool>> {
        // Every update is one map operation.
        self.inner.leases.lock().unwrap_or_else(|e| e.into_inner())
    }
}
