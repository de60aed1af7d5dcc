//! Signing in, accounts, session tokens, break-glass, and the role check every action passes.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::{Admin, reason};
use crate::accounts::{
    self, AccountView, Action, DEMO_ACCOUNT, Role, SessionKind, SessionRecord, check_name, check_password,
};
use crate::api::actor::{Actor, SignedInBy};
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::model::alarm::Priority;

/// How long a break-glass session lasts.
pub const BREAK_GLASS_MINUTES: i64 = 60;

/// The longest a script's token lives.
pub const MAX_TOKEN_HOURS: i64 = 24 * 30;

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidInput, message)
}

impl Admin {
    /// Refuses, and audits, an action the actor's roles do not allow.
    pub(crate) async fn permit(&self, actor: &Actor, action: Action) -> ApiResult<()> {
        if actor.may(action) {
            return Ok(());
        }
        let needs = action.roles().iter().map(|r| r.name()).collect::<Vec<_>>().join(" or ");
        let detail = format!("holds {}; needs {needs}", actor.roles_text());
        if let Err(e) = self.store.audit(actor.name(), "access.refused", action.describe(), &detail).await {
            tracing::error!(error = %e, "could not audit a refused action");
        }
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "{} ({}) may not {}: that needs the {needs} role",
                actor.name(),
                actor.roles_text(),
                action.describe()
            ),
        ))
    }

    /// Signs in with a password; `how` says where (console, cli), for the audit log. Failures count
    /// per account, and after a few the account waits longer before each attempt.
    pub async fn sign_in(&self, name: &str, password: &str, how: &str) -> ApiResult<Actor> {
        let name = name.trim();
        let failed = || ApiError::new(ErrorCode::SignInFailed, "that name and password do not match an account");
        let account = self.store.account(name).await?;
        let now = self.clock.now();
        if let Some(wait) = account.as_ref().and_then(|a| a.retry_after).filter(|at| *at > now) {
            let secs = (wait - now).num_seconds().max(1);
            return Err(ApiError::new(
                ErrorCode::SignInFailed,
                format!("too many failed sign-ins for this account: try again in {secs} s"),
            ));
        }
        let matched = accounts::verify_password(password, account.as_ref().map(|a| a.password_hash.as_str())).await;
        let Some(account) = account else { return Err(failed()) };
        if !matched {
            let wait = accounts::backoff(account.failures + 1)
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| now + d);
            self.store.record_sign_in(&account.name, false, wait, how).await?;
            return Err(failed());
        }
        self.store.record_sign_in(&account.name, true, None, how).await?;
        Ok(Actor::signed_in(&account.name, account.roles, SignedInBy::Password))
    }

    /// The actor a session token stands for: its account's roles as they are now.
    pub async fn actor_for_token(&self, token: &str) -> ApiResult<Actor> {
        let expired = || {
            ApiError::new(
                ErrorCode::Unauthenticated,
                "that token is unknown or has expired: make one with `vigil accounts token`",
            )
        };
        let session = self.store.session(&accounts::token_hash(token)).await?.ok_or_else(expired)?;
        match session.kind {
            SessionKind::BreakGlass => {
                Ok(Actor::signed_in(&session.account, vec![Role::Admin], SignedInBy::BreakGlass))
            }
            SessionKind::Token => {
                let account = self.store.account(&session.account).await?.ok_or_else(expired)?;
                Ok(Actor::signed_in(&account.name, account.roles, SignedInBy::Token))
            }
        }
    }

    /// Whether the site has no account yet (the console then asks for the first administrator).
    pub async fn needs_first_admin(&self) -> ApiResult<bool> {
        Ok(self.store.account_count().await? == 0)
    }

    /// Creates the first administrator; refused once any account exists.
    pub async fn create_first_admin(&self, name: &str, password: &str) -> ApiResult<Actor> {
        let name = name.trim();
        check_name(name).map_err(invalid)?;
        check_password(password).map_err(invalid)?;
        let hash = accounts::hash_password(password).await.map_err(|e| ApiError::new(ErrorCode::Store, e))?;
        self.store.add_account(name, &hash, &[Role::Admin], name, true).await?;
        Ok(Actor::signed_in(name, vec![Role::Admin], SignedInBy::Password))
    }

    /// The demo site's built-in administrator, made on first use; its password is its name.
    pub async fn demo_actor(&self) -> ApiResult<Actor> {
        if !self.config.site.demo {
            return Err(ApiError::new(ErrorCode::Forbidden, "only the demo site has a built-in account"));
        }
        if self.store.account(DEMO_ACCOUNT).await?.is_none() {
            let hash = accounts::hash_password(DEMO_ACCOUNT).await.map_err(|e| ApiError::new(ErrorCode::Store, e))?;
            self.store.add_account(DEMO_ACCOUNT, &hash, &[Role::Admin], "system", false).await?;
        }
        Ok(Actor::signed_in(DEMO_ACCOUNT, vec![Role::Admin], SignedInBy::Demo))
    }

    /// Adds an account with its roles.
    pub async fn add_account(&self, actor: &Actor, name: &str, password: &str, roles: &[Role]) -> ApiResult<()> {
        self.permit(actor, Action::ManageAccounts).await?;
        let name = name.trim();
        check_name(name).map_err(invalid)?;
        check_password(password).map_err(invalid)?;
        if roles.is_empty() {
            return Err(invalid("give the account at least one role".into()));
        }
        let hash = accounts::hash_password(password).await.map_err(|e| ApiError::new(ErrorCode::Store, e))?;
        Ok(self.store.add_account(name, &hash, roles, actor.name(), false).await?)
    }

    /// Replaces an account's roles.
    pub async fn set_roles(&self, actor: &Actor, name: &str, roles: &[Role]) -> ApiResult<()> {
        self.permit(actor, Action::ManageAccounts).await?;
        Ok(self.store.set_roles(name.trim(), roles, actor.name()).await?)
    }

    /// Sets an account's password: one's own, or anyone's for an administrator.
    pub async fn set_password(&self, actor: &Actor, name: &str, password: &str) -> ApiResult<()> {
        if name.trim() != actor.name() {
            self.permit(actor, Action::ManageAccounts).await?;
        }
        check_password(password).map_err(invalid)?;
        let hash = accounts::hash_password(password).await.map_err(|e| ApiError::new(ErrorCode::Store, e))?;
        Ok(self.store.set_password(name.trim(), &hash, actor.name()).await?)
    }

    /// Every account, without hashes.
    pub async fn accounts(&self, actor: &Actor) -> ApiResult<Vec<AccountView>> {
        self.permit(actor, Action::ManageAccounts).await?;
        Ok(self.store.accounts().await?.iter().map(AccountView::from).collect())
    }

    /// A token for scripts, valid for `hours`, standing for the actor's account; shown once.
    pub async fn issue_token(&self, actor: &Actor, hours: i64) -> ApiResult<(String, DateTime<Utc>)> {
        if !(1..=MAX_TOKEN_HOURS).contains(&hours) {
            return Err(invalid(format!("a token lives 1 to {MAX_TOKEN_HOURS} hours, not {hours}")));
        }
        if actor.signed_in_by() == SignedInBy::BreakGlass {
            return Err(ApiError::new(ErrorCode::Forbidden, "a break-glass session cannot make tokens"));
        }
        let (token, hash) = accounts::new_token();
        let expires_at = self.clock.now() + chrono::Duration::hours(hours);
        let session = SessionRecord { account: actor.name().into(), kind: SessionKind::Token, expires_at };
        self.store.open_session(&hash, &session, actor.name(), "for scripts").await?;
        Ok((token, expires_at))
    }

    /// Opens a one-hour admin session for the OS user that owns the site's data directory, raises a
    /// technical alarm so it cannot pass unseen, and audits it with the reason.
    pub async fn break_glass(&self, data_dir: &Path, os_user: &str, why: &str) -> ApiResult<(String, DateTime<Utc>)> {
        let why = reason(why)?;
        let owner = std::fs::metadata(data_dir)
            .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, format!("{}: {e}", data_dir.display())))?
            .uid();
        let me = rustix::process::geteuid().as_raw();
        if owner != me {
            let _ = self.store.audit(os_user, "access.refused", "break-glass", "not the data directory's owner").await;
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "break-glass is for the OS user that owns {} (uid {owner}); this is uid {me}",
                    data_dir.display()
                ),
            ));
        }
        let account = format!("break-glass:{os_user}");
        let (token, hash) = accounts::new_token();
        let now = self.clock.now();
        let expires_at = now + chrono::Duration::minutes(BREAK_GLASS_MINUTES);
        let session = SessionRecord { account: account.clone(), kind: SessionKind::BreakGlass, expires_at };
        self.store.open_session(&hash, &session, &account, why).await?;
        let description =
            format!("Break-glass: OS user {os_user} opened an emergency admin session for one hour: {why}");
        let alarm = crate::alerts::component_alarm("break_glass", "accounts", &description, Priority::Medium, now);
        self.store.raise_alarm(&alarm).await?;
        Ok((token, expires_at))
    }
}
