//! Degradation modes: defined once, here, with the words clinicians read. The console, `vigil status`
//! and `docs/degradation-modes.md` all render this list; a test fails when the document is out of
//! date.

use serde::Serialize;
use ts_rs::TS;

use super::{ComponentHealth, HealthState};
use crate::model::alarm::Priority;

/// How bad a mode is for patient care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Care goes on safely; something is delayed.
    Warning,
    /// Something clinicians rely on is not working.
    Critical,
}

/// One degradation mode.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct DegradationMode {
    /// Stable id.
    pub id: &'static str,
    /// Short title for a banner.
    pub title: &'static str,
    /// How bad.
    pub severity: Severity,
    /// The component whose state triggers it.
    pub component: &'static str,
    /// Only while the component's reason starts so: a component with several modes (the EHR
    /// failing, or refusing Vigil's configuration) names which one.
    #[serde(skip)]
    #[ts(skip)]
    pub reason_starts: Option<&'static str>,
    /// What is off, in plain words.
    pub what_is_off: &'static str,
    /// What still works.
    pub what_still_works: &'static str,
    /// What clinicians should do.
    pub what_to_do: &'static str,
    /// Whom to call.
    pub whom_to_call: &'static str,
    /// The priority of the technical alarm raised while the mode lasts.
    pub alarm_priority: Priority,
}

/// How the `ehr` component's reason starts while the EHR refuses Vigil's configuration.
pub const EHR_CONFIGURATION: &str = "configuration refused: ";

/// How the `mqtt-access` component's reason starts while anonymous clients are let in.
pub const ANONYMOUS_ALLOWED: &str = "anonymous clients allowed";
/// How the `mqtt-access` component's reason starts while no device credential exists.
pub const NO_DEVICE_CREDENTIALS: &str = "no device credential";

