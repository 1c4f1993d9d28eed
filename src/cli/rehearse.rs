//! `taskdb rehearse`: the pending migrations on a production-sized copy
//! under the app's own queries, with a verdict per step (exit 1 when any
//! step is not safe).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::Output;
use super::{Database, DurationArg, OutputFormat, Usage};
use crate::rehearse::{self, Progress, Report, Sizes};

pub(super) const LONG_ABOUT: &str = r#"Runs the migrations pending in the database (or, with --from, every
migration after a version) against a production-sized copy while clients
run the app's own queries, and reports what each step really did. Nothing
in the database named by -D changes.

The copy is a scratch database `taskdb_rehearse_<random>` on the same
server (the role needs CREATEDB), migrated by taskdb's runner to the
schema before the rehearsed migrations, filled by the demo seeder to
--rows (or to the sizes and shape --like's database's catalog gives),
tasks per user skewed as real owners are (80/20 unless skew= says), and
analysed; the filled copy is kept as a template
(taskdb_rehearse_tpl_<hash>, the three most recently used) that the next
rehearsal at the same schema and sizes clones. --clients threads log in
by email, read a page of tasks, create a task, complete one and count,
through taskdb's models, every 10 ms each. The migrations run exactly as `taskdb migrate` runs
them (--lock-timeout, --lock-retries, CONCURRENTLY outside a transaction),
without the replica gate and without the pre-flight's refusal. A side
connection samples pg_locks and pg_stat_activity every 10 ms; catalog
snapshots before and after each step count rows and catch rewrites.

Verdicts per step: safe, or any of
  blocks          a client waited on a lock longer than --stall-limit
  rewrites        a table with rows got a new file (a rewrite)
  breaks-clients  the app's queries failed in a new way (a renamed or
                  dropped column, a type the app cannot read)
  loses-data      rows, or values of a dropped column, are gone
  fails           the step itself failed (later steps are not run)
shown next to `taskdb lint`'s verdict on the step, marked `≠` where they
disagree. Locks held for less than the sampling interval may not show.

The copy and the clients are gone when it ends, Ctrl-C (exit 130) and
errors included. Exit codes: 0 every step safe, 1 some step not safe (or
an error), 2 usage, including a SQLite database (rehearse applies to
PostgreSQL).

JSON output (--format json), one object:
  steps     [{migration, verdict: [..], lint: "safe"|"unsafe", lint_rules,
            disagrees, duration_ms, max_client_wait_ms,
            locks: [{relation, mode, held_ms}], lock_spans: [{relation,
            mode, from_ms, to_ms}], client_waits: [{relation,
            mode, blocked_by, waited_ms}], rewrites: [table], client_errors,
            client_error, rows_lost, lost, wal_bytes, p50_ms, p99_ms,
            max_ms, baseline_p99_ms, error, started_ms, ended_ms}]
  exceeded  true when some step is not safe (exit 1)
  sizes     {tasks, users, owners, skew, completed} asked for
  copy      the same, as the filled copy's own catalog gives it
  not_rehearsed, clients, stall_limit_ms, reused_copy,
  baseline_requests, baseline_p99_ms"#;

#[derive(Debug, Args)]
pub struct Opts {
    /// Rehearse every migration after this version (version, directory
    /// prefix or name) instead of the ones pending in the database
    #[arg(long, value_name = "VERSION")]
    pub from: Option<String>,

    /// Size of the copy, e.g. tasks=1000000,users=10000 (default
    /// tasks=100000,users=1000); tasks per user are skewed 80/20 unless
    /// skew=ALPHA (1.05 to 3, smaller is more skewed) or skew=even
    #[arg(long, value_name = "tasks=N,users=M[,skew=ALPHA|even]", value_parser = Sizes::parse, conflicts_with = "like")]
    pub rows: Option<Sizes>,

    /// Size and shape the copy like the live database at URL, from its
    /// catalog: table sizes (pg_class.reltuples), how many users own
    /// tasks and how skewed, and the completed share (pg_stats); none of
    /// its rows is read
    #[arg(long, value_name = "URL")]
    pub like: Option<String>,

    /// How many client threads run the app's queries
    #[arg(long, value_name = "N", default_value_t = rehearse::DEFAULT_CLIENTS)]
    pub clients: u32,

    /// A client waiting on a lock longer than this makes a step `blocks`
    #[arg(long, value_name = "DURATION", default_value_t = DurationArg(rehearse::DEFAULT_STALL_LIMIT))]
    pub stall_limit: DurationArg,

    /// Output format: `text` (a table) or `json` (see above)
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Also draw the rehearsal as an SVG picture in FILE
    #[arg(long, value_name = "FILE.svg")]
    pub report: Option<std::path::PathBuf>,

    /// How long one DDL statement may wait for a table lock before it is
    /// retried, as `taskdb migrate` does
    #[arg(long, value_name = "DURATION", env = "TASKDB_LOCK_TIMEOUT", default_value_t = DurationArg(crate::migrate::DEFAULT_LOCK_TIMEOUT))]
    pub lock_timeout: DurationArg,

