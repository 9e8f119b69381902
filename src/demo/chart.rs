//! The demo's timeline as an SVG chart: running tasks per revision (stacked, one colour per
//! revision; while two task sets run, each band is labelled blue or green), healthy tasks (a
//! line), the daemon's probe results (a strip of ticks) and the stories (markers). Plain SVG
//! text, no dependency; it opens in any browser.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One look at the service.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Seconds since the demo started.
    pub t: f64,
    /// `(revision, running, healthy)`, oldest revision first.
    pub revisions: Vec<(u32, usize, usize)>,
    /// The revision the daemon last verified: blue while another (green) runs beside it.
    pub serving: Option<u32>,
    /// The daemon's probes since the previous sample.
    pub probes_ok: u64,
    pub probes_failed: u64,
}

impl Sample {
    pub fn healthy(&self) -> usize {
        self.revisions.iter().map(|r| r.2).sum()
    }

    /// `blue` or `green` while more than one revision runs: blue is the serving one, green
    /// any other; `None` while one revision runs alone.
    pub fn role(&self, rev: u32) -> Option<&'static str> {
        if self.revisions.len() < 2 {
            return None;
        }
        let serving = self.serving?;
        if !self.revisions.iter().any(|r| r.0 == serving) {
            return None;
        }
        Some(if rev == serving { "blue" } else { "green" })
    }
}

/// What the chart shows.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub samples: Vec<Sample>,
    /// `(t, label)`: where each story starts.
    pub markers: Vec<(f64, String)>,
    /// Revision → what it runs (the ActiveGate version).
    pub names: BTreeMap<u32, String>,
}

const W: f64 = 1000.0;
const H: f64 = 370.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 48.0;
const PLOT_H: f64 = 260.0;
const STRIP: f64 = 18.0;
/// Revision fills: no blue and no green, so that a revision's colour never contradicts its
/// blue or green label.
const COLORS: &[&str] = &[
    "#d9d9d9", "#fdd49e", "#cab2d6", "#fb9a99", "#fee391", "#bdbdbd", "#f4a582",
];
const BLUE: &str = "#2166ac";
const GREEN: &str = "#1b7837";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart as SVG text, drawn layer by layer: each later layer is painted over the earlier.
pub fn render(t: &Timeline, title: &str) -> String {
    let frame = Frame::new(t);
    let mut svg = String::new();
    frame.background(&mut svg, title);
    frame.task_bands(&mut svg);
    frame.role_labels(&mut svg);
    frame.healthy_line(&mut svg);
    frame.axes(&mut svg);
    frame.probe_strip(&mut svg);
    frame.markers(&mut svg);
    frame.legend(&mut svg);
    svg.push_str("</svg>\n");
    svg
}

/// The scales of one chart: time across (0 to the last sample), tasks up (0 to the most that
/// ran at once, at least 2), and one colour per revision.
struct Frame<'a> {
    t: &'a Timeline,
    end: f64,
    most: usize,
    plot_w: f64,
    /// Every revision seen, in order: its place picks its colour.
    revisions: Vec<u32>,
}

impl<'a> Frame<'a> {
    fn new(t: &'a Timeline) -> Self {
        let end = t.samples.last().map_or(1.0, |s| s.t).max(1.0);
        let most = t
            .samples
            .iter()
            .map(|s| s.revisions.iter().map(|r| r.1).sum::<usize>())
            .max()
            .unwrap_or(0)
            .max(2);
        let mut revisions: Vec<u32> = t
            .samples
            .iter()
            .flat_map(|s| s.revisions.iter().map(|r| r.0))
            .collect();
        revisions.sort_unstable();
        revisions.dedup();
        Frame {
            t,
            end,
            most,
            plot_w: W - LEFT - RIGHT,
            revisions,
        }
    }

    fn x(&self, v: f64) -> f64 {
        LEFT + v / self.end * self.plot_w
    }

    fn y(&self, n: f64) -> f64 {
        TOP + PLOT_H - n / self.most as f64 * PLOT_H
    }