/// Every mode Vigil knows. A mode is active while its component is not up (down, degraded or stale).
pub const MODES: &[DegradationMode] = &[
    DegradationMode {
        id: "ehr_sync_paused",
        title: "EHR sync paused",
        severity: Severity::Warning,
        component: "ehr",
        reason_starts: None,
        what_is_off: "Vital signs and reports are not reaching the patient chart in the EHR right now.",
        what_still_works: "Device monitoring, this console and local storage go on. Every event is kept, \
                           in order, and sent automatically when the EHR answers again; nothing is lost.",
        what_to_do: "Where your policy requires it, chart critical values by hand. Do not re-enter values \
                     that Vigil will send later without checking the chart first.",
        whom_to_call: "Clinical engineering on call, and the EHR interface team.",
        alarm_priority: Priority::Low,
    },
    DegradationMode {
        id: "ehr_configuration_fault",
        title: "EHR refuses Vigil's configuration",
        severity: Severity::Warning,
        component: "ehr",
        reason_starts: Some(EHR_CONFIGURATION),
        what_is_off: "The EHR refuses Vigil itself (its credentials, its permissions, or the address it \
                      sends to), so clinical events wait in the outbox. None is discarded.",
        what_still_works: "Monitoring, alarms and paging are unaffected. Everything waiting is sent, in \
                           order, once the configuration is fixed.",
        what_to_do: "Chart manually from the bedside monitors if the EHR needs current values.",
        whom_to_call: "The EHR integration team, or whoever manages Vigil's EHR credentials (Settings).",
        alarm_priority: Priority::Low,
    },
    DegradationMode {
        id: "ehr_insecure_transport",
        title: "EHR link not encrypted",
        severity: Severity::Warning,
        component: "ehr-transport",
        reason_starts: None,
        what_is_off: "Clinical events go to the EHR over plain http (ehr.allow_insecure_ehr = true): \
                      patient data crosses the network unencrypted.",
        what_still_works: "Everything works as usual.",
        what_to_do: "Nothing at the bedside.",
        whom_to_call: "The EHR integration team: switch the EHR address to https.",
        alarm_priority: Priority::Low,
    },
    DegradationMode {
        id: "mqtt_ingest_down",
        title: "Device data not arriving",
        severity: Severity::Critical,
        component: "mqtt",
        reason_starts: None,
        what_is_off: "No new data is received from network devices (MQTT). Live values on this console \
                      stop updating and show their age.",
        what_still_works: "Devices keep measuring and show values and alarms at the bedside. Data already \
                           received is safe; devices resend what was not acknowledged.",
        what_to_do: "Watch patients at the bedside monitors. Do not rely on this console for current \
                     values until the banner clears.",
        whom_to_call: "Clinical engineering on call, and the network team.",
        alarm_priority: Priority::Medium,
    },
    DegradationMode {
        id: "mllp_ingest_down",
        title: "Gateway data not arriving",
        severity: Severity::Critical,
        component: "mllp",
        reason_starts: None,
        what_is_off: "No new data is received from device gateways (HL7 v2 over MLLP). Live values of the \
                      monitors behind them stop updating and show their age.",
        what_still_works: "Monitors keep measuring and show values and alarms at the bedside. Gateways keep what \
                           Vigil has not acknowledged and send it again. Devices that send over MQTT still arrive.",
        what_to_do: "Watch patients at the bedside monitors. Do not rely on this console for the values of \
                     gateway-connected monitors until the banner clears.",
        whom_to_call: "Clinical engineering on call, and the network team.",
        alarm_priority: Priority::Medium,
    },
    DegradationMode {
        id: "device_auth_failures",
        title: "Repeated refused device logins",
        severity: Severity::Warning,
        component: "mqtt-auth",
        reason_starts: None,
        what_is_off: "An address keeps connecting to the device port with wrong or missing credentials; \
                      it is refused outright for the rest of each minute.",
        what_still_works: "Devices with valid credentials connect and send as usual; alarms are unaffected.",
        what_to_do: "Nothing at the bedside.",
        whom_to_call: "Clinical engineering and IT security: a misconfigured device, or someone probing the \
                       device network (the audit log names the address).",
        alarm_priority: Priority::Low,
    },
    DegradationMode {
        id: "mqtt_anonymous_allowed",
        title: "Devices connect without credentials",
        severity: Severity::Warning,
        component: "mqtt-access",
        reason_starts: Some(ANONYMOUS_ALLOWED),
        what_is_off: "The device port lets in clients without credentials ([sources.mqtt] \
                      allow_anonymous = true): anyone who reaches it can send readings for any device.",
        what_still_works: "Everything works; readings are checked against pairings as usual.",
        what_to_do: "Nothing at the bedside.",
        whom_to_call: "Clinical engineering: give each device a credential (vigil credentials add) and \
                       turn allow_anonymous off.",
        alarm_priority: Priority::Low,
    },
    DegradationMode {
        id: "no_device_credentials",
        title: "No device can log in",
        severity: Severity::Warning,
        component: "mqtt-access",
        reason_starts: Some(NO_DEVICE_CREDENTIALS),
        what_is_off: "No device credential exists, so the device port refuses every device.",
        what_still_works: "Data from an external broker, if one is used, and everything already received.",
        what_to_do: "Watch patients at the bedside monitors until devices are connected.",
        whom_to_call: "Clinical engineering: create the devices' credentials (vigil credentials add).",
        alarm_priority: Priority::Low,
    },
    DegradationMode {
        id: "mqtt_certificate_expiring",
        title: "Device port certificate expiring",
        severity: Severity::Warning,
        component: "mqtt-certificate",
        reason_starts: None,
        what_is_off: "The device port's TLS certificate expires within 30 days (or has expired); then \
                      devices refuse to connect.",
        what_still_works: "Everything, until the certificate expires.",
        what_to_do: "Nothing at the bedside.",
        whom_to_call: "Clinical engineering or IT: renew the certificate ([broker] tls_cert_file) and \
                       restart Vigil.",
        alarm_priority: Priority::Low,
    },
    DegradationMode {
        id: "store_failing",
        title: "Storage failing",
        severity: Severity::Critical,
        component: "store",
        reason_starts: None,
        what_is_off: "New device data cannot be saved. Alarm rules still see what arrives, but each \
                      device is told to wait once its small buffer of unsaved data is full, and from \
                      then on its alarms stop here. Live values stop updating and nothing new goes to \
                      the EHR.",
        what_still_works: "Devices keep their data and resend it when storage works again; nothing \
                           acknowledged is lost. Bedside monitors and their alarms are unaffected.",
        what_to_do: "Watch patients at the bedside monitors.",
        whom_to_call: "Clinical engineering on call, at once (disk space or the database of this workstation).",
        alarm_priority: Priority::High,
    },
    DegradationMode {
        id: "alert_webhook_down",
        title: "Paging webhook failing",
        severity: Severity::Critical,
        component: "alert-webhook",
        reason_starts: None,
        what_is_off: "Alarms are not reaching nurse call or paging through the webhook.",
        what_still_works: "Alarms are still recorded and shown on this console, and sent on the MQTT alert \
                           topic if one is configured. Bedside monitors alarm as usual.",
        what_to_do: "Watch this console's alarm list and the bedside monitors; do not rely on pagers.",
        whom_to_call: "Clinical engineering on call, and the nurse-call / paging system owner.",
        alarm_priority: Priority::Medium,
    },
    DegradationMode {
        id: "alert_technical_webhook_down",
        title: "Biomed pager failing",
        severity: Severity::Warning,
        component: "alert-technical-webhook",
        reason_starts: None,
        what_is_off: "Technical alarms (an EHR fault, an unknown device, storage failing) are not reaching \
                      biomed / IT through their webhook.",
        what_still_works: "Patients' alarms page the ward as usual; every alarm is recorded and shown on \
                           this console.",
        what_to_do: "Nothing at the bedside. Biomed: watch this console's board and alarm list.",
        whom_to_call: "Clinical engineering, and the owner of the biomed paging system.",
        alarm_priority: Priority::Medium,
    },
    DegradationMode {
        id: "alert_mqtt_down",
        title: "MQTT alert topic down",
        severity: Severity::Warning,
        component: "alert-mqtt",
        reason_starts: None,
        what_is_off: "Alarms are not published on the MQTT alert topic (displays and integrations listening \
                      there miss them).",
        what_still_works: "Alarms are recorded, shown on this console and sent to the paging webhook if \
                           one is configured.",
        what_to_do: "Use this console or the pagers for alarms until the banner clears.",
        whom_to_call: "Clinical engineering on call, and the network team.",
        alarm_priority: Priority::Low,
    },
    DegradationMode {
        id: "alert_circuit_down",
        title: "Alarm path stopped",
        severity: Severity::Critical,
        component: "alerts",
        reason_starts: None,
        what_is_off: "The alarm path has stopped: new alarms are recorded but nobody is paged.",
        what_still_works: "Bedside monitors alarm as usual; this console still records alarms.",
        what_to_do: "Watch patients at the bedside monitors and this console's alarm list.",
        whom_to_call: "Clinical engineering on call, immediately.",
        alarm_priority: Priority::High,
    },
    DegradationMode {
        id: "supervisor_down",
        title: "Health supervisor stopped",
        severity: Severity::Critical,
        component: "supervisor",
        reason_starts: None,
        what_is_off: "The supervisor that watches every part of Vigil has stopped: new failures may not \
                      raise a banner or a technical alarm.",
        what_still_works: "Device data, alarms and pages go on; the alert circuit has paged this.",
        what_to_do: "Do not trust an all-clear on this console until the banner clears; watch the bedside \
                     monitors.",
        whom_to_call: "Clinical engineering on call, immediately.",
        alarm_priority: Priority::High,
    },
    DegradationMode {
        id: "workstation_clock_unsynced",
        title: "Workstation clock not synchronised",
        severity: Severity::Warning,
        component: "workstation-clock",
        reason_starts: None,
        what_is_off: "This workstation's clock is not NTP-synchronised, or the system cannot tell. Times \
                      stamped on records may be off, and device clocks are judged against it.",
        what_still_works: "Monitoring, alarms and their deadlines go on: deadlines run on a clock that \
                           a wrong time of day cannot move.",
        what_to_do: "Check times against a wall clock before relying on them for charting.",
        whom_to_call: "IT (time service / NTP) and clinical engineering on call.",
        alarm_priority: Priority::Low,
    },
    DegradationMode {
        id: "alarm_rules_stopped",
        title: "Alarm rules stopped",
        severity: Severity::Critical,
        component: "rules",
        reason_starts: None,
        what_is_off: "Vigil is not evaluating device data for alarms or clinical events: no remote \
                      alarm is raised from now on.",
        what_still_works: "Devices still alarm at the bedside. Data is still received and stored.",
        what_to_do: "Watch patients at the bedside monitors and rely on their own alarms until the \
                     banner clears.",
        whom_to_call: "Clinical engineering on call, at once.",
        alarm_priority: Priority::High,
    },
    DegradationMode {
        id: "no_alert_sink",
        title: "No alert sink configured",
        severity: Severity::Warning,
        component: "alert-sinks",
        reason_starts: None,
        what_is_off: "Alarms are not sent to any nurse call, pager or alert topic: nobody is paged \
                      remotely. They are recorded and shown on this console only.",
        what_still_works: "Alarm rules run; alarms appear here and at the bedside devices.",
        what_to_do: "Keep this console watched, or rely on the bedside alarms, until a sink is set up.",
        whom_to_call: "Clinical engineering, to configure the alert sinks ([alerts] in vigil.toml).",
        alarm_priority: Priority::Low,
    },
    DegradationMode {
        id: "alarm_recording_stopped",
        title: "Alarms not being recorded",
        severity: Severity::Critical,
        component: "rules-recorder",
        reason_starts: None,
        what_is_off: "New alarms still page, but they are not written to this console's alarm list, \
                      and clinical events from the rules are not queued for the EHR.",
        what_still_works: "Alarm rules run and page the configured sinks; devices alarm at the bedside.",
        what_to_do: "Rely on pages and bedside alarms; do not take an empty alarm list as all clear.",
        whom_to_call: "Clinical engineering on call.",
        alarm_priority: Priority::High,
    },
    DegradationMode {
        id: "alert_queue_not_durable",
        title: "Alert queue not durable",
        severity: Severity::Critical,
        component: "alert-queue",
        reason_starts: None,
        what_is_off: "Pages waiting to be delivered or escalated are kept in memory only: if Vigil \
                      restarts now, pages owed and pending escalations are lost.",
        what_still_works: "Alarms are paged and escalated as usual while Vigil keeps running.",
        what_to_do: "Watch this console's alarm list and the bedside monitors; do not restart Vigil \
                     unless asked to.",
        whom_to_call: "Clinical engineering on call (the alert queue file beside the database).",
        alarm_priority: Priority::High,
    },
    DegradationMode {
        id: "alert_queue_full",
        title: "Alert queue full",
        severity: Severity::Warning,
        component: "alert-queue-space",
        reason_starts: None,
        what_is_off: "So many pages are waiting (a paging system down?) that new ones are kept in \
                      memory only: a restart now would lose them.",
        what_still_works: "Alarms are paged and escalated as usual while Vigil keeps running.",
        what_to_do: "Watch this console's alarm list; do not restart Vigil unless asked to.",
        whom_to_call: "Clinical engineering on call, and the paging system's owner.",
        alarm_priority: Priority::Medium,
    },
    DegradationMode {
        id: "retention_stalled",
        title: "Old telemetry not being removed",
        severity: Severity::Warning,
        component: "retention",
        reason_starts: None,
        what_is_off: "Raw telemetry past its retention period is not being purged, so the disk fills \
                      faster than planned.",
        what_still_works: "Monitoring, alarms, storage and EHR delivery go on.",
        what_to_do: "Nothing at the bedside.",
        whom_to_call: "Clinical engineering, during working hours.",
        alarm_priority: Priority::Low,
    },
];

