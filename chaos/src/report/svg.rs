//! Inline SVG plots for `report.html`, drawn by hand so the page needs no JavaScript and no
//! library from anywhere: a line chart over time with shaded fault windows, and a bar chart.

use std::fmt::Write as _;

use super::html::escape;
use super::palette;

/// Width of every plot in SVG user units (the page scales it to the card).
const W: f64 = 1100.0;
/// Space left of the plot area for the y tick labels and the y axis label.
const LEFT: f64 = 72.0;
/// Space right of the plot area.
const RIGHT: f64 = 16.0;
/// Space above the plot area, for the legend.
const TOP: f64 = 30.0;
/// Space below the plot area, for the x tick labels and the x axis label.
const BOTTOM: f64 = 46.0;
/// Rows of fault labels at the top of a time plot.
const LABEL_ROWS: usize = 3;
/// Approximate width of one character of the 11 px label font, to fit labels in their space.
const CHAR_W: f64 = 6.4;

/// A line of a [`LineChart`].
pub(crate) struct Series {
    /// Legend name.
    pub name: &'static str,
    /// Stroke colour.
    pub color: &'static str,
    /// `(x, y)` points in data units; `None` breaks the line (no data in that bucket).
    pub points: Vec<Option<(f64, f64)>>,
}

/// A shaded interval of the x axis (a fault window), in data units.
pub(crate) struct Shade {
    /// Start, x data units.
    pub start: f64,
    /// End, x data units.
    pub end: f64,
    /// Label written at the top of the shaded rectangle.
    pub label: String,
}

/// A line chart over time.
pub(crate) struct LineChart<'a> {
    /// `id` of the `<svg>` element.
    pub id: &'a str,
    /// Accessible title.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// The x axis runs from 0 to this.
    pub x_max: f64,
    /// Plot height in SVG units.
    pub height: f64,
    /// The lines.
    pub series: Vec<Series>,
    /// Shaded intervals.
    pub shades: &'a [Shade],
}

/// Up to about `target` round tick values from 0 to at least `max` (1, 2 or 5 times a power
/// of ten apart); the last one is the top of the axis.
pub(crate) fn ticks(max: f64, target: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / target.max(1) as f64;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow);
    let n = (max / step).ceil().max(1.0) as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// A tick label without trailing zeros (`0.5`, `2`, `1.25`).
pub(crate) fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Cut `s` to at most `max_chars` characters, marking the cut with an ellipsis.
fn fit(s: &str, max_chars: usize) -> Option<String> {
    if max_chars < 4 {
        return None;
    }
    if s.chars().count() <= max_chars {
        return Some(s.to_string());
    }
    let cut: String = s.chars().take(max_chars - 1).collect();
    Some(format!("{cut}…"))
}

/// Opening of a plot's `<svg>`, with its accessible title.
fn open(out: &mut String, id: &str, title: &str, h: f64) {
    let _ = write!(
        out,
        r#"<svg id="{id}" class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        id = escape(id),
        t = escape(title),
    );
}

/// A legend entry: a short stroke (or a filled box) and the name, drawn from the right edge
/// leftwards; returns the x where the next entry (to the left) ends.
fn legend_entry(out: &mut String, right_x: f64, name: &str, swatch: &str) -> f64 {
    let text_w = name.chars().count() as f64 * CHAR_W;
    let x = right_x - text_w - 26.0;
    let _ = write!(
        out,
        r#"{swatch_svg}<text x="{tx}" y="19" class="legend">{n}</text>"#,
        swatch_svg = swatch.replace("{x}", &format!("{x:.1}")),
        tx = x + 22.0,
        n = escape(name),
    );
    x - 16.0
}

/// A horizontal grid line at `y` across a plot `pw` wide, with its y tick `label` on the left.
fn y_grid_line(out: &mut String, y: f64, pw: f64, label: impl std::fmt::Display) {
    let _ = write!(
        out,
        r#"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{tx}" y="{ty:.1}" class="tick" text-anchor="end">{label}</text>"#,
        x2 = LEFT + pw,
        tx = LEFT - 8.0,
        ty = y + 4.0,
    );
}

