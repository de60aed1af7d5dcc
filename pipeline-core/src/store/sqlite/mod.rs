//! SQLite backend: one file in WAL mode with `synchronous=FULL`, so a committed batch survives a
//! power cut, and multi-row statements so one transaction carries thousands of payloads.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::*;
use audit::append_audit;

mod accounts;
mod alarms;
mod audit;
mod credentials;
mod inbox;
mod outbox;
mod quarantine;
mod registry;
#[cfg(test)]
mod tests;

use crate::clock::SharedClock;
use crate::identify::{PairingRecord, PatientRecord};
use crate::model::alarm::Firing;

/// Rows per multi-row statement: well under SQLite's 32766 bound parameters at 12 columns.
const ROWS_PER_STATEMENT: usize = 500;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    clock: SharedClock,
    /// The database file, as the operator configured it (for messages).
    path: String,
    /// The audit key and checkpoint.
    seal: Arc<audit::AuditSeal>,
    /// Where checkpoints are also sent, when the site has a syslog.
    syslog: Option<Arc<crate::audit::syslog::Syslog>>,
}

/// SQLITE_CORRUPT and SQLITE_NOTADB are a damaged file, not a passing fault.
fn damaged(path: &str, e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("11" | "26")) => {
            StoreError::Damaged { path: path.to_string(), detail: db.message().to_string() }
        }
        _ => StoreError::Unavailable(e),
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://PATH`) and migrates it; rows are
    /// stamped with `clock`.
    pub async fn open(url: &str, clock: SharedClock) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_limited(url, clock, PageLimit::default()).await
    }

    /// [`SqliteStore::open`] with a test-only page ceiling, applied on every connection as it is
    /// handed out, so lifting it takes effect at once.
    pub async fn open_limited(url: &str, clock: SharedClock, limit: PageLimit) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Dedup keys are random hashes: a larger page cache keeps their B-tree in memory.
            .pragma("cache_size", "-65536")
            // Statement journals of the multi-row upserts stay in memory instead of temp files.
            .pragma("temp_store", "memory");
        // Enough connections that reads (the registry, the board, the console) still find one while
        // every writer (ingest, rule recorder, alarm ledger, outbox, audit) waits on a locked file.
        let mut pool = SqlitePoolOptions::new().max_connections(8);
        if limit.get() != 0 {
            pool = pool.before_acquire(move |conn, _| {
                let pages = limit.get();
                Box::pin(async move {
                    // A number we formatted ourselves: nothing to inject.
                    let pragma = sqlx::AssertSqlSafe(format!("PRAGMA max_page_count = {pages}"));
                    sqlx::query(pragma).execute(&mut *conn).await?;
                    Ok(true)
                })
            });
        }
        let path = url.trim_start_matches("sqlite://").to_string();
        let pool = pool.connect_with(options).await.map_err(|e| damaged(&path, e))?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => damaged(&path, e),
            other => StoreError::Migration(other),
        })?;
        let seal = Arc::new(audit::AuditSeal::for_database(&path)?);
        let store = SqliteStore { pool, clock, path, seal, syslog: None };
        audit::rechain_unkeyed(&store).await?;
        audit::note_missing_checkpoint(&store).await?;
        store.write_checkpoint().await?;
        Ok(store)
    }

    /// A write transaction that takes the write lock up front. A deferred one that reads first and
    /// writes later fails at once with SQLITE_BUSY if another connection wrote in between (the busy
    /// timeout cannot help there), which would make operator commands fail at random while the
    /// pipeline ingests.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Also sends every checkpoint to the site's syslog.
    pub fn with_syslog(mut self, syslog: Option<Arc<crate::audit::syslog::Syslog>>) -> SqliteStore {
        self.syslog = syslog;
        self
    }

    /// The underlying pool, for tests that inspect tables directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}
