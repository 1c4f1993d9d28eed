//! `taskdb repair`: the way out when `migrate` refuses to run.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::Output;
use super::session::migrator;
use super::{Database, MigrateOpts};

/// Re-records the checksum of a migration edited on purpose, forgets one
/// removed from the code, and clears the dirty mark of one that failed
/// part-way (after you fixed the cause) so `migrate` runs it again.
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub migration: MigrateOpts,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    let mut migrator = migrator(db, &opts.migration);
    let repairs = migrator.repair()?;
    if repairs.is_empty() {
        writeln!(
            out,
            "Nothing to repair: no migration is modified, missing or dirty."
        )?;
    }
    for repair in repairs {
        writeln!(out, "{}: {}", repair.name, repair.action)?;
    }
    Ok(ExitCode::SUCCESS)
}
