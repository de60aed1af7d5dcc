//! What both faces list and show: devices, alarms, quarantine, outbox, telemetry, the audit log.

use super::Admin;
use crate::accounts::Action;
use crate::api::actor::Actor;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use chrono::{DateTime, Utc};

use crate::audit::export::{self, Subject};
use crate::audit::{AuditEntry, AuditVerdict};
use crate::store::{
    AlarmEntry, DeviceEntry, HeldEntry, OutboxEntry, OutboxStatus, PairingEntry, QuarantineEntry, ReadingQuery,
    RejectedEntry, StoreCounts, StoredReading,
};

impl Admin {
    /// Registered devices with their current pairing.
    pub async fn devices(&self, actor: &Actor) -> ApiResult<Vec<DeviceEntry>> {
        self.permit(actor, Action::View).await?;
        Ok(self.store.devices().await?)
    }

    /// A device's pairings, past and current, newest first.
    pub async fn pairings_of(&self, actor: &Actor, device_id: &str) -> ApiResult<Vec<PairingEntry>> {
        self.permit(actor, Action::View).await?;
        Ok(self.store.pairings_of(device_id).await?)
    }

    /// Alarms, newest first; only those not cleared when `active_only`.
    pub async fn alarms(&self, actor: &Actor, active_only: bool, limit: u32) -> ApiResult<Vec<AlarmEntry>> {
        self.permit(actor, Action::View).await?;
        Ok(self.store.alarms(active_only, limit).await?)
    }

    /// Quarantined readings still to be resolved, newest first.
    pub async fn quarantine(&self, actor: &Actor, limit: u32) -> ApiResult<Vec<QuarantineEntry>> {
        self.permit(actor, Action::View).await?;
        self.audit_view(actor, "quarantined readings with their raw payloads").await;
        Ok(self.store.quarantine(limit).await?)
    }

    /// Outbox rows, newest first, optionally of one status.
    pub async fn outbox(&self, actor: &Actor, status: Option<OutboxStatus>, limit: u32) -> ApiResult<Vec<OutboxEntry>> {
        self.permit(actor, Action::View).await?;
        Ok(self.store.outbox(status, limit).await?)
    }

    /// Totals over the store.
    pub async fn counts(&self) -> ApiResult<StoreCounts> {
        Ok(self.store.counts().await?)
    }

    /// Telemetry, newest first, of one device when given.
    pub async fn readings(
        &self,
        actor: &Actor,
        device_id: Option<String>,
        limit: u32,
    ) -> ApiResult<Vec<StoredReading>> {
        self.permit(actor, Action::View).await?;
        self.audit_view(actor, "stored telemetry").await;
        let query = ReadingQuery { device_id, limit: Some(limit), ..ReadingQuery::default() };
        Ok(self.store.readings(&query).await?)
    }

    /// Rejected payloads, newest first.
    pub async fn rejected(&self, actor: &Actor, limit: u32) -> ApiResult<Vec<RejectedEntry>> {
        self.permit(actor, Action::View).await?;
        self.audit_view(actor, "rejected payloads, raw").await;
        Ok(self.store.rejected(limit).await?)
    }

    /// Readings held for consent, newest first.
    pub async fn held(&self, actor: &Actor, limit: u32) -> ApiResult<Vec<HeldEntry>> {
        self.permit(actor, Action::View).await?;
        self.audit_view(actor, "readings held for consent").await;
        Ok(self.store.held(limit).await?)
    }

    /// What retention purged of the forensic records, newest first.
    pub async fn purge_summaries(&self, limit: u32) -> ApiResult<Vec<crate::store::PurgeSummary>> {
        Ok(self.store.purge_summaries(limit).await?)
    }

    /// What the sandbox EHR was given, newest first: (outbox id, body).
    pub async fn sandbox(&self, actor: &Actor, limit: u32) -> ApiResult<Vec<(i64, String)>> {
        self.permit(actor, Action::View).await?;
        self.audit_view(actor, "what the sandbox EHR was given").await;
        Ok(self.store.sandbox(limit).await?)
    }

    /// The newest audit entries.
    pub async fn audit_entries(&self, actor: &Actor, limit: u32) -> ApiResult<Vec<AuditEntry>> {
        self.permit(actor, Action::View).await?;
        Ok(self.store.audit_entries(limit).await?)
    }

    /// Recomputes the audit chain; names the first entry that does not match.
    pub async fn verify_audit(&self, actor: &Actor) -> ApiResult<AuditVerdict> {
        self.permit(actor, Action::View).await?;
        Ok(self.store.verify_audit().await?)
    }

    /// The audit entries recorded from `from` to `to` as a FHIR R4 Bundle of AuditEvents (IHE
    /// BALP's codes), for an administrator; the export itself is audited.
    pub async fn export_audit(
        &self,
        actor: &Actor,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> ApiResult<serde_json::Value> {
        self.permit(actor, Action::ExportAudit).await?;
        if from > to {
            return Err(ApiError::new(ErrorCode::InvalidInput, "--from must not be after --to"));
        }
        let mut entries = self.store.audit_entries(u32::MAX).await?;
        entries.retain(|e| e.at >= from && e.at <= to);
        entries.reverse();
        let mut patients = std::collections::HashMap::new();
        for key in entries.iter().filter_map(|e| e.subject.strip_prefix("patient ")?.parse::<i64>().ok()) {
            if let std::collections::hash_map::Entry::Vacant(slot) = patients.entry(key)
                && let Some(p) = self.store.patient(key).await?
            {
                slot.insert((p.system, p.value));
            }
        }
        let detail = format!("{} entries, {} to {}", entries.len(), from.to_rfc3339(), to.to_rfc3339());
        self.store.audit(actor.name(), "audit.export", "audit log", &detail).await?;
        let site = &self.config.identity.organisation;
        Ok(export::bundle(&entries, site, env!("CARGO_PKG_VERSION"), self.clock.now(), |e| {
            let key = e.subject.strip_prefix("patient ").and_then(|k| k.parse::<i64>().ok());
            match key.and_then(|k| patients.get(&k)) {
                Some((system, value)) => Subject::Patient { system: system.clone(), value: value.clone() },
                None if e.action.starts_with("device.") || e.action.starts_with("pairing.") => {
                    Subject::Device(e.subject.clone())
                }
                None => Subject::Other,
            }
        }))
    }

    /// Checks a backup's audit chain against the checkpoint stored with it.
    pub async fn verify_backup(&self, actor: &Actor, copy: &std::path::Path) -> ApiResult<AuditVerdict> {
        self.permit(actor, Action::View).await?;
        Ok(self.store.verify_backup(copy).await?)
    }

    /// Writes a consistent copy of the whole store to a new file while the pipeline runs (audited).
    /// The alert circuit's queue file (pages owed, escalations pending) is copied beside it, as
    /// `<FILE>.alert-queue`.
    pub async fn backup(&self, actor: &Actor, to: &std::path::Path) -> ApiResult<()> {
        self.permit(actor, Action::Backup).await?;
        self.store.backup(to, actor.name()).await?;
        let queue = crate::pipeline::alert_queue_file(&self.config.store.url);
        if queue.exists() {
            let copy = format!("{}.alert-queue", to.display());
            std::fs::copy(&queue, &copy).map_err(|e| {
                ApiError::new(
                    ErrorCode::Store,
                    format!("the store was copied, but not the alert queue {}: {e}", queue.display()),
                )
            })?;
        }
        Ok(())
    }
}