/// The modes active on this board, most severe first.
pub fn active(board: &[ComponentHealth]) -> Vec<&'static DegradationMode> {
    // A component with several modes shows the one its reason names, else its general one.
    let applies = |m: &DegradationMode, c: &ComponentHealth| match m.reason_starts {
        Some(prefix) => c.reason.starts_with(prefix),
        None => !MODES
            .iter()
            .any(|o| o.component == c.name && o.reason_starts.is_some_and(|prefix| c.reason.starts_with(prefix))),
    };
    // In the order of MODES (the documented one), critical first.
    let mut out: Vec<&'static DegradationMode> = MODES
        .iter()
        .filter(|m| board.iter().any(|c| c.name == m.component && c.state != HealthState::Up && applies(m, c)))
        .collect();
    out.sort_by_key(|m| m.severity != Severity::Critical);
    out
}

/// `docs/degradation-modes.md`, rendered from [`MODES`].
pub fn render_markdown() -> String {
    let mut out = String::from(
        "# Degradation modes\n\n\
         Generated from `pipeline-core/src/health/modes.rs` by `vigil degradation-modes`; do not edit by hand\n\
         (a test fails when this file and the code disagree).\n\n\
         A mode is active while its component is down, degraded or stale (silent for three heartbeat\n\
         intervals). The console shows active modes in a banner; `vigil status` lists them. Each mode that\n\
         lasts 5 s also raises a technical alarm (the supervisor raises it; the alert circuit raises the\n\
         supervisor's own). Consent is kept in Vigil's store, so \"consent source unavailable\" is\n\
         \"Storage failing\".\n",
    );
    for m in MODES {
        let severity = match m.severity {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        };
        let trigger = match m.reason_starts {
            Some(prefix) => format!("component `{}` not up, its reason starting \"{}\"", m.component, prefix.trim()),
            None => format!("component `{}` not up", m.component),
        };
        out.push_str(&format!(
            "\n## {} (`{}`)\n\n- **Severity:** {severity}\n- **Triggered by:** {trigger}\n\
             - **Technical alarm:** {} priority\n\
             - **What is off:** {}\n- **What still works:** {}\n- **What to do:** {}\n- **Whom to call:** {}\n",
            m.title,
            m.id,
            m.alarm_priority.as_str(),
            m.what_is_off,
            m.what_still_works,
            m.what_to_do,
            m.whom_to_call
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_matches_the_registry() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/degradation-modes.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == render_markdown(),
            "docs/degradation-modes.md is out of date: run `vigil degradation-modes > docs/degradation-modes.md`"
        );
    }

    #[test]
    fn a_component_not_up_activates_its_mode_critical_first() {
        let row = |name: &str, state| ComponentHealth {
            name: name.into(),
            state,
            reason: String::new(),
            last_beat: chrono::Utc::now(),
        };
        let board = [row("ehr", HealthState::Degraded), row("mqtt", HealthState::Stale), row("store", HealthState::Up)];
        let ids: Vec<&str> = active(&board).iter().map(|m| m.id).collect();
        assert_eq!(ids, ["mqtt_ingest_down", "ehr_sync_paused"]);
        assert!(active(&[row("ehr", HealthState::Up)]).is_empty());
        // A component with several modes: its reason says which.
        let refused = ComponentHealth {
            reason: format!("{EHR_CONFIGURATION}HTTP 401: HTTP 401 Unauthorized without an OperationOutcome"),
            ..row("ehr", HealthState::Down)
        };
        assert_eq!(active(&[refused]).iter().map(|m| m.id).collect::<Vec<_>>(), ["ehr_configuration_fault"]);
    }
}
