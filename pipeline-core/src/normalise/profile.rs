//! Device profiles: declarative TOML files that say how one vendor's payload becomes readings.
//!
//! Invariant: a [`Profile`] that loaded is fully checked. Every code is in the code table, every
//! path parses, every unit it may ever meet is known and has the dimension of its code's canonical
//! unit, and no two profiles of a [`ProfileSet`] share an id or could serve the same MQTT topic. A
//! refusal names the file, the line, the mapping, why, and what to do.
//!
//! # Format
//!
//! One profile per `*.toml` file. Unknown keys are refused, so a typo cannot silently drop a field.
//!
//! ```toml
//! id = "acme-ox100"                     # unique; letters, digits, '-', '_', '.'
//! vendor = "Acme Medical"
//! model = "OX-100"
//! description = "Fingertip pulse oximeter"   # optional
//! topics = ["vigil/devices/+/oximeter"]  # MQTT topic filters ('+' one level, '#' the rest)
//! each = "/batch"                        # optional: an array; every element yields readings
//! device_id = "/sn"                      # path to the device's own id (string or integer)
//! device_id_format = "serial"            # or "eui64": how the EHR is told the id (default serial)
//! delivery = "live"                      # or "batch": uploads of old readings (no clock watch)
//!
//! [time]                                 # when the device measured
//! path = "/ts"
//! format = "rfc3339"                     # or "epoch_ms", "epoch_s"
//!
//! [patient]                              # optional: a patient identifier in the payload
//! path = "/monitor/patient/mrn"
//! system = "urn:oid:1.2.3.4"             # the identifier system it belongs to, or instead
//! # format = "token"                     # the field is "system|value" (FHIR search style), its
//!                                        # system a URI or an [identity.systems] alias
//!
//! [validity]                             # optional: the device's own quality flag
//! path = "/status"
//! map = { ok = "valid", artifact = "questionable", sensor_off = "invalid" }
//! unmapped = "questionable"              # optional: for flags not in `map` (default: reject)
//!                                        # A number or boolean flag matches its JSON text
//!                                        # (`0 = "valid"`); a payload without the flag is valid.
//!
//! [[mapping]]                            # one per measured value
//! code = "MDC_PULS_OXIM_SAT_O2"          # MDC reference id or decimal code ("150456")
//! value = "/spo2"
//! unit = "%"                             # the unit the device always uses...
//!
//! [[mapping]]
//! code = "MDC_TEMP_BODY"
//! value = "/obs/params[label=TEMP]/v"
//! unit_path = "/obs/params[label=TEMP]/uom"  # ...or where the payload states it,
//! units = ["degF", "Cel"]                # and the unit strings accepted there
//! no_value = -1                          # optional: a number that means "no measurement"
//!                                        # (kept as an invalid reading, never a value)
//! # optional: this value's own quality flag, same form as [validity]; the reading takes the worse
//! # of the payload's flag and its own
//! validity = { path = "/obs/params[label=TEMP]/status", map = { ok = "valid", off = "invalid" } }
//! ```
//!
//! Paths are JSON Pointers with a `[field=value]` filter segment (grammar in `path.rs`). With
//! `each`, every other path (device id and patient included) is relative to the array element;
//! start a path with `$` (`$/device/eui64`) to read it from the document root instead. The time
//! format, validity names and unit spellings are those of [`TimeFormat`],
//! [`Validity`] and [`parse_unit`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use super::path::JsonPath;
use crate::model::codes::{Metric, all_metrics, metric_by_ref};
use crate::model::units::{Unit, parse_unit, units_of};
use crate::model::{DeviceIdentity, Validity};

/// How a payload writes the observed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// An RFC 3339 string with a UTC offset (`2026-11-24T10:00:00.120Z`, `...+01:00`).
    Rfc3339,
    /// Milliseconds since the Unix epoch (a number, or a string holding one).
    EpochMs,
    /// Seconds since the Unix epoch, possibly fractional.
    EpochS,
}

/// How a profile's devices deliver their readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// As they measure: their clock is watched, and a lagging one corrected for.
    #[default]
    Live,
    /// In uploads of old readings (a wearable syncing, a file import): old by design, so no clock
    /// alarm, and readings older than the rules' late limit never alarm.
    Batch,
}

