//! `taskdb rollback`: revert applied migrations, newest first, after showing
//! what would be reverted and what data that would destroy.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::human_duration;
use super::output::Output;
use super::session::{confirm_data_loss, migrator};
use super::{Database, MigrateOpts};
use crate::migrate::RollbackTarget;

#[derive(Debug, Args)]
#[group(id = "which", multiple = false)]
pub struct Opts {
    /// Revert the newest N applied migrations [default: 1]
    #[arg(long, value_name = "N", group = "which", value_parser = clap::value_parser!(u32).range(1..))]
    pub steps: Option<u32>,

    /// Revert every migration applied after VERSION (VERSION stays applied)
    #[arg(long, value_name = "VERSION", group = "which")]
    pub to: Option<String>,

    /// Revert every applied migration
    #[arg(long, group = "which")]
    pub all: bool,

    /// Go ahead even when tables holding rows would be dropped
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Print the SQL (down.sql) each step would run, newest first, marked
    /// `(in a transaction)` or `(no transaction)`, and change nothing
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub migration: MigrateOpts,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    let target = if opts.all {
        RollbackTarget::All
    } else if let Some(to) = &opts.to {
        RollbackTarget::To(to.clone())
    } else {
        RollbackTarget::Steps(opts.steps.unwrap_or(1) as usize)
    };
    if opts.dry_run {
        return super::dry_run::rollback(&target, db, &opts.migration, out);
    }
    let mut migrator = migrator(db, &opts.migration);
    let reverting = migrator.rollback_targets(&target)?;
    if reverting.is_empty() {
        if matches!(target, RollbackTarget::To(_)) {
            writeln!(
                out,
                "Nothing to roll back: no migration is applied after that version."
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        anyhow::bail!("nothing to roll back: no migration is applied");
    }
    writeln!(
        out,
        "Will revert {} migration(s), newest first:",
        reverting.len()
    )?;
    for m in &reverting {
        writeln!(out, "  {}", m.dir_name())?;
    }
    confirm_data_loss(&mut migrator, &reverting, opts.yes, out)?;
    out.flush()?;
    let started = std::time::Instant::now();
    let steps = migrator.rollback(&reverting)?;
    writeln!(
        out,
        "Reverted {} migration(s) in {}.",
        steps.len(),
        human_duration(started.elapsed())
    )?;
    Ok(ExitCode::SUCCESS)
}
