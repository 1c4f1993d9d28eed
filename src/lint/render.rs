//! Findings for people (rustc-style) and for scripts (one JSON document).

#[cfg(feature = "cli")]
use std::fmt::Write as _;

#[cfg(feature = "cli")]
use super::{Finding, Level, Report};
use super::TableSize;

/// `4.0M rows, 420 MB`.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub fn describe_size(size: TableSize) -> String {
    let rows = size.rows as f64;
    let rows = if rows >= 1e6 {
        format!("{:.1}M rows", rows / 1e6)
    } else if rows >= 1e3 {
        format!("{:.1}k rows", rows / 1e3)
    } else {
        format!("{} rows", size.rows)
    };
    let bytes = size.bytes as f64;
    let bytes = if bytes >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GB", bytes / (1024.0 * 1024.0 * 1024.0))
    } else if bytes >= 1024.0 * 1024.0 {
        format!("{:.0} MB", bytes / (1024.0 * 1024.0))
    } else {
        format!("{:.0} kB", bytes / 1024.0)
    };
    format!("{rows}, {bytes}")
}

/// One finding the way rustc shows a diagnostic.
#[cfg(feature = "cli")]
pub fn human(f: &Finding) -> String {
    let mut s = String::new();
    let level = match (f.level, f.allowed) {
        (_, true) => "allowed",
        (Level::Error, false) => "error",
        (Level::Warning, false) => "warning",
    };
    let _ = writeln!(s, "{level}[{}]: {}", f.rule, f.message);
    let _ = writeln!(s, "  --> {}:{}:{}", f.file, f.line, f.column);
    if let Some(source) = &f.source {
        let _ = writeln!(s, "   |");
        let _ = writeln!(s, "{:>3}| {source}", f.line);
        let _ = writeln!(s, "   |");
    }
    if let Some(lock) = &f.lock {
        let on = f
            .table
            .as_deref()
            .map(|t| format!(" on {t}"))
            .unwrap_or_default();
        let blocks = f
            .blocks
            .map(|b| format!(", blocks {}", b.describe()))
            .unwrap_or_default();
        let _ = writeln!(s, "   = lock: {lock}{on}{blocks}");
    }
    if let Some(consequence) = &f.consequence {
        let _ = writeln!(s, "   = live: {consequence}");
    }
    if let Some(reason) = &f.allow_reason {
        let _ = writeln!(s, "   = allowed: {reason}");
    }
    if let Some(recipe) = &f.recipe {
        let mut lines = recipe.lines();
        if let Some(first) = lines.next() {
            let _ = writeln!(s, "   = help: {first}");
        }
        for line in lines {
            let _ = writeln!(s, "           {line}");
        }
    }
    s
}

/// The whole report for people, with a closing summary line.
#[cfg(feature = "cli")]
pub fn human_report(report: &Report) -> String {
    let mut s = String::new();
    for f in &report.findings {
        s.push_str(&human(f));
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "lint: {} migration(s): {} error(s), {} warning(s), {} allowed",
        report.migrations,
        report.errors(),
        report.warnings(),
        report.allowed()
    );
    s
}

/// One JSON document: `{ "migrations": N, "errors": N, "warnings": N, "allowed": N, "findings": [...] }`.
#[cfg(feature = "cli")]
pub fn json_report(report: &Report) -> String {
    let doc = serde_json::json!({
        "migrations": report.migrations,
        "errors": report.errors(),
        "warnings": report.warnings(),
        "allowed": report.allowed(),
        "findings": report.findings,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into())
}