/// What kind of id a device's `device_id` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceIdFormat {
    /// A vendor's serial number: unique only within the vendor's model.
    #[default]
    Serial,
    /// An IEEE EUI-64 (16 hex digits): unique worldwide.
    Eui64,
}

/// One loaded, fully checked device profile.
#[derive(Debug)]
pub struct Profile {
    /// Unique id, e.g. `acme-ox100`; stored with every raw payload so a replay knows its profile.
    pub id: String,
    /// The device maker, for people.
    pub vendor: String,
    /// The device model, for people.
    pub model: String,
    /// Free text for people; may be empty.
    pub description: String,
    /// MQTT topic filters this profile serves.
    pub topics: Vec<String>,
    /// What kind of id its devices have.
    pub device_id_format: DeviceIdFormat,
    /// Live or batch uploads.
    pub delivery: Delivery,
    /// The identifier system of the patient identifier the payload carries, if the profile maps one.
    pub patient_system: Option<String>,
    /// The file the profile was loaded from.
    pub source: PathBuf,
    /// How often its devices send, in seconds: the fleet view calls a device stale after 3 of
    /// these without a payload, and offline after 10 (or at its no-data rule).
    pub expected_interval_secs: u32,
    /// Where the battery charge (percent) is, when the device reports it: device status, never a
    /// reading.
    pub(super) battery: Option<JsonPath>,
    /// Where the firmware version is, when the device reports it.
    pub(super) firmware: Option<JsonPath>,
    pub(super) device_id: JsonPath,
    pub(super) time: TimeField,
    pub(super) patient: Option<PatientField>,
    pub(super) validity: Option<ValidityField>,
    pub(super) each: Option<JsonPath>,
    pub(super) mappings: Vec<Mapping>,
    /// Lines of `id` and of each topic filter, for set-level refusals (duplicates, overlaps).
    id_line: usize,
    topic_lines: Vec<usize>,
}

/// Where the observed time is and how it is written.
#[derive(Debug)]
pub(super) struct TimeField {
    pub(super) path: JsonPath,
    pub(super) format: TimeFormat,
}

/// Where the patient identifier is, and how its system is known.
#[derive(Debug)]
pub(super) struct PatientField {
    pub(super) path: JsonPath,
    pub(super) system: PatientSystem,
}

/// How a patient identifier's system is known.
#[derive(Debug)]
pub(super) enum PatientSystem {
    /// The profile names it.
    Fixed(String),
    /// The field is a `system|value` token.
    Token,
}

/// How a payload writes its patient identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PatientFormat {
    /// The value alone, in the profile's `system`.
    #[default]
    Value,
    /// `system|value` in one field.
    Token,
}

/// Where the device's validity flag is and what its values mean.
#[derive(Debug)]
pub(super) struct ValidityField {
    pub(super) path: JsonPath,
    pub(super) map: Vec<(String, Validity)>,
    pub(super) unmapped: Option<Validity>,
}

impl ValidityField {
    fn new(path: JsonPath, raw: ValidityToml) -> ValidityField {
        ValidityField { path, map: raw.map.into_iter().collect(), unmapped: raw.unmapped }
    }
}

/// One value mapping, resolved against the code table.
#[derive(Debug)]
pub(super) struct Mapping {
    pub(super) metric: &'static Metric,
    pub(super) value: JsonPath,
    pub(super) unit: UnitSource,
    /// The value's own quality flag (a monitor parameter's status), if the device sends one.
    pub(super) validity: Option<ValidityField>,
    /// The number the device sends when it has no measurement (a probe off often reads 0 or -1).
    pub(super) no_value: Option<f64>,
}

/// Where a mapping's unit comes from.
#[derive(Debug)]
pub(super) enum UnitSource {
    /// The profile states it; the payload carries none.
    Fixed(Unit),
    /// The payload states it at `path`; only the listed spellings (checked at load) are accepted.
    Payload { path: JsonPath, accepted: Vec<(String, Unit)> },
}

/// One thing wrong with a profile file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileProblem {
    /// The file (or directory) at fault.
    pub file: PathBuf,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for ProfileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Profiles that cannot be loaded: every problem found, not only the first, so one edit-and-retry
