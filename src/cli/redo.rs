//! `taskdb redo`: revert the newest migrations and apply them again (checks
//! that `down.sql` really undoes `up.sql`).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::human_duration;
use super::output::Output;
use super::session::confirm_data_loss;
use super::session::migrator;
use super::{Database, MigrateOpts};
use crate::migrate::RollbackTarget;

#[derive(Debug, Args)]
pub struct Opts {
    /// How many of the newest applied migrations to redo
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: u32,

    /// Go ahead even when tables holding rows would be dropped on the way
    #[arg(long, short = 'y')]
    pub yes: bool,

    #[command(flatten)]
    pub migration: MigrateOpts,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    let mut migrator = migrator(db, &opts.migration);
    let reverting = migrator.rollback_targets(&RollbackTarget::Steps(opts.steps as usize))?;
    if reverting.is_empty() {
        anyhow::bail!("nothing to redo: no migration is applied");
    }
    writeln!(
        out,
        "Will revert and re-apply {} migration(s):",
        reverting.len()
    )?;
    for m in &reverting {
        writeln!(out, "  {}", m.dir_name())?;
    }
    confirm_data_loss(&mut migrator, &reverting, opts.yes, out)?;
    out.flush()?;
    let started = std::time::Instant::now();
    let (reverted, applied) = migrator.redo(&reverting)?;
    writeln!(
        out,
        "Reverted {} and re-applied {} migration(s) in {}.",
        reverted.len(),
        applied.len(),
        human_duration(started.elapsed())
    )?;
    Ok(ExitCode::SUCCESS)
}
