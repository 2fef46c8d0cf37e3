//! The report's charts, drawn by plotters as inline SVG: text stays text (the
//! page needs no font file and a browser can search it), nothing is loaded.

use anyhow::Result;
use plotters::prelude::*;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 260;
const BAR: RGBColor = RGBColor(66, 112, 178);
const FONT: &str = "sans-serif";

/// Draws on a fresh SVG canvas and returns its text.
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<()>) -> Result<String> {
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        area.fill(&WHITE)?;
        draw(&area)?;
        area.present()?;
    }
    Ok(out)
}

/// Every chart's caption, margin and room for the axes' labels.
fn framed<'a, 'b>(area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>, title: &str) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(area);
    builder.caption(title, (FONT, 16)).margin(8).x_label_area_size(40).y_label_area_size(56);
    builder
}

/// A histogram of `values` in `bins` equal-width bins between their minimum and
/// maximum (non-finite values left out).
pub fn histogram(title: &str, values: &[f64], bins: usize) -> Result<String> {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (low, high) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
    let (low, high) = if values.is_empty() { (0.0, 1.0) } else if high > low { (low, high) } else { (low - 0.5, low + 0.5) };
    let width = (high - low) / bins as f64;
    let mut counts = vec![0u64; bins];
    for v in &values {
        counts[(((v - low) / width) as usize).min(bins - 1)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    svg(|area| {
        let mut chart = framed(area, title).build_cartesian_2d(low..high, 0.0..top * 1.05)?;
        chart.configure_mesh().disable_x_mesh().y_desc("rows").label_style((FONT, 11)).draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(i, c)| {
            let from = low + i as f64 * width;
            Rectangle::new([(from, 0.0), (from + width, *c as f64)], BAR.filled())
        }))?;
        Ok(())
    })
}

/// One bar per label.
pub fn bars(title: &str, labels: &[String], values: &[f64], unit: &str) -> Result<String> {
    stacked_bars(title, labels, &[(String::new(), values.to_vec())], unit)
}

/// One stacked bar per label: each series a layer, named in a legend (a series
/// without a name gets none).
pub fn stacked_bars(title: &str, labels: &[String], series: &[(String, Vec<f64>)], unit: &str) -> Result<String> {
    let n = labels.len().max(1);
    let totals: Vec<f64> = (0..n).map(|i| series.iter().map(|(_, v)| v.get(i).copied().unwrap_or(0.0)).sum()).collect();
    let top = totals.iter().copied().fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    svg(|area| {
        // Integer ranges include their end; a single bar gets an empty segment on
        // each side (a range of one value has no width, and nothing was drawn).
        let (offset, last) = if n == 1 { (1, 2) } else { (0, n - 1) };
        let mut chart = framed(area, title).build_cartesian_2d((0..last).into_segmented(), 0.0..top * 1.1)?;
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => i.checked_sub(offset).and_then(|i| labels.get(i)).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart.configure_mesh().disable_x_mesh().x_labels(last + 1).x_label_formatter(&label).y_desc(unit).label_style((FONT, 11)).draw()?;
        let mut base = vec![0.0; n];
        for (k, (name, values)) in series.iter().enumerate() {
            let color = if series.len() == 1 { BAR } else { palette(k) };
            let rects: Vec<_> = (0..n)
                .map(|i| {
                    let (from, to) = (base[i], base[i] + values.get(i).copied().unwrap_or(0.0));
                    base[i] = to;
                    {
                        let mut bar = Rectangle::new([(SegmentValue::Exact(i + offset), from), (SegmentValue::Exact(i + offset + 1), to)], color.filled());
                        bar.set_margin(0, 0, 6, 6);
                        bar
                    }
                })
                .collect();
            let drawn = chart.draw_series(rects)?;
            if !name.is_empty() {
                drawn.label(name.as_str()).legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
            }
        }
        if series.iter().any(|(name, _)| !name.is_empty()) {
            chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).background_style(WHITE.mix(0.8)).border_style(BLACK).label_font((FONT, 11)).draw()?;
        }
        Ok(())
    })
}

fn palette(k: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(66, 112, 178),
        RGBColor(228, 130, 52),
        RGBColor(84, 160, 90),
        RGBColor(196, 70, 70),
        RGBColor(135, 100, 180),
        RGBColor(140, 100, 80),
        RGBColor(210, 120, 180),
        RGBColor(120, 120, 120),
    ];
    COLORS[k % COLORS.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The widths of the bars drawn (rectangles in the bar colour).
    fn bar_widths(svg: &str) -> Vec<f64> {
        let fill = format!("fill=\"#{:02X}{:02X}{:02X}\"", BAR.0, BAR.1, BAR.2);
        svg.split("<rect").filter(|r| r.contains(&fill)).filter_map(|r| r.split("width=\"").nth(1)?.split('"').next()?.parse().ok()).collect()
    }

    #[test]
    fn one_run_draws_one_bar_and_several_draw_one_each() {
        let one = bars("peak memory", &["12-06 10:00".into()], &[42.0], "MiB").unwrap();
        let widths = bar_widths(&one);
        assert_eq!(widths.len(), 1, "{one}");
        assert!(widths[0] > 10.0, "a visible bar: {widths:?}");
        assert!(one.contains("12-06 10:00"), "its label");
        let three = bars("peak memory", &["a".into(), "b".into(), "c".into()], &[1.0, 2.0, 3.0], "MiB").unwrap();
        assert_eq!(bar_widths(&three).len(), 3);
    }
}
