//! `taskdb status`: every migration, its state and when it was applied.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::Output;
use super::{DatabaseChoice, GlobalOpts};
use crate::db;
use crate::migrate::{MigrationPlan, MigrationState};

#[derive(Debug, Args)]
pub struct Opts {
    /// Exit with status 1 when anything is pending, modified, missing or
    /// dirty (for CI and deploy gates)
    #[arg(long)]
    pub check: bool,
}

pub fn run(
    opts: &Opts,
    db: &DatabaseChoice,
    global: &GlobalOpts,
    out: &mut Output<'_>,
) -> anyhow::Result<ExitCode> {
    let mut conn = db::connect_with_wait(&db.url, global.wait)?;
    let plan = MigrationPlan::load(&mut conn)?;
    print_plan(&plan, out)?;
    let clean = plan
        .entries
        .iter()
        .all(|e| e.state == MigrationState::Applied);
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
    ] {
        let n = plan.count(state);
        if n > 0 {
            writeln!(out, "{}: {n}", capitalised(state.as_str()))?;
        }
    }
    writeln!(out)?;
    let width = plan.entries.iter().map(|e| e.name.len()).max().unwrap_or(0);
    for entry in &plan.entries {
        let mark = match entry.state {
            MigrationState::Applied => "✓",
            MigrationState::Pending => "·",
            MigrationState::Interrupted => "…",
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
            MigrationState::Interrupted => "  (cut off; the next migrate finishes it)".into(),
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

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
