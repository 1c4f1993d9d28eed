//! `taskdb distribute`: the schema onto a Citus cluster (users a reference
//! table, tasks distributed by user_id), run on the coordinator; `--dry-run`
//! shows the plan and changes nothing. See `crate::distribute`.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::{human_duration, Output};
use super::{Database, DurationArg};
use crate::db::{self, Backend};
use crate::distribute::{self, Event, Options, Plan};

/// `distribute --help`.
pub(super) const LONG_ABOUT: &str = "Turns taskdb's schema into a distributed one on a Citus \
coordinator, online, and records each step in __taskdb_distribution (shown by `status`):

  1. a unique index on tasks (user_id, id), built CONCURRENTLY;
  2. tasks's primary key swapped to it, under the lock timeout (id stays unique: only the \
tasks_id_seq sequence gives ids);
  3. users and tasks added to Citus's metadata as local tables, under the lock timeout, \
locking tasks before users as the app's inserts do;
  4. users made a reference table (a copy on every node and on the coordinator, where logins \
read it; keeps the unique email and the updated_at trigger), locking likewise;
  5. tasks distributed by user_id with create_distributed_table_concurrently (writes go on, \
but wait at the very end while the shards switch over: --shard-count sets how many; the \
cascading foreign key to users stays).

Citus refuses tables with triggers unless citus.enable_unsafe_triggers is on: a trigger then \
runs on the worker against the shard, which is safe for taskdb's updated_at trigger (it only \
sets its own row's column). distribute sets it for its session and on the database (ALTER \
DATABASE … SET), for later migrations that create such a trigger.

Idempotent: each step is planned from the live catalog, so a second run has nothing to do. \
Run `taskdb migrate` first. Needs the Citus extension in the database and the coordinator in \
Citus's metadata (citus_set_coordinator_host); elsewhere it refuses and changes nothing. The app's queries and schema.rs stay as they are: each names user_id, \
so Citus routes it to one shard.";

#[derive(Debug, Args)]
pub struct Opts {
    /// Show the plan (each step and its SQL) and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// How long a catalog change (the primary key swap, the local and
    /// reference tables) may wait for its lock before it is rolled back and retried
    #[arg(long, value_name = "DURATION", env = "TASKDB_LOCK_TIMEOUT", default_value_t = DurationArg(crate::migrate::DEFAULT_LOCK_TIMEOUT))]
    pub lock_timeout: DurationArg,

    /// How many times a step that hit the lock timeout is retried
    #[arg(long, value_name = "N", default_value_t = crate::migrate::DEFAULT_LOCK_RETRIES)]
    pub lock_retries: u32,

    /// How many shards tasks gets (default: Citus's citus.shard_count,
    /// 32 unless set). Fewer make the end of the concurrent distribution,
    /// when writes to tasks wait while every shard switches over, shorter;
    /// more let more workers share tasks before a shard must be split
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64000))]
    pub shard_count: Option<u32>,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    if db.url.backend() != Backend::Postgres {
        anyhow::bail!(
            "`taskdb distribute` needs PostgreSQL with the Citus extension; {} is {}",
            db.url.redacted(),
            db.url.backend()
        );
    }
    let mut conn = db::connect_postgres(&db.url)?;
    let plan = distribute::plan_with(&mut conn, opts.shard_count)?;
    if plan.is_done() {
        writeln!(
            out,
            "Nothing to do: users is a reference table and tasks is distributed by user_id (Citus {}).",
            plan.citus_version
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if opts.dry_run {
        show(&plan, out)?;
        writeln!(out, "Dry run: nothing changed.")?;
        return Ok(ExitCode::SUCCESS);
    }
    show(&plan, out)?;
    let options = Options {
        lock_timeout: opts.lock_timeout.0,
        lock_retries: opts.lock_retries,
        shard_count: opts.shard_count,
    };
    let after = distribute::apply(&mut conn, options, |event| {
        let mut stdout = std::io::stdout();
        let _ = match event {
            Event::Starting(step) => writeln!(stdout, "→ {}", step.describe()),
            Event::Done(step, elapsed) => {
                writeln!(stdout, "✓ {}  {}", step.as_str(), human_duration(elapsed))
            }
            Event::LockTimeout {
                step,
                attempt,
                retry_in,
            } => writeln!(
                stdout,
                "  {} waited too long for its lock (attempt {attempt}); rolled back, retrying in {}",
                step.as_str(),
                human_duration(retry_in)
            ),
        };
    })?;
    if !after.is_done() {
        anyhow::bail!("distribute ran every step but the catalog does not show them all done");
    }
    writeln!(
        out,
        "Distributed: users is a reference table, tasks is distributed by user_id across {} worker(s).",
        after.workers.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn show(plan: &Plan, out: &mut Output<'_>) -> anyhow::Result<()> {
    writeln!(
        out,
        "Citus {} with {} worker(s): {}; coordinator {} (holds a copy of the reference table)",
        plan.citus_version,
        plan.workers.len(),
        plan.workers.join(", "),
        plan.coordinator
    )?;
    writeln!(out, "Plan:")?;
    for (i, step) in plan.steps.iter().enumerate() {
        if step.done {
            writeln!(out, "  {}. {} (done)", i + 1, step.kind.describe())?;
            continue;
        }
        writeln!(out, "  {}. {}", i + 1, step.kind.describe())?;
        for sql in &step.sql {
            writeln!(out, "       {sql};")?;
        }
    }
    Ok(())
}
