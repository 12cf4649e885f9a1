//! Line charts drawn on the server as inline SVG: no script, no CDN, nothing the page's CSP
//! must allow (colours come from classes in `app.css`, not `style` attributes). Each chart
//! carries its text alternative (`<title>` and `<desc>`); pages put a table of the same
//! figures beside it.

use std::fmt::Write as _;

/// Drawing area, in the SVG's own units; the page scales it to its width.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;

/// One line: `(time, value)` points in time order; a gap in sampling is a gap in the line.
pub struct Series {
    pub name: String,
    /// `a`, `b` or `c`: the line's colour class.
    pub class: &'static str,
    pub points: Vec<(i64, f64)>,
}

pub struct Chart {
    /// Unique on its page: names the title and description for `aria-labelledby`.
    pub id: &'static str,
    /// What it shows, read first by a screen reader.
    pub title: String,
    /// The text alternative: the figures in words.
    pub description: String,
    /// Unix seconds of the left and right edges.
    pub from: i64,
    pub to: i64,
    /// The top of the value axis (the bottom is 0), and its unit for the labels.
    pub y_max: f64,
    pub unit: &'static str,
    pub series: Vec<Series>,
    /// Two points further apart than this many seconds are not joined.
    pub max_gap: i64,
}

impl Chart {
    fn x(&self, t: i64) -> f64 {
        let span = (self.to - self.from).max(1) as f64;
        LEFT + (WIDTH - LEFT - RIGHT) * ((t - self.from) as f64 / span).clamp(0.0, 1.0)
    }

    fn y(&self, v: f64) -> f64 {
        let max = if self.y_max > 0.0 { self.y_max } else { 1.0 };
        TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - (v / max).clamp(0.0, 1.0))
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let mut out = String::new();
        let id = self.id;
        let _ = write!(
            out,
            "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\">\
             <title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
            escape(&self.title),
            escape(&self.description)
        );
        for fraction in [0.0, 0.5, 1.0] {
            let v = self.y_max * fraction;
            let y = self.y(v);
            let _ = write!(
                out,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} {}</text>",
                WIDTH - RIGHT,
                LEFT - 4.0,
                y + 4.0,
                number(v),
                self.unit
            );
        }
        let _ = write!(
            out,
            "<text class=\"tick\" x=\"{LEFT}\" y=\"{:.1}\">{}</text><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">now</text>",
            HEIGHT - 6.0,
            ago(self.to - self.from),
            WIDTH - RIGHT,
            HEIGHT - 6.0
        );
        for series in &self.series {
            // The newest point as a dot, so that a line of one sample still shows.
            if let Some((t, v)) = series.points.last() {
                let _ = write!(
                    out,
                    "<circle class=\"dot {}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"/>",
                    series.class,
                    self.x(*t),
                    self.y(*v)
                );
            }
            for run in runs(&series.points, self.max_gap) {
                let points: Vec<String> =
                    run.iter().map(|(t, v)| format!("{:.1},{:.1}", self.x(*t), self.y(*v))).collect();
                let _ = write!(
                    out,
                    "<polyline class=\"line {}\" points=\"{}\"><title>{}</title></polyline>",
                    series.class,
                    points.join(" "),
                    escape(&series.name)
                );
            }
        }
        out.push_str("</svg>");
        out
    }
}

/// The points split where sampling stopped for longer than `max_gap`.
fn runs(points: &[(i64, f64)], max_gap: i64) -> Vec<&[(i64, f64)]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].0 - points[i - 1].0 > max_gap {
            if i > start {
                runs.push(&points[start..i]);
            }
            start = i;
        }
    }
    runs
}

/// `-1 h`, `-24 h`, `-15 min`: the left edge's label.
fn ago(secs: i64) -> String {
    if secs >= 3600 { format!("-{} h", secs / 3600) } else { format!("-{} min", secs / 60) }
}

/// A value for an axis label: no decimals from 10 up, one below.
fn number(v: f64) -> String {
    if v >= 10.0 || v == 0.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// Text as SVG (XML) wants it.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(points: Vec<(i64, f64)>) -> Chart {
        Chart {
            id: "mem",
            title: "Host memory <used>".into(),
            description: "from 1 to 3 GiB".into(),
            from: 0,
            to: 100,
            y_max: 4.0,
            unit: "GiB",
            series: vec![Series { name: "used".into(), class: "a", points }],
            max_gap: 60,
        }
    }

    #[test]
    fn points_are_placed_by_time_and_value() {
        let svg = chart(vec![(0, 0.0), (50, 2.0), (100, 4.0)]).svg();
        // x: 48 + 584 × t/100; y: 10 + 148 × (1 − v/4).
        assert!(svg.contains("points=\"48.0,158.0 340.0,84.0 632.0,10.0\""), "{svg}");
        assert!(svg.contains("<title id=\"mem-t\">Host memory &lt;used&gt;</title>"), "{svg}");
        assert!(svg.contains("role=\"img\"") && svg.contains("<desc"), "{svg}");
        assert!(svg.contains(">4.0 GiB</text>") && svg.contains(">-1 min</text>"), "{svg}");
    }

    #[test]
    fn a_gap_in_sampling_breaks_the_line() {
        let svg = chart(vec![(0, 1.0), (10, 1.0), (80, 1.0), (90, 1.0)]).svg();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(chart(Vec::new()).svg().contains("</svg>"));
    }
}
