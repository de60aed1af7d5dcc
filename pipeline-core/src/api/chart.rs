//! Trend charts for the console, drawn by plotters as SVG (the webview shows them as they are; no
//! charting code in the UI).

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use crate::model::Validity;
use crate::store::StoredReading;

/// Chart size in pixels; the console scales it to its pane.
const SIZE: (u32, u32) = (760, 260);

/// Draws a metric's readings over the last `minutes` up to `now`, x in minutes before now. What the
/// device flagged travels into the picture: an invalid reading is no point, and breaks the line (a
/// probe off is a gap, not a value); a questionable one is a hollow ring on the line; demo data says
/// so in the caption.
pub fn trend(title: &str, unit: &str, readings: &[StoredReading], minutes: u32, now: DateTime<Utc>) -> String {
    let mut sorted: Vec<&StoredReading> = readings.iter().collect();
    sorted.sort_by_key(|r| r.observed_at);
    let x_of = |r: &StoredReading| -((now - r.observed_at).num_milliseconds() as f64) / 60_000.0;
    let in_view: Vec<&StoredReading> = sorted.into_iter().filter(|r| x_of(r) >= -f64::from(minutes)).collect();
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for r in &in_view {
        match Validity::parse(&r.validity) {
            Some(Validity::Invalid) => runs.push(Vec::new()),
            _ => runs.last_mut().into_iter().for_each(|run| run.push((x_of(r), r.value))),
        }
    }
    runs.retain(|run| !run.is_empty());
    let doubtful: Vec<(f64, f64)> =
        in_view.iter().filter(|r| r.validity == Validity::Questionable.as_str()).map(|r| (x_of(r), r.value)).collect();
    let demo = in_view.iter().any(|r| r.validity == Validity::Demo.as_str());
    let (lo, hi) =
        runs.iter().flatten().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, y)| (lo.min(*y), hi.max(*y)));
    let (lo, hi) = if runs.is_empty() { (0.0, 1.0) } else { pad(lo, hi) };
    let caption = format!("{title} ({unit}), last {minutes} min{}", if demo { ", DEMO data" } else { "" });
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, &caption, &runs, &doubtful, minutes, (lo, hi)) {
        tracing::warn!(error = %e, "could not draw a trend chart");
        svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}"/>"#, SIZE.0, SIZE.1);
    }
    svg
}

/// A range with some air around the data, never empty.
fn pad(lo: f64, hi: f64) -> (f64, f64) {
    let margin = ((hi - lo) * 0.1).max(1.0);
    (lo - margin, hi + margin)
}

fn draw(
    svg: &mut String,
    caption: &str,
    runs: &[Vec<(f64, f64)>],
    doubtful: &[(f64, f64)],
    minutes: u32,
    (lo, hi): (f64, f64),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(44)
        .build_cartesian_2d(-f64::from(minutes)..0.0, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("minutes ago")
        .x_label_formatter(&|x| format!("{:.0}", -x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let line = RGBColor(20, 90, 160);
    for run in runs {
        chart.draw_series(LineSeries::new(run.iter().copied(), line.stroke_width(2)))?;
    }
    chart.draw_series(doubtful.iter().map(|p| Circle::new(*p, 4, WHITE.filled())))?;
    chart.draw_series(doubtful.iter().map(|p| Circle::new(*p, 4, line.stroke_width(2))))?;
    root.present()?;
    Ok(())
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
        let svg = trend("SpO2", "%", &readings, 15, now);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<polyline"), "the line is drawn: {svg}");
        assert!(svg.contains("SpO2 (%), last 15 min"), "the caption is text: {svg}");
        let empty = trend("SpO2", "%", &[], 15, now);
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
        let svg = trend("SpO2", "%", &readings, 15, now);
        let data_lines = svg.lines().filter(|l| l.starts_with("<polyline") && l.contains("stroke=\"#145AA0\"")).count();
        assert_eq!(data_lines, 2, "two runs around the probe-off gap: {svg}");
        assert_eq!(svg.matches("<circle").count(), 2, "one ring (fill and stroke) for the doubtful value: {svg}");
        assert!(svg.contains("DEMO data"), "{svg}");
    }
}
