//! `taskdb status`: every migration, its state and when it was applied.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::{self, Output};
use super::Database;
use crate::db::Backend;
use crate::migrate::backfill::{self, SavedProgress};
use crate::migrate::replicas::{self, Standby};
use crate::migrate::{MigrationPlan, MigrationState, PlanEntry};

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
    /// applied, or not in this build), "execution_ms": number or null,
    /// "backfill": for a backfill migration cut off or running, {"rows_done",
    /// "rows_estimated": numbers, "rows_per_second": its latest run's rate,
    /// or null before its first batch}, else null}],
    /// "standbys": [{"name": application_name, "state": "streaming"|…,
    /// "lag_visible": false when this role may not see the lag (it needs
    /// pg_read_all_stats; the two fields after it are then null, meaning
    /// unknown), "replay_lag_ms": number or null (caught up),
    /// "bytes_behind": WAL not yet replayed}] (PostgreSQL's streaming
    /// standbys; [] for none), and on a Citus coordinator only "citus":
    /// {"citus_version", "users", "tasks": "reference" | "distributed by
    /// user_id" | "local" | "not distributed", "recorded": [[step, done
    /// at]] (`taskdb distribute`'s steps)}}
    #[arg(long, value_enum, default_value_t = super::OutputFormat::Text)]
    pub format: super::OutputFormat,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    let (plan, standbys, backfills) = if db.url.is_missing_sqlite_file() {
        (
            MigrationPlan::for_new_database(db.url.backend(), &db.migrations)?,
            Vec::new(),
            BTreeMap::new(),
        )
    } else {
        let mut conn = db.connect()?;
        let mut plan = MigrationPlan::load_from(&mut conn, &db.migrations)?;
        plan.observe_running(&mut conn)?;
        // Best effort: the standbys are context, not the status itself.
        let standbys = replicas::standbys(&mut conn).unwrap_or_default();
        // Unfinished backfills: how far they got.
        let mut backfills = BTreeMap::new();
        if db.url.backend() == Backend::Postgres {
            for entry in &plan.entries {
                if let (MigrationState::Interrupted | MigrationState::Running, Some(m)) =
                    (entry.state, &entry.local)
                {
                    if let Some(progress) = backfill::saved_progress(&mut conn, m) {
                        backfills.insert(entry.version.clone(), progress);
                    }
                }
            }
        }
        (plan, standbys, backfills)
    };
    if opts.format == super::OutputFormat::Json {
        #[cfg(feature = "postgres")]
        let citus = if db.url.backend() == Backend::Postgres && !db.url.is_missing_sqlite_file() {
            let mut conn = crate::db::connect_postgres(&db.url)?;
            crate::distribute::distribution(&mut conn)?
                .map(serde_json::to_value)
                .transpose()?
        } else {
            None
        };
        #[cfg(not(feature = "postgres"))]
        let citus = None;
        json::print(&plan, &standbys, &backfills, citus, db, out)?;
    } else {
        print_plan(&plan, &backfills, out)?;
        print_standbys(&standbys, out)?;
        #[cfg(feature = "postgres")]
        if db.url.backend() == Backend::Postgres && !db.url.is_missing_sqlite_file() {
            print_citus(db, out)?;
        }
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

/// `backfills`: how far each unfinished backfill got, by version.
fn print_plan(
    plan: &MigrationPlan,
    backfills: &BTreeMap<String, SavedProgress>,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
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
        let backfill = backfills.get(&entry.version).map(|p| {
            let rate = p
                .rows_per_second
                .map(|r| format!(", {r:.0} rows/s"))
                .unwrap_or_default();
            format!(
                "backfill {}{rate}",
                super::progress::format_rows(p.rows_done, p.rows_estimated)
            )
        });
        let extra = match (entry.state, backfill) {
            (MigrationState::Interrupted, Some(b)) => {
                format!("  ({b}; cut off, the next migrate resumes it there)")
            }
            (MigrationState::Running, Some(b)) => format!("  ({b}; in progress right now)"),
            _ => state_note(entry),
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

/// What an entry's state adds to its line.
fn state_note(entry: &PlanEntry) -> String {
    match entry.state {
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
    }
}

/// How Citus holds the tables, on a Citus coordinator (nothing
/// elsewhere), and the steps `taskdb distribute` recorded.
#[cfg(feature = "postgres")]
fn print_citus(db: &Database, out: &mut Output<'_>) -> anyhow::Result<()> {
    let mut conn = crate::db::connect_postgres(&db.url)?;
    let Some(d) = crate::distribute::distribution(&mut conn)? else {
        return Ok(());
    };
    writeln!(
        out,
        "Citus {}: users {}, tasks {}",
        d.citus_version, d.users, d.tasks
    )?;
    match d.recorded.last() {
        Some((_, at)) => writeln!(
            out,
            "  taskdb distribute: {} step(s) recorded, the last at {at} UTC",
            d.recorded.len()
        )?,
        None => writeln!(
            out,
            "  not distributed by taskdb yet: `taskdb distribute --dry-run` shows the plan"
        )?,
    }
    Ok(())
}

/// The streaming standbys (PostgreSQL), each with how far behind it is:
/// every migration step is replayed there.
fn print_standbys(standbys: &[Standby], out: &mut Output<'_>) -> anyhow::Result<()> {
    if standbys.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "Standbys: {}", standbys.len())?;
    let width = standbys.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in standbys {
        writeln!(
            out,
            "  {:<width$}  {:<9}  {}",
            s.name,
            s.state,
            s.describe_lag()
        )?;
    }
    Ok(())
}

/// `status --format json`. The fields are a stable interface for deploy
/// scripts and CI; see `Opts::format` for their meaning.
mod json {
    use std::io::Write;

    use std::collections::BTreeMap;

    use crate::cli::output::Output;
    use crate::cli::Database;
    use crate::migrate::backfill::SavedProgress;
    use crate::migrate::{MigrationPlan, PlanEntry};

    #[derive(serde::Serialize)]
    struct Status<'a> {
        database: &'a str,
        backend: crate::Backend,
        total: usize,
        applied: usize,
        pending: usize,
        migrations: Vec<Migration<'a>>,
        standbys: Vec<Standby<'a>>,
        /// Only on a database with the Citus extension.
        #[serde(skip_serializing_if = "Option::is_none")]
        citus: Option<serde_json::Value>,
    }

    #[derive(serde::Serialize)]
    struct Standby<'a> {
        name: &'a str,
        state: &'a str,
        lag_visible: bool,
        replay_lag_ms: Option<u128>,
        bytes_behind: Option<u64>,
    }

    #[derive(serde::Serialize)]
    struct Migration<'a> {
        version: &'a str,
        name: &'a str,
        state: &'static str,
        applied_at: Option<String>,
        checksum: Option<&'static str>,
        execution_ms: Option<i64>,
        backfill: Option<Backfill>,
    }

    #[derive(serde::Serialize)]
    struct Backfill {
        rows_done: u64,
        rows_estimated: u64,
        rows_per_second: Option<f64>,
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
        standbys: &[crate::migrate::replicas::Standby],
        backfills: &BTreeMap<String, SavedProgress>,
        citus: Option<serde_json::Value>,
        db: &Database,
        out: &mut Output<'_>,
    ) -> anyhow::Result<()> {
        let status = Status {
            citus,
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
                    backfill: backfills.get(&e.version).map(|p| Backfill {
                        rows_done: p.rows_done,
                        rows_estimated: p.rows_estimated,
                        rows_per_second: p.rows_per_second.map(|r| r.round()),
                    }),
                })
                .collect(),
            standbys: standbys
                .iter()
                .map(|s| Standby {
                    name: &s.name,
                    state: &s.state,
                    lag_visible: s.lag_visible,
                    replay_lag_ms: s.replay_lag.map(|d| d.as_millis()),
                    bytes_behind: s.bytes_behind,
                })
                .collect(),
        };
        // Serialised first, so a closed pipe surfaces as an io error.
        let text = serde_json::to_string_pretty(&status)?;
        writeln!(out, "{text}")?;
        Ok(())
    }
}
