//! The IHE PCD-01 ORU^R01 (HL7 v2.6) builder: one clinical event becomes one message with one OBR and
//! one OBX per value.
//!
//! Decisions the profile leaves open, made here once:
//! - OBR-4 is `182777000^monitoring of patient^SCT`, the service PCD-01 examples and devices use;
//!   `SCT` is SNOMED CT's name in HL7 table 0396 (early PCD examples wrote `SNOMED-CT`).
//! - OBR-7 is the start of the event's window (its instant for a spot value), OBR-8 its end. OBX-14
//!   is the observation's instant or, for a window, its end: the time a summary became known and the
//!   one Vigil files it under (`Effective::time`), so the EHR flowsheet shows it where FHIR does.
//! - Validity (PCD-01 puts the device's measurement status in OBX-8, with the PCD codes that extend
//!   table 0078, and the result status in OBX-11, per the HL7 PoCD IG's PCD-01 mapping): device data
//!   no clinician has verified is OBX-11 `R` (entered, not verified; `F` would file it into the legal
//!   record past the nurse's validation); questionable is `R` with OBX-8 `QUES`; invalid is OBX-11 `X`
//!   (result cannot be obtained, table 0085) with OBX-8 `INV` and no OBX-5/OBX-6, so no wrong number
//!   reaches a chart; demo data is refused whole.
//! - OBX-6 is the MDC dimension code where the metric and its canonical unit pin it down, else the
//!   UCUM code (`mm[Hg]^mm[Hg]^UCUM`).
//! - OBX-4 is `1.0.C.N`: one MDS, one VMD, N fixed per metric so a receiver can track a metric across
//!   messages, and C the metric's occurrence in the message (1 for the first), so OBX-4 stays unique
//!   within the containment when a report repeats a metric (PCD-Vol2-003).
//! - Every segment ends with `<CR>`, the last one included (HL7 v2 ch. 2).
//! - OBR-3 is `<order number>^<sending application>`: a filler order number is unique only within
//!   its filler's namespace. A report's title goes in an NTE after the OBR.
//! - MSH-18 is `UNICODE UTF-8`: free text (a location, a title) may hold any character.
//! - PID-5 is `^^^^^^U` (name type unspecified): v2.6 requires the field, and Vigil matches patients
//!   by PID-3, never by name, so it sends none.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::config::EhrEnvironment;
use crate::hl7::escape;
use crate::model::Validity;
use crate::model::codes::{Metric, metric_by_code};
use crate::model::event::{ClinicalEvent, Effective, EventContent, Observation};

/// PCD-01's message profile identifier (MSH-21).
const PCD_01_PROFILE: &str = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO";
/// OBR-4: the universal service identifier of a monitoring result.
const MONITORING_OF_PATIENT: &str = "182777000^monitoring of patient^SCT";

/// Who sends the message, to whom, and about which patient and device: what the event itself does
/// not carry.
#[derive(Debug, Clone, PartialEq)]
pub struct OruContext {
    /// MSH-10; the outbox re-sends a message with the same id so the receiver can de-duplicate.
    pub control_id: String,
    /// MSH-3, sent as a namespace id (escaped, so it stays one component).
    pub sending_application: String,
    /// MSH-4.
    pub sending_facility: String,
    /// MSH-5.
    pub receiving_application: String,
    /// MSH-6.
    pub receiving_facility: String,
    /// MSH-7: when the message was built.
    pub created_at: DateTime<Utc>,
    /// PID-3.1, the patient identifier. PHI: never log it.
    pub patient_id_value: String,
    /// PID-3.4, the assigning authority: an OID (`1.2.3`, `urn:oid:1.2.3`), a URI, or a local name.
    pub patient_id_system: String,
    /// PV1-3.1, the point of care, if known.
    pub patient_location: Option<String>,
    /// OBX-18: an EUI-64 (16 hex digits, separators allowed) or a serial.
    pub device_id: String,
    /// The device's profile declares its id an EUI-64 (OBX-18 `^EUI-64`).
    pub device_eui64: bool,
    /// OBR-3.1, the filler order number, e.g. the event's content hash in hex.
    pub order_number: String,
    /// MSH-11 `P` or `T`; only a test EHR takes demo data (OBX-8 `DEMO`).
    pub environment: EhrEnvironment,
}

