//! PCD-01: readings from an HL7 v2 ORU^R01 (IHE PCD-01, Device Enterprise Communication), as a
//! device gateway sends it over MLLP. Read tolerantly from v2.3 to v2.8.
//!
//! # Rules
//! - Only ORU^R01 is read: another message type is refused with table 0357 code 200, another
//!   event with 201, a version outside 2.3-2.8 with 203.
//! - Every problem in a message is reported at once, each with its segment, its sequence and its
//!   field, and no reading of that message is kept: half a message could hide the reading that
//!   mattered.
//! - A numeric observation (OBX-2 `NM`) whose OBX-3 is an MDC code of the code table is a reading.
//!   Other observations (device descriptors, waveforms, codes Vigil does not know) are listed as
//!   unmapped, never guessed at. An empty OBX-5 is no measurement and yields no reading.
//! - The device is the observation's OBX-18, else the OBX-18 of its MDS-level OBX (`x.0.0.0`, or the
//!   short `x`), whose metrics inherit it; MSH-3 only when the source says each sender is one device.
//!   A gateway serves many beds and must never become one device. EUI-64s are normalised to 16
//!   upper-case hex digits.
//! - The time is OBX-14, else the OBR-7 of the OBR the OBX follows. A time without a UTC offset is
//!   read in the source's time zone; with none configured, or when the local time is ambiguous or
//!   does not exist (the clock change hours), it is refused, never guessed.
//! - Validity: OBX-8 `INV`/`NAV` invalid, `QUES` questionable, `TEST`/`DEMO` demo; other flags
//!   (abnormal flags, alarm priorities) stay in the raw message. OBX-11 `X` is invalid; `C` and `D`
//!   (correct or delete an earlier result) are refused: a stored reading is never rewritten.
//!   MSH-11 `T` or `D` (training, debugging) makes every reading demo data.
//! - Every PID-3 repetition is a patient identifier, its system from CX-4 (`&oid&ISO` is
//!   `urn:oid:oid`); identify checks them against the pairing.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{PayloadLimits, RejectReason, Rejection, device_id_char};
use crate::hl7::{Message, Segment, escape};
use crate::model::codes::{Metric, metric_by_code};
use crate::model::units::{Unit, convert, parse_unit};
use crate::model::{PatientHint, Reading, Validity};

/// The built-in profile id a biomed registers an MLLP-fed device with.
pub const PROFILE_ID: &str = "pcd-01";

/// HL7 versions read: 2.3 to 2.8, with their minor releases.
const VERSIONS: [&str; 9] = ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"];

/// Where a message's device id comes from when no OBX-18 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceFrom {
    /// Only OBX-18 (of the observation or its MDS): a gateway's messages carry many devices.
    #[default]
    Obx18,
    /// MSH-3 as well, for senders that are each one device.
    Msh3,
}

/// How a source reads PCD-01 messages (`[sources.mllp]`).
#[derive(Debug, Clone, Default)]
pub struct Pcd01Terms {
    /// Where times without a UTC offset are read; none means they are refused.
    pub timezone: Option<Tz>,
    /// Whether MSH-3 may name the device.
    pub device_from: DeviceFrom,
    /// What one message may carry.
    pub limits: PayloadLimits,
}

/// The MSH fields an acknowledgement echoes, re-encoded with Vigil's delimiters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// MSH-12's version id.
    pub version: String,
    /// MSH-10, unescaped.
    pub control_id: String,
    /// MSH-3, MSH-4, MSH-5, MSH-6 as sent (components kept).
    pub sending_application: String,
    /// MSH-4.
    pub sending_facility: String,
    /// MSH-5.
    pub receiving_application: String,
    /// MSH-6.
    pub receiving_facility: String,
    /// MSH-15, the accept acknowledgement type (enhanced mode), e.g. `AL`, `NE`.
    pub accept_ack: String,
    /// MSH-16, the application acknowledgement type.
    pub application_ack: String,
}

impl Header {
    /// What identifies one message of one sender: MSH-3, MSH-4 and MSH-10. A resend carries the
    /// same; a gateway whose counter was reset reuses it for new content.
    pub fn message_key(&self) -> String {
        format!("{}|{}|{}", self.sending_application, self.sending_facility, escape(&self.control_id))
    }
}

