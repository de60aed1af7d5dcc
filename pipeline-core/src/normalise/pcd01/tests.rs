use std::path::Path;

use chrono::TimeZone;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hl7").join(name)).unwrap()
}

fn terms() -> Pcd01Terms {
    Pcd01Terms { timezone: None, device_from: DeviceFrom::Obx18, limits: PayloadLimits::default() }
}

fn berlin() -> Pcd01Terms {
    Pcd01Terms { timezone: Some(chrono_tz::Europe::Berlin), ..terms() }
}

const MSH: &str = "MSH|^~\\&|GW|WARD|VIGIL|CLINIC|20261124100002+0000||ORU^R01^ORU_R01|C-1|P|2.6";

fn message(segments: &[&str]) -> Vec<u8> {
    let mut text = segments.join("\r");
    text.push('\r');
    text.into_bytes()
}

fn problems(decoded: &Decoded) -> Vec<(String, RejectReason)> {
    match &decoded.outcome {
        Err(Refusal::Malformed(problems)) => {
            problems.iter().map(|p| (format!("{}-{}#{}", p.at.segment, p.at.field, p.at.sequence), p.reason)).collect()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_published_oximeter_message_yields_its_spo2_for_the_mds_device() {
    let decoded = decode(&fixture("ipf-valid-oximeter-continua-wan.hl7"), &terms());
    let header = decoded.header.unwrap();
    assert_eq!((header.version.as_str(), header.control_id.as_str()), ("2.6", "MSGID1234"));
    assert_eq!(header.sending_application, "AcmeInc^ACDE48234567ABCD^EUI-64");
    assert_eq!((header.accept_ack.as_str(), header.application_ack.as_str()), ("NE", "AL"));
    let oru = decoded.outcome.unwrap();
    assert_eq!(oru.readings.len(), 1);
    let spo2 = &oru.readings[0];
    assert_eq!((spo2.device_id.as_str(), spo2.metric.mdc_code, spo2.value), ("0123456789ABCDEF", 150456, 80.5));
    assert_eq!(spo2.observed_at, Utc.with_ymd_and_hms(2009, 7, 15, 7, 7, 7).unwrap());
    assert_eq!(spo2.validity, Validity::Valid);
    assert_eq!(spo2.patient_hints, [PatientHint { system: "Imaginary Hospital".into(), value: "789567".into() }]);
    assert!(oru.patient_named);
    assert_eq!(oru.unmapped, ["OBX-3 150452^MDC_PULS_OXIM_PLETH"], "the waveform is listed, not read");
}

#[test]
fn a_gateway_with_two_devices_yields_two_devices_with_converted_units_and_validity() {
    let oru = decode(&fixture("pcd01-gateway-two-devices.hl7"), &terms()).outcome.unwrap();
    let seen: Vec<(&str, u32, f64, Validity)> =
        oru.readings.iter().map(|r| (r.device_id.as_str(), r.metric.mdc_code, r.value, r.validity)).collect();
    assert_eq!(
        seen,
        [
            ("001BC50C00000001", 150456, 97.0, Validity::Valid),
            ("001BC50C00000001", 149530, 72.0, Validity::Valid),
            ("001BC50C00000002", 150364, 37.28, Validity::Valid),
            ("001BC50C00000002", 150021, 121.0, Validity::Invalid),
        ]
    );
    assert_eq!(oru.readings[3].observed_at, Utc.with_ymd_and_hms(2026, 11, 24, 9, 59, 0).unwrap());
    let hints = &oru.readings[0].patient_hints;
    assert_eq!(
        hints,
        &[
            PatientHint { system: "urn:oid:2.16.840.1.113883.19.5.99999.2".into(), value: "MRN-100001".into() },
            PatientHint { system: "NHS".into(), value: "9912345678".into() },
        ]
    );
    assert_eq!(oru.unmapped, ["OBX-3 150488^MDC_BLD_PERF_INDEX"]);
}

#[test]
fn local_times_are_read_in_the_sources_zone_and_refused_without_one() {
    let bytes = fixture("pcd01-v23-local-time.hl7");
    let oru = decode(&bytes, &berlin()).outcome.unwrap();
    assert_eq!(oru.readings[0].observed_at, Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap(), "11:00 CET");
    assert_eq!(oru.readings[0].device_id, "001BC50C00000001");
    let decoded = decode(&bytes, &terms());
    assert_eq!(problems(&decoded), [("OBR-7#1".to_string(), RejectReason::BadTime)]);
    let detail = decoded.outcome.unwrap_err().rejection().detail;
    assert!(detail.contains("timezone is not set"), "{detail}");
}

#[test]
fn the_clock_change_hours_are_refused_naming_the_field() {
    let at = |time: &str| {
        message(&[
            MSH,
            "PID|||M1^^^&1.2.3&ISO",
            "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|%^%^UCUM|||||R|||TIME||||001BC50C00000001"
                .replace("TIME", time)
                .as_str(),
        ])
    };
    for (time, why) in [("202610250230", "ambiguous"), ("202603290230", "does not exist")] {
        let decoded = decode(&at(time), &berlin());
        assert_eq!(problems(&decoded), [("OBX-14#1".to_string(), RejectReason::BadTime)]);
        let detail = decoded.outcome.unwrap_err().rejection().detail;
        assert!(detail.contains(why) && detail.contains("OBX-14"), "{detail}");
    }
    assert!(decode(&at("202610250330"), &berlin()).outcome.is_ok());
}

#[test]
fn every_problem_is_reported_at_once_and_no_reading_is_kept() {
    let decoded = decode(
        &message(&[
            MSH,
            "PID|||M1^^^&1.2.3&ISO",
            "OBR|1|||x|||2026112410",
            "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|ninety|%^%^UCUM|||||R||||||001BC50C00000001",
            "OBX|2|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.1.1.2|72|furlongs^^UCUM|||||R|||20261124100000+0000||||001BC50C00000001",
            "OBX|3|NM|150364^MDC_TEMP_BODY^MDC|1.1.1.3|37|Cel^^UCUM|||||C|||20261124100000+0000||||001BC50C00000001",
            "OBX|4|ST|151562^MDC_RESP_RATE^MDC|1.1.1.4|12|/min^^UCUM|||||R|||20261124100000+0000||||001BC50C00000001",
            "OBX|5|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1.1.1.5|120||||||R|||20261124100000+0000||||001BC50C00000001",
        ]),
        &terms(),
    );
    assert_eq!(
        problems(&decoded),
        [
            ("OBR-7#1".to_string(), RejectReason::BadTime),
            ("OBX-5#1".to_string(), RejectReason::BadValue),
            ("OBX-6#2".to_string(), RejectReason::BadUnit),
            ("OBX-11#3".to_string(), RejectReason::BadValue),
            ("OBX-2#4".to_string(), RejectReason::BadValue),
            ("OBX-6#5".to_string(), RejectReason::MissingField),
        ]
    );
    let Err(refusal) = decoded.outcome else { unreachable!() };
    let Refusal::Malformed(all) = &refusal else { unreachable!() };
    assert_eq!(all.iter().map(Problem::error_code).collect::<Vec<_>>(), [102, 102, 103, 102, 102, 101]);
    assert!(!refusal.rejection().detail.contains("M1"), "no PHI in the rejection");
}

#[test]
fn what_is_not_oru_r01_or_not_hl7_is_refused_with_its_code() {
    let refusal = |bytes: &[u8]| decode(bytes, &terms()).outcome.unwrap_err();
    let alarm = MSH.replace("ORU^R01^ORU_R01", "ORU^R40^ORU_R40");
    assert!(matches!(refusal(&message(&[&alarm])), Refusal::Unsupported { code: 201, field: 9, .. }));
    let adt = MSH.replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01");
    assert!(matches!(refusal(&message(&[&adt])), Refusal::Unsupported { code: 200, field: 9, .. }));
    let v22 = MSH.replace("|2.6", "|2.2");
    assert!(matches!(refusal(&message(&[&v22])), Refusal::Unsupported { code: 203, field: 12, .. }));
    assert!(matches!(refusal(b"{\"spo2\": 97}"), Refusal::NotHl7(_)));
    assert_eq!(decode(b"hello", &terms()).header, None);
}

#[test]
fn without_a_pid_the_message_reads_but_names_no_patient_and_training_data_is_demo() {
    let training = MSH.replace("|P|2.6", "|T|2.6");
    let oru = decode(
        &message(&[
            &training,
            "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R|||20261124100000+0000||||001BC50C00000001",
        ]),
        &terms(),
    )
    .outcome
    .unwrap();
    assert!(!oru.patient_named);
    assert_eq!(oru.readings[0].validity, Validity::Demo);
}

#[test]
fn the_sender_is_the_device_only_when_the_source_says_so() {
    let bytes = message(&[
        "MSH|^~\\&|MONITOR^0A1B2C3D4E5F6071^EUI-64|W|V|C|20261124100002+0000||ORU^R01|C-2|P|2.5",
        "PID|||M1^^^&1.2.3&ISO",
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|%^%^UCUM|||||R|||20261124100000+0000",
    ]);
    let device = |terms: &Pcd01Terms| decode(&bytes, terms).outcome.unwrap().readings[0].device_id.clone();
    assert_eq!(device(&terms()), "", "a gateway never becomes one device");
    assert_eq!(device(&Pcd01Terms { device_from: DeviceFrom::Msh3, ..terms() }), "0A1B2C3D4E5F6071");
}

#[test]
fn eui64s_have_one_form_and_hl7_numbers_are_plain() {
    assert_eq!(eui64("00-1b-c5-0c-00-00-00-01").as_deref(), Some("001BC50C00000001"));
    assert_eq!(eui64("00:1B:C5:0C:00:00:00:01").as_deref(), Some("001BC50C00000001"));
    assert_eq!(eui64("001bc50c00000001").as_deref(), Some("001BC50C00000001"));
    assert_eq!(eui64("OX-1001"), None);
    assert_eq!(eui64("0-01BC50C00000001"), None);
    assert_eq!((parse_nm("-3.5"), parse_nm("+7"), parse_nm(".5")), (Some(-3.5), Some(7.0), Some(0.5)));
    for bad in ["inf", "NaN", "1e3", "", "-", "1.2.3", "0x10"] {
        assert_eq!(parse_nm(bad), None, "{bad}");
    }
}
