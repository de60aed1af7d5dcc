//! The SQLite backend against a real database file: dedup, purge, pairing rules, the audit chain,
//! outbox order.

use super::*;
use crate::model::Validity;
use crate::model::codes::metric_by_code;

async fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display()), crate::clock::system()).await.unwrap()
}

fn reading(device: &str, observed_at: DateTime<Utc>) -> Reading {
    Reading {
        device_id: device.into(),
        metric: metric_by_code(150456).unwrap(),
        value: 97.0,
        observed_at,
        patient_hints: Vec::new(),
        validity: Validity::Valid,
    }
}

fn payload(n: u8, received_at: DateTime<Utc>, readings: Vec<Reading>) -> ProcessedPayload {
    let dispositions = readings
        .into_iter()
        .map(|reading| Disposition::Accepted { hash: reading.content_hash(), reading, patient_id: 1 })
        .collect();
    ProcessedPayload {
        source: "mqtt",
        origin: "vigil/devices/OX-1/oximeter".into(),
        received_at,
        payload: bytes::Bytes::from(vec![n]),
        payload_hash: ContentHash([n; 32]),
        profile_id: Some("acme-ox100".into()),
        outcome: PayloadOutcome::Readings(dispositions),
        unmapped: Vec::new(),
        status: Default::default(),
    }
}

#[tokio::test]
async fn dedup_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let batch = vec![payload(1, now, vec![reading("OX-1", now)])];
    let first = store(&dir).await.write_batch(&batch).await.unwrap();
    assert_eq!((first.payloads, first.stored), (1, 1));
    // Reopened: the same payload is a repeat; the same reading inside another payload too.
    let reopened = store(&dir).await;
    let again = reopened.write_batch(&batch).await.unwrap();
    assert_eq!((again.payloads, again.duplicate_payloads, again.stored), (0, 1, 0));
    let other_payload = reopened.write_batch(&[payload(2, now, vec![reading("OX-1", now)])]).await.unwrap();
    assert_eq!((other_payload.payloads, other_payload.duplicate_readings, other_payload.stored), (1, 1, 0));
    let counts = reopened.counts().await.unwrap();
    assert_eq!((counts.payloads, counts.readings, counts.duplicates), (2, 1, 2));
}

#[tokio::test]
async fn repeats_within_one_batch_are_counted_once_stored() {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc::now();
    let p = payload(1, now, vec![reading("OX-1", now), reading("OX-1", now)]);
    let tally = store(&dir).await.write_batch(&[p.clone(), p]).await.unwrap();
    assert_eq!((tally.payloads, tally.duplicate_payloads, tally.stored, tally.duplicate_readings), (1, 1, 1, 1));
}

#[tokio::test]
async fn purge_removes_old_telemetry_and_keeps_forensics() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let old = Utc::now() - chrono::Duration::days(40);
    let recent = Utc::now() - chrono::Duration::hours(1);
    let mut quarantined = payload(3, old, vec![]);
    quarantined.outcome = PayloadOutcome::Readings(vec![Disposition::Quarantined {
        reading: reading("OX-9", old),
        reason: crate::identify::QuarantineReason::UnknownDevice,
        detail: "device OX-9 is not registered".into(),
    }]);
    s.write_batch(&[
        payload(1, old, vec![reading("OX-1", old)]),
        payload(2, recent, vec![reading("OX-1", recent)]),
        quarantined,
    ])
    .await
    .unwrap();
    let removed = s.purge_before(Utc::now() - chrono::Duration::days(30)).await.unwrap();
    // The dedup entry was first seen just now, so it stays for the whole retention period: a late
    // resend of the purged reading is still recognised as a repeat.
    assert_eq!(removed, 2, "the old reading and its payload");
    let left = s.readings(&ReadingQuery::default()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].observed_at.timestamp_millis(), recent.timestamp_millis());
    let q = s.quarantine(10).await.unwrap();
    assert_eq!(q.len(), 1, "quarantine is forensic: kept");
    assert_eq!(q[0].payload, "\u{3}", "with its raw payload");
}