/// fixes them all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", display_problems(.problems))]
pub struct ProfileError {
    /// Every problem found, in file order.
    pub problems: Vec<ProfileProblem>,
}

fn display_problems(problems: &[ProfileProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// The profiles of one directory, consistent with each other.
#[derive(Debug, Default)]
pub struct ProfileSet {
    /// Sorted by file name, so iteration and error order are stable.
    profiles: Vec<Profile>,
}

impl Profile {
    /// How the EHR is told about one of this profile's devices.
    pub fn identity(&self, device_id: &str) -> DeviceIdentity {
        DeviceIdentity {
            id: device_id.to_string(),
            eui64: self.device_id_format == DeviceIdFormat::Eui64,
            profile_id: Some(self.id.clone()),
            manufacturer: Some(self.vendor.clone()),
            model: Some(self.model.clone()),
        }
    }
}

impl ProfileSet {
    /// Loads every `*.toml` file of `dir` (not its subdirectories). Refuses the whole set if any
    /// file is bad, if two profiles share an id, or if two could serve the same topic: a payload
    /// read with the wrong profile would chart wrong values for a patient.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<ProfileSet, ProfileError> {
        let dir = dir.as_ref();
        let problem = |message: String| ProfileError {
            problems: vec![ProfileProblem { file: dir.to_path_buf(), line: None, message }],
        };
        let entries = fs::read_dir(dir).map_err(|e| {
            problem(format!("cannot read the profile directory: {e}: check that it exists and is readable"))
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| problem(format!("cannot list the profile directory: {e}")))?.path();
            if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();

        let mut problems = Vec::new();
        let mut profiles: Vec<Profile> = Vec::new();
        for file in files {
            match load_profile(&file) {
                Ok(profile) => {
                    problems.extend(conflicts(&profiles, &profile));
                    profiles.push(profile);
                }
                Err(e) => problems.extend(e.problems),
            }
        }
        if problems.is_empty() { Ok(ProfileSet { profiles }) } else { Err(ProfileError { problems }) }
    }

    /// The profile serving an MQTT topic. At most one can: overlapping filters are refused at load.
    pub fn for_topic(&self, topic: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.topics.iter().any(|filter| topic_matches(filter, topic)))
    }

    /// The profile with this id.
    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.id == id)
    }

    /// Every profile, in file-name order.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.profiles.iter()
    }

    /// Every profile id a device may be registered with: the loaded files' and the built-in
    /// `pcd-01` (HL7 v2 devices).
    pub fn ids(&self) -> Vec<String> {
        self.profiles.iter().map(|p| p.id.clone()).chain([super::pcd01::PROFILE_ID.to_string()]).collect()
    }

    /// Whether a device may be registered with this profile id.
    pub fn knows(&self, id: &str) -> bool {
        id == super::pcd01::PROFILE_ID || self.get(id).is_some()
    }

    /// How the EHR is told about a device of this profile, if the profile is known.
    pub fn identity(&self, profile_id: &str, device_id: &str) -> Option<DeviceIdentity> {
        if profile_id == super::pcd01::PROFILE_ID {
            return Some(DeviceIdentity {
                id: device_id.to_string(),
                eui64: super::pcd01::eui64(device_id).is_some(),
                profile_id: Some(profile_id.to_string()),
                manufacturer: None,
                model: None,
            });
        }
        self.get(profile_id).map(|p| p.identity(device_id))
    }
}

/// Problems `candidate` has with profiles already accepted: a shared id or an overlapping topic.
fn conflicts(accepted: &[Profile], candidate: &Profile) -> Vec<ProfileProblem> {
    let mut problems = Vec::new();
    for other in accepted {
        if other.id == candidate.id {
            problems.push(ProfileProblem {
                file: candidate.source.clone(),
                line: Some(candidate.id_line),
                message: format!(
                    "profile id \"{}\" is already used by {}:{}: give every profile its own id",
                    candidate.id,
                    other.source.display(),
                    other.id_line
                ),
            });
        }
        for (filter, line) in candidate.topics.iter().zip(&candidate.topic_lines) {
            for (other_filter, other_line) in other.topics.iter().zip(&other.topic_lines) {
                if filters_overlap(filter, other_filter) {
                    problems.push(ProfileProblem {
                        file: candidate.source.clone(),
                        line: Some(*line),
                        message: format!(
                            "topic filter \"{filter}\" overlaps \"{other_filter}\" of profile \"{}\" \
                             ({}:{other_line}): a message could match both profiles; make the \
                             filters disjoint",
                            other.id,
                            other.source.display()
                        ),
                    });
                }
            }
        }
    }
    problems
}

