//! Units of measure: the UCUM units Vigil understands, the vendor spellings that stand for them, and
//! conversion into a metric's canonical unit.
//!
//! Invariant: a value is only ever converted between units of the same [`Dimension`]; a dimension
//! mismatch (SpO2 in `mm[Hg]`) is refused, never guessed at. Spellings are case-sensitive where UCUM
//! is (`K` is kelvin; `k` is nothing), so only the listed vendor aliases are accepted.

use thiserror::Error;

use super::codes::Metric;

/// The physical dimension of a unit; every dimension has one canonical UCUM unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// A dimensionless fraction, canonically `%`.
    Fraction,
    /// Events per time, canonically `/min`.
    Frequency,
    /// A temperature, canonically `Cel`.
    Temperature,
    /// A pressure, canonically `mm[Hg]`.
    Pressure,
}

impl Dimension {
    /// The UCUM unit values of this dimension are stored in.
    pub fn canonical_unit(self) -> &'static str {
        match self {
            Dimension::Fraction => "%",
            Dimension::Frequency => "/min",
            Dimension::Temperature => "Cel",
            Dimension::Pressure => "mm[Hg]",
        }
    }

    /// The dimension's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Fraction => "fraction",
            Dimension::Frequency => "frequency",
            Dimension::Temperature => "temperature",
            Dimension::Pressure => "pressure",
        }
    }

    /// Decimal places kept after a conversion: finer than any device of this dimension resolves, so
    /// rounding only removes float noise (`98.6 [degF]` becomes `37.0 Cel`, not `36.99999999999999`).
    fn decimals(self) -> i32 {
        match self {
            Dimension::Temperature => 2,
            Dimension::Fraction | Dimension::Frequency | Dimension::Pressure => 1,
        }
    }
}

/// A UCUM unit Vigil understands, with its affine map into its dimension's canonical unit:
/// `canonical = (value - zero) * scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    /// The UCUM code, e.g. `[degF]`.
    pub ucum: &'static str,
    /// What the unit measures.
    pub dimension: Dimension,
    zero: f64,
    scale: f64,
}

impl Unit {
    /// Whether this is the canonical unit of its dimension (conversion is the identity).
    pub fn is_canonical(&self) -> bool {
        self.ucum == self.dimension.canonical_unit()
    }
}

/// Pascals per `mm[Hg]` (UCUM: 13.5951 g/cm3 mercury at standard gravity).
const PA_PER_MM_HG: f64 = 133.322_387_415;

const UNITS: [Unit; 8] = [
    Unit { ucum: "%", dimension: Dimension::Fraction, zero: 0.0, scale: 1.0 },
    Unit { ucum: "/min", dimension: Dimension::Frequency, zero: 0.0, scale: 1.0 },
    Unit { ucum: "Cel", dimension: Dimension::Temperature, zero: 0.0, scale: 1.0 },
    Unit { ucum: "[degF]", dimension: Dimension::Temperature, zero: 32.0, scale: 5.0 / 9.0 },
    Unit { ucum: "K", dimension: Dimension::Temperature, zero: 273.15, scale: 1.0 },
    Unit { ucum: "mm[Hg]", dimension: Dimension::Pressure, zero: 0.0, scale: 1.0 },
    Unit { ucum: "kPa", dimension: Dimension::Pressure, zero: 0.0, scale: 1000.0 / PA_PER_MM_HG },
    Unit {
        ucum: "cm[H2O]",
        dimension: Dimension::Pressure,
        zero: 0.0,
        // 1 cm[H2O] = 98.0665 Pa (UCUM).
        scale: 98.0665 / PA_PER_MM_HG,
    },
];

