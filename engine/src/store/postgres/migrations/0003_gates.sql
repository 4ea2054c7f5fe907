-- Schema version 3: concurrency limits that hold across processes.
--
-- A run of a flow with a concurrency limit (`throttled`, `fifo`) carries the limit and its gate
-- (its instance and flow): a worker claims such runs only while holding the gate lock, and only
-- as many of a gate's oldest waiting runs as the limit leaves room for next to those running.

ALTER TABLE weft_queue
    ADD COLUMN gate       text,
    ADD COLUMN gate_limit integer;
CREATE INDEX weft_queue_gated ON weft_queue (gate, enqueued_at, run_id) WHERE gate IS NOT NULL;
