//! Trend charts for the console, drawn by plotters as SVG (the webview shows them as they are; no
//! charting code in the UI).

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use crate::model::Validity;
use crate::store::StoredReading;

/// Chart size in pixels; the console scales it to its pane.
const SIZE: (u32, u32) = (600, 300);

/// Type sizes: the caption, and the tick labels and axis names (readable at arm's length).
const CAPTION_PX: u32 = 18;
const LABEL_PX: u32 = 15;

/// A gap in the readings longer than this many typical intervals (and at least [`MIN_GAP_SECS`])
/// breaks the line: the chart does not invent values where none were measured.
const GAP_INTERVALS: f64 = 3.0;
const MIN_GAP_SECS: f64 = 10.0;

/// An active rule's alarm limit on the charted metric.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmLimit {
    /// The value the rule alarms past.
    pub value: f64,
    /// What the chart writes beside it, e.g. `spo2-low: below 90`.
    pub label: String,
}

/// A UCUM unit as clinicians write it (`Cel` is °C, `mm[Hg]` is mmHg); the data keeps UCUM.
pub fn clinical_unit(ucum: &str) -> &str {
    match ucum {
        "Cel" => "°C",
        "[degF]" => "°F",
        "mm[Hg]" => "mmHg",
        "{beats}/min" | "{breaths}/min" => "/min",
        other => other,
    }
}

/// One metric's trend: what it is, its readings and the active rules' limits on it.
pub struct Series<'a> {
    /// E.g. "SpO2 OX-1".
    pub title: String,
    /// The UCUM unit the readings are in.
    pub ucum: &'a str,
    /// Decimals the metric is shown with.
    pub decimals: usize,
    /// The readings, in any order.
    pub readings: &'a [StoredReading],
    /// The alarm limits on it.
    pub limits: &'a [AlarmLimit],
}

/// Draws a metric's readings over the last `minutes` up to `now`, x in the workstation's local
/// time with its zone, with the active rules' alarm limits as dashed lines. What the device flagged
/// travels into the picture: an invalid reading is never on the line (it breaks it, and is marked ×
/// along the bottom); a questionable one is a hollow ring on the line; a gap in the data is a gap;
/// demo data says so in the caption, which also gives the newest value and when it was measured.
pub fn trend(series: &Series, minutes: u32, now: DateTime<Utc>) -> String {
    render(SIZE, |root| {
        let picture = Picture::of(series, minutes, now);
        draw(root, &picture.caption(series, minutes), &picture, minutes, now)
    })
}

/// Every parameter of one patient stacked on one time axis, as [`trend`] draws each.
pub fn bed(title: &str, series: &[Series], minutes: u32, now: DateTime<Utc>) -> String {
    let height = BED_TITLE_PX + BED_PANEL_PX * series.len().max(1) as u32;
    render((SIZE.0, height), |root| {
        let (head, body) = root.split_vertically(BED_TITLE_PX);
        head.draw(&Text::new(
            format!("{title}, last {minutes} min ({})", local(now, "%Z")),
            (10, 8),
            ("sans-serif", CAPTION_PX).into_font(),
        ))?;
        for (area, s) in body.split_evenly((series.len().max(1), 1)).iter().zip(series) {
            let picture = Picture::of(s, minutes, now);
            draw(area, &picture.caption(s, minutes), &picture, minutes, now)?;
        }
        Ok(())
    })
}

/// Per-bed panels: the title line, and the height of each parameter's panel.
const BED_TITLE_PX: u32 = 36;
const BED_PANEL_PX: u32 = 190;

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Renders an SVG of `size` with `paint`; a failure to draw gives an empty picture, logged.
fn render(size: (u32, u32), paint: impl FnOnce(&Area) -> Result<(), Box<dyn std::error::Error>>) -> String {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(Into::into).and_then(|()| paint(&root)).and_then(|()| Ok(root.present()?))
    };
    if let Err(e) = drawn {
        tracing::warn!(error = %e, "could not draw a trend chart");
        svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}"/>"#, size.0, size.1);
    }
    svg
}