/// Where in a message a problem is: an ERR-2 (ERL) location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The segment id.
    pub segment: &'static str,
    /// Which occurrence of that segment, from 1.
    pub sequence: usize,
    /// The field number.
    pub field: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{} (segment {} #{})", self.segment, self.field, self.segment, self.sequence)
    }
}

/// One thing wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is.
    pub at: Location,
    /// Its class, as stored with the rejection.
    pub reason: RejectReason,
    /// What and why, without PHI.
    pub detail: String,
}

impl Problem {
    /// HL7 table 0357: the error code an ERR carries for it.
    pub fn error_code(&self) -> u16 {
        match self.reason {
            RejectReason::MissingField => 101,
            RejectReason::BadValue | RejectReason::BadTime => 102,
            RejectReason::BadUnit => 103,
            _ => 207,
        }
    }
}

/// Why a message yields no reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not HL7 v2 at all (no MSH, bad delimiters).
    NotHl7(String),
    /// A message Vigil does not take: table 0357 code 200 (type), 201 (event) or 203 (version).
    Unsupported {
        /// The table 0357 code.
        code: u16,
        /// The MSH field at fault.
        field: usize,
        /// What and why.
        detail: String,
    },
    /// Every problem found in the content.
    Malformed(Vec<Problem>),
}

impl Refusal {
    /// The rejection kept with the raw message: its class and every problem, each with its field.
    pub fn rejection(&self) -> Rejection {
        match self {
            Refusal::NotHl7(why) => Rejection::new(RejectReason::NotHl7, format!("not an HL7 v2 message: {why}")),
            Refusal::Unsupported { detail, .. } => Rejection::new(RejectReason::UnsupportedMessage, detail.clone()),
            Refusal::Malformed(problems) => {
                let details: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.at, p.detail)).collect();
                Rejection::new(problems[0].reason, details.join("; "))
            }
        }
    }
}

/// What an ORU^R01 yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Oru {
    /// Its readings; a reading with an empty device id has no device named (quarantined).
    pub readings: Vec<Reading>,
    /// Whether a PID names the patient at all; a message without is never charted.
    pub patient_named: bool,
    /// The observations it carries that yield no reading, as `OBX-3 code^name`.
    pub unmapped: Vec<String>,
}

/// A decoded message: its header (when it has one) and what it yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// What an acknowledgement echoes; `None` when there is no readable MSH.
    pub header: Option<Header>,
    /// The readings, or why there are none.
    pub outcome: Result<Oru, Refusal>,
}

/// Decodes one message (without MLLP framing). A pure function of the bytes and the terms.
pub fn decode(bytes: &[u8], terms: &Pcd01Terms) -> Decoded {
    let text = String::from_utf8_lossy(bytes);
    let message = match Message::parse(&text) {
        Ok(message) => message,
        Err(e) => return Decoded { header: None, outcome: Err(Refusal::NotHl7(e.to_string())) },
    };
    let header = header(&message);
    let outcome = supported(&message, &header).and_then(|()| Reader::new(&message, terms).read());
    Decoded { header: Some(header), outcome }
}

fn header(message: &Message) -> Header {
    let msh = message.header();
    let field = |n: usize| reencode(message, msh.first_repetition(n));
    Header {
        version: msh.text(12, 1),
        control_id: msh.text(10, 1),
        sending_application: field(3),
        sending_facility: field(4),
        receiving_application: field(5),
        receiving_facility: field(6),
        accept_ack: msh.text(15, 1),
        application_ack: msh.text(16, 1),
    }
}

/// A field re-encoded with Vigil's delimiters (`^` and `&`), so an ACK can carry it whatever the
/// sender declared.
fn reencode(message: &Message, field: &str) -> String {
    let d = &message.delimiters;
    let components: Vec<String> = field
        .split(d.component)
        .map(|c| {
            let subs: Vec<String> = match d.subcomponent {
                Some(sep) => c.split(sep).map(|s| escape(&d.unescape(s))).collect(),
                None => vec![escape(&d.unescape(c))],
            };
            subs.join("&")
        })
        .collect();
    components.join("^").trim_end_matches('^').to_string()
}

