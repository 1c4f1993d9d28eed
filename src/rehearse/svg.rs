//! The rehearsal as a picture (`--report FILE.svg`): time runs across; one
//! band per table shows which lock mode the migration held when; the
//! clients' latency is drawn underneath; each step's start is a labelled
//! line. Hand-written SVG, no dependencies.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{format_ms, Report};

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 170.0;
const RIGHT: f64 = 20.0;
const BAND: f64 = 26.0;
const LATENCY_HEIGHT: f64 = 140.0;

/// The lock modes, weakest first, with their colours.
const MODES: [(&str, &str); 8] = [
    ("AccessShareLock", "#d8ecd8"),
    ("RowShareLock", "#b7dcb7"),
    ("RowExclusiveLock", "#8cc98c"),
    ("ShareUpdateExclusiveLock", "#f2d06b"),
    ("ShareLock", "#f2a057"),
    ("ShareRowExclusiveLock", "#e5703f"),
    ("ExclusiveLock", "#cc3333"),
    ("AccessExclusiveLock", "#7a1022"),
];

fn colour(mode: &str) -> &'static str {
    MODES
        .iter()
        .find(|(m, _)| *m == mode)
        .map(|(_, c)| *c)
        .unwrap_or("#888888")
}

fn strength(mode: &str) -> usize {
    MODES.iter().position(|(m, _)| *m == mode).unwrap_or(0)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The picture of `report`.
pub fn render(report: &Report) -> String {
    let t = &report.timeline;
    let relations: BTreeSet<&str> = t.spans.iter().map(|s| s.relation.as_str()).collect();
    let end = t.end_ms.max(1.0);
    let x = |ms: f64| LEFT + (ms / end).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT);
    let labels_height = 18.0 * report.steps.len().min(12) as f64 + 10.0;
    let bands_top = 40.0 + labels_height;
    let latency_top = bands_top + BAND * relations.len().max(1) as f64 + 30.0;
    let legend_top = latency_top + LATENCY_HEIGHT + 40.0;
    let height = legend_top + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let unsafe_steps = report.steps.iter().filter(|st| !st.is_safe()).count();
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">taskdb rehearse: {} step(s), {} not safe; {}, {} client(s)</text>"#,
        report.steps.len(),
        unsafe_steps,
        escape(&report.sizes.to_string()),
        report.clients
    );
    // Step boundaries and labels.
    for (i, step) in report.steps.iter().enumerate() {
        let sx = x(step.started_ms);
        let label_y = 40.0 + 18.0 * (i % 12) as f64 + 12.0;
        let verdicts: Vec<&str> = step.verdict.iter().map(|v| v.name()).collect();
        let fill = if step.is_safe() { "#222222" } else { "#b00020" };
        let _ = writeln!(
            s,
            r##"<line class="step-boundary" x1="{sx:.1}" y1="{:.1}" x2="{sx:.1}" y2="{:.1}" stroke="#555555" stroke-dasharray="3,3"/>"##,
            label_y + 3.0,
            latency_top + LATENCY_HEIGHT
        );
        // Labels of late steps end at their line, so they stay inside.
        let (lx, anchor) = if sx > WIDTH * 0.6 {
            (sx - 3.0, "end")
        } else {
            (sx + 3.0, "start")
        };
        let _ = writeln!(
            s,
            r#"<text class="step-label" x="{lx:.1}" y="{label_y:.1}" text-anchor="{anchor}" fill="{fill}">{} — {}</text>"#,
            escape(&step.migration),
            verdicts.join(", ")
        );
    }
    // One band per relation.
    for (i, relation) in relations.iter().enumerate() {
        let y = bands_top + BAND * i as f64;
        let _ = writeln!(
            s,
            r#"<g class="band" data-relation="{}">"#,
            escape(relation)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="#f4f4f4"/>"##,
            WIDTH - LEFT - RIGHT,
            BAND - 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="10" y="{:.1}">{}</text>"#,
            y + BAND / 2.0 + 2.0,
            escape(relation)
        );
        let mut spans: Vec<_> = t
            .spans
            .iter()
            .filter(|sp| sp.relation == *relation)
            .collect();
        spans.sort_by_key(|sp| strength(&sp.mode));
        for sp in spans {
            let (x1, x2) = (x(sp.from_ms), x(sp.to_ms));
            let _ = writeln!(
                s,
                r#"<rect class="lock" x="{x1:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {} for {}</title></rect>"#,
                (x2 - x1).max(1.5),
                BAND - 4.0,
                colour(&sp.mode),
                escape(relation),
                sp.mode,
                format_ms(sp.to_ms - sp.from_ms)
            );
        }
        let _ = writeln!(s, "</g>");
    }
    // Client latency, errors in red.
    let max_latency = t
        .requests
        .iter()
        .map(|r| super::ms(r.latency))
        .fold(1.0, f64::max);
    let y_of = |ms: f64| latency_top + LATENCY_HEIGHT - (ms / max_latency) * LATENCY_HEIGHT;
    let _ = writeln!(s, r#"<g class="latency">"#);
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{latency_top:.1}" width="{:.1}" height="{LATENCY_HEIGHT}" fill="none" stroke="#cccccc"/>"##,
        WIDTH - LEFT - RIGHT
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="{:.1}">client latency</text><text x="10" y="{:.1}" fill="#666666">max {}</text>"##,
        latency_top + 14.0,
        latency_top + 30.0,
        format_ms(max_latency)
    );
    // How long the oldest request in flight had been waiting, per pixel
    // column: a stall reads as a ramp as long as the stall.
    let columns = (WIDTH - LEFT - RIGHT) as usize;
    let per_column = end / columns as f64;
    let mut slowest = vec![None::<f64>; columns + 1];
    for r in &t.requests {
        let start = super::ms(r.at);
        let latency = super::ms(r.latency);
        let first = ((x(start) - LEFT) as usize).min(columns);
        let last = ((x(start + latency) - LEFT) as usize).min(columns);
        for (c, cell) in slowest.iter_mut().enumerate().take(last + 1).skip(first) {
            let age = ((c as f64 + 1.0) * per_column - start).clamp(0.0, latency);
            *cell = Some(cell.map_or(age, |v: f64| v.max(age)));
        }
    }
    // A bar per pixel column with a request in flight.
    let bottom = latency_top + LATENCY_HEIGHT;
    let bars: String = slowest
        .iter()
        .enumerate()
        .filter_map(|(c, v)| {
            v.map(|v| {
                format!(
                    "M{:.1},{bottom:.1}V{:.1}",
                    LEFT + c as f64,
                    y_of(v).min(bottom - 1.0)
                )
            })
        })
        .collect();
    let _ = writeln!(
        s,
        r##"<path class="client-latency" d="{bars}" fill="none" stroke="#1f5fa8" stroke-width="1"/>"##
    );
    if report.stall_limit_ms < max_latency {
        let ly = y_of(report.stall_limit_ms);
        let _ = writeln!(
            s,
            r##"<line class="stall-limit" x1="{LEFT}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="#b00020" stroke-dasharray="6,3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#b00020" font-size="10">stall limit {}</text>"##,
            WIDTH - RIGHT,
            WIDTH - RIGHT - 2.0,
            ly - 3.0,
            format_ms(report.stall_limit_ms)
        );
    }
    for r in t.requests.iter().filter(|r| r.error.is_some()) {
        let _ = writeln!(
            s,
            r##"<circle class="client-error" cx="{:.1}" cy="{:.1}" r="2.5" fill="#d00000"/>"##,
            x(super::ms(r.at)),
            y_of(super::ms(r.latency))
        );
    }
    let _ = writeln!(s, "</g>");
    // Time axis and legend.
    let axis_y = latency_top + LATENCY_HEIGHT + 16.0;
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{axis_y:.1}">0 s</text><text x="{:.1}" y="{axis_y:.1}" text-anchor="end">{}</text>"#,
        WIDTH - RIGHT,
        format_ms(end)
    );
    let mut lx = 10.0;
    for (mode, fill) in MODES {
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.1}" y="{legend_top:.1}" width="12" height="12" fill="{fill}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
            lx + 15.0,
            legend_top + 10.0,
            mode.trim_end_matches("Lock")
        );
        lx += 15.0 + 7.0 * mode.len() as f64 - 10.0;
    }
    let _ = writeln!(s, "</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::super::{LockSpan, Sizes, StepReport, Timeline, Verdict};
    use super::*;

    fn step(name: &str, verdict: Verdict, at: f64) -> StepReport {
        StepReport {
            migration: name.into(),
            verdict: vec![verdict],
            lint: "safe",
            lint_rules: Vec::new(),
            disagrees: false,
            duration_ms: 10.0,
            max_client_wait_ms: 0.0,
            locks: Vec::new(),
            lock_spans: Vec::new(),
            client_waits: Vec::new(),
            rewrites: Vec::new(),
            client_errors: 0,
            client_error: None,
            rows_lost: 0,
            lost: Vec::new(),
            wal_bytes: 0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
            baseline_p99_ms: 0.0,
            error: None,
            started_ms: at,
            ended_ms: at + 100.0,
        }
    }

    #[test]
    fn one_band_per_relation_and_a_label_per_step() {
        let span = |relation: &str, mode: &str, from: f64| LockSpan {
            relation: relation.into(),
            mode: mode.into(),
            from_ms: from,
            to_ms: from + 50.0,
        };
        let report = Report {
            steps: vec![
                step("2026-01-01-000001_a<b", Verdict::Safe, 100.0),
                step("2026-01-01-000002_c", Verdict::Blocks, 300.0),
            ],
            exceeded: true,
            not_rehearsed: Vec::new(),
            sizes: Sizes::default(),
            copy: None,
            clients: 2,
            stall_limit_ms: 250.0,
            reused_copy: false,
            baseline_requests: 0,
            baseline_p99_ms: 0.0,
            timeline: Timeline {
                spans: vec![
                    span("tasks", "ShareLock", 300.0),
                    span("tasks", "AccessExclusiveLock", 320.0),
                    span("users", "AccessExclusiveLock", 100.0),
                ],
                requests: Vec::new(),
                end_ms: 500.0,
            },
        };
        let svg = render(&report);
        assert_eq!(svg.matches(r#"<g class="band""#).count(), 2);
        assert!(svg.contains(r#"data-relation="tasks""#));
        assert!(svg.contains(r#"data-relation="users""#));
        assert_eq!(svg.matches(r#"class="lock""#).count(), 3);
        assert!(svg.contains("2026-01-01-000001_a&lt;b — safe"));
        assert!(svg.contains("2026-01-01-000002_c — blocks"));
        assert!(svg.contains(colour("AccessExclusiveLock")));
    }
}
