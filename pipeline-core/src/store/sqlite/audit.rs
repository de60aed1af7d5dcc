//! The audit chain's rows in SQLite; the chain itself (hashing, verification) is [`crate::audit`].
//! The site's key and the checkpoint live beside the database file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use super::*;
use crate::audit::{self, AuditKey, ChainLink, Checkpoint, GENESIS};

/// The store's audit key and where its checkpoint is written.
#[derive(Debug)]
pub(super) struct AuditSeal {
    pub(super) key: AuditKey,
    /// `audit.checkpoint` beside the database; none for an in-memory database.
    checkpoint: Option<PathBuf>,
    /// The head the checkpoint was last written for, so a commit that appended nothing writes nothing.
    written_head: AtomicI64,
}

impl AuditSeal {
    /// The key beside `database` (made at first start), or a passing one for an in-memory database.
    pub(super) fn for_database(database: &str) -> Result<AuditSeal, StoreError> {
        let file = database.split('?').next().unwrap_or(database);
        if file.is_empty() || file.contains(":memory:") || file.starts_with("file::memory") {
            return Ok(AuditSeal { key: AuditKey::random(), checkpoint: None, written_head: AtomicI64::new(-1) });
        }
        let path = Path::new(file);
        let key = AuditKey::load_or_create(&audit::key::key_path(path))
            .map_err(|e| StoreError::Refused(format!("the audit key: {e}")))?;
        Ok(AuditSeal { key, checkpoint: Some(audit::checkpoint::path_for(path)), written_head: AtomicI64::new(-1) })
    }
}

/// Every entry, in order.
async fn chain(pool: &SqlitePool) -> Result<Vec<ChainLink>, StoreError> {
    Ok(sqlx::query("SELECT id, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY id")
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| ChainLink {
            id: r.get(0),
            at_millis: r.get(1),
            parts: [r.get(2), r.get(3), r.get(4), r.get(5)],
            prev_hash: r.get(6),
            hash: r.get(7),
        })
        .collect())
}

/// The last entry's id and hash, if any.
async fn head(pool: &SqlitePool) -> Result<Option<(i64, [u8; 32])>, StoreError> {
    let row: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetch_optional(pool).await?;
    Ok(row.and_then(|(id, hash)| Some((id, <[u8; 32]>::try_from(hash).ok()?))))
}

