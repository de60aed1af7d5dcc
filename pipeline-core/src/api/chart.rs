//! Trend charts for the console, drawn by plotters as SVG (the webview shows them as they are; no
//! charting code in the UI).

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use crate::store::StoredReading;

/// Chart size in pixels; the console scales it to its pane.
const SIZE: (u32, u32) = (760, 260);

/// Draws a metric's readings over the last `minutes` up to `now`, x in minutes before now.
pub fn trend(title: &str, unit: &str, readings: &[StoredReading], minutes: u32, now: DateTime<Utc>) -> String {
    let points: Vec<(f64, f64)> = readings
        .iter()
        .map(|r| (-((now - r.observed_at).num_milliseconds() as f64) / 60_000.0, r.value))
        .filter(|(x, _)| *x >= -f64::from(minutes))
        .collect();
    let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, y)| (lo.min(*y), hi.max(*y)));
    let (lo, hi) = if points.is_empty() { (0.0, 1.0) } else { pad(lo, hi) };
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, title, unit, &points, minutes, (lo, hi)) {
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
    title: &str,
    unit: &str,
    points: &[(f64, f64)],
    minutes: u32,
    (lo, hi): (f64, f64),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{title} ({unit}), last {minutes} min"), ("sans-serif", 16))
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
    chart.draw_series(LineSeries::new(points.iter().copied(), RGBColor(20, 90, 160).stroke_width(2)))?;
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
}