/// The line chart, as an `<svg>` element.
pub(crate) fn line_chart(c: &LineChart<'_>) -> String {
    let h = c.height;
    let (pw, ph) = (W - LEFT - RIGHT, h - TOP - BOTTOM);
    let x_max = if c.x_max.is_finite() && c.x_max > 0.0 {
        c.x_max
    } else {
        1.0
    };
    let y_data_max = c
        .series
        .iter()
        .flat_map(|s| s.points.iter().flatten())
        .map(|p| p.1)
        .filter(|y| y.is_finite())
        .fold(0.0, f64::max);
    let y_ticks = ticks(y_data_max, 5);
    let y_top = y_ticks.last().copied().unwrap_or(1.0);
    let xs = |x: f64| LEFT + (x / x_max).clamp(0.0, 1.0) * pw;
    let ys = |y: f64| TOP + ph - (y / y_top).clamp(0.0, 1.0) * ph;

    let mut out = String::new();
    open(&mut out, c.id, c.title, h);
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#ffffff"/>"##
    );

    // Fault windows go first, under the grid and the lines, so the data stays on top.
    for s in c.shades {
        let (x0, x1) = (xs(s.start), xs(s.end.max(s.start)));
        let _ = write!(
            out,
            r#"<rect class="shade" x="{x0:.1}" y="{TOP}" width="{w:.1}" height="{ph}" fill="{fill}" fill-opacity="{op}"><title>{t}</title></rect>"#,
            w = (x1 - x0).max(1.0),
            fill = palette::SHADE,
            op = palette::SHADE_OPACITY,
            t = escape(&s.label),
        );
    }

    // Grid and y ticks.
    for &t in &y_ticks {
        y_grid_line(&mut out, ys(t), pw, tick_label(t));
    }
    // X ticks: the axis is [0, x_max], so ticks past x_max are dropped rather than squeezed.
    for &t in ticks(x_max, 10).iter().filter(|t| **t <= x_max * 1.000_001) {
        let x = xs(t);
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" x2="{x:.1}" y1="{y0}" y2="{y1}" class="axis"/><text x="{x:.1}" y="{ty}" class="tick" text-anchor="middle">{l}</text>"#,
            y0 = TOP + ph,
            y1 = TOP + ph + 5.0,
            ty = TOP + ph + 18.0,
            l = tick_label(t),
        );
    }
    let _ = write!(
        out,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="frame"/>"#
    );

    // The lines, broken where a bucket had no data; a lone point becomes a dot.
    for s in &c.series {
        let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for p in &s.points {
            match p {
                Some((x, y)) if x.is_finite() && y.is_finite() => {
                    if let Some(seg) = segments.last_mut() {
                        seg.push((xs(*x), ys(*y)));
                    }
                }
                _ => {
                    if segments.last().is_some_and(|seg| !seg.is_empty()) {
                        segments.push(Vec::new());
                    }
                }
            }
        }
        for seg in segments.iter().filter(|seg| !seg.is_empty()) {
            if let [(x, y)] = seg.as_slice() {
                let _ = write!(
                    out,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{c}"/>"#,
                    c = s.color
                );
                continue;
            }
            let pts: Vec<String> = seg.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                out,
                r#"<polyline points="{p}" fill="none" stroke="{c}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>"#,
                p = pts.join(" "),
                c = s.color,
            );
        }
    }

    // Fault labels last, haloed, so lines never hide them. A label may run past its window to
    // the right (short windows have long names); labels that would collide go on a lower row,
    // and with every row taken the label is left out (the rectangle's tooltip still has it).
    let mut order: Vec<&Shade> = c.shades.iter().collect();
    order.sort_by(|a, b| a.start.total_cmp(&b.start));
    let mut row_end = [f64::NEG_INFINITY; LABEL_ROWS];
    for s in order {
        let x = xs(s.start) + 4.0;
        let room = ((LEFT + pw - x - 4.0).max(0.0) / CHAR_W) as usize;
        let Some(label) = fit(&s.label, room) else {
            continue;
        };
        let Some(row) = row_end.iter().position(|end| *end + 8.0 <= x) else {
            continue;
        };
        row_end[row] = x + label.chars().count() as f64 * CHAR_W;
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y}" class="shade-label">{l}</text>"#,
            y = TOP + 14.0 + row as f64 * 14.0,
            l = escape(&label),
        );
    }

    // Legend, right-aligned above the plot.
    let mut right = W - RIGHT;
    if !c.shades.is_empty() {
        let swatch = format!(
            r#"<rect x="{{x}}" y="9" width="18" height="12" fill="{}" fill-opacity="{}"/>"#,
            palette::SHADE,
            palette::SHADE_OPACITY
        );
        right = legend_entry(&mut out, right, "fault", &swatch);
    }
    for s in c.series.iter().rev() {
        let swatch = format!(
            r#"<rect x="{{x}}" y="13" width="18" height="3" fill="{}"/>"#,
            s.color
        );
        right = legend_entry(&mut out, right, s.name, &swatch);
    }

    // Axis labels.
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" class="axis-label" text-anchor="middle">{l}</text><text transform="translate(16 {ym}) rotate(-90)" class="axis-label" text-anchor="middle">{yl}</text></svg>"#,
        x = LEFT + pw / 2.0,
        y = h - 6.0,
        l = escape(c.x_label),
        ym = TOP + ph / 2.0,
        yl = escape(c.y_label),
    );
    out
}