#[tokio::test]
async fn pairing_rules_and_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let id =
        |value: &str| PatientIdentifier { organisation: "o".into(), system: "urn:mrn".into(), value: value.into() };
    let pair = |patient_id, from, until, replacing| NewPairing {
        device_id: "OX-1",
        patient_id,
        from,
        until,
        reason: None,
        replacing,
    };
    let hours = chrono::Duration::hours;
    let unverified = s.upsert_patient(&id("M1"), None, None, "clerk").await.unwrap();
    let refused = s.pair(&pair(unverified, Utc::now(), None, None), "ann").await.unwrap_err();
    assert!(refused.to_string().contains("not registered"), "{refused}");
    s.register_device("OX-1", Some("acme-ox100"), None, "ann").await.unwrap();
    let refused = s.pair(&pair(unverified, Utc::now(), None, None), "ann").await.unwrap_err();
    assert!(refused.to_string().contains("not verified"), "{refused}");
    let patient = s.upsert_patient(&id("M1"), None, Some("ward clerk"), "clerk").await.unwrap();
    assert_eq!(patient, unverified, "same identifier, same patient");
    let other = s.upsert_patient(&id("M2"), None, Some("ward clerk"), "clerk").await.unwrap();
    let t1 = Utc::now() - hours(2);
    let new = NewPairing { reason: Some("readings came before the pairing"), ..pair(patient, t1, None, None) };
    let first = s.pair(&new, "ann").await.unwrap();
    assert_eq!(first.replaced, None);

    // Whatever overlaps the open pairing is refused, naming it: for the same patient, before or
    // after its start; for another patient, unless confirmed by naming the patient it replaces, and
    // never over its start.
    let refusals = [
        (pair(patient, t1 - hours(1), None, None), format!("already paired with patient {patient}")),
        (pair(patient, t1 + hours(1), None, None), "unpair it first".into()),
        (pair(other, t1 + hours(1), None, None), format!("patient {patient} replaced by patient {other}")),
        (pair(other, t1 - hours(1), Some(t1 + hours(1)), Some(patient)), "over part of that period".into()),
        (pair(other, t1 + hours(1), None, Some(other + 1)), format!("not with patient {}", other + 1)),
    ];
    for (new, expected) in refusals {
        let refused = s.pair(&new, "ann").await.unwrap_err().to_string();
        assert!(refused.contains(&expected) && refused.contains(&format!("pairing {}", first.id)), "{refused}");
    }

    // Confirmed: one transaction ends the open pairing where the new one starts, and opens it.
    let t2 = t1 + hours(1);
    let second = s.pair(&pair(other, t2, None, Some(patient)), "bob").await.unwrap();
    assert_eq!(second.replaced.map(|p| (p.id, p.patient_id)), Some((first.id, patient)));
    let registry = s.load_registry().await.unwrap();
    let pairings = &registry.pairings["OX-1"];
    assert_eq!(pairings.len(), 2);
    assert_eq!(
        (pairings[0].id, pairings[0].valid_to.map(|t| t.timestamp_millis())),
        (first.id, Some(t2.timestamp_millis()))
    );
    assert_eq!((pairings[1].id, pairings[1].valid_to), (second.id, None));
    // A period before both overlaps neither.
    s.pair(&pair(patient, t1 - hours(3), Some(t1 - hours(2)), None), "ann").await.unwrap();
    assert_eq!(s.unpair("OX-1", Utc::now(), "bob").await.unwrap(), second.id);

    // Every operator action is in the audit log, each entry chained to the one before; a
    // replacement names both patients, a back-dated pairing keeps its reason.
    let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT actor, action, prev_hash, hash FROM audit_log ORDER BY id")
            .fetch_all(s.pool())
            .await
            .unwrap();
    let actions: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    assert_eq!(
        actions,
        [
            ("clerk", "patient.register"),
            ("ann", "device.register"),
            ("clerk", "patient.register"),
            ("clerk", "patient.register"),
            ("ann", "pairing.open"),
            ("bob", "pairing.close"),
            ("bob", "pairing.open"),
            ("ann", "pairing.open"),
            ("bob", "pairing.close")
        ],
        "refused actions leave no entry"
    );
    let details: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log ORDER BY id").fetch_all(s.pool()).await.unwrap();
    assert!(details[4].ends_with("reason: readings came before the pairing"), "{}", details[4]);
    let closed =
        format!("pairing {}, patient {patient}, until {}, replaced by patient {other}", first.id, t2.to_rfc3339());
    assert_eq!(details[5], closed);
    assert!(details[6].ends_with(&format!("replacing patient {patient} (pairing {})", first.id)), "{}", details[6]);
    assert_eq!(rows[0].2, vec![0u8; 32]);
    for pair in rows.windows(2) {
        assert_eq!(pair[1].2, pair[0].3, "chain broken");
    }
    let verdict = s.verify_audit().await.unwrap();
    assert!(verdict.intact() && verdict.entries == 9, "{verdict:?}");
    assert_eq!(verdict.checkpoint.map(|c| c.head_id), Some(9), "the checkpoint follows every append");
    // The table refuses changes; with its triggers dropped, tampering is detected where it happened.
    let refused = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE id = 2").execute(s.pool()).await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    assert!(sqlx::query("DELETE FROM audit_log WHERE id = 9").execute(s.pool()).await.is_err());
    for t in ["audit_log_no_update", "audit_log_no_delete"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER {t}"))).execute(s.pool()).await.unwrap();
    }
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE id = 2").execute(s.pool()).await.unwrap();
    assert_eq!(s.verify_audit().await.unwrap().first_broken, Some(2));
    sqlx::query("UPDATE audit_log SET actor = 'ann' WHERE id = 2").execute(s.pool()).await.unwrap();
    sqlx::query("DELETE FROM audit_log WHERE id = 9").execute(s.pool()).await.unwrap();
    assert_eq!(s.verify_audit().await.unwrap().first_broken, Some(9), "a cut tail is named");
    sqlx::query("DELETE FROM audit_log WHERE id = 3").execute(s.pool()).await.unwrap();
    assert_eq!(s.verify_audit().await.unwrap().first_broken, Some(3), "a removed middle entry is named");
}

