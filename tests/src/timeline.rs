//! The timeline of a run drawn as an SVG a person can open in a browser: completions per
//! second stacked by the ComfyUI version that ran them, the queue's depth, and the steps of
//! the run as marked lines. Plain SVG text (no font or raster library is needed to lay it
//! out: labels are SVG `<text>`, placed by fixed offsets).

use std::collections::BTreeMap;
use std::fmt::Write;

/// The queue's counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the run began.
    pub at: f64,
    /// Pending jobs.
    pub pending: u64,
    /// Running jobs.
    pub running: u64,
}

/// A step of the run (a drain, a replacement, a kill).
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Seconds since the run began.
    pub at: f64,
    /// What happened.
    pub label: String,
}

/// What is drawn.
#[derive(Debug, Clone, Default)]
pub struct Plot {
    /// Heading.
    pub title: String,
    /// Queue counts over time.
    pub samples: Vec<Sample>,
    /// Each completed job: when (seconds since the run began) and on which version.
    pub finished: Vec<(f64, String)>,
    /// The steps.
    pub steps: Vec<Step>,
}

const W: f64 = 1100.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 180.0;
const TOP_Y: f64 = 110.0;
const TOP_H: f64 = 230.0;
const LOW_Y: f64 = 390.0;
const LOW_H: f64 = 150.0;
/// Height above the step list (which grows with the number of steps).
const H: f64 = 690.0;
const COLOURS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step for an axis from 0 to `max` with about `n` ticks.
fn tick_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