/// Refuses what is not an ORU^R01 in a version Vigil reads.
fn supported(message: &Message, header: &Header) -> Result<(), Refusal> {
    let msh = message.header();
    let (kind, event) = (msh.text(9, 1), msh.text(9, 2));
    if kind != "ORU" {
        return Err(Refusal::Unsupported {
            code: 200,
            field: 9,
            detail: format!(
                "message type {:?} is not taken: Vigil reads ORU^R01 (IHE PCD-01) only; PCD-04 alarms are not supported yet",
                msh.field(9)
            ),
        });
    }
    if event != "R01" {
        return Err(Refusal::Unsupported {
            code: 201,
            field: 9,
            detail: format!(
                "event {event:?} is not taken: Vigil reads ORU^R01 (IHE PCD-01) only; PCD-04 alarms (ORU^R40) are not supported yet"
            ),
        });
    }
    if !VERSIONS.contains(&header.version.as_str()) {
        return Err(Refusal::Unsupported {
            code: 203,
            field: 12,
            detail: format!("HL7 version {:?} (MSH-12) is not read: Vigil reads 2.3 to 2.8", header.version),
        });
    }
    if header.control_id.is_empty() {
        let at = Location { segment: "MSH", sequence: 1, field: 10 };
        let detail = "MSH-10 (the message control id) is empty: it is what an acknowledgement answers".into();
        return Err(Refusal::Malformed(vec![Problem { at, reason: RejectReason::MissingField, detail }]));
    }
    Ok(())
}

/// Reads one message's observations, collecting every problem.
struct Reader<'m, 'a> {
    message: &'m Message<'a>,
    terms: &'m Pcd01Terms,
    problems: Vec<Problem>,
}

impl<'m, 'a> Reader<'m, 'a> {
    fn new(message: &'m Message<'a>, terms: &'m Pcd01Terms) -> Self {
        Reader { message, terms, problems: Vec::new() }
    }

    fn problem(&mut self, segment: &'static str, sequence: usize, field: usize, reason: RejectReason, detail: String) {
        self.problems.push(Problem { at: Location { segment, sequence, field }, reason, detail });
    }

    fn read(mut self) -> Result<Oru, Refusal> {
        let message = self.message;
        let demo = matches!(message.header().text(11, 1).as_str(), "T" | "D");
        let sender = self.sender_device();
        let mds_devices = self.mds_devices();
        let mut hints = Vec::new();
        let mut patient_named = false;
        let mut readings = Vec::new();
        let mut unmapped = Vec::new();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut obr_time: Option<DateTime<Utc>> = None;
        for segment in &message.segments {
            let sequence = {
                let n = counts.entry(segment.id()).or_default();
                *n += 1;
                *n
            };
            match segment.id() {
                "PID" => {
                    for repetition in segment.repetitions(3) {
                        if let Some(hint) = self.patient_hint(repetition) {
                            hints.push(hint);
                        }
                    }
                    patient_named = !hints.is_empty();
                }
                "OBR" => obr_time = self.time(segment, sequence, "OBR", 7),
                "OBX" => {
                    let Some(observation) = self.observation(segment, sequence, &mut unmapped) else { continue };
                    let Observation { metric, value, validity, time, mds } = observation;
                    let Some(observed_at) = time.or(obr_time) else {
                        let told = |p: &Problem| {
                            (p.at.segment == "OBR" && p.at.field == 7)
                                || (p.at.segment == "OBX" && p.at.sequence == sequence && p.at.field == 14)
                        };
                        if !self.problems.iter().any(told) {
                            self.problem(
                                "OBX",
                                sequence,
                                14,
                                RejectReason::MissingField,
                                format!("{} has no time: neither OBX-14 nor its OBR-7 gives one", metric.mdc_ref),
                            );
                        }
                        continue;
                    };
                    let device = self
                        .device(segment, sequence)
                        .or_else(|| mds_devices.get(&mds).cloned())
                        .or_else(|| sender.clone())
                        .unwrap_or_default();
                    readings.push(Reading {
                        device_id: device,
                        metric,
                        value,
                        observed_at,
                        patient_hints: Vec::new(),
                        validity: if demo { validity.worst(Validity::Demo) } else { validity },
                    });
                }
                _ => {}
            }
        }
        if readings.len() > self.terms.limits.max_readings {
            self.problem(
                "OBX",
                1,
                5,
                RejectReason::OverLimit,
                format!(
                    "the message carries {} readings, over the limit of {} ({} max_readings_per_payload)",
                    readings.len(),
                    self.terms.limits.max_readings,
                    self.terms.limits.section
                ),
            );
        }
        if !self.problems.is_empty() {
            return Err(Refusal::Malformed(self.problems));
        }
        for reading in &mut readings {
            reading.patient_hints = hints.clone();
        }
        Ok(Oru { readings, patient_named, unmapped })
    }

