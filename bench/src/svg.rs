//! `--report FILE.svg`: one picture a person can read. For each workload, two charts side by
//! side: throughput second by second (warmup included, so a slow start shows), and the
//! latency percentile curve (latency against percentile, with the percentile axis spread in
//! "nines" so that p99, p99.9 and p99.99 get as much room as the median).
//!
//! Plain SVG, no scripts, no external fonts.

use crate::run::RunResult;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

const CHART_W: f64 = 460.0;
const CHART_H: f64 = 220.0;
const MARGIN_L: f64 = 70.0;
const MARGIN_T: f64 = 40.0;
const ROW_H: f64 = CHART_H + 90.0;

/// Writes the report for `results` (one row of charts per workload).
pub fn write_report(path: &Path, target: &str, results: &[RunResult]) -> Result<()> {
    let svg = render(target, results);
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

fn render(target: &str, results: &[RunResult]) -> String {
    let width = 2.0 * (MARGIN_L + CHART_W) + 40.0;
    let height = 50.0 + ROW_H * results.len().max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="24" font-size="16">ringkv-bench against {}</text>"#,
        escape(target)
    );
    for (row, r) in results.iter().enumerate() {
        let top = 50.0 + ROW_H * row as f64;
        let title = format!(
            "{}: {:.0} ops/s, p99 {:.0} us, {} ops in {:.1} s",
            r.workload, r.ops_per_sec, r.latency.latency_us_p99, r.ops, r.seconds
        );
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}" font-size="14">{}</text>"#,
            top + 16.0,
            escape(&title)
        );
        let throughput: Vec<(f64, f64)> = r.timeline.iter().map(|p| (p.t, p.ops_per_sec)).collect();
        chart(
            &mut s,
            MARGIN_L,
            top + MARGIN_T,
            &throughput,
            "seconds",
            "ops/s",
            Axis::Linear,
        );
        chart(
            &mut s,
            2.0 * MARGIN_L + CHART_W + 40.0,
            top + MARGIN_T,
            &r.curve,
            "percentile",
            "latency (us)",
            Axis::Nines,
        );
    }
    s.push_str("</svg>\n");
    s
}

#[derive(Clone, Copy, PartialEq)]
enum Axis {
    Linear,
    /// Percentiles, placed at -log10(1 - p/100).
    Nines,
}

fn nines(p: f64) -> f64 {
    -(1.0 - p / 100.0).max(1e-5).log10()
}

/// Draws one chart with its axes, ticks and a polyline of `points`.
fn chart(
    s: &mut String,
    x0: f64,
    y0: f64,
    points: &[(f64, f64)],
    x_label: &str,
    y_label: &str,
    axis: Axis,
) {
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{CHART_W}" height="{CHART_H}" fill="none" stroke="#888"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text>"#,
        x0 + CHART_W / 2.0,
        y0 + CHART_H + 34.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">{y_label}</text>"#,
        x0 - 52.0,
        y0 + CHART_H / 2.0,
        x0 - 52.0,
        y0 + CHART_H / 2.0
    );
    if points.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no data</text>"#,
            x0 + CHART_W / 2.0,
            y0 + CHART_H / 2.0
        );
        return;
    }
    let fx = |x: f64| if axis == Axis::Nines { nines(x) } else { x };
    let x_max = points
        .iter()
        .map(|p| fx(p.0))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let y_max = points.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let px = |x: f64| x0 + fx(x) / x_max * CHART_W;
    let py = |y: f64| y0 + CHART_H - y / y_max * CHART_H;
    // Y ticks: 0, 1/4 .. 4/4 of the range.
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + CHART_W,
            x0 - 4.0,
            y + 4.0,
            short(v)
        );
    }
    // X ticks.
    let ticks: Vec<(f64, String)> = match axis {
        Axis::Nines => [
            (0.0, "0"),
            (50.0, "50"),
            (90.0, "90"),
            (99.0, "99"),
            (99.9, "99.9"),
            (99.99, "99.99"),
            (99.999, "99.999"),
        ]
        .iter()
        .filter(|(p, _)| nines(*p) <= x_max + 1e-9)
        .map(|(p, l)| (*p, l.to_string()))
        .collect(),
        Axis::Linear => (0..=4)
            .map(|i| {
                let v = x_max * f64::from(i) / 4.0;
                (v, format!("{v:.0}"))
            })
            .collect(),
    };
    for (v, label) in ticks {
        let x = px(v);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="#888"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            y0 + CHART_H,
            y0 + CHART_H + 5.0,
            y0 + CHART_H + 18.0
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#1f6fb4" stroke-width="2" points="{}"/>"##,
        path.join(" ")
    );
}

/// 1234567 -> "1.23M".
fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_and_labels() {
        assert!((nines(99.0) - 2.0).abs() < 1e-9);
        assert!((nines(0.0)).abs() < 1e-9);
        assert_eq!(short(1_500_000.0), "1.50M");
        assert_eq!(short(2_500.0), "2.5k");
        assert_eq!(escape("a<b&c"), "a&lt;b&amp;c");
        let mut s = String::new();
        chart(
            &mut s,
            0.0,
            0.0,
            &[(1.0, 10.0), (2.0, 20.0)],
            "x",
            "y",
            Axis::Linear,
        );
        assert!(s.contains("<polyline"));
        let mut empty = String::new();
        chart(&mut empty, 0.0, 0.0, &[], "x", "y", Axis::Nines);
        assert!(empty.contains("no data"));
    }
}