/// `t` in the workstation's local time zone (the TZ variable, else /etc/localtime), as `format`
/// (strftime; `%Z` is the zone's abbreviation, e.g. EST).
pub fn local(t: DateTime<Utc>, format: &str) -> String {
    match jiff::Timestamp::from_millisecond(t.timestamp_millis()) {
        Ok(ts) => ts.to_zoned_datetime(jiff::tz::TimeZone::system()).strftime(format).to_string(),
        Err(_) => t.format(format).to_string(),
    }
}

/// The gap, in minutes, past which two readings are not joined: a few of the typical (median)
/// intervals between readings.
fn gap_minutes(readings: &[&StoredReading]) -> f64 {
    let mut intervals: Vec<f64> = readings
        .windows(2)
        .map(|w| (w[1].observed_at - w[0].observed_at).num_milliseconds() as f64 / 1000.0)
        .filter(|s| *s > 0.0)
        .collect();
    intervals.sort_by(f64::total_cmp);
    let typical = intervals.get(intervals.len() / 2).copied().unwrap_or(0.0);
    (typical * GAP_INTERVALS).max(MIN_GAP_SECS) / 60.0
}

/// A range with some air around the data, never empty.
fn pad(lo: f64, hi: f64) -> (f64, f64) {
    let margin = ((hi - lo) * 0.1).max(1.0);
    (lo - margin, hi + margin)
}

/// A tick step of 1, 2 or 5 times a power of ten giving at most `most` ticks over `span`, and the
/// decimals that tell its ticks apart.
fn ticks(span: f64, most: usize) -> (usize, usize) {
    let raw = span / most.max(1) as f64;
    let power = raw.log10().floor();
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * 10f64.powf(power)).find(|s| *s >= raw).unwrap_or(raw);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    ((span / step).floor() as usize + 1, decimals)
}

/// What one chart shows.
struct Picture {
    runs: Vec<Vec<(f64, f64)>>,
    doubtful: Vec<(f64, f64)>,
    invalid: Vec<f64>,
    limits: Vec<AlarmLimit>,
    range: (f64, f64),
    demo: bool,
    /// The newest reading not flagged invalid: its value and time.
    newest: Option<(f64, DateTime<Utc>)>,
}

impl Picture {
    /// A series' readings within the last `minutes`, x in minutes before `now`.
    fn of(series: &Series, minutes: u32, now: DateTime<Utc>) -> Picture {
        let mut sorted: Vec<&StoredReading> = series.readings.iter().collect();
        sorted.sort_by_key(|r| r.observed_at);
        let x_of = |r: &StoredReading| -((now - r.observed_at).num_milliseconds() as f64) / 60_000.0;
        let in_view: Vec<&StoredReading> = sorted.into_iter().filter(|r| x_of(r) >= -f64::from(minutes)).collect();
        let gap = gap_minutes(&in_view);
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        let mut invalid = Vec::new();
        let mut newest = None;
        for r in &in_view {
            let x = x_of(r);
            if Validity::parse(&r.validity) == Some(Validity::Invalid) {
                invalid.push(x);
                runs.push(Vec::new());
                continue;
            }
            newest = Some((r.value, r.observed_at));
            let run = runs.last_mut().expect("there is always a run");
            if run.last().is_some_and(|(last, _)| x - last > gap) {
                runs.push(vec![(x, r.value)]);
            } else {
                run.push((x, r.value));
            }
        }
        runs.retain(|run| !run.is_empty());
        let doubtful = in_view
            .iter()
            .filter(|r| r.validity == Validity::Questionable.as_str())
            .map(|r| (x_of(r), r.value))
            .collect();
        let demo = in_view.iter().any(|r| r.validity == Validity::Demo.as_str());
        let values = runs.iter().flatten().map(|(_, y)| *y).chain(series.limits.iter().map(|l| l.value));
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
        let range = if lo.is_finite() { pad(lo, hi) } else { (0.0, 1.0) };
        Picture { runs, doubtful, invalid, limits: series.limits.to_vec(), range, demo, newest }
    }

    /// E.g. "SpO2 OX-1 (%), last 15 min: 97 at 09:05:12 EST".
    fn caption(&self, series: &Series, minutes: u32) -> String {
        let unit = clinical_unit(series.ucum);
        let newest = match self.newest {
            Some((value, at)) => format!(": {value:.*} at {}", series.decimals, local(at, "%H:%M:%S %Z")),
            None => ": no valid reading".into(),
        };
        let demo = if self.demo { ", DEMO data" } else { "" };
        let marks = if self.invalid.is_empty() { "" } else { "; × invalid" };
        format!("{} ({unit}), last {minutes} min{newest}{demo}{marks}", series.title)
    }
}

