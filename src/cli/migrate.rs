//! `taskdb migrate`: show the plan, then apply it.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Args;

use super::output::Output;
use super::{DatabaseChoice, GlobalOpts, MigrationOpts};
use crate::migrate::{Event, MigrateOptions, Migrator};

pub const LONG_ABOUT: &str = "\
Apply pending migrations, in order, safely when other processes migrate at once.

Shows the plan first, then each migration with its time. With nothing
pending it costs one query: no lock, no DDL. Several migrators at once (app
replicas starting together) take turns; each migration is applied once.

It refuses to start while a migration is modified (its up.sql changed since
it was applied), missing from this build, or dirty (failed part-way without
a transaction); `taskdb repair` is the way out. Migrations newer than this
build (a later release applied them, then the app was rolled back) are
`ahead`: it warns and goes on. An existing `tasks` table that is not the
app's is refused before anything changes. It stops before the foreign
key check when tasks belong to no user; `taskdb orphans` fixes them.

Every DDL statement waits at most --lock-timeout for its table lock and is
retried, so the app's queries never queue behind it for longer. Ctrl-C or
SIGTERM rolls back the migration in progress (exit 130/143); the next run
finishes the job, also after kill -9.

Exit codes: 0 done (or nothing to do), 1 failed or refused, 2 usage.";

#[derive(Debug, Args)]
pub struct Opts {
    /// Stop after this migration: its version (20260208000003), directory
    /// prefix (2026-02-08-000003) or full directory name
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,

    /// Print the SQL each pending migration would run, in order, marked
    /// `(in a transaction)` or `(no transaction)`, and change nothing
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub migration: MigrationOpts,
}

pub fn run(
    opts: &Opts,
    db: &DatabaseChoice,
    global: &GlobalOpts,
    out: &mut Output<'_>,
) -> anyhow::Result<ExitCode> {
    if opts.dry_run {
        return super::dry_run::migrate(opts.to.as_deref(), db, global, &opts.migration, out);
    }
    let mut migrator = migrator(db, global, &opts.migration);
    if let Some(to) = &opts.to {
        // An unknown version is an error before anything connects.
        crate::migrate::resolve(db.url.backend(), to)?;
    }
    let plan = migrator.plan()?;
    plan.ensure_runnable()?;
    if let Some(warning) = plan.ahead_warning() {
        eprintln!("warning: {warning}");
    }
    let pending: Vec<&str> = plan
        .pending_up_to(opts.to.as_deref())?
        .iter()
        .map(|m| m.dir_name())
        .collect();
    if pending.is_empty() {
        let applied = plan.applied().count();
        writeln!(
            out,
            "Nothing to do: {applied} migrations applied, none pending{}.",
            if opts.to.is_some() {
                " up to the requested version"
            } else {
                ""
            }
        )?;
        if !plan.is_up_to_date() && opts.to.is_none() {
            // Still record what the diesel CLI applied (ledger rows).
            migrator.migrate_planned(&plan, None)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "Found {} pending migration(s):", pending.len())?;
    for name in &pending {
        writeln!(out, "  {name}")?;
    }
    out.flush()?;
    let started = std::time::Instant::now();
    let steps = migrator.migrate_planned(&plan, opts.to.as_deref())?;
    writeln!(
        out,
        "Applied {} migration(s) in {}.{}",
        steps.len(),
        human_duration(started.elapsed()),
        if steps.len() < pending.len() {
            format!(
                " {} were applied meanwhile by another migrator.",
                pending.len() - steps.len()
            )
        } else {
            String::new()
        }
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A migrator for `db` that prints progress to stdout.
pub(super) fn migrator<'a>(
    db: &DatabaseChoice,
    global: &GlobalOpts,
    opts: &MigrationOpts,
) -> Migrator<'a> {
    let options = MigrateOptions {
        lock_timeout: opts.lock_timeout,
        lock_retries: opts.lock_retries,
        wait: global.wait,
        ..MigrateOptions::default()
    };
    let mut progress = super::progress::MigrationProgress::new(db.url.clone());
    Migrator::new(db.url.clone())
        .with_options(options)
        .on_event(move |event| {
            progress.clear();
            print_event(event);
            progress.observe(&event);
        })
}

/// Prints one progress event (progress is best effort: a closed stdout does
/// not stop a migration half-way).
pub(super) fn print_event(event: Event<'_>) {
    let mut out = io::stdout();
    let _ = match event {
        Event::LockWaiting => writeln!(out, "Waiting for another migrator to finish…"),
        Event::Backfilled { migration } => writeln!(
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
    };
    let _ = out.flush();
}

/// `12 ms`, `1.4 s`, `2 min 3 s`.
pub(super) fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
