//! `taskdb orphans`: list the tasks whose user_id matches no user, and give
//! them to an existing user or delete them (the two ways to let the
//! foreign key be validated).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::Output;
use super::Database;
use crate::models::user;
use crate::orphans;

#[derive(Debug, Args)]
pub struct Opts {
    /// Give every orphaned task to this user (it must exist)
    #[arg(long, value_name = "USER_ID", conflicts_with = "delete")]
    pub assign_to: Option<String>,

    /// Delete every orphaned task
    #[arg(long)]
    pub delete: bool,

    /// Make the change without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    let mut conn = db.connect()?;
    let found = orphans::find(&mut conn)?;
    if found.is_empty() {
        writeln!(out, "No orphaned tasks: every task belongs to a user.")?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = found
        .owners
        .iter()
        .map(|o| o.user_id.len())
        .max()
        .unwrap_or(0)
        .max("user_id".len());
    writeln!(out, "Tasks whose user_id matches no user:")?;
    writeln!(out, "  {:<width$}  tasks", "user_id")?;
    for owner in &found.owners {
        writeln!(out, "  {:<width$}  {}", owner.user_id, owner.tasks)?;
    }
    writeln!(
        out,
        "Total: {} orphaned task(s) of {} unknown user_id(s).",
        found.total(),
        found.owners.len()
    )?;
    let change = if let Some(target) = &opts.assign_to {
        if user::find_by_id(&mut conn, target)?.is_none() {
            anyhow::bail!(
                "no user with id `{target}`: orphaned tasks can only be given to an existing user; nothing changed"
            );
        }
        format!("give these {} task(s) to user `{target}`", found.total())
    } else if opts.delete {
        format!("delete these {} task(s)", found.total())
    } else {
        writeln!(
            out,
            "Fix them with `taskdb orphans --assign-to USER_ID --yes` or `taskdb orphans --delete --yes`."
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    super::output::confirm(&change, opts.yes, out)?;
    match &opts.assign_to {
        Some(target) => {
            let fixed = orphans::assign_to(&mut conn, target)?;
            writeln!(
                out,
                "Gave {} orphaned task(s) of {} unknown user_id(s) to user `{target}`.",
                fixed.tasks, fixed.owners
            )?;
        }
        None => {
            let fixed = orphans::delete(&mut conn)?;
            writeln!(
                out,
                "Deleted {} orphaned task(s) of {} unknown user_id(s).",
                fixed.tasks, fixed.owners
            )?;
        }
    }
    writeln!(out, "No other row was changed.")?;
    Ok(ExitCode::SUCCESS)
}