fn draw(
    root: &Area,
    caption: &str,
    p: &Picture,
    minutes: u32,
    now: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (lo, hi) = p.range;
    let span_x = f64::from(minutes);
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", CAPTION_PX))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(-span_x..0.0, lo..hi)?;
    let (x_count, _) = ticks(span_x, 8);
    let (y_count, y_decimals) = ticks(hi - lo, 6);
    let clock = |x: &f64| {
        let at = now + chrono::Duration::milliseconds((x * 60_000.0).round() as i64);
        local(at, "%H:%M")
    };
    chart
        .configure_mesh()
        .x_desc(format!("local time ({})", local(now, "%Z")))
        .x_labels(x_count)
        .y_labels(y_count)
        // The right edge is now: it says so rather than repeat the clock.
        .x_label_formatter(&|x| if x.abs() < 1e-9 { "now".into() } else { clock(x) })
        .y_label_formatter(&|y| format!("{:.*}", y_decimals, if y.abs() < 1e-9 { 0.0 } else { *y }))
        .label_style(("sans-serif", LABEL_PX))
        .axis_desc_style(("sans-serif", LABEL_PX))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let limit_colour = RGBColor(200, 90, 0);
    for limit in &p.limits {
        let style = ShapeStyle { color: limit_colour.to_rgba(), filled: false, stroke_width: 2 };
        chart.draw_series(DashedLineSeries::new([(-span_x, limit.value), (0.0, limit.value)], 8, 6, style))?;
        // Above its line, from the left edge: the line itself stays readable.
        let label_at = (-span_x + span_x * 0.01, limit.value + (hi - lo) * 0.08);
        chart.draw_series([Text::new(
            limit.label.clone(),
            label_at,
            ("sans-serif", LABEL_PX).into_font().color(&limit_colour),
        )])?;
    }
    let line = RGBColor(20, 90, 160);
    for run in &p.runs {
        chart.draw_series(LineSeries::new(run.iter().copied(), line.stroke_width(2)))?;
    }
    chart.draw_series(p.doubtful.iter().map(|p| Circle::new(*p, 4, WHITE.filled())))?;
    chart.draw_series(p.doubtful.iter().map(|p| Circle::new(*p, 4, line.stroke_width(2))))?;
    // Invalid readings: marked along the bottom, off the value axis, never as a value.
    let bottom = lo + (hi - lo) * 0.03;
    chart.draw_series(p.invalid.iter().map(|x| Cross::new((*x, bottom), 5, RED.stroke_width(2))))?;
    Ok(())
}

/// A test's SpO2 series.
#[cfg(test)]
fn spo2_series<'a>(readings: &'a [StoredReading], limits: &'a [AlarmLimit]) -> Series<'a> {
    Series { title: "SpO2".into(), ucum: "%", decimals: 0, readings, limits }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_the_readings_as_a_line_with_a_caption() {
        let now = Utc::now();
        let readings: Vec<StoredReading> = (0..10)
            .map(|i| StoredReading {
                hash: String::new(),
                device_id: "OX-1".into(),
                patient_id: 1,
                mdc_code: 150456,
                value: 90.0 + f64::from(i),
                unit: "%".into(),
                observed_at: now - chrono::Duration::seconds(i64::from(i) * 30),
                validity: "valid".into(),
            })
            .collect();
        let svg = trend(&spo2_series(&readings, &[]), 15, now);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<polyline"), "the line is drawn: {svg}");
        assert!(svg.contains("SpO2 (%), last 15 min"), "the caption is text: {svg}");
        let empty = trend(&spo2_series(&[], &[]), 15, now);
        assert!(empty.starts_with("<svg") && !empty.contains("<polyline points=\"\""));
    }

    #[test]
    fn an_invalid_reading_breaks_the_line_a_doubtful_one_is_a_ring_and_demo_data_says_so() {
        let now = Utc::now();
        let flags = ["valid", "valid", "invalid", "invalid", "questionable", "valid", "demo"];
        let readings: Vec<StoredReading> = flags
            .iter()
            .enumerate()
            .map(|(i, flag)| StoredReading {
                hash: String::new(),
                device_id: "OX-1".into(),
                patient_id: 1,
                mdc_code: 150456,
                value: if *flag == "invalid" { 0.0 } else { 95.0 },
                unit: "%".into(),
                observed_at: now - chrono::Duration::seconds(60 - i as i64 * 5),
                validity: flag.to_string(),
            })
            .collect();
        let svg = trend(&spo2_series(&readings, &[]), 15, now);
        let data_lines = svg.lines().filter(|l| l.starts_with("<polyline") && l.contains("stroke=\"#145AA0\"")).count();
        assert_eq!(data_lines, 2, "two runs around the probe-off gap: {svg}");
        assert_eq!(svg.matches("<circle").count(), 2, "one ring (fill and stroke) for the doubtful value: {svg}");
        assert_eq!(
            svg.matches("stroke=\"#FF0000\"").count(),
            2 * 2,
            "each invalid reading is a × (two strokes): {svg}"
        );
        assert!(svg.contains("DEMO data"), "{svg}");
    }
}

