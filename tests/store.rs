//! The store contract: the same tests against both backends, the sled store in a directory and
//! the PostgreSQL store in a database of the test's own ([`both!`] makes a `sled` and a
//! `postgres` test of each). What only one backend has is tested beside it.

mod contract;
mod kv;
mod postgres;
mod queue;

use weft::store::{Store, StoreLocation};
use weft_model::config::ResolvedConfig;
use weft_model::records::{RunRecord, Status};
use weft_tests::postgres::TestDatabase;

/// Where a test's store lives.
pub enum Place {
    Sled(tempfile::TempDir),
    Postgres {
        db: TestDatabase,
        local: tempfile::TempDir,
    },
}

impl Place {
    pub fn sled() -> Self {
        Place::Sled(tempfile::tempdir().unwrap())
    }

    pub fn postgres() -> Self {
        Place::Postgres {
            db: TestDatabase::new(),
            local: tempfile::tempdir().unwrap(),
        }
    }

    pub fn location(&self) -> StoreLocation {
        match self {
            Place::Sled(dir) => StoreLocation::Dir(dir.path().join("store")),
            Place::Postgres { db, local } => StoreLocation::Postgres {
                url: db.url().to_string(),
                local: local.path().to_path_buf(),
            },
        }
    }

    /// Opens the store (again: a restart of the process; close it first on sled).
    pub fn open(&self) -> Store {
        Store::open(&self.location()).unwrap()
    }

    /// What another process sees while `store` is open: on PostgreSQL a second connection to
    /// the database, on sled (which one process owns) the same store.
    pub fn another(&self, store: &Store) -> Store {
        match self {
            Place::Sled(_) => store.clone(),
            Place::Postgres { .. } => self.open(),
        }
    }
}

/// Defines test `$name` for each backend: `$name::sled` and `$name::postgres`, each calling
/// `$body(place)`.
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn sled() {
                super::$body(crate::store::Place::sled());
            }
            #[test]
            fn postgres() {
                super::$body(crate::store::Place::postgres());
            }
        }
    };
}
pub(crate) use both;

/// A new run id (time-ordered, and increasing within the process).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The id of a run started `secs` seconds ago (a resumed run keeps its old id).
pub fn id_from(secs_ago: u64) -> String {
    uuid_v7(std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago))
}

fn uuid_v7(at: std::time::SystemTime) -> String {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap();
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, since.as_secs(), since.subsec_nanos());
    uuid::Uuid::new_v7(ts).to_string()
}

/// A run record of instance `acme`'s flow `paths`.
pub fn run(id: &str, status: Status) -> RunRecord {
    RunRecord {
        id: id.to_string(),
        instance: "acme".into(),
        customer: "acme".into(),
        integration: "avatars".into(),
        integration_version: 1,
        flow: "paths".into(),
        status,
        started_at_ms: 0,
        duration_us: None,
        config: ResolvedConfig::default(),
        result: None,
        error: None,
        trigger: serde_json::Value::Null,
        replay_of: None,
        resumed: 0,
        stopped_by: None,
        queued_us: None,
    }
}
