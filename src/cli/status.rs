//! `taskdb status`: every migration, its state and when it was applied.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::{self, Output};
use super::Database;
use crate::migrate::{MigrationPlan, MigrationState};

#[derive(Debug, Args)]
pub struct Opts {
    /// Exit with status 1 when anything is pending, modified, missing or
    /// dirty (for CI and deploy gates)
    #[arg(long)]
    pub check: bool,

    /// Output format: `text`, or `json`: one object {"database": URL without
    /// password, "backend": "postgres"|"sqlite", "total", "applied",
    /// "pending": counts, "migrations": [{"version": "20260208000001",
    /// "name": directory name, "state": applied|pending|interrupted|
    /// modified|missing|dirty, "applied_at": "2026-02-08T12:00:00Z" or null,
    /// "checksum": "ok" (matches the recorded one) | "modified" |
    /// "unrecorded" (applied by another tool, no checksum yet) | null (not
    /// applied, or not in this build), "execution_ms": number or null}]}
    #[arg(long, value_enum, default_value_t = super::OutputFormat::Text)]
    pub format: super::OutputFormat,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    let plan = if db.url.is_missing_sqlite_file() {
        MigrationPlan::for_new_database(db.url.backend())
    } else {
        let mut conn = db.connect()?;
        let mut plan = MigrationPlan::load(&mut conn)?;
        plan.observe_running(&mut conn)?;
        plan
    };
    if opts.format == super::OutputFormat::Json {
        json::print(&plan, db, out)?;
    } else {
        print_plan(&plan, out)?;
    }
    // A database ahead of this build (a later release's migrations) is
    // what a rolled-back app sees: not a reason to fail the gate.
    let clean = plan
        .entries
        .iter()
        .all(|e| matches!(e.state, MigrationState::Applied | MigrationState::Ahead));
    Ok(if opts.check && !clean {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_plan(plan: &MigrationPlan, out: &mut Output<'_>) -> anyhow::Result<()> {
    let recorded = plan.applied().count();
    writeln!(out, "Total migrations: {}", plan.entries.len())?;
    writeln!(out, "Applied: {recorded}")?;
    writeln!(out, "Pending: {}", plan.pending().count())?;
    for state in [
        MigrationState::Modified,
        MigrationState::Missing,
        MigrationState::Dirty,
        MigrationState::Ahead,
    ] {
        let n = plan.count(state);
        if n > 0 {
            writeln!(out, "{}: {n}", output::capitalised(state.as_str()))?;
        }
    }
    writeln!(out)?;
    let width = plan.entries.iter().map(|e| e.name.len()).max().unwrap_or(0);
    for entry in &plan.entries {
        let mark = match entry.state {
            MigrationState::Applied => "✓",
            MigrationState::Pending => "·",
            MigrationState::Interrupted | MigrationState::Running => "…",
            MigrationState::Ahead => "↑",
            _ => "✗",
        };
        let when = entry
            .applied_at()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        let extra = match entry.state {
            MigrationState::Dirty => entry
                .error()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default(),
            MigrationState::Interrupted if entry.is_interrupted_revert() => {
                "  (its revert was cut off: `taskdb rollback` finishes the revert, `taskdb migrate` re-applies it)".into()
            }
            MigrationState::Interrupted => "  (cut off; the next migrate finishes it)".into(),
            MigrationState::Running => "  (in progress on the server right now)".into(),
            MigrationState::Ahead => "  (newer than this build: applied by a later release)".into(),
            _ => String::new(),
        };
        writeln!(
            out,
            "{mark} {:<11} {:<width$}  {when}{extra}",
            entry.state.as_str(),
            entry.name
        )?;
    }
    Ok(())
}

/// `status --format json`. The fields are a stable interface for deploy
/// scripts and CI; see `Opts::format` for their meaning.
mod json {
    use std::io::Write;

    use crate::cli::output::Output;
    use crate::cli::Database;
    use crate::migrate::{MigrationPlan, PlanEntry};

    #[derive(serde::Serialize)]
    struct Status<'a> {
        database: &'a str,
        backend: crate::Backend,
        total: usize,
        applied: usize,
        pending: usize,
        migrations: Vec<Migration<'a>>,
    }

    #[derive(serde::Serialize)]
    struct Migration<'a> {
        version: &'a str,
        name: &'a str,
        state: &'static str,
        applied_at: Option<String>,
        checksum: Option<&'static str>,
        execution_ms: Option<i64>,
    }

    fn checksum_state(entry: &PlanEntry) -> Option<&'static str> {
        let tracked = entry.tracked.as_ref()?;
        match (&tracked.ledger, &entry.local) {
            (Some(row), Some(local)) => Some(if row.checksum == local.checksum() {
                "ok"
            } else {
                "modified"
            }),
            (None, _) if tracked.recorded => Some("unrecorded"),
            _ => None,
        }
    }

    pub(super) fn print(
        plan: &MigrationPlan,
        db: &Database,
        out: &mut Output<'_>,
    ) -> anyhow::Result<()> {
        let status = Status {
            database: db.url.redacted(),
            backend: plan.backend,
            total: plan.entries.len(),
            applied: plan.applied().count(),
            pending: plan.pending().count(),
            migrations: plan
                .entries
                .iter()
                .map(|e| Migration {
                    version: &e.version,
                    name: &e.name,
                    state: e.state.as_str(),
                    applied_at: e
                        .applied_at()
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    checksum: checksum_state(e),
                    execution_ms: e
                        .tracked
                        .as_ref()
                        .filter(|t| t.recorded)
                        .and_then(|t| t.ledger.as_ref())
                        .map(|l| l.execution_ms),
                })
                .collect(),
        };
        // Serialised first, so a closed pipe surfaces as an io error.
        let text = serde_json::to_string_pretty(&status)?;
        writeln!(out, "{text}")?;
        Ok(())
    }
}