/// Re-chains, under the key, the entries a version without a key wrote (moved aside by migration
/// 0010), after checking their old chain; notes both in a new entry. Runs once.
pub(super) async fn rechain_unkeyed(store: &SqliteStore) -> Result<(), StoreError> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit_log_unkeyed'")
            .fetch_optional(&store.pool)
            .await?;
    if exists.is_none() {
        return Ok(());
    }
    let mut tx = store.write_tx().await?;
    let rows = sqlx::query(
        "SELECT id, at, actor, action, subject, detail, prev_hash, hash FROM audit_log_unkeyed ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        sqlx::query("DROP TABLE audit_log_unkeyed").execute(&mut *tx).await?;
        tx.commit().await?;
        return Ok(());
    }
    let (mut prev, mut broken) = (GENESIS.to_vec(), None);
    for r in &rows {
        let parts: [String; 4] = [r.get(2), r.get(3), r.get(4), r.get(5)];
        let mut h = blake3::Hasher::new();
        h.update(&prev);
        h.update(&r.get::<i64, _>(1).to_be_bytes());
        for part in &parts {
            h.update(&(part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let (recorded_prev, recorded): (Vec<u8>, Vec<u8>) = (r.get(6), r.get(7));
        if broken.is_none() && (recorded_prev != prev || recorded[..] != h.finalize().as_bytes()[..]) {
            broken = Some(r.get::<i64, _>(0));
        }
        prev = recorded;
        let [a, b, c, d] = &parts;
        append_audit(&mut tx, from_millis(r.get(1)), [a, b, c, d], &store.seal.key).await?;
    }
    let verdict = match broken {
        None => "their unkeyed chain verified".to_string(),
        Some(id) => format!("their unkeyed chain was BROKEN at entry {id} before re-chaining"),
    };
    let detail =
        format!("{} entries written before the audit key existed were re-chained under it; {verdict}", rows.len());
    append_audit(&mut tx, store.clock.now(), ["system", "audit.keyed", "audit log", &detail], &store.seal.key).await?;
    sqlx::query("DROP TABLE audit_log_unkeyed").execute(&mut *tx).await?;
    store.commit_audited(tx).await
}

/// A chain with entries but no checkpoint beside it means the file was removed: a new one would
/// hide a cut tail, so the chain itself records that it happened (and the log says so) first.
pub(super) async fn note_missing_checkpoint(store: &SqliteStore) -> Result<(), StoreError> {
    let Some(path) = &store.seal.checkpoint else { return Ok(()) };
    if path.exists() || head(&store.pool).await?.is_none() {
        return Ok(());
    }
    tracing::error!(
        checkpoint = %path.display(),
        "the audit checkpoint is missing: entries cut from the end before now cannot be noticed"
    );
    let detail = "the checkpoint file was gone at start; a new one is sealed from the chain's head as found";
    let mut tx = store.write_tx().await?;
    append_audit(
        &mut tx,
        store.clock.now(),
        ["system", "audit.checkpoint_missing", "audit log", detail],
        &store.seal.key,
    )
    .await?;
    store.commit_audited(tx).await
}

impl SqliteStore {
    /// Commits a transaction that appended to the audit log, then writes the checkpoint of the new
    /// head. A checkpoint that cannot be written is logged: the action itself has committed.
    pub(super) async fn commit_audited(&self, tx: sqlx::Transaction<'static, Sqlite>) -> Result<(), StoreError> {
        tx.commit().await?;
        if let Err(e) = self.write_checkpoint().await {
            tracing::warn!(error = %e, "could not write the audit checkpoint");
        }
        Ok(())
    }

    /// Writes the checkpoint of the chain's current head, when it moved since the last one.
    pub(super) async fn write_checkpoint(&self) -> Result<(), StoreError> {
        let Some(path) = &self.seal.checkpoint else { return Ok(()) };
        let Some((id, hash)) = head(&self.pool).await? else { return Ok(()) };
        if self.seal.written_head.load(Ordering::Acquire) == id {
            return Ok(());
        }
        let checkpoint = Checkpoint::seal(&self.seal.key, id, hash, self.clock.now());
        checkpoint.write(path).map_err(|e| StoreError::Refused(format!("{}: {e}", path.display())))?;
        // Only once it is written: a failed write is tried again at the next commit.
        self.seal.written_head.store(id, Ordering::Release);
        if let Some(syslog) = &self.syslog {
            syslog.send(&checkpoint.syslog_line());
        }
        Ok(())
    }
}

/// Appends one entry to the audit chain inside the caller's transaction, so the entry commits or
/// rolls back with the change it records.
pub(super) async fn append_audit(
    conn: &mut SqliteConnection,
    at: DateTime<Utc>,
    [actor, action, subject, detail]: [&str; 4],
    key: &AuditKey,
) -> Result<(), StoreError> {
    let prev: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or_else(|| GENESIS.to_vec());
    let at = millis(at);
    let hash = audit::link(key, &prev, at, [actor, action, subject, detail]);
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(detail)
    .bind(&prev)
    .bind(&hash[..])
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn audit(&self, actor: &str, action: &str, subject: &str, detail: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        append_audit(&mut tx, self.clock.now(), [actor, action, subject, detail], &self.seal.key).await?;
        self.commit_audited(tx).await?;
        Ok(())
    }

    async fn audit_entries(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query("SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: from_millis(r.get(1)),
                actor: r.get(2),
                action: r.get(3),
                subject: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }

    async fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        let checkpoint = match &self.seal.checkpoint {
            Some(path) => {
                Checkpoint::read(path).map_err(|e| StoreError::Refused(format!("the audit checkpoint: {e}")))?
            }
            None => None,
        };
        Ok(audit::verify(&self.seal.key, &chain(&self.pool).await?, checkpoint.as_ref()))
    }

    async fn check_integrity(&self) -> Result<(), StoreError> {
        let damaged = |detail: String| StoreError::Damaged { path: self.path.clone(), detail };
        let rows: Vec<String> = match sqlx::query_scalar("PRAGMA quick_check").fetch_all(&self.pool).await {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(db)) if matches!(db.code().as_deref(), Some("11" | "26")) => {
                return Err(damaged(db.message().to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        match rows.as_slice() {
            [ok] if ok == "ok" => Ok(()),
            problems => Err(damaged(problems.iter().take(3).cloned().collect::<Vec<_>>().join("; "))),
        }
    }

    async fn verify_backup(&self, copy: &std::path::Path) -> Result<AuditVerdict, StoreError> {
        let checkpoint = Checkpoint::read(&audit::checkpoint::path_for_backup(copy))
            .map_err(|e| StoreError::Refused(format!("the backup's audit checkpoint: {e}")))?;
        if !copy.exists() {
            return Err(StoreError::Refused(format!("{} does not exist", copy.display())));
        }
        let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(copy).read_only(true)).await?;
        let links = chain(&pool).await;
        pool.close().await;
        Ok(audit::verify(&self.seal.key, &links?, checkpoint.as_ref()))
    }

    async fn backup(&self, to: &std::path::Path, actor: &str) -> Result<(), StoreError> {
        if to.exists() {
            return Err(StoreError::Refused(format!("{} exists: name a new file for the backup", to.display())));
        }
        let target = to.to_str().ok_or_else(|| StoreError::Refused("the backup path is not valid UTF-8".into()))?;
        self.audit(actor, "store.backup", target, "a consistent copy of the whole store").await?;
        // One statement, one read transaction: the copy is consistent while ingest goes on.
        sqlx::query("VACUUM INTO ?").bind(target).execute(&self.pool).await?;
        // The copy's own checkpoint, sealed under the site's key, travels with it.
        let copy = SqlitePool::connect_with(SqliteConnectOptions::new().filename(to).read_only(true)).await?;
        let copied_head = head(&copy).await;
        copy.close().await;
        if let Some((id, hash)) = copied_head? {
            Checkpoint::seal(&self.seal.key, id, hash, self.clock.now())
                .write(&audit::checkpoint::path_for_backup(to))
                .map_err(|e| StoreError::Refused(format!("the backup's audit checkpoint: {e}")))?;
        }
        Ok(())
    }
}
