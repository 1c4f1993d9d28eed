//! A migration session as the command line runs one: a [`Migrator`] for
//! the chosen database that prints each event and a live progress line,
//! and the confirmation before a revert that drops data. Shared by
//! `migrate`, `rollback`, `redo`, `repair` and the dry runs.

use std::io::{self, Write};

use super::output::{self, human_duration, Output};
use super::progress;
use super::{Database, MigrateOpts};
use crate::migrate::{
    replicas, CheckpointPressure, Event, LocalMigration, Migrator, ThrottleReason,
};

/// How often a backfill's progress is printed when there is no live line.
const BACKFILL_LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A migrator for `db` that prints progress to stdout.
pub fn migrator<'a>(db: &Database, opts: &MigrateOpts) -> Migrator<'a> {
    let options = opts.options(db);
    let mut progress = progress::MigrationProgress::new(db.url.clone());
    let mut backfill_line: Option<std::time::Instant> = None;
    let mut throttle_line: Option<(std::time::Instant, std::mem::Discriminant<ThrottleReason>)> =
        None;
    Migrator::new(db.url.clone())
        .with_options(options)
        .with_source(db.migrations.clone())
        .on_event(move |event| {
            if let Event::BackfillProgress { .. } = event {
                // Shown live on the progress line at a terminal; printed at
                // most once a second otherwise.
                if !progress::enabled()
                    && backfill_line.is_none_or(|t| t.elapsed() >= BACKFILL_LINE_EVERY)
                {
                    backfill_line = Some(std::time::Instant::now());
                    print_event(event);
                }
                progress.observe(&event);
                return;
            }
            if let Event::BackfillThrottled { reason, .. } = event {
                // Likewise, and said at once when the reason changes.
                let kind = std::mem::discriminant(&reason);
                if !progress::enabled()
                    && (throttle_line
                        .is_none_or(|(t, k)| k != kind || t.elapsed() >= BACKFILL_LINE_EVERY))
                {
                    throttle_line = Some((std::time::Instant::now(), kind));
                    print_event(event);
                }
                progress.observe(&event);
                return;
            }
            if let Event::BackfillForcesCheckpoints { .. } = event {
                // A warning, between two redraws of the step's live line.
                print_event(event);
                return;
            }
            // A standby wait keeps its one line, updated in place.
            if !progress::continues_wait(&event) {
                progress.clear();
            }
            print_event(event);
            progress.observe(&event);
        })
}

