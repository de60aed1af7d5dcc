//! The vital-sign codes Vigil speaks: IEEE 11073-10101 (MDC) with their LOINC codings and canonical
//! UCUM unit.
//!
//! The table mirrors the code table of `CLINICAL.md`, which is the source of truth; only metrics that
//! carry a value are here (the NIBP panel 150020 has no value of its own). A reading always carries
//! one of these `&'static` rows, so a code, its LOINC codings and its unit can never drift apart.

use super::units::Dimension;

/// One measurable vital sign: its MDC identity, LOINC codings and canonical UCUM unit.
#[derive(Debug, PartialEq)]
pub struct Metric {
    /// The MDC code (IEEE 11073-10101), e.g. 150456.
    pub mdc_code: u32,
    /// The MDC reference id, e.g. `MDC_PULS_OXIM_SAT_O2`.
    pub mdc_ref: &'static str,
    /// LOINC codes in the order they go on `Observation.code` (US Core wants both SpO2 codings).
    pub loinc: &'static [&'static str],
    /// The canonical UCUM unit every value of this metric is converted into.
    pub unit: &'static str,
    /// The physical dimension of `unit`, which a profile's declared units must share.
    pub dimension: Dimension,
    /// A short human name for messages and the console.
    pub display: &'static str,
    /// The physiologically plausible range, inclusive, in `unit`: a value outside it is a unit or
    /// scaling mistake, never a patient. A real 0 (asystole, apnoea) is inside the range of the
    /// metrics where it can occur.
    pub plausible: (f64, f64),
    /// Decimal places a statistic of this metric is charted with: a median of two readings has no
    /// more precision than the readings (36.85 Cel, not 36.849999999999994).
    pub decimals: u8,
}

static METRICS: [Metric; 9] = [
    Metric {
        mdc_code: 147842,
        mdc_ref: "MDC_ECG_HEART_RATE",
        loinc: &["8867-4"],
        unit: "/min",
        dimension: Dimension::Frequency,
        display: "Heart rate",
        plausible: (0.0, 350.0),
        decimals: 0,
    },
    Metric {
        mdc_code: 149530,
        mdc_ref: "MDC_PULS_OXIM_PULS_RATE",
        loinc: &["8867-4"],
        unit: "/min",
        dimension: Dimension::Frequency,
        display: "Pulse rate",
        plausible: (1.0, 350.0),
        decimals: 0,
    },
    Metric {
        mdc_code: 150456,
        mdc_ref: "MDC_PULS_OXIM_SAT_O2",
        loinc: &["59408-5", "2708-6"],
        unit: "%",
        dimension: Dimension::Fraction,
        display: "SpO2",
        plausible: (1.0, 100.0),
        decimals: 0,
    },
    Metric {
        mdc_code: 151562,
        mdc_ref: "MDC_RESP_RATE",
        loinc: &["9279-1"],
        unit: "/min",
        dimension: Dimension::Frequency,
        display: "Respiratory rate",
        plausible: (0.0, 150.0),
        decimals: 0,
    },
    Metric {
        mdc_code: 150364,
        mdc_ref: "MDC_TEMP_BODY",
        loinc: &["8310-5"],
        unit: "Cel",
        dimension: Dimension::Temperature,
        display: "Body temperature",
        plausible: (25.0, 45.0),
        decimals: 1,
    },
    Metric {
        mdc_code: 150021,
        mdc_ref: "MDC_PRESS_BLD_NONINV_SYS",
        loinc: &["8480-6"],
        unit: "mm[Hg]",
        dimension: Dimension::Pressure,
        display: "Systolic blood pressure",
        plausible: (10.0, 300.0),
        decimals: 0,
    },
    Metric {
        mdc_code: 150022,
        mdc_ref: "MDC_PRESS_BLD_NONINV_DIA",
        loinc: &["8462-4"],
        unit: "mm[Hg]",
        dimension: Dimension::Pressure,
        display: "Diastolic blood pressure",
        plausible: (10.0, 300.0),
        decimals: 0,
    },
    Metric {
        mdc_code: 150023,
        mdc_ref: "MDC_PRESS_BLD_NONINV_MEAN",
        loinc: &["8478-0"],
        unit: "mm[Hg]",
        dimension: Dimension::Pressure,
        display: "Mean blood pressure",
        plausible: (10.0, 300.0),
        decimals: 0,
    },
    Metric {
        mdc_code: 151708,
        mdc_ref: "MDC_AWAY_CO2_ET",
        // 19891-1 is "Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration": a
        // pressure, which matches the mm[Hg] unit (19889-5 is the volume fraction, in %).
        loinc: &["19891-1"],
        unit: "mm[Hg]",
        dimension: Dimension::Pressure,
        display: "End-tidal CO2",
        plausible: (0.0, 150.0),
        decimals: 0,
    },
];