    /// How many times a step that hit the lock timeout is retried
    #[arg(long, value_name = "N", default_value_t = crate::migrate::DEFAULT_LOCK_RETRIES)]
    pub lock_retries: u32,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    if db.url.backend() != crate::Backend::Postgres {
        return Err(Usage {
            message: "rehearse applies to PostgreSQL; this database is SQLite".into(),
            help: "taskdb rehearse --help",
        }
        .into());
    }
    if opts.clients == 0 {
        return Err(Usage {
            message: "--clients must be at least 1".into(),
            help: "taskdb rehearse --help",
        }
        .into());
    }
    let sizes = match (&opts.rows, &opts.like) {
        (Some(rows), _) => *rows,
        (None, Some(like)) => {
            let url = crate::db::DatabaseUrl::parse(like)?;
            Sizes::like(&url).map_err(|e| anyhow::anyhow!(url.scrub(&e.to_string())))?
        }
        (None, None) => Sizes::default(),
    };
    let options = rehearse::RehearseOptions {
        source: db.migrations.clone(),
        from: opts.from.clone(),
        sizes,
        clients: opts.clients,
        stall_limit: opts.stall_limit.0,
        migrate: crate::migrate::MigrateOptions {
            lock_timeout: opts.lock_timeout.0,
            lock_retries: opts.lock_retries,
            wait: db.wait,
            ..crate::migrate::MigrateOptions::default()
        },
        ..rehearse::RehearseOptions::default()
    };
    // Progress goes to stderr, also with --format json (stdout carries the
    // JSON only).
    let report = rehearse::rehearse(&db.url, &options, &mut |p| {
        let line = match p {
            Progress::Building {
                database,
                reused: None,
            } => format!("building the copy in {database}"),
            Progress::Building {
                database,
                reused: Some(template),
            } => format!("cloning the filled copy {template} into {database}"),
            Progress::Filling { sizes } => format!("filling it: {sizes}"),
            Progress::Baseline => "clients running; measuring the baseline".to_string(),
            Progress::Step { migration } => format!("rehearsing {migration}"),
        };
        eprintln!("{line}");
    })?;
    if let Some(path) = &opts.report {
        std::fs::write(path, rehearse::svg::render(&report))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    match opts.format {
        OutputFormat::Json => {
            let text = serde_json::to_string_pretty(&report)?;
            writeln!(out, "{text}")?;
        }
        OutputFormat::Text => print_table(&report, out)?,
    }
    Ok(if report.exceeded {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_table(report: &Report, out: &mut Output<'_>) -> anyhow::Result<()> {
    if report.steps.is_empty() {
        writeln!(out, "Nothing to rehearse: no migration is pending.")?;
        return Ok(());
    }
    writeln!(
        out,
        "Rehearsed on a copy with {} and {} client(s); baseline p99 {} over {} requests.",
        report.sizes,
        report.clients,
        rehearse::format_ms(report.baseline_p99_ms),
        report.baseline_requests
    )?;
    let width = report
        .steps
        .iter()
        .map(|s| s.migration.len())
        .chain(report.not_rehearsed.iter().map(String::len))
        .max()
        .unwrap_or(0)
        .max("migration".len());
    writeln!(
        out,
        "{:<width$} {:<24} {:<8} {:>9} {:>9} {:>9}",
        "migration", "verdict", "lint", "duration", "max wait", "p99"
    )?;
    for step in &report.steps {
        let verdicts: Vec<&str> = step.verdict.iter().map(|v| v.name()).collect();
        writeln!(
            out,
            "{:<width$} {:<24} {:<8} {:>9} {:>9} {:>9}{}",
            step.migration,
            verdicts.join(","),
            step.lint,
            rehearse::format_ms(step.duration_ms),
            rehearse::format_ms(step.max_client_wait_ms),
            rehearse::format_ms(step.p99_ms),
            if step.disagrees { "  ≠" } else { "" }
        )?;
        if !step.is_safe() {
            for line in step.evidence() {
                writeln!(out, "    {line}")?;
            }
        }
        if let Some(line) = step.disagreement() {
            writeln!(out, "    ≠ {line}")?;
        }
        for lock in &step.locks {
            writeln!(
                out,
                "    held {} on {} for {}",
                lock.mode,
                lock.relation,
                rehearse::format_ms(lock.held_ms)
            )?;
        }
    }
    for name in &report.not_rehearsed {
        writeln!(out, "{name:<width$} not rehearsed (an earlier step failed)")?;
    }
    let unsafe_steps = report.steps.iter().filter(|s| !s.is_safe()).count();
    if unsafe_steps == 0 {
        writeln!(out, "✓ Every step is safe at this size.")?;
    } else {
        writeln!(out, "✗ {unsafe_steps} step(s) not safe.")?;
    }
    Ok(())
}
