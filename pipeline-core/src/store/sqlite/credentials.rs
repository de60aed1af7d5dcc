//! Device credentials: hashes only, every change audited in its own transaction.

use super::*;
use crate::access::{Credential, DeviceAcl};

fn hash_of(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Refused("a stored credential hash is not 32 bytes".into()))
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn credential_key(&self) -> Result<[u8; 32], StoreError> {
        if let Some(key) = sqlx::query_scalar::<_, Vec<u8>>("SELECT key FROM credential_key WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
        {
            return hash_of(key);
        }
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO credential_key (id, key) VALUES (1, ?) ON CONFLICT (id) DO NOTHING")
            .bind(crate::access::new_key().to_vec())
            .execute(&mut *tx)
            .await?;
        let key: Vec<u8> =
            sqlx::query_scalar("SELECT key FROM credential_key WHERE id = 1").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        hash_of(key)
    }

    async fn credentials_generation(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(SUM(version), 0) FROM credentials").fetch_one(&self.pool).await?)
    }

    async fn credentials(&self) -> Result<Vec<Credential>, StoreError> {
        let rows = sqlx::query(
            "SELECT username, secret_hash, allowed, created_at, rotated_at, revoked_at FROM credentials ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let patterns: Vec<String> = serde_json::from_str(r.get::<&str, _>(2))
                    .map_err(|e| StoreError::Refused(format!("a stored access list does not parse: {e}")))?;
                Ok(Credential {
                    username: r.get(0),
                    secret_hash: hash_of(r.get(1))?,
                    allowed: DeviceAcl::parse(&patterns).map_err(StoreError::Refused)?,
                    created_at: from_millis(r.get(3)),
                    rotated_at: r.get::<Option<i64>, _>(4).map(from_millis),
                    revoked_at: r.get::<Option<i64>, _>(5).map(from_millis),
                })
            })
            .collect()
    }

    async fn add_credential(
        &self,
        username: &str,
        secret_hash: &[u8; 32],
        allowed: &DeviceAcl,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let patterns = serde_json::to_string(allowed.patterns()).unwrap_or_else(|_| "[]".into());
        let added = sqlx::query(
            "INSERT INTO credentials (username, secret_hash, allowed, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(secret_hash.to_vec())
        .bind(&patterns)
        .bind(millis(self.clock.now()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 0 {
            return Err(StoreError::Refused(format!(
                "a credential named {username:?} exists (rotate its secret, or revoke it and choose another name)"
            )));
        }
        append_audit(
            &mut tx,
            self.clock.now(),
            [actor, "credential.add", username, &format!("may publish for {allowed}")],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
        Ok(())
    }

    async fn rotate_credential(&self, username: &str, secret_hash: &[u8; 32], actor: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE credentials SET secret_hash = ?, rotated_at = ?, version = version + 1
             WHERE username = ? AND revoked_at IS NULL",
        )
        .bind(secret_hash.to_vec())
        .bind(millis(self.clock.now()))
        .bind(username)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let audit = [actor, "credential.rotate", username, "new secret; live sessions closed"];
        self.finish_change(tx, changed, audit).await
    }

    async fn revoke_credential(&self, username: &str, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE credentials SET revoked_at = ?, version = version + 1 WHERE username = ? AND revoked_at IS NULL",
        )
        .bind(millis(self.clock.now()))
        .bind(username)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        self.finish_change(tx, changed, [actor, "credential.revoke", username, "revoked; live sessions closed"]).await
    }
}

impl SqliteStore {
    /// Ends a change to a live credential: refused when none changed, else audited and committed.
    async fn finish_change(
        &self,
        mut tx: sqlx::Transaction<'static, Sqlite>,
        changed: u64,
        audit: [&str; 4],
    ) -> Result<(), StoreError> {
        if changed == 0 {
            return Err(StoreError::Refused(format!("no live credential is named {:?}", audit[2])));
        }
        append_audit(&mut tx, self.clock.now(), audit, &self.seal.key).await?;
        self.commit_audited(tx).await?;
        Ok(())
    }
}