/// Vendor spellings and the UCUM code they stand for. Every UCUM code also stands for itself.
const ALIASES: &[(&str, &str)] = &[
    ("bpm", "/min"),
    ("BPM", "/min"),
    ("beats/min", "/min"),
    ("1/min", "/min"),
    ("rpm", "/min"),
    ("RPM", "/min"),
    ("brpm", "/min"),
    ("breaths/min", "/min"),
    ("pct", "%"),
    ("percent", "%"),
    ("%SpO2", "%"),
    ("mmHg", "mm[Hg]"),
    ("mm Hg", "mm[Hg]"),
    ("cmH2O", "cm[H2O]"),
    ("cm H2O", "cm[H2O]"),
    ("degF", "[degF]"),
    ("°F", "[degF]"),
    ("℉", "[degF]"),
    ("F", "[degF]"),
    ("degC", "Cel"),
    ("°C", "Cel"),
    ("℃", "Cel"),
    ("C", "Cel"),
    ("kpa", "kPa"),
    ("KPA", "kPa"),
    ("Kelvin", "K"),
];

/// The unit a UCUM code or a known vendor spelling stands for.
pub fn parse_unit(s: &str) -> Option<Unit> {
    let ucum = ALIASES.iter().find(|(alias, _)| *alias == s).map_or(s, |(_, ucum)| ucum);
    UNITS.iter().find(|u| u.ucum == ucum).copied()
}

/// The UCUM codes of one dimension, canonical first: what to suggest when a profile gets it wrong.
pub fn units_of(dimension: Dimension) -> impl Iterator<Item = &'static str> {
    UNITS.iter().filter(move |u| u.dimension == dimension).map(|u| u.ucum)
}

/// Why a value could not be converted.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum UnitError {
    /// The unit measures something else than the metric (SpO2 in `mm[Hg]`).
    #[error("unit \"{unit}\" is a {unit_dimension}, but {metric} is a {metric_dimension} measured in \"{canonical}\"")]
    DimensionMismatch {
        /// The UCUM code of the offending unit.
        unit: &'static str,
        /// What the offending unit measures.
        unit_dimension: &'static str,
        /// The metric's display name.
        metric: &'static str,
        /// What the metric measures.
        metric_dimension: &'static str,
        /// The metric's canonical unit.
        canonical: &'static str,
    },
    /// The value is NaN or infinite, before or after conversion.
    #[error("{0} is not a finite number")]
    NotFinite(f64),
}

/// `value` in `from`, converted into `to_metric`'s canonical unit.
///
/// A conversion (not the identity) is rounded to the dimension's decimals so the same input always
/// yields the same stored value and content hash; values already in the canonical unit are kept as
/// the device sent them.
pub fn convert(value: f64, from: &Unit, to_metric: &Metric) -> Result<f64, UnitError> {
    if from.dimension != to_metric.dimension {
        return Err(UnitError::DimensionMismatch {
            unit: from.ucum,
            unit_dimension: from.dimension.name(),
            metric: to_metric.display,
            metric_dimension: to_metric.dimension.name(),
            canonical: to_metric.unit,
        });
    }
    if !value.is_finite() {
        return Err(UnitError::NotFinite(value));
    }
    if from.is_canonical() {
        return Ok(value);
    }
    let converted = (value - from.zero) * from.scale;
    let factor = 10f64.powi(from.dimension.decimals());
    let rounded = (converted * factor).round() / factor;
    if rounded.is_finite() { Ok(rounded) } else { Err(UnitError::NotFinite(rounded)) }
}

#[cfg(test)]
mod tests {
    use super::super::codes::metric_by_ref;
    use super::*;

    fn convert_to(value: f64, unit: &str, metric: &str) -> Result<f64, UnitError> {
        let unit = parse_unit(unit).unwrap_or_else(|| panic!("unit {unit} unknown"));
        convert(value, &unit, metric_by_ref(metric).unwrap())
    }

