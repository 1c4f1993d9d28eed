//! `taskdb adopt`: bring a database migrated by the old Python runner under
//! taskdb without touching a row.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::Output;
use super::Database;
use crate::adopt::{self, Adoption};

/// `adopt --help`.
pub(super) const LONG_ABOUT: &str = "\
For the app's existing PostgreSQL database, migrated by the old Python \
runner (schema_migrations lists 001_create_users_table and \
002_add_tasks_foreign_key). Checks that the schema really is what that \
runner left (refusing with the differences otherwise), records the \
taskdb migrations it already satisfies (applied_by \"taskdb adopt\"), and \
leaves the rest to `taskdb migrate`, which then drops the duplicate \
indexes, makes emails unique ignoring case, sets UTC defaults and adds \
the updated_at triggers, keeping every row. The runner's \
schema_migrations table is kept as history. On a database taskdb \
already manages it changes nothing and says so. PostgreSQL only: the \
Python runner never ran on SQLite.";

/// Takes no options besides the global ones.
#[derive(Debug, Args)]
pub struct Opts {}

pub fn run(_opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    match adopt::adopt(&db.url, db.wait)? {
        Adoption::AlreadyManaged { applied } => {
            writeln!(
                out,
                "Nothing to adopt: taskdb already manages this database ({applied} migrations applied). Run `taskdb migrate` for pending ones."
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Adoption::Refused {
            reason,
            differences,
        } => {
            writeln!(out, "Not adopted: {reason}")?;
            for d in &differences {
                writeln!(out, "  {d}")?;
            }
            out.flush()?;
            anyhow::bail!("refusing to adopt; nothing was changed")
        }
        Adoption::Adopted {
            recorded,
            pending,
            email_conflicts,
        } => {
            writeln!(
                out,
                "Adopted: recorded {} migration(s) the database already satisfies:",
                recorded.len()
            )?;
            for (name, why) in &recorded {
                writeln!(out, "  ✓ {name}  ({why})")?;
            }
            writeln!(
                out,
                "Left for `taskdb migrate` ({} migration(s)):",
                pending.len()
            )?;
            for name in &pending {
                writeln!(out, "  · {name}")?;
            }
            if !email_conflicts.is_empty() {
                writeln!(
                    out,
                    "Warning: these emails differ only in case; the case-insensitive unique index `taskdb migrate` builds fails until each group is down to one user:"
                )?;
                for group in &email_conflicts {
                    writeln!(out, "  {group}")?;
                }
            }
            writeln!(out, "Next: `taskdb migrate --dry-run` to review, then `taskdb migrate`, then `taskdb verify`.")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
