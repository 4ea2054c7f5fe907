-- Schema version 2: the queue of runs waiting or running, shared by the processes.
--
-- Small and hot: a row lives from the run's arrival to its end, then goes (the run's history is
-- in weft_runs). A worker claims rows with FOR UPDATE SKIP LOCKED and holds each by a lease it
-- renews; a row whose lease ran out is claimed again by another worker, which resumes the run.
-- No transaction stays open while a run executes.

CREATE TABLE weft_queue (
    run_id      text        PRIMARY KEY,
    instance    text        NOT NULL,
    flow        text        NOT NULL,
    -- The run's request (trigger and the like), as JSON text.
    request     bytea       NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The process holding the run, until `lease_until`.
    owner       text,
    lease_until timestamptz,
    -- How many times the run was claimed: more than once means it is resumed.
    claims      integer     NOT NULL DEFAULT 0
);
CREATE INDEX weft_queue_waiting ON weft_queue (enqueued_at, run_id);