#[tokio::test]
async fn outbox_keeps_per_patient_order_and_lets_other_patients_pass() {
    use crate::model::event::{ClinicalEvent, Effective, EventContent, Observation};
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let mut keys = Vec::new();
    for v in ["A", "B"] {
        let id = PatientIdentifier { organisation: "o".into(), system: "urn:mrn".into(), value: v.into() };
        keys.push(s.verify_patient(&id, "test", Some(v)).await.unwrap());
    }
    let at = Utc::now() - chrono::Duration::minutes(1);
    let event = |patient_id, value| ClinicalEvent {
        patient_id,
        device_id: "OX-1".into(),
        origin: "test".into(),
        content: EventContent::Single {
            observation: Observation::Vital {
                metric: metric_by_code(150456).unwrap(),
                value,
                effective: Effective::At { at },
                validity: Validity::Valid,
                method: None,
            },
        },
    };
    let mut ids = Vec::new();
    for (patient, value) in [(keys[0], 90.0), (keys[1], 91.0), (keys[0], 92.0), (keys[0], 93.0), (keys[1], 94.0)] {
        ids.push(s.enqueue_event(&event(patient, value), OutboxStatus::Pending, None, None).await.unwrap().unwrap());
    }
    assert_eq!(
        s.enqueue_event(&event(keys[0], 90.0), OutboxStatus::Pending, None, None).await.unwrap(),
        None,
        "same event twice"
    );
    let due: Vec<i64> = s.outbox_due(Utc::now(), 2, 10).await.unwrap().iter().map(|i| i.id).collect();
    assert_eq!(due, [ids[0], ids[1], ids[2], ids[4]], "two per patient, oldest first");

    // A's oldest must be retried later: none of A's later events may overtake it; B goes on.
    let later = Utc::now() + chrono::Duration::minutes(5);
    s.outbox_settle(&[(ids[0], Settlement::Retry { next_at: later, error: "HTTP 503".into() })]).await.unwrap();
    let due: Vec<i64> = s.outbox_due(Utc::now(), 10, 10).await.unwrap().iter().map(|i| i.id).collect();
    assert_eq!(due, [ids[1], ids[4]]);

    // A dead-lettered head no longer blocks its patient.
    s.outbox_settle(&[(ids[0], Settlement::Dead { reason: "HTTP 422".into() })]).await.unwrap();
    let due: Vec<i64> = s.outbox_due(Utc::now(), 10, 10).await.unwrap().iter().map(|i| i.id).collect();
    assert_eq!(due, [ids[1], ids[2], ids[3], ids[4]]);
    let dead = s.outbox(Some(OutboxStatus::Dead), 10).await.unwrap();
    assert_eq!((dead.len(), dead[0].reason.as_deref()), (1, Some("HTTP 422")));
}

/// A payload whose readings of `device` were quarantined for an unknown device.
fn quarantined(n: u8, device: &str, at: DateTime<Utc>) -> ProcessedPayload {
    let mut p = payload(n, at, vec![]);
    p.outcome = PayloadOutcome::Readings(vec![Disposition::Quarantined {
        reading: reading(device, at),
        reason: crate::identify::QuarantineReason::UnknownDevice,
        detail: format!("device {device} is not registered"),
    }]);
    p
}