    /// MSH-3 as the device, when the source says each sender is one device.
    fn sender_device(&mut self) -> Option<String> {
        if self.terms.device_from != DeviceFrom::Msh3 {
            return None;
        }
        let msh = self.message.header();
        let (namespace, universal, kind) = (msh.text(3, 1), msh.text(3, 2), msh.text(3, 3));
        let id = if kind.eq_ignore_ascii_case("EUI-64") && !universal.is_empty() { universal } else { namespace };
        self.checked_device(&id, "MSH", 1, 3)
    }

    /// The device each MDS names in its own OBX-18, by MDS number.
    fn mds_devices(&mut self) -> HashMap<String, String> {
        let mut devices = HashMap::new();
        let obxs = self.message.segments.iter().filter(|s| s.id() == "OBX");
        for (i, obx) in obxs.enumerate() {
            let path = obx.text(4, 1);
            let mut levels = path.split('.');
            let mds = levels.next().unwrap_or("").to_string();
            if !mds.is_empty()
                && levels.all(|l| l == "0")
                && let Some(device) = self.device(obx, i + 1)
            {
                devices.insert(mds, device);
            }
        }
        devices
    }

    /// The device an OBX-18 names: the EUI-64 repetition if there is one, else the first; its
    /// entity id, else its universal id.
    fn device(&mut self, obx: &Segment, sequence: usize) -> Option<String> {
        let repetitions: Vec<&str> = obx.repetitions(18).collect();
        let eui64 = repetitions.iter().find(|r| self.message.unescaped(r, 4).eq_ignore_ascii_case("EUI-64"));
        let chosen = eui64.or(repetitions.first())?;
        let entity = self.message.unescaped(chosen, 1);
        let id = if entity.is_empty() { self.message.unescaped(chosen, 3) } else { entity };
        self.checked_device(&id, "OBX", sequence, 18)
    }

    /// A device id as the registry knows it (EUI-64s normalised), or a problem.
    fn checked_device(&mut self, id: &str, segment: &'static str, sequence: usize, field: usize) -> Option<String> {
        if id.is_empty() {
            return None;
        }
        let id = eui64(id).unwrap_or_else(|| id.to_string());
        let max = self.terms.limits.max_device_id_bytes;
        if id.len() > max {
            let detail = format!(
                "the device id is {} bytes, over the limit of {max} ({} max_device_id_bytes)",
                id.len(),
                self.terms.limits.section
            );
            self.problem(segment, sequence, field, RejectReason::OverLimit, detail);
            return None;
        }
        if !id.chars().all(device_id_char) {
            let detail = format!("the device id {:?} holds characters other than letters, digits and - _ . :", id);
            self.problem(segment, sequence, field, RejectReason::BadValue, detail);
            return None;
        }
        Some(id)
    }

    /// One PID-3 repetition (CX) as a patient identifier: its value, and its system from CX-4.
    fn patient_hint(&self, repetition: &str) -> Option<PatientHint> {
        let message = self.message;
        let value = message.unescaped(repetition, 1);
        if value.is_empty() {
            return None;
        }
        let cx4 = repetition.split(message.delimiters.component).nth(3).unwrap_or("");
        let (namespace, universal, kind) =
            (message.subcomponent(cx4, 1), message.subcomponent(cx4, 2), message.subcomponent(cx4, 3));
        let system = match kind.to_ascii_uppercase().as_str() {
            "ISO" if !universal.is_empty() => format!("urn:oid:{universal}"),
            "URI" if !universal.is_empty() => universal,
            _ if !namespace.is_empty() => namespace,
            _ => universal,
        };
        Some(PatientHint { system, value })
    }

    /// A time field (`segment`-`field`), or `None` when empty; a bad one is a problem.
    fn time(&mut self, segment: &Segment, sequence: usize, id: &'static str, field: usize) -> Option<DateTime<Utc>> {
        let raw = segment.text(field, 1);
        if raw.is_empty() {
            return None;
        }
        match parse_dtm(&raw, self.terms.timezone) {
            Ok(at) => Some(at),
            Err(why) => {
                self.problem(id, sequence, field, RejectReason::BadTime, format!("{raw:?} {why}"));
                None
            }
        }
    }

