//! Roles and the one permissions table every facade action is checked against.
//!
//! Invariant: [`Action::roles`] is the only place that says who may do what; both faces reach it
//! through the facade, and `docs/permissions.md` is generated from it (a test keeps them equal).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// What an account may do; an account may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, TS, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[ts(export, rename_all = "snake_case")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Acknowledges and silences alarms, records consent, registers patients.
    Clinician,
    /// Devices, credentials, pairing, quarantine.
    Biomed,
    /// Everything: settings, rules, profiles, accounts.
    Admin,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Clinician, Role::Biomed, Role::Admin];

    /// Its name, as the CLI and the store write it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Clinician => "clinician",
            Role::Biomed => "biomed",
            Role::Admin => "admin",
        }
    }

    /// The role of that name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name.trim())
    }
}

/// Every action of the facade that is checked against the roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Views: board, live values, trends, alarms, devices, quarantine, outbox, the audit list.
    View,
    /// Acknowledge an alarm.
    AckAlarm,
    /// Silence an alarm's escalation.
    SilenceAlarm,
    /// Record or withdraw a patient's consent.
    RecordConsent,
    /// Register a patient, or verify one at the EHR.
    RegisterPatient,
    /// Submit a clinical event by hand.
    SubmitEvent,
    /// Register a device or flag it as sending demo data.
    RegisterDevice,
    /// Pair or unpair a device with a patient (back-dating included).
    PairDevice,
    /// Add, rotate or revoke a device credential.
    ManageCredentials,
    /// Release or discard a quarantined reading.
    ResolveQuarantine,
    /// Store readings held for want of consent.
    ReleaseHeld,
    /// Put a dead or held event back in the outbox queue.
    Requeue,
    /// Import a patient and device registry.
    ImportRegistry,
    /// Change settings: the EHR, the endpoints, rules, profiles.
    ChangeSettings,
    /// Create accounts, change their roles and passwords.
    ManageAccounts,
    /// Copy the whole store.
    Backup,
    /// Export the audit trail.
    ExportAudit,
}

impl Action {
    /// Every action, in the order the permissions table lists them.
    pub const ALL: [Action; 17] = [
        Action::View,
        Action::AckAlarm,
        Action::SilenceAlarm,
        Action::RecordConsent,
        Action::RegisterPatient,
        Action::SubmitEvent,
        Action::RegisterDevice,
        Action::PairDevice,
        Action::ManageCredentials,
        Action::ResolveQuarantine,
        Action::ReleaseHeld,
        Action::Requeue,
        Action::ImportRegistry,
        Action::ChangeSettings,
        Action::ManageAccounts,
        Action::Backup,
        Action::ExportAudit,
    ];

