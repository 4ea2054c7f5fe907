//! The PostgreSQL store's schema, brought up to date under an advisory lock.
//!
//! Every process runs the migrations when it opens the store (and `weft migrate` runs them on
//! their own): the first to take the lock applies what is missing, each migration in its own
//! transaction with its version recorded in `weft_schema`, and the others find nothing left to
//! do once they get the lock. A process refuses a database whose schema is newer than the
//! newest it knows: it would read and write tables it does not understand.

use anyhow::{Context as _, bail};
use tokio_postgres::Client;

/// The migrations, in order: version, name, SQL.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "store", include_str!("migrations/0001_store.sql")),
    (2, "queue", include_str!("migrations/0002_queue.sql")),
    (3, "gates", include_str!("migrations/0003_gates.sql")),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock key migrations are applied under (`weft` in ASCII, then `schema`).
const LOCK_KEY: i64 = 0x7765_6674_5343_4845;

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// The schema version before.
    pub from: i32,
    /// The schema version now ([`SCHEMA_VERSION`]).
    pub to: i32,
}

/// Brings the schema up to [`SCHEMA_VERSION`].
pub async fn migrate(client: &mut Client) -> anyhow::Result<Migrated> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .context("failed to take the migration lock")?;
    let outcome = apply_missing(client).await;
    // Released explicitly: the connection goes back to a pool and would keep the lock.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .context("failed to release the migration lock");
    let migrated = outcome?;
    unlocked?;
    Ok(migrated)
}

async fn apply_missing(client: &mut Client) -> anyhow::Result<Migrated> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS weft_schema (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .context("failed to create the schema version table `weft_schema`")?;
    let from: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM weft_schema", &[])
        .await
        .context("failed to read the schema version")?
        .get(0);
    if from > SCHEMA_VERSION {
        bail!(
            "the database's Weft schema is version {from}, newer than this `weft` knows (version {SCHEMA_VERSION}); run a `weft` at least as new as the one that migrated it"
        );
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > from) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .with_context(|| format!("migration {version} ({name}) failed"))?;
        tx.execute(
            "INSERT INTO weft_schema (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tx.commit()
            .await
            .with_context(|| format!("migration {version} ({name}) failed to commit"))?;
    }
    Ok(Migrated {
        from,
        to: SCHEMA_VERSION,
    })
}