    /// What one OBX measures, if it is a reading; problems are recorded, unmapped codes listed.
    fn observation(&mut self, obx: &Segment, sequence: usize, unmapped: &mut Vec<String>) -> Option<Observation> {
        let (code, name, system) = (obx.text(3, 1), obx.text(3, 2), obx.text(3, 3));
        let value_type = obx.text(2, 1);
        let raw_value = self.message.delimiters.unescape(obx.first_repetition(5)).trim().to_string();
        let mdc = system.is_empty() || system.eq_ignore_ascii_case("MDC");
        let metric = if mdc { code.parse().ok().and_then(metric_by_code) } else { None };
        let Some(metric) = metric else {
            if !raw_value.is_empty() {
                let label = format!("OBX-3 {code}^{name}");
                if !unmapped.contains(&label) {
                    unmapped.push(label);
                }
            }
            return None;
        };
        let status = obx.text(11, 1);
        if matches!(status.as_str(), "C" | "D") {
            let what = if status == "C" { "a correction" } else { "a deletion" };
            self.problem(
                "OBX",
                sequence,
                11,
                RejectReason::BadValue,
                format!("result status {status:?} ({what} of an earlier result) is not supported: Vigil never rewrites a stored reading"),
            );
            return None;
        }
        if raw_value.is_empty() {
            return None;
        }
        if value_type != "NM" {
            self.problem(
                "OBX",
                sequence,
                2,
                RejectReason::BadValue,
                format!("{} is a number, but OBX-2 says {value_type:?}, expected \"NM\"", metric.mdc_ref),
            );
            return None;
        }
        let time = self.time(obx, sequence, "OBX", 14);
        let Some(number) = parse_nm(&raw_value) else {
            let shown: String = raw_value.chars().take(40).collect();
            self.problem(
                "OBX",
                sequence,
                5,
                RejectReason::BadValue,
                format!("{} value {shown:?} is not a number (NM)", metric.mdc_ref),
            );
            return None;
        };
        let unit = match unit(obx) {
            Ok(unit) => unit,
            Err((reason, why)) => {
                self.problem("OBX", sequence, 6, reason, format!("{} unit {why}", metric.mdc_ref));
                return None;
            }
        };
        let value = match convert(number, &unit, metric) {
            Ok(value) => value,
            Err(e) => {
                self.problem(
                    "OBX",
                    sequence,
                    6,
                    RejectReason::BadUnit,
                    format!("{} cannot be converted: {e}", metric.mdc_ref),
                );
                return None;
            }
        };
        let mut validity = if status == "X" { Validity::Invalid } else { Validity::Valid };
        for flag in obx.repetitions(8) {
            validity = validity.worst(match self.message.unescaped(flag, 1).as_str() {
                "INV" | "NAV" => Validity::Invalid,
                "QUES" => Validity::Questionable,
                "TEST" | "DEMO" => Validity::Demo,
                _ => Validity::Valid,
            });
        }
        let mds = obx.text(4, 1).split('.').next().unwrap_or("").to_string();
        Some(Observation { metric, value, validity, time, mds })
    }
}

/// One numeric observation.
struct Observation {
    metric: &'static Metric,
    value: f64,
    validity: Validity,
    time: Option<DateTime<Utc>>,
    /// The MDS number of its containment path, whose device it inherits.
    mds: String,
}

/// MDC unit codes (IEEE 11073-10101) and their reference ids, as UCUM.
const MDC_UNITS: [(u32, &str, &str); 6] = [
    (262688, "MDC_DIM_PERCENT", "%"),
    (264864, "MDC_DIM_BEAT_PER_MIN", "/min"),
    (264928, "MDC_DIM_RESP_PER_MIN", "/min"),
    (266016, "MDC_DIM_MMHG", "mm[Hg]"),
    (266560, "MDC_DIM_FAHR", "[degF]"),
    (268192, "MDC_DIM_DEGC", "Cel"),
];