/// Every metric Vigil knows, in table order.
pub fn all_metrics() -> &'static [Metric] {
    &METRICS
}

/// The metric with this MDC code, e.g. 150456.
pub fn metric_by_code(code: u32) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.mdc_code == code)
}

/// A metric's place in the table, which lists them in clinical order (systolic before diastolic
/// before mean); unknown codes come last.
pub fn clinical_order(code: u32) -> u32 {
    METRICS.iter().position(|m| m.mdc_code == code).map_or(u32::MAX, |i| i as u32)
}

/// The metric named by its MDC reference id (`MDC_PULS_OXIM_SAT_O2`, exact case) or its decimal code
/// (`150456`): profiles may use either.
pub fn metric_by_ref(s: &str) -> Option<&'static Metric> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().and_then(metric_by_code);
    }
    METRICS.iter().find(|m| m.mdc_ref == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_by_reference_id_and_by_decimal_code() {
        let spo2 = metric_by_ref("MDC_PULS_OXIM_SAT_O2").unwrap();
        assert_eq!(spo2.mdc_code, 150456);
        assert_eq!(spo2.loinc, &["59408-5", "2708-6"]);
        assert_eq!(spo2.unit, "%");
        assert_eq!(metric_by_ref("150456"), Some(spo2));
        assert_eq!(metric_by_code(150456), Some(spo2));
        assert_eq!(metric_by_ref("mdc_puls_oxim_sat_o2"), None);
        assert_eq!(metric_by_ref("150020"), None, "the NIBP panel has no value");
        assert_eq!(metric_by_ref(""), None);
        assert_eq!(metric_by_ref("99999999999999"), None);
    }

    #[test]
    fn table_matches_clinical_md() {
        let rows: Vec<_> = all_metrics().iter().map(|m| (m.mdc_code, m.mdc_ref, m.loinc.join(","), m.unit)).collect();
        let expected = [
            (147842, "MDC_ECG_HEART_RATE", "8867-4", "/min"),
            (149530, "MDC_PULS_OXIM_PULS_RATE", "8867-4", "/min"),
            (150456, "MDC_PULS_OXIM_SAT_O2", "59408-5,2708-6", "%"),
            (151562, "MDC_RESP_RATE", "9279-1", "/min"),
            (150364, "MDC_TEMP_BODY", "8310-5", "Cel"),
            (150021, "MDC_PRESS_BLD_NONINV_SYS", "8480-6", "mm[Hg]"),
            (150022, "MDC_PRESS_BLD_NONINV_DIA", "8462-4", "mm[Hg]"),
            (150023, "MDC_PRESS_BLD_NONINV_MEAN", "8478-0", "mm[Hg]"),
            (151708, "MDC_AWAY_CO2_ET", "19891-1", "mm[Hg]"),
        ];
        let expected: Vec<_> = expected.iter().map(|(c, r, l, u)| (*c, *r, l.to_string(), *u)).collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn every_canonical_unit_has_its_metric_dimension() {
        for m in all_metrics() {
            let unit = super::super::units::parse_unit(m.unit).unwrap();
            assert_eq!(unit.dimension, m.dimension, "{}", m.mdc_ref);
            assert_eq!(unit.dimension.canonical_unit(), m.unit, "{}", m.mdc_ref);
        }
    }
}
