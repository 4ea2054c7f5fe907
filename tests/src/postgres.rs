//! A database of its own for each test, on the PostgreSQL server the tests use.
//!
//! The server is `WEFT_TEST_POSTGRES` (default `postgres://weft:weft@127.0.0.1:5432/weft_test`,
//! which `tests/tools/postgres` sets up). A test that cannot reach it fails and says how to
//! start one: it never skips.

/// The server the tests connect to first (its role must be allowed to create databases).
pub fn server_url() -> String {
    std::env::var("WEFT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://weft:weft@127.0.0.1:5432/weft_test".into())
}

/// A database made for one test, dropped (with any connections left to it) when this is.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// Makes a new, empty database.
    pub fn new() -> Self {
        let name = format!("weft_t_{}", uuid_like());
        admin(&format!("CREATE DATABASE {name}"));
        let mut url = url::Url::parse(&server_url()).expect("WEFT_TEST_POSTGRES is a URL");
        url.set_path(&name);
        Self {
            name,
            url: url.to_string(),
        }
    }

    /// Its connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `sql` in it and returns the first column of every row, as text.
    pub fn query(&self, sql: &str) -> Vec<String> {
        run_sql(&self.url, sql)
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos();
    format!("{nanos:x}_{}", std::process::id())
}

fn admin(sql: &str) {
    run_sql(&server_url(), sql);
}

/// Runs `sql` at `url` on a thread of its own (callable from tests with or without a
/// runtime) and returns the first column of every row as text.
fn run_sql(url: &str, sql: &str) -> Vec<String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot reach the test PostgreSQL server ({e}); start one with `tests/tools/postgres`, or point WEFT_TEST_POSTGRES at one whose role may create databases"
                    )
                });
            tokio::spawn(connection);
            client
                .simple_query(&sql)
                .await
                .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"))
                .into_iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        Some(row.get(0).unwrap_or("NULL").to_string())
                    }
                    _ => None,
                })
                .collect()
        })
    })
    .join()
    .expect("the SQL thread does not panic unless the SQL fails")
}