/// Why an event cannot become an ORU^R01.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OruError {
    /// Test or demo data must never reach a production EHR.
    #[error("the event holds demo or test data, which must never be sent to a production EHR")]
    DemoData,
    /// A field HL7 requires is empty in the context.
    #[error("{field} is empty")]
    MissingField {
        /// The HL7 field, e.g. `MSH-10`.
        field: &'static str,
    },
    /// A value is NaN or infinite, which HL7's NM type cannot carry.
    #[error("a value of {metric} is not a finite number")]
    NotFinite {
        /// The metric's MDC reference id.
        metric: &'static str,
    },
    /// The metric has no fixed OBX-4 index yet: a new row of the code table needs one here.
    #[error("no containment index for MDC code {code}")]
    UnmappedMetric {
        /// The MDC code.
        code: u32,
    },
    /// A report without observations would be an OBR without results.
    #[error("the report has no observations")]
    EmptyReport,
    /// A window that ends before it starts cannot be put in OBR-7/OBR-8.
    #[error("an effective period ends before it starts")]
    InvertedPeriod,
}

/// Builds the PCD-01 ORU^R01 for `event`: every segment ended by `\r`, without MLLP framing.
pub fn build_oru_r01(ctx: &OruContext, event: &ClinicalEvent) -> Result<String, OruError> {
    require("MSH-10", &ctx.control_id)?;
    require("PID-3", &ctx.patient_id_value)?;
    require("OBR-3", &ctx.order_number)?;
    require("OBX-18", &ctx.device_id)?;

    let (effective, title, observations) = match &event.content {
        EventContent::Single { observation } => (observation.effective(), None, std::slice::from_ref(observation)),
        EventContent::Report { title, effective, observations } => (*effective, Some(title), observations.as_slice()),
    };
    if observations.is_empty() {
        return Err(OruError::EmptyReport);
    }

    let mut segments = vec![msh(ctx).encode(), pid(ctx).encode(), pv1(ctx).encode(), obr(ctx, effective)?.encode()];
    if let Some(title) = title {
        let mut nte = Segment::new("NTE");
        nte.set(1, "1");
        nte.set(3, escape(title));
        segments.push(nte.encode());
    }
    let equipment = equipment_instance(&ctx.device_id, ctx.device_eui64);
    let mut set_id = 0;
    let mut seen: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    for observation in observations {
        for value in values(observation) {
            set_id += 1;
            let occurrence = seen.entry(value.metric.mdc_code).or_insert(0);
            *occurrence += 1;
            segments.push(obx(set_id, *occurrence, &value, &equipment, ctx.environment)?.encode());
        }
        // A charted statistic says so in a note on its OBX, as FHIR says it in Observation.method.
        if let Observation::Vital { method: Some(statistic), .. } = observation {
            let mut nte = Segment::new("NTE");
            nte.set(1, "1");
            nte.set(3, escape(&statistic.describe()));
            segments.push(nte.encode());
        }
    }
    Ok(segments.into_iter().map(|s| s + "\r").collect())
}

fn require(field: &'static str, value: &str) -> Result<(), OruError> {
    if value.trim().is_empty() { Err(OruError::MissingField { field }) } else { Ok(()) }
}

fn msh(ctx: &OruContext) -> Segment {
    let mut s = Segment::new("MSH");
    s.set(2, "^~\\&");
    s.set(3, escape(&ctx.sending_application));
    s.set(4, escape(&ctx.sending_facility));
    s.set(5, escape(&ctx.receiving_application));
    s.set(6, escape(&ctx.receiving_facility));
    s.set(7, dtm(ctx.created_at));
    s.set(9, "ORU^R01^ORU_R01");
    s.set(10, escape(&ctx.control_id));
    s.set(11, ctx.environment.processing_id());
    s.set(12, "2.6");
    s.set(15, "NE");
    s.set(16, "AL");
    s.set(18, "UNICODE UTF-8");
    s.set(21, PCD_01_PROFILE);
    s
}

fn pid(ctx: &OruContext) -> Segment {
    let mut s = Segment::new("PID");
    s.set(3, format!("{}^^^{}", escape(&ctx.patient_id_value), assigning_authority(&ctx.patient_id_system)));
    s.set(5, "^^^^^^U");
    s
}

/// CX-4 as an HD: an OID goes in HD-2 with type `ISO`, any other URI with type `URI`, and a plain
/// name in HD-1, so a receiver never mistakes a URI for an OID or a local name for either.
fn assigning_authority(system: &str) -> String {
    let oid = system.strip_prefix("urn:oid:").unwrap_or(system);
    if is_oid(oid) {
        format!("&{oid}&ISO")
    } else if is_uri(system) {
        format!("&{}&URI", escape(system))
    } else {
        escape(system)
    }
}

fn is_oid(s: &str) -> bool {
    let mut arcs = s.split('.');
    let first_arc_ok = matches!(arcs.next(), Some("0" | "1" | "2"));
    let rest: Vec<&str> = arcs.collect();
    first_arc_ok
        && !rest.is_empty()
        && rest.iter().all(|arc| {
            !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()) && (arc.len() == 1 || !arc.starts_with('0'))
        })
}