/// Loads and checks one profile file.
pub fn load_profile(path: impl AsRef<Path>) -> Result<Profile, ProfileError> {
    let path = path.as_ref();
    let fail = |line: Option<usize>, message: String| ProfileError {
        problems: vec![ProfileProblem { file: path.to_path_buf(), line, message }],
    };
    let src = fs::read_to_string(path).map_err(|e| fail(None, format!("cannot read the profile: {e}")))?;
    let raw: ProfileToml = toml::from_str(&src).map_err(|e| {
        let line = e.span().map(|span| line_of(&src, span.start));
        fail(line, format!("{}: fix the TOML", e.message().trim_end()))
    })?;
    let mut check = Checker { file: path, src: &src, problems: Vec::new() };
    let profile = check.profile(raw);
    // Checks run part by part; people read a file top to bottom.
    check.problems.sort_by_key(|p| p.line);
    match profile {
        Some(profile) if check.problems.is_empty() => Ok(profile),
        _ => Err(ProfileError { problems: check.problems }),
    }
}

/// The file as written. Spanned fields give the line of each refusal.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileToml {
    id: Spanned<String>,
    vendor: String,
    model: String,
    #[serde(default)]
    description: String,
    topics: Spanned<Vec<Spanned<String>>>,
    each: Option<Spanned<String>>,
    device_id: Spanned<String>,
    #[serde(default)]
    device_id_format: DeviceIdFormat,
    #[serde(default)]
    delivery: Delivery,
    time: TimeToml,
    patient: Option<PatientToml>,
    validity: Option<ValidityToml>,
    mapping: Spanned<Vec<MappingToml>>,
    #[serde(default = "default_interval")]
    expected_interval_secs: Spanned<u32>,
    battery: Option<Spanned<String>>,
    firmware: Option<Spanned<String>>,
}

/// A device that does not say otherwise sends every 5 s.
fn default_interval() -> Spanned<u32> {
    Spanned::new(0..0, DEFAULT_INTERVAL_SECS)
}

