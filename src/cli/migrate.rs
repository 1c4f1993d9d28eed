//! `taskdb migrate`: show the plan, then apply it.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::{human_duration, Output};
use super::session::migrator;
use super::{Database, MigrateOpts};

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

With hot standbys streaming from the database, it waits before each step
(and after one without a transaction) until every standby is within
--max-replica-lag, and stops between steps (exit 1, nothing half-applied)
when one stays behind for --replica-wait; `taskdb status` lists them.

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
    pub migration: MigrateOpts,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    if opts.dry_run {
        return super::dry_run::migrate(opts.to.as_deref(), db, &opts.migration, out);
    }
    let mut migrator = migrator(db, &opts.migration);
    if let Some(to) = &opts.to {
        // An unknown version is an error before anything connects.
        db.migrations.resolve(db.url.backend(), to)?;
    }
    let plan = migrator.plan()?;
    plan.ensure_runnable()?;
    if let Some(warning) = plan.ahead_warning() {
        eprintln!("warning: {warning}");
    }
    let todo = plan.pending_up_to(opts.to.as_deref())?;
    let pending: Vec<&str> = todo.iter().map(|m| m.dir_name()).collect();
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