/// A URI per RFC 3986: a scheme (a letter, then letters, digits, `+`, `-`, `.`), a colon, and more.
fn is_uri(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, rest)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !rest.is_empty()
        }
        None => false,
    }
}

fn pv1(ctx: &OruContext) -> Segment {
    let mut s = Segment::new("PV1");
    s.set(2, "I");
    if let Some(location) = &ctx.patient_location {
        s.set(3, escape(location));
    }
    s
}

fn obr(ctx: &OruContext, effective: Effective) -> Result<Segment, OruError> {
    let mut s = Segment::new("OBR");
    s.set(1, "1");
    s.set(3, format!("{}^{}", escape(&ctx.order_number), escape(&ctx.sending_application)));
    s.set(4, MONITORING_OF_PATIENT);
    match effective {
        Effective::At { at } => s.set(7, dtm(at)),
        Effective::Period { start, end } => {
            if end < start {
                return Err(OruError::InvertedPeriod);
            }
            s.set(7, dtm(start));
            s.set(8, dtm(end));
        }
    }
    Ok(s)
}

/// One value to send: a vital, or one component of a blood pressure panel.
struct Value {
    metric: &'static Metric,
    value: f64,
    at: DateTime<Utc>,
    validity: Validity,
}

/// The values of an observation; a blood pressure panel has no value of its own (150020), so it
/// becomes its components 150021/150022/150023.
fn values(observation: &Observation) -> Vec<Value> {
    let at = observation.effective().time();
    match observation {
        Observation::Vital { metric, value, validity, .. } => {
            vec![Value { metric, value: *value, at, validity: *validity }]
        }
        Observation::BloodPressure { systolic, diastolic, mean, validity, .. } => {
            [(150021, Some(*systolic)), (150022, Some(*diastolic)), (150023, *mean)]
                .into_iter()
                .filter_map(|(code, value)| Some((metric_by_code(code)?, value?)))
                .map(|(metric, value)| Value { metric, value, at, validity: *validity })
                .collect()
        }
    }
}

fn obx(
    set_id: usize,
    occurrence: u32,
    v: &Value,
    equipment: &str,
    environment: EhrEnvironment,
) -> Result<Segment, OruError> {
    let mut s = Segment::new("OBX");
    s.set(1, set_id.to_string());
    s.set(2, "NM");
    s.set(3, format!("{}^{}^MDC", v.metric.mdc_code, v.metric.mdc_ref));
    s.set(4, format!("1.0.{occurrence}.{}", metric_index(v.metric)?));
    match v.validity {
        Validity::Invalid => {
            s.set(8, "INV");
            s.set(11, "X");
        }
        // One demo value refuses the whole event for a production EHR: the error aborts the build.
        Validity::Demo if environment == EhrEnvironment::Production => return Err(OruError::DemoData),
        Validity::Valid | Validity::Questionable | Validity::Demo => {
            s.set(5, format_nm(v.value).ok_or(OruError::NotFinite { metric: v.metric.mdc_ref })?);
            s.set(6, unit(v.metric));
            match v.validity {
                Validity::Questionable => s.set(8, "QUES"),
                Validity::Demo => s.set(8, "DEMO"),
                _ => {}
            }
            s.set(11, "R");
        }
    }
    s.set(14, dtm(v.at));
    s.set(18, equipment);
    Ok(s)
}

/// N of the containment path `1.0.C.N`, fixed per metric (the order of the code table in
/// CLINICAL.md) so it never shifts when a message carries fewer metrics.
fn metric_index(metric: &Metric) -> Result<u32, OruError> {
    Ok(match metric.mdc_code {
        147842 => 1,
        149530 => 2,
        150456 => 3,
        151562 => 4,
        150364 => 5,
        150021 => 6,
        150022 => 7,
        150023 => 8,
        151708 => 9,
        code => return Err(OruError::UnmappedMetric { code }),
    })
}

/// OBX-6. The MDC dimension depends on the metric as well as the UCUM unit (`/min` is beats for a
/// pulse, breaths for a respiratory rate), so both must match; anything else goes as UCUM rather
/// than a guessed MDC code.
fn unit(metric: &Metric) -> String {
    let mdc = match (metric.unit, metric.mdc_code) {
        ("%", 150456) => Some("262688^MDC_DIM_PERCENT^MDC"),
        ("/min", 147842 | 149530) => Some("264864^MDC_DIM_BEAT_PER_MIN^MDC"),
        ("/min", 151562) => Some("264928^MDC_DIM_RESP_PER_MIN^MDC"),
        ("Cel", 150364) => Some("268192^MDC_DIM_DEGC^MDC"),
        ("mm[Hg]", 150021 | 150022 | 150023 | 151708) => Some("266016^MDC_DIM_MMHG^MDC"),
        _ => None,
    };
    match mdc {
        Some(code) => code.to_string(),
        None => {
            let ucum = escape(metric.unit);
            format!("{ucum}^{ucum}^UCUM")
        }
    }
}