/// Prints one progress event (progress is best effort: a closed stdout does
/// not stop a migration half-way).
pub fn print_event(event: Event<'_>) {
    let mut out = io::stdout();
    let _ = match event {
        Event::LockWaiting => writeln!(out, "Waiting for another migrator to finish…"),
        Event::FoundApplied { migration } => writeln!(
            out,
            "Recorded {} (applied by another tool) in taskdb's ledger",
            migration.dir_name()
        ),
        Event::Applying { migration } => writeln!(
            out,
            "→ {}{}",
            migration.dir_name(),
            if migration.run_in_transaction() { "" } else { "  (no transaction)" }
        ),
        Event::Applied { migration, elapsed } => {
            writeln!(out, "✓ {}  {}", migration.dir_name(), human_duration(elapsed))
        }
        Event::AlreadyApplied { migration } => writeln!(
            out,
            "✓ {}  already applied by another migrator",
            migration.dir_name()
        ),
        Event::Reverting { migration } => writeln!(out, "← {}", migration.dir_name()),
        Event::Reverted { migration, elapsed } => {
            writeln!(out, "✓ reverted {}  {}", migration.dir_name(), human_duration(elapsed))
        }
        Event::LockTimeout { migration, attempt, retry_in } => writeln!(
            out,
            "  {} waited too long for a table lock (attempt {attempt}); rolled back, retrying in {}",
            migration.dir_name(),
            human_duration(retry_in)
        ),
        Event::RebuildingInvalidIndex { migration, index } => writeln!(
            out,
            "  {}: index {index} is INVALID (an earlier build failed or was killed); dropping it to build it again",
            migration.dir_name()
        ),
        Event::CheckingOrphans { .. } => Ok(()),
        Event::OrphansChecked { migration, elapsed } => writeln!(
            out,
            "  no orphaned tasks (checked before {} in {})",
            migration.name(),
            human_duration(elapsed)
        ),
        Event::WaitingForIndexBuild { index, pid } => writeln!(
            out,
            "  an earlier build of index {index} is still running on the server (pid {pid}); waiting for it"
        ),
        // Said once per wait; the progress line shows it live.
        Event::ReplicaLagging { .. } if progress::continues_wait(&event) => Ok(()),
        Event::ReplicaLagging { standby, replay_lag, bytes_behind, .. } => writeln!(
            out,
            "  waiting for standby {standby} to replay ({}) before the next step",
            progress::format_replica_lag(replay_lag, bytes_behind)
        ),
        Event::BackfillThrottled { migration, reason, sleep } => writeln!(
            out,
            "  {}: throttling: {}",
            migration.name(),
            progress::format_throttle(&reason, sleep)
        ),
        Event::BackfillResuming { migration, rows_done } => writeln!(
            out,
            "  {}: resuming the backfill after the {rows_done} rows an earlier run did",
            migration.dir_name()
        ),
        Event::BackfillProgress { migration, rows_done, rows_estimated, batch_size, next_batch_size, .. } => writeln!(
            out,
            "  {}: {}, batch of {batch_size} rows (next {next_batch_size})",
            migration.name(),
            progress::format_rows(rows_done, rows_estimated.max(rows_done))
        ),
        // On stderr, as a warning; over the live line at a terminal.
        Event::BackfillForcesCheckpoints { migration, pressure } => {
            eprintln!(
                "{}taskdb: {}",
                if progress::enabled() { "\r\x1b[2K" } else { "" },
                checkpoint_warning(migration, &pressure)
            );
            Ok(())
        }
        // On stderr: a finding that proceeds is a warning.
        Event::LintProceeding { line } => {
            eprintln!("taskdb: {line}");
            Ok(())
        }
        Event::ReplicasCaughtUp { waited } => writeln!(
            out,
            "  standbys caught up (waited {})",
            human_duration(waited)
        ),
    };
    let _ = out.flush();
}

/// `fill_tasks_priority: the server writes 61.2 MB/s of WAL …`: what a
/// backfill's WAL does to checkpoints, and the two ways to space them out.
fn checkpoint_warning(m: &LocalMigration, p: &CheckpointPressure) -> String {
    format!(
        "{}: the server writes {}/s of WAL during this backfill; with max_wal_size {} that forces a checkpoint about every {} (its checkpoint_warning is {}), and the app's commits stall behind each: `--max-wal-rate {}` or a larger max_wal_size spaces them out",
        m.name(),
        replicas::human_size(p.wal_rate),
        replicas::format_size(p.max_wal_size),
        human_duration(p.checkpoint_every),
        human_duration(p.warning),
        p.suggested_cap
    )
}

/// Shows the tables (and columns) that would be dropped with their rows,
/// then needs
/// `--yes`, or "yes" typed at a terminal. Without a terminal and without
/// `--yes` it refuses rather than asks.
pub fn confirm_data_loss(
    migrator: &mut Migrator<'_>,
    reverting: &[LocalMigration],
    yes: bool,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let losses = migrator.data_loss(reverting)?;
    if losses.is_empty() {
        return Ok(());
    }
    writeln!(out, "This drops tables or columns that hold data:")?;
    for loss in &losses {
        match &loss.column {
            None => writeln!(
                out,
                "  {}: {} row(s) (dropped by {})",
                loss.table, loss.rows, loss.migration
            )?,
            Some(c) => writeln!(
                out,
                "  {}.{c}: {} non-NULL value(s) (dropped by {})",
                loss.table, loss.rows, loss.migration
            )?,
        }
    }
    let summary = losses
        .iter()
        .map(|l| match &l.column {
            None => format!("{} ({} rows)", l.table, l.rows),
            Some(c) => format!("{}.{c} ({} values)", l.table, l.rows),
        })
        .collect::<Vec<_>>()
        .join(", ");
    output::confirm(&format!("drop {summary}"), yes, out)
}