impl Plot {
    /// The SVG document.
    pub fn svg(&self) -> String {
        let end = self
            .samples
            .iter()
            .map(|s| s.at)
            .chain(self.finished.iter().map(|f| f.0))
            .chain(self.steps.iter().map(|s| s.at))
            .fold(1.0_f64, f64::max)
            .ceil();
        let plot_w = W - LEFT - RIGHT;
        let x = |t: f64| LEFT + t / end * plot_w;
        // Completions per 1-s bin, by version (versions in order of first completion).
        let mut versions: Vec<String> = Vec::new();
        let mut finished = self.finished.clone();
        finished.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, v) in &finished {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
        let bins = end as usize + 1;
        let mut per: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for (t, v) in &finished {
            let bin = (t.max(0.0) as usize).min(bins - 1);
            let k = versions.iter().position(|x| x == v).unwrap_or(0);
            per.entry(bin).or_insert_with(|| vec![0; versions.len()])[k] += 1;
        }
        let top_max = per
            .values()
            .map(|c| c.iter().sum::<u64>())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let top_step = tick_step(top_max, 5.0).max(1.0);
        let top_max = (top_max / top_step).ceil() * top_step;
        let low_max = self
            .samples
            .iter()
            .map(|s| s.pending.max(s.running))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let low_step = tick_step(low_max, 4.0).max(1.0);
        let low_max = (low_max / low_step).ceil() * low_step;
        let time_step = tick_step(end, 12.0);

        let mut o = String::new();
        let h = H - 90.0 + self.steps.len().div_ceil(3) as f64 * 15.0;
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(o, r#"<rect width="{W}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            o,
            r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#,
            esc(&self.title)
        );
        // Panels and their axes.
        for (y0, h, max, step, label) in [
            (TOP_Y, TOP_H, top_max, top_step, "jobs completed per second"),
            (LOW_Y, LOW_H, low_max, low_step, "jobs pending / running"),
        ] {
            let _ = writeln!(
                o,
                r##"<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{h}" fill="none" stroke="#999"/>"##
            );
            let _ = writeln!(
                o,
                r#"<text x="{LEFT}" y="{}" font-weight="bold">{label}</text>"#,
                y0 - 8.0
            );
            let mut v = 0.0;
            while v <= max + 1e-9 {
                let y = y0 + h - v / max * h;
                let _ = writeln!(
                    o,
                    r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v}</text>"##,
                    LEFT + plot_w,
                    LEFT - 6.0,
                    y + 4.0
                );
                v += step;
            }
        }
        let mut t = 0.0;
        while t <= end + 1e-9 {
            let _ = writeln!(
                o,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{t}</text>"#,
                x(t),
                LOW_Y + LOW_H + 16.0
            );
            t += time_step;
        }
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">seconds since the load began</text>"#,
            LEFT + plot_w / 2.0,
            LOW_Y + LOW_H + 36.0
        );
        // Stacked bars.
        let bar_w = (plot_w / end).max(1.0) - 0.5;
        for (bin, counts) in &per {
            let mut y = TOP_Y + TOP_H;
            for (k, n) in counts.iter().enumerate() {
                if *n == 0 {
                    continue;
                }
                let h = *n as f64 / top_max * TOP_H;
                y -= h;
                let _ = writeln!(
                    o,
                    r#"<rect x="{:.1}" y="{y:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{}"><title>{}s: {n} on {}</title></rect>"#,
                    x(*bin as f64),
                    COLOURS[k % COLOURS.len()],
                    bin,
                    esc(&versions[k])
                );
            }
        }
        // Depth lines.
        for (colour, pick, name) in [("#333", 0usize, "pending"), ("#e15759", 1, "running")] {
            let points: Vec<String> = self
                .samples
                .iter()
                .map(|s| {
                    let v = if pick == 0 { s.pending } else { s.running } as f64;
                    format!("{:.1},{:.1}", x(s.at), LOW_Y + LOW_H - v / low_max * LOW_H)
                })
                .collect();
            let _ = writeln!(
                o,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"><title>{name}</title></polyline>"#,
                points.join(" ")
            );
        }
        // Steps: dashed lines through both panels, numbered above the top one (numbers of
        // steps close together stand in three rows), and listed under the time axis.
        for (n, s) in self.steps.iter().enumerate() {
            let sx = x(s.at);
            let _ = writeln!(
                o,
                r##"<line x1="{sx:.1}" x2="{sx:.1}" y1="{}" y2="{}" stroke="#888" stroke-dasharray="3,3"/>"##,
                TOP_Y - 14.0 - (n % 3) as f64 * 12.0,
                LOW_Y + LOW_H
            );
            let _ = writeln!(
                o,
                r##"<text x="{sx:.1}" y="{}" font-size="10" text-anchor="middle" fill="#444">{}</text>"##,
                TOP_Y - 16.0 - (n % 3) as f64 * 12.0,
                n + 1
            );
        }
        let per_column = self.steps.len().div_ceil(3).max(1);
        for (n, s) in self.steps.iter().enumerate() {
            let col = (n / per_column) as f64;
            let row = (n % per_column) as f64;
            let _ = writeln!(
                o,
                r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#333">{}. {:.1} s  {}</text>"##,
                LEFT + col * (plot_w + RIGHT - 20.0) / 3.0,
                LOW_Y + LOW_H + 62.0 + row * 15.0,
                n + 1,
                s.at,
                esc(&s.label)
            );
        }
        // Legend.
        let lx = LEFT + plot_w + 16.0;
        let _ = writeln!(
            o,
            r#"<text x="{lx}" y="{TOP_Y}" font-weight="bold">ComfyUI</text>"#
        );
        for (k, v) in versions.iter().enumerate() {
            let y = TOP_Y + 16.0 + k as f64 * 18.0;
            let total = finished.iter().filter(|f| &f.1 == v).count();
            let _ = writeln!(
                o,
                r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{y}">{} ({total} jobs)</text>"#,
                y - 10.0,
                COLOURS[k % COLOURS.len()],
                lx + 18.0,
                esc(v)
            );
        }
        for (k, (colour, name)) in [("#333", "pending"), ("#e15759", "running")]
            .iter()
            .enumerate()
        {
            let y = LOW_Y + 16.0 + k as f64 * 18.0;
            let _ = writeln!(
                o,
                r#"<line x1="{lx}" x2="{}" y1="{}" y2="{}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{y}">{name}</text>"#,
                lx + 12.0,
                y - 4.0,
                y - 4.0,
                lx + 18.0
            );
        }
        o.push_str("</svg>\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_svg_shows_every_version_and_step() {
        let plot = Plot {
            title: "a <run>".into(),
            samples: vec![
                Sample {
                    at: 0.0,
                    pending: 3,
                    running: 1,
                },
                Sample {
                    at: 5.0,
                    pending: 0,
                    running: 0,
                },
            ],
            finished: vec![
                (1.2, "0.9.2".into()),
                (1.5, "0.9.2".into()),
                (3.0, "0.11.1".into()),
            ],
            steps: vec![Step {
                at: 2.0,
                label: "drain gpu-1".into(),
            }],
        };
        let svg = plot.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("0.9.2 (2 jobs)") && svg.contains("0.11.1 (1 jobs)"));
        assert!(svg.contains("1. 2.0 s  drain gpu-1"));
        assert!(svg.contains("a &lt;run&gt;"), "text is escaped");
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(100.0, 5.0), 20.0);
        assert_eq!(tick_step(7.0, 5.0), 2.0);
        assert_eq!(tick_step(0.3, 3.0), 0.1);
    }
}
