//! Today's debits by hour against yesterday's, drawn on the server as SVG (plotters).

use plotters::prelude::*;

use super::stats::Debits;

const TODAY: RGBColor = RGBColor(11, 92, 173);
const YESTERDAY: RGBColor = RGBColor(160, 170, 180);

/// The SVG markup (amounts in 元 on the y axis).
pub(crate) fn hourly(today: &[Debits; 24], yesterday: &[Debits; 24]) -> String {
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, today, yesterday) {
        tracing::warn!(error = %e, "dashboard chart not drawn");
        return String::new();
    }
    svg
}

fn draw(
    svg: &mut String,
    today: &[Debits; 24],
    yesterday: &[Debits; 24],
) -> Result<(), Box<dyn std::error::Error>> {
    // 元 as f64 for drawing only: the figures themselves stay integer fen.
    let as_yuan = |d: &Debits| d.amount as f64 / 100.0;
    let top = today
        .iter()
        .chain(yesterday.iter())
        .map(as_yuan)
        .fold(1.0_f64, f64::max)
        * 1.1;
    {
        let root = SVGBackend::with_string(svg, (760, 260)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(0u32..23u32, 0f64..top)?;
        chart
            .configure_mesh()
            .x_labels(12)
            .y_labels(6)
            .x_label_formatter(&|h| format!("{h}时"))
            .y_label_formatter(&|y| {
                if top < 20.0 {
                    format!("{y:.2}")
                } else {
                    format!("{y:.0}")
                }
            })
            .draw()?;
        let series = |hours: &[Debits; 24]| -> Vec<(u32, f64)> {
            hours
                .iter()
                .enumerate()
                .map(|(h, d)| (h as u32, as_yuan(d)))
                .collect()
        };
        chart.draw_series(LineSeries::new(
            series(yesterday),
            YESTERDAY.stroke_width(2),
        ))?;
        chart.draw_series(LineSeries::new(series(today), TODAY.stroke_width(3)))?;
        root.present()?;
    }
    Ok(())
}