/// An HL7 NM without float noise: rounded to 4 decimals (finer than any vital-sign device resolves)
/// and written in the shortest form that reads back to that number: `97`, `36.61`, `120.5`.
fn format_nm(value: f64) -> Option<String> {
    if !value.is_finite() {
        return None;
    }
    // Beyond 1e15 an f64 has no fractional digits left to clean, and scaling could overflow.
    let rounded = if value.abs() < 1e15 { (value * 1e4).round() / 1e4 } else { value };
    // -0 is 0; HL7 has no negative zero.
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    Some(format!("{rounded}"))
}

/// HL7 v2.6 DTM in UTC, with milliseconds only when there are any.
fn dtm(at: DateTime<Utc>) -> String {
    if at.timestamp_subsec_millis() == 0 {
        at.format("%Y%m%d%H%M%S+0000").to_string()
    } else {
        at.format("%Y%m%d%H%M%S%.3f+0000").to_string()
    }
}

/// OBX-18 as an EI: an EUI-64 is normalised to 16 upper-case hex digits and marked `EUI-64`, as
/// PCD-01 identifies devices; anything else is sent as the entity id alone.
fn equipment_instance(device_id: &str, eui64: bool) -> String {
    let hex: String = device_id.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    if eui64 && hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        format!("{}^EUI-64", hex.to_ascii_uppercase())
    } else {
        escape(device_id)
    }
}

/// A segment under construction: fields by their HL7 number, encoded without trailing empty fields.
struct Segment {
    id: &'static str,
    /// `fields[n]` is `ID-n`; index 0 is unused so the numbers read as in the standard.
    fields: Vec<String>,
}

impl Segment {
    fn new(id: &'static str) -> Self {
        Segment { id, fields: vec![String::new()] }
    }

    fn set(&mut self, field: usize, value: impl Into<String>) {
        if self.fields.len() <= field {
            self.fields.resize(field + 1, String::new());
        }
        self.fields[field] = value.into();
    }

    fn encode(&self) -> String {
        let last = self.fields.iter().rposition(|f| !f.is_empty()).unwrap_or(0);
        // MSH-1 is the field separator itself, so MSH's first written field is MSH-2.
        let first = if self.id == "MSH" { 2 } else { 1 };
        let mut out = String::from(self.id);
        for field in self.fields.iter().take(last + 1).skip(first) {
            out.push('|');
            out.push_str(field);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::units::Dimension;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 1, h, m, s).unwrap()
    }

    fn ctx() -> OruContext {
        OruContext {
            control_id: "VIGIL-0001".into(),
            sending_application: "VIGIL".into(),
            sending_facility: "WARD_7".into(),
            receiving_application: "EHR_APP".into(),
            receiving_facility: "EHR_FACILITY".into(),
            created_at: t(12, 0, 0),
            patient_id_value: "MRN12345".into(),
            patient_id_system: "1.2.840.114350.1.13.0.1.7.5.737384.14".into(),
            patient_location: Some("ICU-3".into()),
            device_id: "01-23-45-67-89-ab-cd-ef".into(),
            device_eui64: true,
            environment: EhrEnvironment::Production,
            order_number: "9f2c".into(),
        }
    }

    fn vital(code: u32, value: f64, effective: Effective, validity: Validity) -> Observation {
        Observation::Vital { metric: metric_by_code(code).unwrap(), value, effective, validity, method: None }
    }

    fn single(observation: Observation) -> ClinicalEvent {
        ClinicalEvent {
            patient_id: 7,
            device_id: "0123456789ABCDEF".into(),
            origin: "rule:spot@1".into(),
            content: EventContent::Single { observation },
        }
    }

    /// The message's segments, each split into fields numbered as in the standard (MSH too).
    fn segments(message: &str) -> Vec<Vec<String>> {
        assert!(!message.contains('\n'), "segments end with CR only: {message:?}");
        let body = message.strip_suffix('\r').unwrap_or_else(|| panic!("the last segment ends with CR: {message:?}"));
        body.split('\r')
            .map(|seg| {
                let mut fields: Vec<String> = seg.split('|').map(str::to_string).collect();
                if fields[0] == "MSH" {
                    fields.insert(1, "|".into());
                }
                fields
            })
            .collect()
    }