    /// The roles that may do it. Admin may do everything; an action listed for no other role is
    /// admin-only.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::View => &[Viewer, Clinician, Biomed, Admin],
            Action::AckAlarm | Action::SilenceAlarm | Action::RecordConsent | Action::SubmitEvent => {
                &[Clinician, Admin]
            }
            Action::RegisterPatient => &[Clinician, Biomed, Admin],
            Action::RegisterDevice
            | Action::PairDevice
            | Action::ManageCredentials
            | Action::ResolveQuarantine
            | Action::ReleaseHeld
            | Action::Requeue => &[Biomed, Admin],
            Action::ImportRegistry
            | Action::ChangeSettings
            | Action::ManageAccounts
            | Action::Backup
            | Action::ExportAudit => &[Admin],
        }
    }

    /// What it is, as a refusal and the permissions table say it.
    pub fn describe(self) -> &'static str {
        match self {
            Action::View => {
                "view the board, live values, trends, alarms, devices, quarantine, the outbox and the audit list"
            }
            Action::AckAlarm => "acknowledge an alarm",
            Action::SilenceAlarm => "silence an alarm's escalation",
            Action::RecordConsent => "record or withdraw a patient's consent",
            Action::RegisterPatient => "register a patient, or verify one at the EHR",
            Action::SubmitEvent => "submit a clinical event by hand",
            Action::RegisterDevice => "register a device, or flag it as sending demo data",
            Action::PairDevice => "pair or unpair a device with a patient, back-dated included",
            Action::ManageCredentials => "add, rotate or revoke a device credential",
            Action::ResolveQuarantine => "release or discard a quarantined reading",
            Action::ReleaseHeld => "store readings held for want of consent",
            Action::Requeue => "put a dead or held event back in the outbox queue",
            Action::ImportRegistry => "import a patient and device registry",
            Action::ChangeSettings => {
                "change settings (the EHR address and credentials, the endpoints, rules, profiles)"
            }
            Action::ManageAccounts => "create accounts, or change their roles and passwords",
            Action::Backup => "copy the whole store (vigil backup)",
            Action::ExportAudit => "export the audit trail (vigil audit export)",
        }
    }

    /// Where each face offers it.
    fn faces(self) -> &'static str {
        match self {
            Action::View => "every view; `vigil show`, `vigil audit list`",
            Action::AckAlarm => "Alarms; `vigil ack`",
            Action::SilenceAlarm => "Alarms; `vigil silence`",
            Action::RecordConsent => "Devices & pairing; `vigil consent`",
            Action::RegisterPatient => "Devices & pairing (verify); `vigil patient`",
            Action::SubmitEvent => "`vigil event`",
            Action::RegisterDevice => "Devices & pairing; `vigil devices --register`, `vigil device-demo`",
            Action::PairDevice => "Devices & pairing; `vigil pair`, `vigil unpair`",
            Action::ManageCredentials => "`vigil credentials`",
            Action::ResolveQuarantine => "Quarantine; `vigil release`, `vigil discard`",
            Action::ReleaseHeld => "Devices & pairing; `vigil release-held`",
            Action::Requeue => "Outbox; `vigil requeue`",
            Action::ImportRegistry => "`vigil import-registry`",
            Action::ChangeSettings => "Settings (a reason is required)",
            Action::ManageAccounts => "`vigil accounts add`, `vigil accounts roles`, `vigil accounts password`",
            Action::Backup => "`vigil backup`",
            Action::ExportAudit => "`vigil audit export`",
        }
    }
}

/// The permissions table as Markdown (`docs/permissions.md`).
pub fn permissions_markdown() -> String {
    let mut out = String::from(
        "# Who may do what\n\n<!-- Generated by `vigil accounts permissions`; a test keeps it equal to the code. -->\n\n\
         Every action is checked in the facade (`pipeline-core/src/api`), so the console and the CLI refuse \
         the same things. A refusal is an error with code `forbidden` (exit code 6 on the CLI) and is audited \
         as `access.refused`. An action not listed here is admin-only. Break-glass sessions hold `admin` \
         for one hour.\n\n| Action | Where | viewer | clinician | biomed | admin |\n|---|---|---|---|---|---|\n",
    );
    for action in Action::ALL {
        let mark = |r: Role| if action.roles().contains(&r) { "yes" } else { "" };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            action.describe(),
            action.faces(),
            mark(Role::Viewer),
            mark(Role::Clinician),
            mark(Role::Biomed),
            mark(Role::Admin)
        ));
    }
    out.push_str(
        "\nSigning in needs no role. Also admin-only, and each needs a reason: changing the EHR's address \
         or credentials, and opening an endpoint (MQTT, MLLP, status) beyond loopback.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_may_do_everything_and_viewer_only_view() {
        for action in Action::ALL {
            assert!(action.roles().contains(&Role::Admin), "{action:?}");
            assert_eq!(action.roles().contains(&Role::Viewer), action == Action::View, "{action:?}");
        }
    }

    #[test]
    fn the_docs_table_is_the_code_table() {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/permissions.md")).unwrap();
        assert_eq!(docs, permissions_markdown(), "run `vigil accounts permissions > docs/permissions.md`");
    }
}
