-- Weft's store on PostgreSQL, schema version 1: run records, binary values, step state, the
-- managed state's key-value trees, and the processes sharing the database.
--
-- Records are kept as the JSON text Weft writes (bytea: stored as written, key order and all,
-- and never parsed by the server); the columns beside them are what queries select on.

CREATE TABLE weft_runs (
    id            text PRIMARY KEY,
    instance      text   NOT NULL,
    customer      text   NOT NULL,
    flow          text   NOT NULL,
    status        text   NOT NULL,
    started_at_ms bigint NOT NULL,
    -- The process that wrote the run as `running` (`weft_processes.id`); a run still running
    -- whose process stopped heartbeating was interrupted.
    owner         text,
    record        bytea  NOT NULL
);
CREATE INDEX weft_runs_newest ON weft_runs (started_at_ms DESC, id DESC);
CREATE INDEX weft_runs_running ON weft_runs (owner) WHERE status = 'running';

CREATE TABLE weft_steps (
    run_id text    NOT NULL,
    idx    integer NOT NULL,
    record bytea   NOT NULL,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE weft_blobs (
    sha256 text  PRIMARY KEY,
    data   bytea NOT NULL
);

-- Which runs refer to which binary values, so pruning finds the unreferenced ones by index.
CREATE TABLE weft_blob_refs (
    run_id text NOT NULL,
    sha256 text NOT NULL,
    PRIMARY KEY (run_id, sha256)
);
CREATE INDEX weft_blob_refs_sha256 ON weft_blob_refs (sha256);

CREATE TABLE weft_state (
    scope text  NOT NULL,
    key   text  NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The managed state (registry), sealed credentials, keys, schedule ticks and webhook tokens:
-- small trees of keys and values, read and written a few at a time.
CREATE TABLE weft_kv (
    tree  text  NOT NULL,
    key   bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (tree, key)
);

-- Every process using the store, with the time it last said it was alive.
CREATE TABLE weft_processes (
    id           text        PRIMARY KEY,
    host         text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