#[cfg(test)]
mod readable {
    use super::*;

    fn spo2(values: &[f64], every_secs: i64, now: DateTime<Utc>) -> Vec<StoredReading> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| StoredReading {
                hash: String::new(),
                device_id: "OX-1".into(),
                patient_id: 1,
                mdc_code: 150456,
                value: *v,
                unit: "%".into(),
                observed_at: now - chrono::Duration::seconds((values.len() - 1 - i) as i64 * every_secs),
                validity: "valid".into(),
            })
            .collect()
    }

    /// The texts of the SVG's `<text>` elements.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
            .collect()
    }

    #[test]
    fn tick_labels_are_unique_the_x_axis_ends_now_and_the_alarm_limit_is_drawn() {
        let now = Utc::now();
        // The review's SpO2 trace: 96 to 99, once labelled "99 98 98 98 97 96 96".
        let readings = spo2(&[96.0, 97.0, 98.0, 98.5, 99.0, 97.5, 96.5], 30, now);
        let limit = AlarmLimit { value: 90.0, label: "spo2-low: below 90".into() };
        let svg = trend(&spo2_series(&readings, std::slice::from_ref(&limit)), 15, now);
        let is_clock = |t: &str| t.len() == 5 && t.as_bytes()[2] == b':';
        let y: Vec<String> = texts(&svg).into_iter().filter(|t| t.parse::<f64>().is_ok()).collect();
        let x: Vec<String> = texts(&svg).into_iter().filter(|t| is_clock(t) || t == "now").collect();
        for labels in [&y, &x] {
            let mut unique = labels.to_vec();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), labels.len(), "every tick label is unique: {labels:?}");
            assert!(labels.len() >= 6, "{labels:?} in {svg}");
        }
        assert!(x.last().is_some_and(|l| l == "now") && !y.iter().any(|l| l == "-0"), "{x:?} {y:?}");
        assert!(texts(&svg).iter().any(|t| t.starts_with("local time (")), "the zone is named: {svg}");
        assert!(texts(&svg).contains(&limit.label), "the limit is labelled: {svg}");
        assert!(svg.contains("stroke=\"#C85A00\""), "the limit is drawn: {svg}");
    }

    #[test]
    fn a_gap_in_the_data_is_a_gap_and_units_are_written_the_clinical_way() {
        let now = Utc::now();
        let mut readings = spo2(&[37.0, 37.1, 37.2], 5, now - chrono::Duration::minutes(5));
        readings.extend(spo2(&[37.3, 37.2], 5, now));
        let series = Series { title: "Temperature".into(), ucum: "Cel", decimals: 1, readings: &readings, limits: &[] };
        let svg = trend(&series, 15, now);
        let data_lines = svg.lines().filter(|l| l.starts_with("<polyline") && l.contains("stroke=\"#145AA0\"")).count();
        assert_eq!(data_lines, 2, "five minutes without data are not bridged: {svg}");
        assert!(svg.contains("Temperature (°C)"), "{svg}");
        assert_eq!((clinical_unit("mm[Hg]"), clinical_unit("%")), ("mmHg", "%"));
        let decimals: Vec<String> = texts(&svg).into_iter().filter(|t| t.contains('.')).collect();
        assert!(!decimals.is_empty(), "a narrow range gets decimal ticks: {svg}");
    }
}
