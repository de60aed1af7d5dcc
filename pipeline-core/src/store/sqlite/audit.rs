//! The audit chain's rows in SQLite; the chain itself (hashing, verification) is [`crate::audit`].

use super::*;
use crate::audit::{self, ChainLink, GENESIS};

/// Appends one entry to the audit chain inside the caller's transaction, so the entry commits or
/// rolls back with the change it records.
pub(super) async fn append_audit(
    conn: &mut SqliteConnection,
    at: DateTime<Utc>,
    [actor, action, subject, detail]: [&str; 4],
) -> Result<(), StoreError> {
    let prev: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or_else(|| GENESIS.to_vec());
    let at = millis(at);
    let hash = audit::link(&prev, at, [actor, action, subject, detail]);
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
        append_audit(&mut tx, self.clock.now(), [actor, action, subject, detail]).await?;
        tx.commit().await?;
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
        let chain: Vec<ChainLink> =
            sqlx::query("SELECT id, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY id")
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|r| ChainLink {
                    id: r.get(0),
                    at_millis: r.get(1),
                    parts: [r.get(2), r.get(3), r.get(4), r.get(5)],
                    prev_hash: r.get(6),
                    hash: r.get(7),
                })
                .collect();
        Ok(audit::verify(&chain))
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

    async fn backup(&self, to: &std::path::Path, actor: &str) -> Result<(), StoreError> {
        if to.exists() {
            return Err(StoreError::Refused(format!("{} exists: name a new file for the backup", to.display())));
        }
        let target = to.to_str().ok_or_else(|| StoreError::Refused("the backup path is not valid UTF-8".into()))?;
        self.audit(actor, "store.backup", target, "a consistent copy of the whole store").await?;
        // One statement, one read transaction: the copy is consistent while ingest goes on.
        sqlx::query("VACUUM INTO ?").bind(target).execute(&self.pool).await?;
        Ok(())
    }
}