    #[test]
    fn vendor_spellings_map_to_ucum() {
        let cases = [
            ("bpm", "/min"),
            ("BPM", "/min"),
            ("beats/min", "/min"),
            ("/min", "/min"),
            ("rpm", "/min"),
            ("brpm", "/min"),
            ("breaths/min", "/min"),
            ("%", "%"),
            ("pct", "%"),
            ("%SpO2", "%"),
            ("mmHg", "mm[Hg]"),
            ("mm Hg", "mm[Hg]"),
            ("mm[Hg]", "mm[Hg]"),
            ("kPa", "kPa"),
            ("degF", "[degF]"),
            ("°F", "[degF]"),
            ("F", "[degF]"),
            ("[degF]", "[degF]"),
            ("degC", "Cel"),
            ("°C", "Cel"),
            ("C", "Cel"),
            ("Cel", "Cel"),
            ("K", "K"),
            ("cm[H2O]", "cm[H2O]"),
        ];
        for (spelling, ucum) in cases {
            assert_eq!(parse_unit(spelling).map(|u| u.ucum), Some(ucum), "{spelling}");
        }
    }

    #[test]
    fn case_matters_where_ucum_says_so() {
        for unknown in ["k", "cel", "MMHG", "Bpm", "", "mm[hg]", "degree"] {
            assert_eq!(parse_unit(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn converts_into_canonical_units_and_rounds() {
        assert_eq!(convert_to(98.6, "[degF]", "MDC_TEMP_BODY"), Ok(37.0));
        assert_eq!(convert_to(310.15, "K", "MDC_TEMP_BODY"), Ok(37.0));
        assert_eq!(convert_to(100.4, "degF", "MDC_TEMP_BODY"), Ok(38.0));
        assert_eq!(convert_to(16.0, "kPa", "MDC_PRESS_BLD_NONINV_SYS"), Ok(120.0));
        assert_eq!(convert_to(10.7, "kPa", "MDC_PRESS_BLD_NONINV_DIA"), Ok(80.3));
        assert_eq!(convert_to(5.3, "kPa", "MDC_AWAY_CO2_ET"), Ok(39.8));
        // Large enough that an approximate factor (7.5 mm[Hg]/kPa) would show.
        assert_eq!(convert_to(100.0, "kPa", "MDC_PRESS_BLD_NONINV_SYS"), Ok(750.1));
        assert_eq!(convert_to(100.0, "cm[H2O]", "MDC_PRESS_BLD_NONINV_SYS"), Ok(73.6));
        assert_eq!(convert_to(13.6, "cm[H2O]", "MDC_PRESS_BLD_NONINV_MEAN"), Ok(10.0));
    }

    #[test]
    fn canonical_values_are_kept_as_sent() {
        assert_eq!(convert_to(36.87, "Cel", "MDC_TEMP_BODY"), Ok(36.87));
        assert_eq!(convert_to(97.25, "%", "MDC_PULS_OXIM_SAT_O2"), Ok(97.25));
        assert_eq!(convert_to(72.0, "bpm", "MDC_ECG_HEART_RATE"), Ok(72.0));
    }

    #[test]
    fn refuses_a_dimension_mismatch() {
        let err = convert_to(97.0, "mm[Hg]", "MDC_PULS_OXIM_SAT_O2").unwrap_err();
        assert_eq!(err.to_string(), "unit \"mm[Hg]\" is a pressure, but SpO2 is a fraction measured in \"%\"");
    }

    #[test]
    fn refuses_non_finite_values() {
        assert_eq!(
            convert_to(f64::NAN, "%", "MDC_PULS_OXIM_SAT_O2").map_err(|e| e.to_string()),
            Err("NaN is not a finite number".to_string())
        );
        assert!(convert_to(f64::MAX, "kPa", "MDC_PRESS_BLD_NONINV_SYS").is_err());
    }

    #[test]
    fn units_of_lists_canonical_first() {
        let temperatures: Vec<_> = units_of(Dimension::Temperature).collect();
        assert_eq!(temperatures, ["Cel", "[degF]", "K"]);
    }
}
