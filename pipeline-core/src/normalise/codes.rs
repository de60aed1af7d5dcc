#![allow(missing_docs)]
#[derive(Debug, PartialEq)]
pub struct Metric { pub mdc_code: u32, pub mdc_ref: &'static str, pub loinc: &'static [&'static str], pub unit: &'static str, pub display: &'static str }
pub fn metric_by_code(_c: u32) -> Option<&'static Metric> { None }
pub fn metric_by_ref(_c: &str) -> Option<&'static Metric> { None }
