//! `migrate --dry-run` and `rollback --dry-run`: the SQL each step would
//! run, in order, each marked `(in a transaction)` or `(no transaction)`.
//! Only reads: the plan comes from the tracking tables as they are (missing
//! ones read as empty and are not created), no lock is taken, nothing is
//! written. Every line that is not a migration's own SQL starts with `--`.
//! With streaming standbys attached (PostgreSQL), each statement that takes
//! `ACCESS EXCLUSIVE` gets a note: the lock is replayed on every standby.

use std::io::Write;
use std::process::ExitCode;

use super::output::Output;
use super::session::migrator;
use super::{Database, MigrateOpts};
use crate::migrate::{replicas, LocalMigration, RollbackTarget};

fn header(
    out: &mut Output<'_>,
    step: usize,
    m: &LocalMigration,
    file: &str,
) -> std::io::Result<()> {
    writeln!(
        out,
        "-- [{step}] {}/{file}  ({})",
        m.dir_name(),
        if m.run_in_transaction() {
            "in a transaction"
        } else {
            "no transaction"
        }
    )
}

/// Prints what `taskdb migrate [--to VERSION]` would apply.
pub fn migrate(
    to: Option<&str>,
    db: &Database,
    opts: &MigrateOpts,
    out: &mut Output<'_>,
) -> anyhow::Result<ExitCode> {
    // An unknown version is an error before anything connects.
    if let Some(to) = to {
        db.migrations.resolve(db.url.backend(), to)?;
    }
    let mut migrator = migrator(db, opts);
    let plan = migrator.plan()?;
    if let Err(crate::Error::MigrationsBlocked(blocked)) = plan.ensure_runnable() {
        let reasons: Vec<String> = blocked.iter().map(ToString::to_string).collect();
        anyhow::bail!("migrate would refuse: {}", reasons.join("; "));
    }
    let todo = plan.pending_up_to(to)?;
    if !todo.is_empty() && !db.url.is_missing_sqlite_file() {
        crate::migrate::existing_tables::check_existing_tables(migrator.connection()?, &todo)?;
        for line in crate::lint::dry_run_lines(
            &db.migrations,
            &todo,
            opts.unsafe_threshold,
            migrator.connection()?,
        )? {
            writeln!(out, "-- {line}")?;
        }
    }
    writeln!(
        out,
        "-- Dry run: migrate would apply {} migration(s), in this order. Nothing was changed.",
        todo.len()
    )?;
    if !todo.is_empty() && !plan.ledger_exists {
        writeln!(
            out,
            "-- It would first create the tracking tables __diesel_schema_migrations and __taskdb_ledger."
        )?;
    }
    let unrecorded = plan.entries.iter().filter(|e| e.needs_ledger_row()).count();
    if unrecorded > 0 {
        writeln!(
            out,
            "-- It would record {unrecorded} version(s) applied by another tool in taskdb's ledger."
        )?;
    }
    // Every step is replayed on the streaming standbys, its locks too.
    let standbys = if todo.is_empty() || db.url.is_missing_sqlite_file() {
        0
    } else {
        replicas::standbys(migrator.connection()?)?.len()
    };
    for (i, m) in todo.iter().enumerate() {
        writeln!(out)?;
        header(out, i + 1, m, "up.sql")?;
        if standbys > 0 {
            for statement in replicas::access_exclusive_statements(m.up_sql()) {
                writeln!(
                    out,
                    "-- ACCESS EXCLUSIVE: `{statement}` is {}",
                    replicas::standby_lock_note(standbys)
                )?;
            }
        }
        writeln!(out, "{}", m.up_sql().trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints what `taskdb rollback` would revert for `target`.
pub fn rollback(
    target: &RollbackTarget,
    db: &Database,
    opts: &MigrateOpts,
    out: &mut Output<'_>,
) -> anyhow::Result<ExitCode> {
    let mut migrator = migrator(db, opts);
    let reverting = migrator.rollback_targets(target)?;
    writeln!(
        out,
        "-- Dry run: rollback would revert {} migration(s), newest first. Nothing was changed.",
        reverting.len()
    )?;
    for loss in migrator.data_loss(&reverting)? {
        writeln!(
            out,
            "-- It would drop {} (by {}).",
            loss.describe(),
            loss.migration
        )?;
    }
    for (i, m) in reverting.iter().enumerate() {
        writeln!(out)?;
        header(out, i + 1, m, "down.sql")?;
        match m.down_sql() {
            Some(sql) => writeln!(out, "{}", sql.trim_end())?,
            None => writeln!(
                out,
                "-- no down.sql: rollback would stop here with an error"
            )?,
        }
    }
    Ok(ExitCode::SUCCESS)
}