/// A group of bars of a [`bar_chart`]: one label, one value (a share 0..=1) per series.
pub(crate) struct BarGroup {
    /// Group label under the bars (a node name).
    pub label: String,
    /// One value per series (`None`: no data, no bar, "n/a" written instead).
    pub values: Vec<Option<f64>>,
    /// Small print under the label (e.g. operation counts).
    pub note: String,
}

/// A bar chart of shares (0–100 %), grouped, with the value written above each bar.
pub(crate) fn bar_chart(
    id: &str,
    title: &str,
    series: &[(&'static str, &'static str)],
    groups: &[BarGroup],
) -> String {
    let h = 300.0;
    let bottom = BOTTOM + 12.0;
    let (pw, ph) = (W - LEFT - RIGHT, h - TOP - bottom);
    let ys = |v: f64| TOP + ph - v.clamp(0.0, 1.0) * ph;
    let mut out = String::new();
    open(&mut out, id, title, h);
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#ffffff"/>"##
    );
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        y_grid_line(
            &mut out,
            ys(t),
            pw,
            format_args!("{}%", (t * 100.0).round()),
        );
    }
    let _ = write!(
        out,
        r#"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" class="frame"/>"#
    );
    if groups.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{x}" y="{y}" class="tick" text-anchor="middle">no operations</text>"#,
            x = LEFT + pw / 2.0,
            y = TOP + ph / 2.0,
        );
    }
    let slot = pw / groups.len().max(1) as f64;
    let nseries = series.len().max(1) as f64;
    // Bars no wider than 70 px each, so three nodes do not turn into three walls.
    let bar_w = ((slot * 0.7) / nseries).min(70.0);
    for (gi, g) in groups.iter().enumerate() {
        let center = LEFT + slot * (gi as f64 + 0.5);
        let x_start = center - bar_w * nseries / 2.0;
        for (si, &(_, color)) in series.iter().enumerate() {
            let x = x_start + bar_w * si as f64;
            match g.values.get(si).copied().flatten() {
                Some(v) if v.is_finite() => {
                    let y = ys(v);
                    // The value sits above its bar, or inside it (in white) when the bar
                    // reaches the top of the plot and there is no room above.
                    let (ty, class) = if y - 5.0 < TOP + 12.0 {
                        (y + 14.0, "bar-value inside")
                    } else {
                        (y - 5.0, "bar-value")
                    };
                    let _ = write!(
                        out,
                        r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{bh:.1}" fill="{color}"/><text x="{tx:.1}" y="{ty:.1}" class="{class}" text-anchor="middle">{p:.1}%</text>"#,
                        w = (bar_w - 4.0).max(1.0),
                        bh = (TOP + ph - y).max(0.0),
                        tx = x + bar_w / 2.0 - 2.0,
                        p = v * 100.0,
                    );
                }
                _ => {
                    let _ = write!(
                        out,
                        r#"<text x="{tx:.1}" y="{ty:.1}" class="tick" text-anchor="middle">n/a</text>"#,
                        tx = x + bar_w / 2.0 - 2.0,
                        ty = TOP + ph - 6.0,
                    );
                }
            }
        }
        let _ = write!(
            out,
            r#"<text x="{center:.1}" y="{y1}" class="tick group" text-anchor="middle">{l}</text><text x="{center:.1}" y="{y2}" class="note" text-anchor="middle">{n}</text>"#,
            y1 = TOP + ph + 18.0,
            y2 = TOP + ph + 34.0,
            l = escape(&g.label),
            n = escape(&g.note),
        );
    }
    let mut right = W - RIGHT;
    for &(name, color) in series.iter().rev() {
        let swatch = format!(r#"<rect x="{{x}}" y="9" width="18" height="12" fill="{color}"/>"#);
        right = legend_entry(&mut out, right, name, &swatch);
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(
            ticks(20.0, 10),
            (0..=10).map(|i| i as f64 * 2.0).collect::<Vec<_>>()
        );
        let t = ticks(873.0, 5);
        assert_eq!(t[1], 200.0);
        assert!(*t.last().unwrap() >= 873.0);
        assert_eq!(ticks(0.0, 5).last().copied(), Some(1.0));
        assert_eq!(ticks(f64::NAN, 5).last().copied(), Some(1.0));
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(2.0), "2");
        assert_eq!(tick_label(0.30000000000000004), "0.3");
    }

    #[test]
    fn fit_cuts_long_labels_and_drops_hopeless_ones() {
        assert_eq!(fit("kill node1", 20).as_deref(), Some("kill node1"));
        assert_eq!(fit("kill node1", 6).as_deref(), Some("kill …"));
        assert_eq!(fit("kill node1", 3), None);
    }

    #[test]
    fn line_chart_breaks_lines_at_gaps_and_escapes_labels() {
        let shades = [Shade {
            start: 1.0,
            end: 2.0,
            label: "partition <a> & b".into(),
        }];
        let svg = line_chart(&LineChart {
            id: "p",
            title: "T",
            x_label: "time (s)",
            y_label: "ops/s",
            x_max: 4.0,
            height: 200.0,
            series: vec![Series {
                name: "ok",
                color: "#123456",
                points: vec![Some((0.0, 1.0)), Some((1.0, 2.0)), None, Some((3.0, 1.0))],
            }],
            shades: &shades,
        });
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        assert!(svg.contains("partition &lt;a&gt; &amp; b"));
        assert!(!svg.contains("<a>"));
    }

    #[test]
    fn colliding_fault_labels_go_to_separate_rows_and_may_overrun_their_window() {
        let shade = |start: f64, end: f64, label: &str| Shade {
            start,
            end,
            label: label.into(),
        };
        // A short window with a long name, one starting inside it, one far away.
        let shades = [
            shade(1.0, 1.1, "partition {node0} | {node1,node2}"),
            shade(1.05, 3.0, "kill node2"),
            shade(8.0, 9.0, "pause node1"),
        ];
        let svg = line_chart(&LineChart {
            id: "p",
            title: "T",
            x_label: "x",
            y_label: "y",
            x_max: 10.0,
            height: 200.0,
            series: vec![],
            shades: &shades,
        });
        let label_y = |label: &str| {
            let end = svg.find(&format!(">{label}</text>")).expect(label);
            let start = svg[..end].rfind("<text").expect("text element");
            let tag = &svg[start..end];
            let y = tag.split("y=\"").nth(1).and_then(|r| r.split('"').next());
            y.expect("y attribute").parse::<f64>().expect("number")
        };
        let (a, b, c) = (
            label_y("partition {node0} | {node1,node2}"),
            label_y("kill node2"),
            label_y("pause node1"),
        );
        assert!(b > a, "the second label is on a lower row");
        assert_eq!(
            c, a,
            "a label clear of the others goes back to the first row"
        );
    }
}
