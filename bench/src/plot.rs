//! The chart of a run: p50 round trips per case on a log scale, one panel per placement,
//! floors grey, ours blue, peers orange.

use plotters::prelude::*;

use crate::BenchError;
use crate::cases::{Placement, Role};
use crate::report::Report;

fn colour(role: Role) -> RGBColor {
    match role {
        Role::Floor => RGBColor(150, 150, 150),
        Role::Ours => RGBColor(31, 119, 180),
        Role::Peer => RGBColor(255, 127, 14),
    }
}

/// One bar: case id, role, p50 in µs.
type Bar<'a> = (&'a str, Role, f64);

/// Writes the chart as SVG to `path` (which must end in `.svg`).
pub fn write_svg(report: &Report, path: &str) -> Result<(), BenchError> {
    let fail = |reason: String| BenchError::Output { path: path.into(), reason };
    if !path.ends_with(".svg") {
        return Err(fail("charts are written as SVG: give a file name ending in .svg".into()));
    }
    let panels: Vec<(Placement, Vec<Bar<'_>>)> = [Placement::InProcess, Placement::CrossProcess, Placement::Lossy]
        .into_iter()
        .map(|p| {
            let bars = report
                .rows
                .iter()
                .filter(|r| r.placement == p)
                .filter_map(|r| r.latency.map(|l| (r.id.as_str(), r.role, l.p50_us)))
                .collect::<Vec<_>>();
            (p, bars)
        })
        .filter(|(_, bars)| !bars.is_empty())
        .collect();
    if panels.is_empty() {
        return Err(fail("no case has a latency to plot".into()));
    }
    let heights: Vec<u32> = panels.iter().map(|(_, bars)| 80 + 26 * bars.len() as u32).collect();
    let root = SVGBackend::new(path, (960, heights.iter().sum())).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    let mut area = root.clone();
    for ((placement, bars), height) in panels.iter().zip(&heights) {
        let (top, rest) = area.split_vertically(*height);
        area = rest;
        let max = bars.iter().map(|b| b.2).fold(1.0, f64::max) * 2.0;
        let min = bars.iter().map(|b| b.2).fold(f64::MAX, f64::min).max(0.1) / 2.0;
        let caption = format!("{} — p50 round trip, µs (log scale) — {}", placement.label(), report.machine.date);
        let mut chart = ChartBuilder::on(&top)
            .caption(caption, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(10)
            .build_cartesian_2d((min..max).log_scale(), -0.5f64..bars.len() as f64 - 0.5)
            .map_err(|e| fail(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc("µs")
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        for (i, (id, role, p50)) in bars.iter().enumerate() {
            let y = (bars.len() - 1 - i) as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(min, y - 0.35), (*p50, y + 0.35)],
                    colour(*role).filled(),
                )))
                .map_err(|e| fail(e.to_string()))?;
            let label = format!("{id}  {p50:.1}");
            chart
                .draw_series(std::iter::once(Text::new(label, (*p50, y), ("sans-serif", 13).into_font())))
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    root.present().map_err(|e| fail(e.to_string()))
}