    fn field<'a>(segs: &'a [Vec<String>], id: &str, nth: usize, n: usize) -> &'a str {
        let seg = segs.iter().filter(|s| s[0] == id).nth(nth).unwrap_or_else(|| panic!("no {id} #{nth}"));
        seg.get(n).map_or("", String::as_str)
    }

    fn ids(segs: &[Vec<String>]) -> Vec<&str> {
        segs.iter().map(|s| s[0].as_str()).collect()
    }

    #[test]
    fn single_spo2_vital() {
        let event = single(vital(150456, 97.0, Effective::At { at: t(11, 59, 55) }, Validity::Valid));
        let message = build_oru_r01(&ctx(), &event).unwrap();
        let segs = segments(&message);
        assert_eq!(ids(&segs), ["MSH", "PID", "PV1", "OBR", "OBX"]);
        assert!(message.starts_with("MSH|^~\\&|VIGIL|WARD_7|EHR_APP|EHR_FACILITY|20240601120000+0000||"));
        assert_eq!(field(&segs, "MSH", 0, 9), "ORU^R01^ORU_R01");
        assert_eq!(field(&segs, "MSH", 0, 10), "VIGIL-0001");
        assert_eq!(field(&segs, "MSH", 0, 11), "P");
        assert_eq!(field(&segs, "MSH", 0, 12), "2.6");
        assert_eq!(field(&segs, "MSH", 0, 15), "NE");
        assert_eq!(field(&segs, "MSH", 0, 16), "AL");
        assert_eq!(field(&segs, "MSH", 0, 21), "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO");
        assert_eq!(field(&segs, "PID", 0, 3), "MRN12345^^^&1.2.840.114350.1.13.0.1.7.5.737384.14&ISO");
        assert_eq!(field(&segs, "PV1", 0, 2), "I");
        assert_eq!(field(&segs, "PV1", 0, 3), "ICU-3");
        assert_eq!(field(&segs, "OBR", 0, 1), "1");
        assert_eq!(field(&segs, "OBR", 0, 3), "9f2c^VIGIL");
        assert_eq!(field(&segs, "OBR", 0, 4), "182777000^monitoring of patient^SCT");
        assert_eq!(field(&segs, "OBR", 0, 7), "20240601115955+0000");
        assert_eq!(field(&segs, "OBR", 0, 8), "");
        assert_eq!(
            segs[4].join("|"),
            "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.0.1.3|97|262688^MDC_DIM_PERCENT^MDC|||||R|||20240601115955+0000||||0123456789ABCDEF^EUI-64"
        );
    }

    #[test]
    fn blood_pressure_panel_gives_three_obx_with_fixed_paths() {
        let at = Effective::At { at: t(11, 0, 0) };
        let bp = Observation::BloodPressure {
            systolic: 120.5,
            diastolic: 80.0,
            mean: Some(93.5),
            effective: at,
            validity: Validity::Valid,
        };
        let segs = segments(&build_oru_r01(&ctx(), &single(bp)).unwrap());
        assert_eq!(ids(&segs), ["MSH", "PID", "PV1", "OBR", "OBX", "OBX", "OBX"]);
        let expected = [
            ("1", "150021^MDC_PRESS_BLD_NONINV_SYS^MDC", "1.0.1.6", "120.5"),
            ("2", "150022^MDC_PRESS_BLD_NONINV_DIA^MDC", "1.0.1.7", "80"),
            ("3", "150023^MDC_PRESS_BLD_NONINV_MEAN^MDC", "1.0.1.8", "93.5"),
        ];
        for (i, (set_id, code, path, value)) in expected.iter().enumerate() {
            assert_eq!(field(&segs, "OBX", i, 1), *set_id);
            assert_eq!(field(&segs, "OBX", i, 3), *code);
            assert_eq!(field(&segs, "OBX", i, 4), *path);
            assert_eq!(field(&segs, "OBX", i, 5), *value);
            assert_eq!(field(&segs, "OBX", i, 6), "266016^MDC_DIM_MMHG^MDC");
            assert_eq!(field(&segs, "OBX", i, 11), "R", "device data no clinician has verified");
            assert_eq!(field(&segs, "OBX", i, 14), "20240601110000+0000");
        }

        let without_mean = Observation::BloodPressure {
            systolic: 120.0,
            diastolic: 80.0,
            mean: None,
            effective: at,
            validity: Validity::Valid,
        };
        let segs = segments(&build_oru_r01(&ctx(), &single(without_mean)).unwrap());
        assert_eq!(segs.iter().filter(|s| s[0] == "OBX").count(), 2, "no OBX for an unmeasured mean");
    }

    #[test]
    fn a_metric_repeated_in_a_report_gets_a_distinct_obx_4_and_the_message_ends_with_cr() {
        let event = ClinicalEvent {
            patient_id: 7,
            device_id: "0123456789ABCDEF".into(),
            origin: "manual".into(),
            content: EventContent::Report {
                title: "Two readings".into(),
                effective: Effective::Period { start: t(11, 0, 0), end: t(11, 5, 0) },
                observations: vec![
                    vital(150456, 91.0, Effective::At { at: t(11, 0, 0) }, Validity::Valid),
                    vital(150456, 89.0, Effective::At { at: t(11, 5, 0) }, Validity::Valid),
                ],
            },
        };
        let message = build_oru_r01(&ctx(), &event).unwrap();
        assert!(message.ends_with("EUI-64\r"), "the last segment ends with CR: {message:?}");
        let segs = segments(&message);
        assert_eq!([field(&segs, "OBX", 0, 4), field(&segs, "OBX", 1, 4)], ["1.0.1.3", "1.0.2.3"]);
    }

    #[test]
    fn report_gives_one_obx_per_value_under_one_obr() {
        let window = Effective::Period { start: t(11, 45, 0), end: t(12, 0, 0) };
        let event = ClinicalEvent {
            patient_id: 7,
            device_id: "0123456789ABCDEF".into(),
            origin: "rule:summary@2".into(),
            content: EventContent::Report {
                title: "Spot check".into(),
                effective: window,
                observations: vec![
                    vital(149530, 72.0, Effective::At { at: t(11, 50, 0) }, Validity::Valid),
                    vital(150364, 36.61, Effective::At { at: t(11, 51, 0) }, Validity::Valid),
                    vital(151562, 16.0, window, Validity::Questionable),
                    Observation::BloodPressure {
                        systolic: 118.0,
                        diastolic: 76.0,
                        mean: None,
                        effective: Effective::At { at: t(11, 52, 0) },
                        validity: Validity::Valid,
                    },
                ],
            },
        };
        let mut c = ctx();
        c.device_id = "SN-4711".into();
        let segs = segments(&build_oru_r01(&c, &event).unwrap());
        assert_eq!(ids(&segs), ["MSH", "PID", "PV1", "OBR", "NTE", "OBX", "OBX", "OBX", "OBX", "OBX"]);
        assert_eq!(field(&segs, "OBR", 0, 7), "20240601114500+0000");
        assert_eq!(field(&segs, "OBR", 0, 8), "20240601120000+0000");
        assert_eq!(field(&segs, "NTE", 0, 3), "Spot check");
        let rows: Vec<_> = (0..5)
            .map(|i| {
                [3, 4, 5, 6, 8, 11, 14, 18].map(|n| field(&segs, "OBX", i, n).to_string()).join(" ")
                    + &format!(" #{}", field(&segs, "OBX", i, 1))
            })
            .collect();
        assert_eq!(
            rows,
            [
                "149530^MDC_PULS_OXIM_PULS_RATE^MDC 1.0.1.2 72 264864^MDC_DIM_BEAT_PER_MIN^MDC  R 20240601115000+0000 SN-4711 #1",
                "150364^MDC_TEMP_BODY^MDC 1.0.1.5 36.61 268192^MDC_DIM_DEGC^MDC  R 20240601115100+0000 SN-4711 #2",
                // A window's value is filed at the window's end.
                "151562^MDC_RESP_RATE^MDC 1.0.1.4 16 264928^MDC_DIM_RESP_PER_MIN^MDC QUES R 20240601120000+0000 SN-4711 #3",
                "150021^MDC_PRESS_BLD_NONINV_SYS^MDC 1.0.1.6 118 266016^MDC_DIM_MMHG^MDC  R 20240601115200+0000 SN-4711 #4",
                "150022^MDC_PRESS_BLD_NONINV_DIA^MDC 1.0.1.7 76 266016^MDC_DIM_MMHG^MDC  R 20240601115200+0000 SN-4711 #5",
            ]
        );
    }

    #[test]
    fn free_text_is_escaped() {
        let mut c = ctx();
        c.patient_id_value = "A|B^C&D~E\\F".into();
        c.patient_id_system = "Local|Hosp".into();
        c.patient_location = Some("Ward 7^Bed 2".into());
        c.device_id = "mon|1".into();
        let event = ClinicalEvent {
            patient_id: 7,
            device_id: "x".into(),
            origin: "manual".into(),
            content: EventContent::Report {
                title: "Desat\r\nepisode & more".into(),
                effective: Effective::At { at: t(11, 0, 0) },
                observations: vec![vital(150456, 91.0, Effective::At { at: t(11, 0, 0) }, Validity::Valid)],
            },
        };
        let message = build_oru_r01(&c, &event).unwrap();
        let segs = segments(&message);
        assert_eq!(segs.len(), 6, "a CR in free text must not start a segment");
        assert_eq!(field(&segs, "PID", 0, 3), "A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\F^^^Local\\F\\Hosp");
        assert_eq!(field(&segs, "PV1", 0, 3), "Ward 7\\S\\Bed 2");
        assert_eq!(field(&segs, "NTE", 0, 3), "Desat\\X0D\\\\X0A\\episode \\T\\ more");
        assert_eq!(field(&segs, "OBX", 0, 18), "mon\\F\\1");
    }

    #[test]
    fn assigning_authority_tells_oid_from_uri_from_name() {
        assert_eq!(assigning_authority("2.16.840.1.113883.4.1"), "&2.16.840.1.113883.4.1&ISO");
        assert_eq!(assigning_authority("urn:oid:2.16.840.1.113883.4.1"), "&2.16.840.1.113883.4.1&ISO");
        assert_eq!(assigning_authority("https://hospital.example/mrn"), "&https://hospital.example/mrn&URI");
        assert_eq!(assigning_authority("urn:uuid:1c4b-77"), "&urn:uuid:1c4b-77&URI");
        assert_eq!(assigning_authority("https://h.example/id?a=1&b=2"), "&https://h.example/id?a=1\\T\\b=2&URI");
        // Not OIDs: an arc with a leading zero, a single arc, a first arc above 2.
        assert_eq!(assigning_authority("1.02.3"), "1.02.3");
        assert_eq!(assigning_authority("1"), "1");
        assert_eq!(assigning_authority("3.1.4"), "3.1.4");
        assert_eq!(assigning_authority("HOSP"), "HOSP");
    }

    #[test]
    fn a_charted_median_carries_a_note_saying_it_is_one() {
        let period = Effective::Period { start: t(11, 0, 0), end: t(11, 14, 59) };
        let mut event = single(vital(150456, 96.0, period, Validity::Valid));
        if let EventContent::Single { observation: Observation::Vital { method, .. } } = &mut event.content {
            *method = Some(crate::model::event::Statistic { minutes: 15, readings: 42 });
        }
        let segs = segments(&build_oru_r01(&ctx(), &event).unwrap());
        assert_eq!(ids(&segs).last(), Some(&"NTE"), "the note follows its OBX");
        assert_eq!(field(&segs, "NTE", 0, 3), "15-minute median of 42 valid readings");
    }

    #[test]
    fn a_test_ehr_gets_demo_data_marked_demo_in_a_message_marked_test() {
        let demo = single(vital(150456, 97.0, Effective::At { at: t(11, 0, 0) }, Validity::Demo));
        let test = OruContext { environment: EhrEnvironment::Test, ..ctx() };
        let segs = segments(&build_oru_r01(&test, &demo).unwrap());
        assert_eq!(field(&segs, "MSH", 0, 11), "T");
        assert_eq!(
            (field(&segs, "OBX", 0, 5), field(&segs, "OBX", 0, 8), field(&segs, "OBX", 0, 11)),
            ("97", "DEMO", "R")
        );
    }

    #[test]
    fn demo_data_is_refused_for_a_production_ehr() {
        let demo = single(vital(150456, 97.0, Effective::At { at: t(11, 0, 0) }, Validity::Demo));
        assert_eq!(build_oru_r01(&ctx(), &demo), Err(OruError::DemoData));

        let mixed = ClinicalEvent {
            content: EventContent::Report {
                title: "Spot check".into(),
                effective: Effective::At { at: t(11, 0, 0) },
                observations: vec![
                    vital(150456, 97.0, Effective::At { at: t(11, 0, 0) }, Validity::Valid),
                    vital(149530, 60.0, Effective::At { at: t(11, 0, 0) }, Validity::Demo),
                ],
            },
            ..demo
        };
        assert_eq!(build_oru_r01(&ctx(), &mixed), Err(OruError::DemoData));
    }

    #[test]
    fn invalid_value_is_status_x_without_a_value() {
        let event = single(vital(150456, 12.0, Effective::At { at: t(11, 0, 0) }, Validity::Invalid));
        let segs = segments(&build_oru_r01(&ctx(), &event).unwrap());
        assert_eq!(field(&segs, "OBX", 0, 3), "150456^MDC_PULS_OXIM_SAT_O2^MDC");
        assert_eq!(field(&segs, "OBX", 0, 5), "");
        assert_eq!(field(&segs, "OBX", 0, 6), "");
        assert_eq!(field(&segs, "OBX", 0, 8), "INV");
        assert_eq!(field(&segs, "OBX", 0, 11), "X");
        assert_eq!(field(&segs, "OBX", 0, 14), "20240601110000+0000");
    }

    #[test]
    fn values_are_written_without_float_noise() {
        assert_eq!(format_nm(97.0).unwrap(), "97");
        assert_eq!(format_nm(36.61).unwrap(), "36.61");
        assert_eq!(format_nm(120.5).unwrap(), "120.5");
        assert_eq!(format_nm(0.1 + 0.2).unwrap(), "0.3");
        assert_eq!(format_nm(1.1 * 3.0).unwrap(), "3.3");
        assert_eq!(format_nm(97.0 / 3.0).unwrap(), "32.3333");
        assert_eq!(format_nm(-0.0).unwrap(), "0");
        assert_eq!(format_nm(-12.25).unwrap(), "-12.25");
        assert_eq!(format_nm(1e20).unwrap(), "100000000000000000000");
        assert_eq!(format_nm(f64::NAN), None);

        let nan = single(vital(150456, f64::INFINITY, Effective::At { at: t(11, 0, 0) }, Validity::Valid));
        assert_eq!(build_oru_r01(&ctx(), &nan), Err(OruError::NotFinite { metric: "MDC_PULS_OXIM_SAT_O2" }));
    }

    #[test]
    fn times_keep_milliseconds_when_present() {
        assert_eq!(dtm(t(11, 0, 0)), "20240601110000+0000");
        assert_eq!(dtm(t(11, 0, 0) + chrono::Duration::milliseconds(40)), "20240601110000.040+0000");
    }

    #[test]
    fn equipment_instance_marks_only_real_eui_64() {
        assert_eq!(equipment_instance("0123456789abcdef", true), "0123456789ABCDEF^EUI-64");
        assert_eq!(equipment_instance("01:23:45:67:89:AB:CD:EF", true), "0123456789ABCDEF^EUI-64");
        assert_eq!(equipment_instance("0123456789ABCDE", true), "0123456789ABCDE", "15 digits");
        assert_eq!(equipment_instance("0123456789ABCDEG", true), "0123456789ABCDEG", "not hex");
        assert_eq!(equipment_instance("1234567890123456", false), "1234567890123456", "a numeric serial");
    }

    #[test]
    fn unit_falls_back_to_ucum_when_mdc_is_not_certain() {
        static PULSE_PER_SECOND: Metric = Metric {
            mdc_code: 149530,
            mdc_ref: "MDC_PULS_OXIM_PULS_RATE",
            loinc: &["8867-4"],
            unit: "/s",
            dimension: Dimension::Frequency,
            display: "Pulse rate",
            plausible: (0.0, 6.0),
            decimals: 0,
        };
        assert_eq!(unit(&PULSE_PER_SECOND), "/s^/s^UCUM");
        assert_eq!(unit(metric_by_code(151708).unwrap()), "266016^MDC_DIM_MMHG^MDC");
        assert_eq!(unit(metric_by_code(147842).unwrap()), "264864^MDC_DIM_BEAT_PER_MIN^MDC");
    }

    #[test]
    fn every_known_metric_has_a_distinct_containment_index() {
        let mut seen: Vec<u32> = crate::model::codes::all_metrics().iter().map(|m| metric_index(m).unwrap()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), crate::model::codes::all_metrics().len());

        static UNKNOWN: Metric = Metric {
            mdc_code: 188736,
            mdc_ref: "MDC_MASS_BODY_ACTUAL",
            loinc: &["29463-7"],
            unit: "kg",
            dimension: Dimension::Pressure,
            display: "Body weight",
            plausible: (0.2, 500.0),
            decimals: 0,
        };
        assert_eq!(metric_index(&UNKNOWN), Err(OruError::UnmappedMetric { code: 188736 }));
    }

    #[test]
    fn incomplete_context_or_event_is_refused() {
        let event = single(vital(150456, 97.0, Effective::At { at: t(11, 0, 0) }, Validity::Valid));
        let mut c = ctx();
        c.control_id = " ".into();
        assert_eq!(build_oru_r01(&c, &event), Err(OruError::MissingField { field: "MSH-10" }));
        let mut c = ctx();
        c.patient_id_value = String::new();
        assert_eq!(build_oru_r01(&c, &event), Err(OruError::MissingField { field: "PID-3" }));

        let empty = ClinicalEvent {
            content: EventContent::Report {
                title: "x".into(),
                effective: Effective::At { at: t(11, 0, 0) },
                observations: vec![],
            },
            ..event.clone()
        };
        assert_eq!(build_oru_r01(&ctx(), &empty), Err(OruError::EmptyReport));

        let inverted =
            single(vital(150456, 97.0, Effective::Period { start: t(12, 0, 0), end: t(11, 0, 0) }, Validity::Valid));
        assert_eq!(build_oru_r01(&ctx(), &inverted), Err(OruError::InvertedPeriod));
    }
}