/// How often a device sends when its profile does not say.
pub const DEFAULT_INTERVAL_SECS: u32 = 5;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeToml {
    path: Spanned<String>,
    format: TimeFormat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatientToml {
    path: Spanned<String>,
    system: Option<Spanned<String>>,
    #[serde(default)]
    format: PatientFormat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidityToml {
    path: Spanned<String>,
    map: BTreeMap<String, Validity>,
    unmapped: Option<Validity>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingToml {
    code: Spanned<String>,
    value: Spanned<String>,
    unit: Option<Spanned<String>>,
    unit_path: Option<Spanned<String>>,
    units: Option<Spanned<Vec<Spanned<String>>>>,
    validity: Option<ValidityToml>,
    no_value: Option<f64>,
}

/// Turns a [`ProfileToml`] into a [`Profile`], collecting every problem on the way.
struct Checker<'a> {
    file: &'a Path,
    src: &'a str,
    problems: Vec<ProfileProblem>,
}

impl Checker<'_> {
    fn refuse(&mut self, span: Range<usize>, message: String) {
        self.problems.push(ProfileProblem {
            file: self.file.to_path_buf(),
            line: Some(line_of(self.src, span.start)),
            message,
        });
    }

    fn path(&mut self, text: &Spanned<String>, what: &str) -> Option<JsonPath> {
        match JsonPath::parse(text.get_ref()) {
            Ok(path) => Some(path),
            Err(e) => {
                self.refuse(text.span(), format!("{what}: {e}"));
                None
            }
        }
    }

    /// `Some(None)` when the optional path is not set, `None` when it is set but does not parse.
    fn optional_path(&mut self, text: Option<&Spanned<String>>, what: &str) -> Option<Option<JsonPath>> {
        match text {
            Some(text) => self.path(text, what).map(Some),
            None => Some(None),
        }
    }

    fn profile(&mut self, raw: ProfileToml) -> Option<Profile> {
        let id = raw.id.get_ref();
        let id_ok = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !id_ok {
            self.refuse(
                raw.id.span(),
                format!("profile id \"{id}\" must be non-empty and use only letters, digits, '-', '_' and '.'"),
            );
        }

        if id == super::pcd01::PROFILE_ID {
            self.refuse(
                raw.id.span(),
                format!(
                    "profile id \"{id}\" is Vigil's built-in profile for HL7 v2 devices (IHE PCD-01): choose another id"
                ),
            );
        }

        if raw.topics.get_ref().is_empty() {
            self.refuse(
                raw.topics.span(),
                "topics is empty: list the MQTT topic filters this profile serves, e.g. \"vigil/devices/+/oximeter\""
                    .to_string(),
            );
        }
        for topic in raw.topics.get_ref() {
            if let Err(why) = check_topic_filter(topic.get_ref()) {
                self.refuse(topic.span(), format!("topic filter \"{}\" {why}", topic.get_ref()));
            }
        }

        // Each part is checked even when an earlier one failed, so every problem is reported.
        let each = self.optional_path(raw.each.as_ref(), "each");
        let device_id = self.path(&raw.device_id, "device_id");
        let time_path = self.path(&raw.time.path, "time.path");
        let patient_system = raw.patient.as_ref().and_then(|p| self.patient_system(p));
        let patient = self.optional_path(raw.patient.as_ref().map(|p| &p.path), "patient.path");
        let validity_path = self.optional_path(raw.validity.as_ref().map(|v| &v.path), "validity.path");
        let battery = self.optional_path(raw.battery.as_ref(), "battery");
        let firmware = self.optional_path(raw.firmware.as_ref(), "firmware");
        if *raw.expected_interval_secs.get_ref() == 0 {
            self.refuse(
                raw.expected_interval_secs.span(),
                "expected_interval_secs is 0: give how often the device sends, in seconds (at least 1)".into(),
            );
        }

        if raw.mapping.get_ref().is_empty() {
            self.refuse(
                raw.mapping.span(),
                "the profile maps no values: add a [[mapping]] per measured value".to_string(),
            );
        }
        let mut mappings: Vec<Mapping> = Vec::new();
        let mut code_lines: Vec<(u32, usize)> = Vec::new();
        for raw_mapping in raw.mapping.into_inner() {
            let Some(mapping) = self.mapping(&raw_mapping) else {
                continue;
            };
            let line = line_of(self.src, raw_mapping.code.span().start);
            let code = mapping.metric.mdc_code;
            if let Some((_, first)) = code_lines.iter().find(|(c, _)| *c == code) {
                self.refuse(
                    raw_mapping.code.span(),
                    format!(
                        "{} is mapped twice (first on line {first}): keep one mapping per code",
                        label(mapping.metric)
                    ),
                );
            }
            code_lines.push((code, line));
            mappings.push(mapping);
        }

        Some(Profile {
            id: raw.id.get_ref().clone(),
            vendor: raw.vendor,
            model: raw.model,
            description: raw.description,
            topics: raw.topics.get_ref().iter().map(|t| t.get_ref().clone()).collect(),
            device_id_format: raw.device_id_format,
            delivery: raw.delivery,
            patient_system: match &patient_system {
                Some(PatientSystem::Fixed(system)) => Some(system.clone()),
                _ => None,
            },
            source: self.file.to_path_buf(),
            expected_interval_secs: *raw.expected_interval_secs.get_ref(),
            battery: battery?,
            firmware: firmware?,
            device_id: device_id?,
            time: TimeField { path: time_path?, format: raw.time.format },
            patient: match (patient?, patient_system) {
                (Some(path), Some(system)) => Some(PatientField { path, system }),
                _ => None,
            },
            validity: match (validity_path?, raw.validity) {
                (Some(path), Some(v)) => Some(ValidityField::new(path, v)),
                _ => None,
            },
            each: each?,
            mappings,
            id_line: line_of(self.src, raw.id.span().start),
            topic_lines: raw.topics.get_ref().iter().map(|t| line_of(self.src, t.span().start)).collect(),
        })
    }

    /// How `[patient]` knows its identifier's system: `system`, or `format = "token"`, not both.
    fn patient_system(&mut self, raw: &PatientToml) -> Option<PatientSystem> {
        match (raw.format, &raw.system) {
            (PatientFormat::Value, Some(system)) if !system.get_ref().trim().is_empty() => {
                Some(PatientSystem::Fixed(system.get_ref().clone()))
            }
            (PatientFormat::Value, system) => {
                let span = system.as_ref().map_or(raw.path.span(), |s| s.span());
                self.refuse(
                    span,
                    "patient.system is empty: name the identifier system of the patient identifier, e.g. the MRN \
                     system's URI, or set format = \"token\" if the field is \"system|value\""
                        .to_string(),
                );
                None
            }
            (PatientFormat::Token, None) => Some(PatientSystem::Token),
            (PatientFormat::Token, Some(system)) => {
                self.refuse(
                    system.span(),
                    "patient.system is set, but format = \"token\" takes the system from the field (\"system|value\"): remove system".to_string(),
                );
                None
            }
        }
    }

    fn mapping(&mut self, raw: &MappingToml) -> Option<Mapping> {
        let Some(metric) = metric_by_ref(raw.code.get_ref()) else {
            let known: Vec<String> = all_metrics().iter().map(|m| format!("{} ({})", m.mdc_ref, m.mdc_code)).collect();
            self.refuse(
                raw.code.span(),
                format!(
                    "mapping with code \"{}\": no such code in Vigil's table; use one of {}",
                    raw.code.get_ref(),
                    known.join(", ")
                ),
            );
            return None;
        };
        let what = label(metric);
        let value = self.path(&raw.value, &format!("{what}: value"));
        // `Some(None)`: no flag of its own; `None`: a flag whose path does not parse.
        let validity = match &raw.validity {
            Some(v) => self.path(&v.path, &format!("{what}: validity.path")).map(|path| {
                Some(ValidityField {
                    path,
                    map: v.map.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                    unmapped: v.unmapped,
                })
            }),
            None => Some(None),
        };
        let unit = match (&raw.unit, &raw.unit_path, &raw.units) {
            (Some(unit), None, None) => self.unit(metric, unit).map(UnitSource::Fixed),
            (None, Some(unit_path), Some(units)) => {
                let path = self.path(unit_path, &format!("{what}: unit_path"));
                if units.get_ref().is_empty() {
                    self.refuse(
                        units.span(),
                        format!(
                            "{what} accepts no units: list the unit strings the payload may carry at {}",
                            unit_path.get_ref()
                        ),
                    );
                }
                let accepted: Vec<_> =
                    units.get_ref().iter().filter_map(|u| Some((u.get_ref().clone(), self.unit(metric, u)?))).collect();
                let all_ok = accepted.len() == units.get_ref().len();
                path.filter(|_| all_ok).map(|path| UnitSource::Payload { path, accepted })
            }
            (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
                self.refuse(
                    raw.code.span(),
                    format!("{what} declares both a fixed unit and payload units: use `unit` when the device always sends one unit, or `unit_path` + `units` when the payload states it"),
                );
                None
            }
            (None, Some(_), None) => {
                self.refuse(
                    raw.code.span(),
                    format!("{what} has a unit_path but no units: list the unit strings the payload may carry, e.g. units = [\"{}\"]", metric.unit),
                );
                None
            }
            (None, None, _) => {
                self.refuse(
                    raw.code.span(),
                    format!("{what} declares no unit: add unit = \"{}\" (or the unit the device sends), or unit_path + units", metric.unit),
                );
                None
            }
        };
        Some(Mapping { metric, value: value?, unit: unit?, validity: validity?, no_value: raw.no_value })
    }

    /// The unit a mapping declares, if Vigil knows it and it measures what the metric measures.
    fn unit(&mut self, metric: &'static Metric, spelled: &Spanned<String>) -> Option<Unit> {
        let what = label(metric);
        let text = spelled.get_ref();
        let Some(unit) = parse_unit(text) else {
            self.refuse(
                spelled.span(),
                format!("{what} declares unit \"{text}\", which Vigil does not know: use {}", suggestion(metric)),
            );
            return None;
        };
        if unit.dimension != metric.dimension {
            let spelled_as = if unit.ucum == text {
                format!("\"{text}\" ({})", unit.dimension.name())
            } else {
                format!("\"{text}\" ({}, a {})", unit.ucum, unit.dimension.name())
            };
            self.refuse(
                spelled.span(),
                format!(
                    "{what} declares unit {spelled_as}, but {} is a {} measured in \"{}\": use {}",
                    metric.display,
                    metric.dimension.name(),
                    metric.unit,
                    suggestion(metric)
                ),
            );
            return None;
        }
        Some(unit)
    }
}

/// `mapping for MDC_PULS_OXIM_SAT_O2 (150456)`: how messages name a mapping.
fn label(metric: &Metric) -> String {
    format!("mapping for {} ({})", metric.mdc_ref, metric.mdc_code)
}

/// `"%"`, or `"Cel" or another temperature unit ("[degF]", "K")`.
fn suggestion(metric: &Metric) -> String {
    let others: Vec<String> =
        units_of(metric.dimension).filter(|u| *u != metric.unit).map(|u| format!("\"{u}\"")).collect();
    if others.is_empty() {
        format!("\"{}\"", metric.unit)
    } else {
        format!("\"{}\" or another {} unit ({})", metric.unit, metric.dimension.name(), others.join(", "))
    }
}

/// 1-based line of a byte offset.
fn line_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    src.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
}

