//! Run records, binary values and step state on PostgreSQL: the [`RunStore`] contract.

use anyhow::Context as _;
use tokio_postgres::types::ToSql;

use super::PgStore;
use super::payloads::inline;
use super::queue::ends_claim;
use super::writer::{Message, RunRow, Write};
use crate::store::{
    Pruned, RunFilter, RunRecord, RunStore, RunWithSteps, StateScope, StateWrite, Status,
    StepRecord, blob_refs,
};

/// Runs deleted per transaction when pruning: short transactions, so pruning a long history
/// neither holds locks for long nor leaves one huge set of dead rows for vacuum at once.
const PRUNE_BATCH: i64 = 500;

impl PgStore {
    pub(super) fn run_row(&self, run: &RunRecord) -> anyhow::Result<RunRow> {
        Ok(RunRow {
            id: run.id.clone(),
            instance: run.instance.clone(),
            customer: run.customer.clone(),
            flow: run.flow.clone(),
            status: run.status.to_string(),
            started_at_ms: i64::try_from(run.started_at_ms)?,
            owner: self.inner.process.clone(),
            record: serde_json::to_vec(run)?,
            fenced: self.fenced(&run.id),
            leaves_queue: self.fenced(&run.id) && ends_claim(run.status),
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> anyhow::Result<T> {
    serde_json::from_slice(bytes).with_context(|| format!("the record of {what} is damaged"))
}

impl RunStore for PgStore {
    fn put_run(&self, run: &RunRecord) -> anyhow::Result<()> {
        self.send(Message::Write(Box::new(Write::Run(self.run_row(run)?))))
    }

    fn put_whole_run(&self, run: &RunRecord, steps: &[StepRecord]) -> anyhow::Result<()> {
        let mut indexes = Vec::with_capacity(steps.len());
        let mut records = Vec::with_capacity(steps.len());
        for step in steps {
            indexes.push(i32::try_from(step.index)?);
            records.push(serde_json::to_vec(step)?);
        }
        let mut refs: Vec<String> = steps
            .iter()
            .flat_map(blob_refs)
            .map(str::to_string)
            .collect();
        refs.sort();
        refs.dedup();
        self.send(Message::Write(Box::new(Write::WholeRun {
            run: self.run_row(run)?,
            indexes,
            records,
            refs,
        })))
    }

    fn put_blobs(&self, blobs: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        if blobs.is_empty() {
            return Ok(());
        }
        self.send(Message::Write(Box::new(Write::Blobs(blobs.to_vec()))))
    }

    fn commit_step(
        &self,
        run_id: &str,
        step: &StepRecord,
        blobs: &[(String, Vec<u8>)],
        state: &[StateWrite],
    ) -> anyhow::Result<()> {
        let mut refs: Vec<String> = blob_refs(step).map(str::to_string).collect();
        refs.sort();
        refs.dedup();
        self.send(Message::Write(Box::new(Write::Step {
            run_id: run_id.to_string(),
            index: i32::try_from(step.index)?,
            record: serde_json::to_vec(step)?,
            blobs: blobs.to_vec(),
            refs,
            state: state.to_vec(),
            fenced: self.fenced(run_id),
        })))
    }

    fn get_blob(&self, sha256: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.settle()?;
        let sha256 = sha256.to_string();
        let payloads = self.inner.payloads.clone();
        self.query("read a binary value", move |client| async move {
            let row = client
                .query_opt("SELECT data FROM weft_blobs WHERE sha256 = $1", &[&sha256])
                .await?;
            match row {
                Some(row) => Ok(Some(inline(payloads.as_deref(), row.get(0)).await?)),
                None => Ok(None),
            }
        })
    }

    fn state_get(&self, scope: &StateScope, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.settle()?;
        let (scope, key) = (scope.0.clone(), key.to_string());
        self.query("read step state", move |client| async move {
            let row = client
                .query_opt(
                    "SELECT value FROM weft_state WHERE scope = $1 AND key = $2",
                    &[&scope, &key],
                )
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn state_sizes(&self, scope: &StateScope) -> anyhow::Result<Vec<(String, u64)>> {
        self.settle()?;
        let scope = scope.0.clone();
        self.query("read step state", move |client| async move {
            let rows = client
                .query(
                    "SELECT key, octet_length(value)::int8 FROM weft_state WHERE scope = $1 \
                     ORDER BY key",
                    &[&scope],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
                .collect())
        })
    }

    fn mark_interrupted(&self) -> anyhow::Result<Vec<RunRecord>> {
        self.settle()?;
        let timeout = format!("{} seconds", super::PROCESS_TIMEOUT.as_secs());
        let me = self.inner.process.clone();
        let payloads = self.inner.payloads.clone();
        let rows = self.query("find interrupted runs", move |client| async move {
            // Runs left `running` by this process (its caller is done with them) or by a
            // process that is gone (no heartbeat for the timeout).
            let rows = client
                .query(
                    "SELECT r.id, r.owner, r.record FROM weft_runs r \
                     WHERE r.status = 'running' AND (r.owner = $2 OR NOT EXISTS ( \
                         SELECT 1 FROM weft_processes p WHERE p.id = r.owner \
                         AND p.heartbeat_at > now() - $1::text::interval))",
                    &[&timeout, &me],
                )
                .await?;
            let mut found = Vec::with_capacity(rows.len());
            for row in rows {
                let bytes = inline(payloads.as_deref(), row.get(2)).await?;
                found.push((
                    row.get::<_, String>(0),
                    row.get::<_, Option<String>>(1),
                    bytes,
                ));
            }
            Ok(found)
        })?;
        let mut found = Vec::new();
        for (id, owner, bytes) in rows {
            let mut run: RunRecord = decode(&bytes, &format!("run `{id}`"))?;
            run.status = Status::Interrupted;
            run.error = Some(
                "the run was interrupted (the process running it stopped before it ended); resume it with `weft runs resume` or replay it with `weft runs replay`".into(),
            );
            let mut record = serde_json::to_vec(&run)?;
            let status = run.status.to_string();
            let payloads = self.inner.payloads.clone();
            // Only if nobody took the run over meanwhile.
            let changed = self.query("record an interrupted run", move |client| async move {
                if let Some(payloads) = &payloads {
                    payloads.offload(&mut record).await?;
                }
                Ok(client
                    .execute(
                        "UPDATE weft_runs SET status = $2, record = $3 \
                         WHERE id = $1 AND status = 'running' AND owner IS NOT DISTINCT FROM $4",
                        &[&id, &status, &record, &owner],
                    )
                    .await?)
            })?;
            if changed == 1 {
                found.push(run);
            }
        }
        Ok(found)
    }

    fn prune(&self, before_ms: Option<u64>, keep: Option<usize>) -> anyhow::Result<Pruned> {
        self.settle()?;
        let before = before_ms.map(i64::try_from).transpose()?;
        let keep = keep.map(i64::try_from).transpose()?;
        self.query("prune runs", move |mut client| async move {
            // The runs to remove: ended, and older than `before` or past the newest `keep`.
            let doomed: Vec<String> = client
                .query(
                    "SELECT id FROM ( \
                         SELECT id, started_at_ms, \
                                row_number() OVER (ORDER BY id DESC) AS newer \
                         FROM weft_runs WHERE status <> 'running') ended \
                     WHERE ($1::int8 IS NOT NULL AND started_at_ms < $1) \
                        OR ($2::int8 IS NOT NULL AND newer > $2)",
                    &[&before, &keep],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            let mut pruned = Pruned::default();
            for chunk in doomed.chunks(PRUNE_BATCH as usize) {
                let tx = client.transaction().await?;
                let ids: &(dyn ToSql + Sync) = &chunk;
                tx.execute("DELETE FROM weft_steps WHERE run_id = ANY($1)", &[ids])
                    .await?;
                tx.execute("DELETE FROM weft_blob_refs WHERE run_id = ANY($1)", &[ids])
                    .await?;
                pruned.runs += tx
                    .execute("DELETE FROM weft_runs WHERE id = ANY($1)", &[ids])
                    .await? as usize;
                tx.commit().await?;
            }
            if pruned.runs > 0 {
                loop {
                    let removed = client
                        .execute(
                            "DELETE FROM weft_blobs WHERE sha256 IN ( \
                                 SELECT b.sha256 FROM weft_blobs b WHERE NOT EXISTS ( \
                                     SELECT 1 FROM weft_blob_refs r WHERE r.sha256 = b.sha256) \
                                 LIMIT $1)",
                            &[&PRUNE_BATCH],
                        )
                        .await?;
                    pruned.blobs += removed as usize;
                    if removed == 0 {
                        break;
                    }
                }
            }
            Ok(pruned)
        })
    }

    fn get_run(&self, id: &str) -> anyhow::Result<Option<RunWithSteps>> {
        self.settle()?;
        let id = id.to_string();
        let payloads = self.inner.payloads.clone();
        let found = self.query("read a run", move |client| async move {
            let by_id: [&(dyn ToSql + Sync); 1] = [&id];
            let (run, steps) = futures_util::future::try_join(
                client.prepare_cached("SELECT record FROM weft_runs WHERE id = $1"),
                client
                    .prepare_cached("SELECT record FROM weft_steps WHERE run_id = $1 ORDER BY idx"),
            )
            .await?;
            let run = client.query_opt(&run, &by_id);
            let steps = client.query(&steps, &by_id);
            // Both sent at once; the run's steps are only read if the run exists.
            let (run, steps) = futures_util::future::try_join(run, steps).await?;
            let Some(run) = run else {
                return Ok(None);
            };
            let run = inline(payloads.as_deref(), run.get(0)).await?;
            let mut records = Vec::with_capacity(steps.len());
            for step in &steps {
                records.push(inline(payloads.as_deref(), step.get(0)).await?);
            }
            Ok(Some((id, run, records)))
        })?;
        let Some((id, run, steps)) = found else {
            return Ok(None);
        };
        let run: RunRecord = decode(&run, &format!("run `{id}`"))?;
        let steps = steps
            .iter()
            .map(|bytes| decode(bytes, &format!("a step of run `{id}`")))
            .collect::<anyhow::Result<Vec<StepRecord>>>()?;
        Ok(Some(RunWithSteps { run, steps }))
    }

    fn list_runs(&self, filter: &RunFilter) -> anyhow::Result<Vec<RunRecord>> {
        self.settle()?;
        let filter = filter.clone();
        let payloads = self.inner.payloads.clone();
        let records = self.query("list runs", move |client| async move {
            let status = filter.status.map(|s| s.to_string());
            let since = filter.since_ms.map(i64::try_from).transpose()?;
            let until = filter.until_ms.map(i64::try_from).transpose()?;
            let limit = filter.limit.map(i64::try_from).transpose()?;
            let rows = client
                .query(
                    "SELECT record FROM weft_runs \
                     WHERE ($1::text IS NULL OR instance = $1) \
                       AND ($2::text IS NULL OR customer = $2) \
                       AND ($3::text IS NULL OR flow = $3) \
                       AND ($4::text IS NULL OR status = $4) \
                       AND ($5::int8 IS NULL OR started_at_ms >= $5) \
                       AND ($6::int8 IS NULL OR started_at_ms < $6) \
                     ORDER BY id DESC LIMIT $7",
                    &[
                        &filter.instance,
                        &filter.customer,
                        &filter.flow,
                        &status,
                        &since,
                        &until,
                        &limit,
                    ],
                )
                .await?;
            let mut records = Vec::with_capacity(rows.len());
            for row in &rows {
                records.push(inline(payloads.as_deref(), row.get(0)).await?);
            }
            Ok(records)
        })?;
        records.iter().map(|bytes| decode(bytes, "a run")).collect()
    }

    fn flush(&self) -> anyhow::Result<()> {
        self.settle()
    }
}