    fn color(&self, rev: u32) -> &'static str {
        let i = self.revisions.iter().position(|r| *r == rev).unwrap_or(0);
        COLORS[i % COLORS.len()]
    }

    /// The document, its title and the horizontal grid with the task counts.
    fn background(&self, svg: &mut String, title: &str) {
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12" shape-rendering="crispEdges">"#
        );
        let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="24" font-size="15" font-weight="bold">{}</text>"#,
            escape(title)
        );
        for n in 0..=self.most {
            let py = self.y(n as f64);
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{:.1}" text-anchor="end">{n}</text><line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#eee"/>"##,
                LEFT - 6.0,
                py + 4.0,
                LEFT + self.plot_w
            );
        }
    }

    /// Stacked running tasks per revision, one column per sample interval.
    fn task_bands(&self, svg: &mut String) {
        for pair in self.t.samples.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let (x0, x1) = (self.x(a.t), self.x(b.t));
            let mut stacked = 0usize;
            for (rev, running, _) in &a.revisions {
                let (top, bottom) = (self.y((stacked + running) as f64), self.y(stacked as f64));
                let _ = writeln!(
                    svg,
                    r#"<rect x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                    (x1 - x0 + 0.6).max(0.5),
                    bottom - top,
                    self.color(*rev)
                );
                stacked += running;
            }
        }
    }

    /// Blue and green: while two task sets run side by side, each band says which it is,
    /// once per stretch with the same revisions.
    fn role_labels(&self, svg: &mut String) {
        let samples = &self.t.samples;
        let roles = |s: &Sample| -> Option<Vec<(u32, &'static str)>> {
            s.revisions
                .iter()
                .map(|r| s.role(r.0).map(|role| (r.0, role)))
                .collect()
        };
        let mut i = 0;
        while i < samples.len() {
            let Some(key) = roles(&samples[i]) else {
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < samples.len() && roles(&samples[j]).as_ref() == Some(&key) {
                j += 1;
            }
            let (x0, x1) = (
                self.x(samples[i].t),
                self.x(samples.get(j).map_or(samples[j - 1].t, |s| s.t)),
            );
            self.stretch_labels(svg, &samples[(i + j - 1) / 2], x0, x1);
            i = j;
        }
    }

    /// The labels of one stretch from `x0` to `x1`, placed on its middle sample's bands.
    fn stretch_labels(&self, svg: &mut String, mid: &Sample, x0: f64, x1: f64) {
        let mut stacked = 0usize;
        for (rev, running, _) in &mid.revisions {
            let role = mid.role(*rev).unwrap_or_default();
            let text = if x1 - x0 >= 84.0 {
                format!("{role} · rev {rev}")
            } else {
                role.to_owned()
            };
            if *running > 0 && x1 - x0 >= 30.0 {
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" font-size="11" font-weight="bold" text-anchor="middle" fill="{}">{}</text>"#,
                    (x0 + x1) / 2.0,
                    self.y(stacked as f64 + *running as f64 / 2.0) + 4.0,
                    if role == "blue" { BLUE } else { GREEN },
                    escape(&text)
                );
            }
            stacked += running;
        }
    }

    /// Healthy tasks: a step line.
    fn healthy_line(&self, svg: &mut String) {
        let mut path = String::new();
        for (i, s) in self.t.samples.iter().enumerate() {
            let (px, py) = (self.x(s.t), self.y(s.healthy() as f64));
            if i == 0 {
                let _ = write!(path, "M{px:.1},{py:.1}");
            } else {
                let _ = write!(path, " H{px:.1} V{py:.1}");
            }
        }
        let _ = writeln!(
            svg,
            r#"<path d="{path}" fill="none" stroke="black" stroke-width="2"/>"#
        );
    }

    /// The axes, the time ticks (at most about 12) and the tasks axis' name.
    fn axes(&self, svg: &mut String) {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{0}" stroke="#333"/>"##,
            TOP + PLOT_H,
            LEFT + self.plot_w
        );
        let step = [5.0, 10.0, 15.0, 30.0, 60.0]
            .into_iter()
            .find(|s| self.end / s <= 12.0)
            .unwrap_or(120.0);
        let mut tick = 0.0;
        while tick <= self.end {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{tick:.0} s</text>"#,
                self.x(tick),
                TOP + PLOT_H + STRIP + 30.0
            );
            tick += step;
        }
        let _ = writeln!(
            svg,
            r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">tasks</text>"#,
            TOP + PLOT_H / 2.0,
            TOP + PLOT_H / 2.0
        );
    }

    /// Probe results: green where every probe answered healthy, red where one failed.
    fn probe_strip(&self, svg: &mut String) {
        let strip_y = TOP + PLOT_H + 6.0;
        for pair in self.t.samples.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let fill = match (b.probes_ok, b.probes_failed) {
                (_, f) if f > 0 => "#d7301f",
                (o, _) if o > 0 => "#41ab5d",
                _ => continue,
            };
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{strip_y:.1}" width="{:.1}" height="{STRIP}" fill="{fill}"/>"#,
                self.x(a.t),
                (self.x(b.t) - self.x(a.t)).max(0.5)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10">probes</text>"#,
            LEFT - 6.0,
            strip_y + 13.0
        );
    }

    /// Story markers: a dashed line and its label, staggered on three rows.
    fn markers(&self, svg: &mut String) {
        for (i, (at, label)) in self.t.markers.iter().enumerate() {
            let mx = self.x(*at);
            // Labels near the right edge end at their marker.
            let (anchor, lx) = if mx > LEFT + self.plot_w * 0.8 {
                ("end", mx - 3.0)
            } else {
                ("start", mx + 3.0)
            };
            let _ = writeln!(
                svg,
                r##"<line x1="{mx:.1}" y1="{TOP}" x2="{mx:.1}" y2="{:.1}" stroke="#555" stroke-dasharray="4 3"/><text x="{lx:.1}" y="{:.1}" font-size="11" text-anchor="{anchor}">{}</text>"##,
                TOP + PLOT_H,
                TOP + 12.0 + 13.0 * (i % 3) as f64,
                escape(label)
            );
        }
    }

    /// The legend right of the plot: revisions, the healthy line, blue and green, probes.
    fn legend(&self, svg: &mut String) {
        let lx = LEFT + self.plot_w + 16.0;
        let mut ly = TOP + 4.0;
        for rev in &self.revisions {
            let name = self
                .t
                .names
                .get(rev)
                .map_or(String::new(), |n| format!(" {n}"));
            let _ = writeln!(
                svg,
                r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{}"/><text x="{}" y="{}" font-size="11">rev {rev}{}</text>"#,
                self.color(*rev),
                lx + 18.0,
                ly + 10.0,
                escape(&name)
            );
            ly += 18.0;
        }
        let _ = writeln!(
            svg,
            r##"<line x1="{lx}" y1="{0}" x2="{1}" y2="{0}" stroke="black" stroke-width="2"/><text x="{2}" y="{3}" font-size="11">healthy tasks</text>"##,
            ly + 6.0,
            lx + 12.0,
            lx + 18.0,
            ly + 10.0
        );
        ly += 18.0;
        for (fill, label) in [
            (BLUE, "blue: last good set, serving"),
            (GREEN, "green: new set beside it"),
        ] {
            let _ = writeln!(
                svg,
                r#"<text x="{lx}" y="{}" font-size="11" font-weight="bold" fill="{fill}">{}</text>"#,
                ly + 10.0,
                escape(label)
            );
            ly += 18.0;
        }
        for (fill, label) in [("#41ab5d", "probes all OK"), ("#d7301f", "a probe failed")] {
            let _ = writeln!(
                svg,
                r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{fill}"/><text x="{}" y="{}" font-size="11">{label}</text>"#,
                lx + 18.0,
                ly + 10.0
            );
            ly += 18.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_draws_every_revision_the_healthy_line_probes_and_markers() {
        let samples = vec![
            Sample {
                t: 0.0,
                revisions: vec![(1, 2, 2)],
                ..Sample::default()
            },
            Sample {
                t: 5.0,
                revisions: vec![(1, 2, 2), (2, 2, 0)],
                serving: Some(1),
                probes_ok: 4,
                probes_failed: 0,
            },
            Sample {
                t: 10.0,
                revisions: vec![(1, 2, 2)],
                serving: Some(1),
                probes_ok: 2,
                probes_failed: 3,
            },
        ];
        let t = Timeline {
            samples,
            markers: vec![(4.0, "2. a <broken> version".into())],
            names: BTreeMap::from([(1, "1.301".into()), (2, "1.305 & co".into())]),
        };
        let svg = render(&t, "demo");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("rev 1 1.301") && svg.contains("rev 2 1.305 &amp; co"));
        assert!(svg.contains("2. a &lt;broken&gt; version"));
        // While rev 2 runs beside rev 1 (serving), the bands say blue and green, once each.
        assert_eq!(svg.matches(">blue · rev 1<").count(), 1, "{svg}");
        assert_eq!(svg.matches(">green · rev 2<").count(), 1, "{svg}");
        assert!(svg.contains("blue: last good set, serving"));
        // A red tick in the probe strip (legend swatches are 12 high, strip ticks 18).
        assert!(
            svg.contains(&format!("height=\"{STRIP}\" fill=\"#d7301f\"")),
            "a failed-probe tick"
        );
        assert!(svg.contains("<path d=\"M"));
        // Every element is closed: as many opening `<` as `>` (no text holds either).
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
    }

    #[test]
    fn roles_need_two_revisions_and_the_serving_one_among_them() {
        let s = |revisions: Vec<(u32, usize, usize)>, serving| Sample {
            revisions,
            serving,
            ..Sample::default()
        };
        let alone = s(vec![(2, 2, 2)], Some(2));
        assert_eq!(alone.role(2), None);
        let side_by_side = s(vec![(2, 2, 2), (3, 2, 0)], Some(2));
        assert_eq!(
            (side_by_side.role(2), side_by_side.role(3)),
            (Some("blue"), Some("green"))
        );
        // Before the first verification nothing is blue.
        assert_eq!(s(vec![(1, 1, 0), (2, 1, 0)], None).role(1), None);
    }
}