/// MQTT rules for a topic filter (MQTT 5, 4.7): `#` alone and last, `+` alone in its level.
fn check_topic_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("is empty: write e.g. \"vigil/devices/+/oximeter\"");
    }
    if filter.contains('\0') {
        return Err("contains a NUL character");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("uses '#' other than as the whole last level: write e.g. \"vigil/devices/#\"");
        }
        if level.contains('+') && *level != "+" {
            return Err("uses '+' other than as a whole level: write e.g. \"vigil/devices/+/oximeter\"");
        }
    }
    Ok(())
}

/// Whether a topic matches an MQTT topic filter. Wildcards at the start do not match `$` topics.
fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            // `a/#` also matches `a` itself.
            (Some("#"), _) => return true,
            (None, None) => return true,
            (Some(f), Some(t)) if f == "+" || f == t => {}
            _ => return false,
        }
    }
}

/// Whether some topic could match both filters.
fn filters_overlap(a: &str, b: &str) -> bool {
    let mut a_levels = a.split('/');
    let mut b_levels = b.split('/');
    loop {
        match (a_levels.next(), b_levels.next()) {
            (Some("#"), _) | (_, Some("#")) | (None, None) => return true,
            (Some(x), Some(y)) if x == "+" || y == "+" || x == y => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_match_like_mqtt() {
        assert!(topic_matches("vigil/devices/+/oximeter", "vigil/devices/OX-1001/oximeter"));
        assert!(!topic_matches("vigil/devices/+/oximeter", "vigil/devices/OX-1001/monitor"));
        assert!(!topic_matches("vigil/devices/+/oximeter", "vigil/devices/a/b/oximeter"));
        assert!(!topic_matches("vigil/devices/+/oximeter", "vigil/devices/oximeter"));
        assert!(topic_matches("vigil/#", "vigil/devices/x"));
        assert!(topic_matches("vigil/#", "vigil"));
        assert!(!topic_matches("#", "$SYS/broker"));
        assert!(topic_matches("vigil/devices/x", "vigil/devices/x"));
    }

    #[test]
    fn overlapping_filters_are_detected() {
        assert!(filters_overlap("vigil/devices/+/oximeter", "vigil/devices/OX-1/oximeter"));
        assert!(filters_overlap("vigil/devices/+/oximeter", "vigil/#"));
        assert!(filters_overlap("a/+", "+/b"));
        assert!(!filters_overlap("vigil/devices/+/oximeter", "vigil/devices/+/monitor"));
        assert!(!filters_overlap("a/b", "a/b/c"));
    }

    #[test]
    fn malformed_topic_filters_are_refused() {
        for bad in ["", "vigil/#/x", "vigil/dev#", "vigil/+x/y"] {
            assert!(check_topic_filter(bad).is_err(), "{bad:?}");
        }
        for good in ["#", "+", "vigil/+/+/#", "vigil/devices/OX-1/oximeter"] {
            assert_eq!(check_topic_filter(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn lines_are_one_based() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