#[tokio::test]
async fn the_fleet_keeps_each_devices_newest_payload_and_status_and_never_moves_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let now = Utc::now();
    let mut first = payload(1, now, vec![reading("OX-1", now)]);
    first.status = crate::normalise::DeviceStatus { battery_pct: Some(80.0), firmware: Some("2.4.1".into()) };
    let mut doubtful = reading("OX-1", now + chrono::Duration::seconds(1));
    doubtful.validity = Validity::Questionable;
    let second = payload(2, now + chrono::Duration::seconds(1), vec![doubtful, reading("OX-1", now)]);
    s.write_batch(&[first, second, quarantined(3, "OX-9", now)]).await.unwrap();
    // A resent old payload later moves nothing back.
    s.write_batch(&[payload(4, now - chrono::Duration::hours(1), vec![reading("OX-1", now)])]).await.unwrap();
    let heard = s.device_status().await.unwrap();
    let ox1 = heard.iter().find(|h| h.device_id == "OX-1").unwrap();
    assert_eq!(ox1.last_heard.timestamp_millis(), (now + chrono::Duration::seconds(1)).timestamp_millis());
    assert_eq!(ox1.validity, Validity::Questionable, "the worst of its newest payload");
    assert_eq!((ox1.battery_pct, ox1.firmware.as_deref(), ox1.messages), (Some(80.0), Some("2.4.1"), 3));
    assert!(heard.iter().any(|h| h.device_id == "OX-9"), "an unknown sender is heard too");
    // Past retention, a sender nobody registered leaves the fleet; a registered device stays.
    s.register_device("OX-1", Some("acme-ox100"), None, "test").await.unwrap();
    s.purge_before(now + chrono::Duration::hours(1)).await.unwrap();
    let kept: Vec<String> = s.device_status().await.unwrap().into_iter().map(|h| h.device_id).collect();
    assert_eq!(kept, ["OX-1"]);
}

#[tokio::test]
async fn quarantine_groups_page_and_resolve_many_readings_in_one_audited_step() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    let t0 = Utc::now() - chrono::Duration::hours(2);
    let batch: Vec<ProcessedPayload> = (0..30u8)
        .map(|n| quarantined(n, if n < 20 { "OX-9" } else { "OX-8" }, t0 + chrono::Duration::seconds(n.into())))
        .collect();
    s.write_batch(&batch).await.unwrap();
    let groups = s.quarantine_groups().await.unwrap();
    assert_eq!(
        groups.iter().map(|g| (g.device_id.as_str(), g.count)).collect::<Vec<_>>(),
        [("OX-9", 20), ("OX-8", 10)]
    );
    assert_eq!(groups[0].first_observed.timestamp_millis(), t0.timestamp_millis());
    let newest = s.quarantine_page(Some("OX-9"), Some("unknown_device"), None, 15).await.unwrap();
    assert_eq!((newest.entries.len(), newest.total, newest.newer), (15, 20, 0));
    assert_eq!(newest.entries[0].metric, "SpO2", "rows name what they measure");
    // A reading arrives while the operator reads: the next page neither repeats nor skips a row.
    s.write_batch(&[quarantined(30, "OX-9", t0 + chrono::Duration::seconds(25))]).await.unwrap();
    let after = newest.entries.last().map(|q| QuarantineCursor { observed_at: q.observed_at, id: q.id });
    let older = s.quarantine_page(Some("OX-9"), Some("unknown_device"), after, 15).await.unwrap();
    assert_eq!((older.entries.len(), older.total, older.newer), (5, 21, 16), "the last page of the group");
    let seen: Vec<i64> = newest.entries.iter().chain(&older.entries).map(|q| q.id).collect();
    let distinct: std::collections::HashSet<&i64> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (20, 20), "every row once, newest first");
    assert!(older.entries.windows(2).all(|w| w[0].observed_at > w[1].observed_at));
    let within = s.quarantine_within("OX-9", t0 + chrono::Duration::seconds(5), None).await.unwrap();
    assert_eq!(within.len(), 16);
    let discards: Vec<(i64, Resolution)> = within.iter().map(|q| (q.id, Resolution::Discard)).collect();
    assert_eq!(s.resolve_quarantine_many("OX-9", &discards, "op", "test").await.unwrap(), 0);
    assert!(s.resolve_quarantine_many("OX-9", &discards, "op", "again").await.is_err(), "already resolved");
    assert_eq!(s.discard_quarantine_group("OX-8", "unknown_device", "op", "bench test").await.unwrap(), 10);
    let left = s.quarantine_groups().await.unwrap();
    assert_eq!(left.iter().map(|g| (g.device_id.as_str(), g.count)).collect::<Vec<_>>(), [("OX-9", 5)]);
    let audit = s.audit_entries(10).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "quarantine.group_resolved" && a.detail.starts_with("0 released")));
    assert!(audit.iter().any(|a| a.action == "quarantine.group_discarded" && a.detail.starts_with("10 ")));
}
