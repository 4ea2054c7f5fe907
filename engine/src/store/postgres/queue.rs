//! The queue of runs shared by the processes on one database, with leases.
//!
//! A run is enqueued when it arrives; a worker claims runs with `FOR UPDATE SKIP LOCKED` (a
//! batch the size of its free slots, oldest first), holds each by a lease it renews, and
//! finishes it by deleting its row. A run whose worker stopped renewing is claimed again once
//! its lease ran out. Records of a claimed run are fenced: the writer commits them only while
//! this process still holds the run's lease (see [`super::writer`]), so a worker that lost a
//! run (paused past its lease, cut off) cannot write over the run's new owner; the runs whose
//! writes were refused are announced on [`PgStore::lost_runs`] so their worker abandons them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context as _;

use super::PgStore;

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

impl PgStore {
    /// Adds run `run_id` of `instance`'s flow `flow` to the queue, with `request`, and wakes
    /// the workers listening.
    pub fn enqueue(
        &self,
        run_id: &str,
        instance: &str,
        flow: &str,
        request: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let (run_id, instance, flow) = (run_id.to_string(), instance.to_string(), flow.to_string());
        let request = serde_json::to_vec(request)?;
        self.query("enqueue a run", move |client| async move {
            client
                .execute(
                    "INSERT INTO weft_queue (run_id, instance, flow, request) \
                     VALUES ($1, $2, $3, $4)",
                    &[&run_id, &instance, &flow, &request],
                )
                .await?;
            client
                .execute("SELECT pg_notify('weft_queue', '')", &[])
                .await?;
            Ok(())
        })
    }

    /// Claims up to `slots` runs (waiting ones, and ones whose lease ran out), oldest first,
    /// each held until now + `lease`.
    pub fn claim(&self, slots: usize, lease: Duration) -> anyhow::Result<Vec<Claimed>> {
        if slots == 0 {
            return Ok(Vec::new());
        }
        let me = self.inner.process.clone();
        let slots = i64::try_from(slots)?;
        let lease = interval(lease);
        let rows = self.query("claim runs", move |client| async move {
            Ok(client
                .query(
                    "UPDATE weft_queue q \
                     SET owner = $1, lease_until = now() + $3::text::interval, \
                         claims = q.claims + 1 \
                     FROM ( \
                         SELECT run_id FROM weft_queue \
                         WHERE owner IS NULL OR lease_until < now() \
                         ORDER BY enqueued_at, run_id \
                         LIMIT $2 FOR UPDATE SKIP LOCKED) due \
                     WHERE q.run_id = due.run_id \
                     RETURNING q.run_id, q.instance, q.flow, q.request, q.claims, q.enqueued_at",
                    &[&me, &slots, &lease],
                )
                .await?)
        })?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let request: Vec<u8> = row.get(3);
            let run_id: String = row.get(0);
            claimed.push((
                row.get::<_, std::time::SystemTime>(5),
                Claimed {
                    request: serde_json::from_slice(&request).with_context(|| {
                        format!("the queued request of run `{run_id}` is damaged")
                    })?,
                    run_id,
                    instance: row.get(1),
                    flow: row.get(2),
                    claims: row.get(4),
                },
            ));
        }
        // RETURNING does not keep the subquery's order.
        claimed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.run_id.cmp(&b.1.run_id)));
        let claimed: Vec<Claimed> = claimed.into_iter().map(|(_, c)| c).collect();
        self.leases()
            .extend(claimed.iter().map(|c| (c.run_id.clone(), true)));
        Ok(claimed)
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
    /// it did. Its records are committed first (they are fenced by the row).
    pub fn finish(&self, run_id: &str) -> anyhow::Result<bool> {
        self.settle()?;
        let me = self.inner.process.clone();
        let id = run_id.to_string();
        let finished = self.query("finish a run", move |client| async move {
            // One statement (one transaction): the row goes and the waiters are told.
            let removed = client
                .query(
                    "WITH gone AS (DELETE FROM weft_queue WHERE run_id = $1 AND owner = $2 \
                     RETURNING run_id) SELECT pg_notify('weft_done', run_id) FROM gone",
                    &[&id, &me],
                )
                .await?;
            Ok(removed.len() == 1)
        })?;
        self.leases().remove(run_id);
        Ok(finished)
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
