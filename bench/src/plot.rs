//! Line charts the benchmarks draw into SVG files committed beside BENCHMARKS.md (plotters, its SVG
//! backend only: no fonts are loaded, the text is SVG text the viewer renders).
//!
//! One small API for every chart: [`lines_svg`] draws [`Series`] of `(x, y)` points on linear axes, each
//! with its own colour, a marker on every point, and a legend; a dashed series suits a reference line
//! (an ideal, a baseline).

use std::path::Path;

use plotters::prelude::*;

/// The size of every chart, in pixels.
const SIZE: (u32, u32) = (800, 500);

/// The colours of the series, in order (then again from the first).
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x55, 0x55, 0x55),
];

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its points, in the order they are joined.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed and without markers (a reference line) instead of solid with a marker per point.
    pub dashed: bool,
}

impl Series {
    /// A solid series with a marker on every point.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
            dashed: false,
        }
    }

    /// A dashed reference series.
    pub fn dashed(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            dashed: true,
            ..Self::new(name, points)
        }
    }
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// No series has a finite point.
    #[error("nothing to plot: no series has a finite point")]
    Empty,
    /// plotters failed (writing the file, most likely).
    #[error("drawing {path}: {message}")]
    Draw {
        /// The file.
        path: String,
        /// plotters' error.
        message: String,
    },
}

/// Draws `series` as lines on linear axes into the SVG file `path` (replaced), with `title` above and
/// the axes labelled. The x axis spans the points; the y axis starts at 0 (or below, for negative
/// values) and leaves a tenth of headroom. Points that are not finite are left out.
pub fn lines_svg(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), PlotError> {
    let finite = |&&(x, y): &&(f64, f64)| x.is_finite() && y.is_finite();
    let points = || series.iter().flat_map(|s| s.points.iter().filter(finite));
    let (x_min, x_max) = bounds(points().map(|p| p.0)).ok_or(PlotError::Empty)?;
    let (y_min, y_max) = bounds(points().map(|p| p.1)).ok_or(PlotError::Empty)?;
    let x_pad = if x_max > x_min {
        (x_max - x_min) * 0.03
    } else {
        1.0
    };
    let y_top = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let y_bottom = y_min.min(0.0);
    let failed = |error: &dyn std::fmt::Display| PlotError::Draw {
        path: path.display().to_string(),
        message: error.to_string(),
    };

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((x_min - x_pad)..(x_max + x_pad), y_bottom..y_top)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| trimmed(*x))
        .y_label_formatter(&|y| trimmed(*y))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| failed(&e))?;
    for (index, one) in series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let style = colour.stroke_width(2);
        let points: Vec<(f64, f64)> = one.points.iter().filter(finite).copied().collect();
        let drawn = if one.dashed {
            chart.draw_series(DashedLineSeries::new(points, 8, 6, style))
        } else {
            chart.draw_series(LineSeries::new(points, style).point_size(4))
        };
        drawn
            .map_err(|e| failed(&e))?
            .label(one.name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))
}

/// The smallest and largest of `values`, if any.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((low, high)) => Some((low.min(v), high.max(v))),
    })
}

/// A tick label: whole numbers without decimals, others with up to two.
fn trimmed(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series_with_its_legend() {
        let path = std::env::temp_dir().join(format!("plot-test-{}.svg", std::process::id()));
        let series = [
            Series::new("ours", vec![(256.0, 2300.0), (512.0, 4000.0)]),
            Series::dashed("ideal", vec![(256.0, 2560.0), (512.0, f64::NAN)]),
        ];
        lines_svg(&path, "a title", "window", "results/s", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        for text in ["a title", "window", "results/s", "ours", "ideal"] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(matches!(
            lines_svg(&path, "t", "x", "y", &[Series::new("none", vec![])]),
            Err(PlotError::Empty)
        ));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(trimmed(1024.0), "1024");
        assert_eq!(trimmed(0.5), "0.5");
        assert_eq!(trimmed(2.25), "2.25");
    }
}