/// OBX-6: an MDC unit (code or reference id), or UCUM.
fn unit(obx: &Segment) -> Result<Unit, (RejectReason, String)> {
    let (code, name, system) = (obx.text(6, 1), obx.text(6, 2), obx.text(6, 3));
    if code.is_empty() && name.is_empty() {
        return Err((RejectReason::MissingField, "is missing: OBX-6 is empty, and a number needs its unit".into()));
    }
    let mdc = MDC_UNITS.iter().find(|(c, r, _)| code.parse() == Ok(*c) || *r == name || *r == code);
    let ucum = match mdc {
        Some((_, _, ucum)) => parse_unit(ucum),
        None if system.eq_ignore_ascii_case("MDC") => None,
        None => parse_unit(&code).or_else(|| parse_unit(&name)),
    };
    ucum.ok_or_else(|| {
        (
            RejectReason::BadUnit,
            format!(
                "{:?} is not a unit Vigil knows (an MDC unit code such as 262688^MDC_DIM_PERCENT^MDC, or UCUM)",
                obx.field(6)
            ),
        )
    })
}

/// An HL7 NM: optional sign, digits, optional decimal point. Not Rust's float syntax: `inf`, `NaN`
/// and exponents are not numbers in HL7.
fn parse_nm(text: &str) -> Option<f64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let valid = !digits.is_empty()
        && digits.chars().any(|c| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1;
    if valid { text.parse().ok().filter(|v: &f64| v.is_finite()) } else { None }
}

/// An EUI-64 in its one registry form, 16 upper-case hex digits, if `id` is one (plain, or in
/// groups separated by `-` or `:`).
pub fn eui64(id: &str) -> Option<String> {
    let hex: String = id.chars().filter(|c| !matches!(c, '-' | ':')).collect();
    let grouped =
        id.len() == 16 || id.split(['-', ':']).all(|g| g.len() == 2) || id.split(['-', ':']).all(|g| g.len() == 4);
    (grouped && hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| hex.to_ascii_uppercase())
}

/// An HL7 DTM to the millisecond: `YYYYMMDDHHMM[SS[.S[S[S[S]]]]][+/-ZZZZ]`. Minutes at least: a
/// reading's time coarser than that cannot be placed. Without an offset it is read in `timezone`.
fn parse_dtm(raw: &str, timezone: Option<Tz>) -> Result<DateTime<Utc>, String> {
    let (stamp, offset) = match raw.find(['+', '-']) {
        Some(i) => (&raw[..i], Some(&raw[i..])),
        None => (raw, None),
    };
    let (whole, fraction) = stamp.split_once('.').unwrap_or((stamp, ""));
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) || fraction.len() > 4 || !matches!(whole.len(), 12 | 14) {
        return Err("is not an HL7 time: expected YYYYMMDDHHMM[SS[.SSSS]][+ZZZZ], e.g. 20261124100000+0000".into());
    }
    let number = |range: std::ops::Range<usize>| whole.get(range).and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    let millis = format!("{fraction:0<3}")[..3].parse::<u32>().unwrap_or(0);
    let naive = NaiveDate::from_ymd_opt(number(0..4) as i32, number(4..6), number(6..8))
        .and_then(|d| d.and_hms_milli_opt(number(8..10), number(10..12), number(12..14), millis))
        .ok_or("is not a real date and time")?;
    if let Some(offset) = offset {
        let ok = offset.len() == 5 && all_digits(&offset[1..]);
        let minutes = if ok { number_of(&offset[1..3]) * 60 + number_of(&offset[3..5]) } else { -1 };
        let seconds = if offset.starts_with('-') { -minutes * 60 } else { minutes * 60 };
        let zone = (minutes >= 0)
            .then(|| FixedOffset::east_opt(seconds))
            .flatten()
            .ok_or("has a malformed UTC offset: expected +HHMM or -HHMM")?;
        return zone
            .from_local_datetime(&naive)
            .single()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| "cannot be placed".to_string());
    }
    let Some(zone) = timezone else {
        return Err("has no UTC offset, and [sources.mllp] timezone is not set: Vigil never guesses local time; \
             set timezone to the devices' zone (e.g. \"Europe/Berlin\") or have the gateway send offsets"
            .into());
    };
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(..) => Err(format!(
            "is ambiguous in {zone} (the hour repeated when the clocks go back): only a UTC offset can place it"
        )),
        LocalResult::None => Err(format!(
            "does not exist in {zone} (the hour skipped when the clocks go forward): check the device clock"
        )),
    }
}

fn number_of(digits: &str) -> i32 {
    digits.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests;
