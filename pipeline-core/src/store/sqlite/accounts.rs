//! Operator accounts and sessions: hashes only, every change audited in its own transaction.

use super::*;
use crate::accounts::{AccountRecord, Role, SessionKind, SessionRecord};

fn roles_text(roles: &[Role]) -> String {
    roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
}

fn account_of(r: &sqlx::sqlite::SqliteRow) -> AccountRecord {
    AccountRecord {
        name: r.get(0),
        password_hash: r.get(1),
        roles: r.get::<&str, _>(2).split(',').filter_map(Role::parse).collect(),
        created_at: from_millis(r.get(3)),
        failures: r.get::<i64, _>(4).max(0) as u32,
        retry_after: r.get::<Option<i64>, _>(5).map(from_millis),
    }
}

const ACCOUNT_COLUMNS: &str = "SELECT name, password_hash, roles, created_at, failures, retry_after FROM accounts";

#[async_trait]
impl AccountStore for SqliteStore {
    async fn account_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&self.pool).await?)
    }

    async fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{ACCOUNT_COLUMNS} WHERE name = ?"));
        Ok(sqlx::query(sql).bind(name).fetch_optional(&self.pool).await?.as_ref().map(account_of))
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{ACCOUNT_COLUMNS} ORDER BY name"));
        Ok(sqlx::query(sql).fetch_all(&self.pool).await?.iter().map(account_of).collect())
    }

    async fn add_account(
        &self,
        name: &str,
        password_hash: &str,
        roles: &[Role],
        actor: &str,
        only_if_none: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        if only_if_none {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&mut *tx).await?;
            if n > 0 {
                return Err(StoreError::Refused("the first administrator exists already: sign in".into()));
            }
        }
        let added = sqlx::query(
            "INSERT INTO accounts (name, password_hash, roles, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(password_hash)
        .bind(roles_text(roles))
        .bind(millis(self.clock.now()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if added == 0 {
            return Err(StoreError::Refused(format!("an account named {name} exists already")));
        }
        let detail = format!("roles {}", roles_text(roles));
        append_audit(&mut tx, self.clock.now(), [actor, "account.add", name, &detail], &self.seal.key).await?;
        self.commit_audited(tx).await
    }

    async fn set_roles(&self, name: &str, roles: &[Role], actor: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query("UPDATE accounts SET roles = ? WHERE name = ?")
            .bind(roles_text(roles))
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::Refused(format!("there is no account named {name}")));
        }
        let detail = format!("roles {}", roles_text(roles));
        append_audit(&mut tx, self.clock.now(), [actor, "account.roles", name, &detail], &self.seal.key).await?;
        self.commit_audited(tx).await
    }

    async fn set_password(&self, name: &str, password_hash: &str, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let changed =
            sqlx::query("UPDATE accounts SET password_hash = ?, failures = 0, retry_after = NULL WHERE name = ?")
                .bind(password_hash)
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed == 0 {
            return Err(StoreError::Refused(format!("there is no account named {name}")));
        }
        append_audit(&mut tx, self.clock.now(), [actor, "account.password", name, ""], &self.seal.key).await?;
        self.commit_audited(tx).await
    }

    async fn record_sign_in(
        &self,
        name: &str,
        ok: bool,
        retry_after: Option<DateTime<Utc>>,
        how: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let sql = if ok {
            "UPDATE accounts SET failures = 0, retry_after = ? WHERE name = ?"
        } else {
            "UPDATE accounts SET failures = failures + 1, retry_after = ? WHERE name = ?"
        };
        sqlx::query(sql).bind(retry_after.map(millis)).bind(name).execute(&mut *tx).await?;
        let action = if ok { "account.sign_in" } else { "account.sign_in_failed" };
        append_audit(&mut tx, self.clock.now(), [name, action, name, how], &self.seal.key).await?;
        self.commit_audited(tx).await
    }

    async fn open_session(
        &self,
        token_hash: &[u8; 32],
        session: &SessionRecord,
        actor: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO sessions (token_hash, account, kind, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&token_hash[..])
            .bind(&session.account)
            .bind(session.kind.as_str())
            .bind(millis(self.clock.now()))
            .bind(millis(session.expires_at))
            .execute(&mut *tx)
            .await?;
        let detail = format!("{} until {}: {reason}", session.kind.as_str(), session.expires_at.to_rfc3339());
        let action = match session.kind {
            SessionKind::Token => "account.token",
            SessionKind::BreakGlass => "account.break_glass",
        };
        append_audit(&mut tx, self.clock.now(), [actor, action, &session.account, &detail], &self.seal.key).await?;
        self.commit_audited(tx).await
    }

    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        let row: Option<(String, String, i64)> =
            sqlx::query_as("SELECT account, kind, expires_at FROM sessions WHERE token_hash = ? AND expires_at > ?")
                .bind(&token_hash[..])
                .bind(millis(self.clock.now()))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(account, kind, expires)| {
            Some(SessionRecord { account, kind: SessionKind::parse(&kind)?, expires_at: from_millis(expires) })
        }))
    }

    async fn config_snapshot(&self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT snapshot FROM config_snapshot WHERE id = 1").fetch_optional(&self.pool).await?)
    }

    async fn save_config_snapshot(&self, snapshot: &str, changes: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO config_snapshot (id, snapshot) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot",
        )
        .bind(snapshot)
        .execute(&mut *tx)
        .await?;
        append_audit(&mut tx, self.clock.now(), ["system", "config.changed", "vigil.toml", changes], &self.seal.key)
            .await?;
        self.commit_audited(tx).await
    }
}
