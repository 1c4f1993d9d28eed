//! The `taskdb` command line: one module per subcommand, each with its own
//! `Opts` and `run`. This module parses, picks the database, runs the
//! command and turns errors into one `error: …` line and an exit code
//! (0 ok, 1 failure, 2 usage, 130 SIGINT, 143 SIGTERM).

mod adopt;
mod config;
#[cfg(feature = "postgres")]
mod distribute;
mod dry_run;
mod lint;
mod migrate;
mod new;
mod orphans;
mod output;
mod progress;
mod redo;
mod rehearse;
mod repair;
mod rollback;
mod seed;
mod session;
mod status;
mod verify;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub use config::{Database, DotEnvUrls, UrlSource, UrlVariable};

/// Schema, migrations and seed data for the task app's users and tasks.
///
/// The database is taken from --database-url, else the environment, else
/// ./.env, else the SQLite file ./taskdb.db. Migration commands prefer
/// DIRECT_DATABASE_URL to DATABASE_URL (a transaction pooler breaks the
/// session state migrations need), but anything exported in the
/// environment beats anything in .env. The first line says which URL is
/// used and which were ignored. Passwords in URLs are never printed.
#[derive(Debug, Parser)]
#[command(name = "taskdb", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// Database URL: postgres://user:pass@host:5432/db, sqlite://path,
    /// file:path or a path ending in .db/.sqlite/.sqlite3; beats
    /// DIRECT_DATABASE_URL, DATABASE_URL and .env
    // `env` only documents the variable in --help: the field may hold
    // $DATABASE_URL, and the URL a command uses is `Database`.
    #[arg(
        long,
        short = 'D',
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    /// Keep retrying the connection for this long while the server starts
    /// (e.g. 30s, 2m); without it an unreachable server fails at once
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,

    /// How long a SQLite command waits for another connection's write lock
    /// before it fails (e.g. 500ms, 30s, 2m)
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        env = "TASKDB_SQLITE_BUSY_TIMEOUT",
        default_value_t = DurationArg(crate::db::SQLITE_BUSY_TIMEOUT)
    )]
    pub sqlite_busy_timeout: DurationArg,

    /// Read migrations from DIR instead of the ones built into taskdb:
    /// a directory holding postgres/ and sqlite/ (like taskdb's
    /// migrations/), or one backend's migration directories. Lets a team
    /// try a new migration without rebuilding taskdb (migrate, status,
    /// rollback, redo, repair, verify)
    #[arg(long, global = true, value_name = "DIR", env = "TASKDB_MIGRATIONS_DIR")]
    pub migrations_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, in order, safely when other processes migrate at once
    #[command(long_about = migrate::LONG_ABOUT)]
    Migrate(migrate::Opts),
    /// List every migration with its state and when it was applied
    Status(status::Opts),
    /// Revert applied migrations, newest first (default: the last one)
    Rollback(rollback::Opts),
    /// Revert the newest migrations and apply them again
    Redo(redo::Opts),
    /// Create the development user (idempotent), or demo data (`seed demo`)
    Seed(seed::Opts),
    /// List tasks whose user_id matches no user; give them to a user or delete them
    Orphans(orphans::Opts),
    /// Accept an edited migration, forget a removed one, or clear a dirty mark
    Repair(repair::Opts),
    /// Compare the live schema with taskdb's migrations; report drift,
    /// invalid and redundant indexes (exit 1 on any difference)
    #[command(long_about = verify::LONG_ABOUT)]
    Verify(verify::Opts),
    /// Bring a PostgreSQL database migrated by the old Python runner under
    /// taskdb, recording the migrations it already satisfies
    #[command(long_about = adopt::LONG_ABOUT)]
    Adopt(adopt::Opts),
    /// Write the next migration for both backends, in its online-safe shape
    #[command(long_about = new::LONG_ABOUT)]
    New(new::Opts),
    /// Check migrations for statements that block a busy table or break the
    /// running app, with the safe way to write each
    #[command(long_about = lint::LONG_ABOUT)]
    Lint(lint::Opts),
    /// Run the pending migrations on a production-sized copy under the
    /// app's own queries; a verdict per step (exit 1 if any is not safe)
    #[command(long_about = rehearse::LONG_ABOUT)]
    Rehearse(rehearse::Opts),
    /// Shard the schema on a Citus coordinator: users a reference table,
    /// tasks distributed by user_id, online; --dry-run shows the plan
    #[cfg(feature = "postgres")]
    #[command(long_about = distribute::LONG_ABOUT)]
    Distribute(distribute::Opts),
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Lines for people.
    Text,
    /// One JSON document on stdout, nothing else (for scripts and CI).
    Json,
}

/// The command-line form of [`MigrateOptions`](crate::migrate::MigrateOptions):
/// settings of commands that change the schema.
#[derive(Debug, Clone, Args)]
pub struct MigrateOpts {
    /// How long one DDL statement may wait for a table lock before it is
    /// rolled back and retried, so the app's queries never queue behind it
    /// for longer (PostgreSQL)
    #[arg(long, value_name = "DURATION", env = "TASKDB_LOCK_TIMEOUT", default_value_t = DurationArg(crate::migrate::DEFAULT_LOCK_TIMEOUT))]
    pub lock_timeout: DurationArg,

    /// How many times a step that hit the lock timeout is retried
    #[arg(long, value_name = "N", default_value_t = crate::migrate::DEFAULT_LOCK_RETRIES)]
    pub lock_retries: u32,

    /// Refuse to start when `taskdb lint` finds an error (not allowed) in a
    /// pending PostgreSQL migration on a table of more than this many rows
    /// (pg_class.reltuples). The default, 10000, is about 25 ms of full scan
    /// here: past it a step can hold its lock longer than the lock timeout
    /// budget. 0 refuses on any table with rows
    #[arg(long, value_name = "ROWS", default_value_t = crate::lint::DEFAULT_UNSAFE_THRESHOLD)]
    pub unsafe_threshold: u64,

    /// Before each step (and after one without a transaction) wait until
    /// every streaming standby has replayed to within this: a replay lag
    /// (5s), WAL bytes behind (64MB), both (5s,64MB), or `off` (PostgreSQL)
    #[arg(long, value_name = "BOUND", env = "TASKDB_MAX_REPLICA_LAG", default_value_t = crate::migrate::replicas::LagBound::default(), value_parser = crate::migrate::replicas::LagBound::parse)]
    pub max_replica_lag: crate::migrate::replicas::LagBound,

    /// How long to wait for a standby past --max-replica-lag before
    /// stopping between steps (exit 1, nothing half-applied)
    #[arg(long, value_name = "DURATION", env = "TASKDB_REPLICA_WAIT", default_value_t = DurationArg(crate::migrate::replicas::DEFAULT_REPLICA_WAIT))]
    pub replica_wait: DurationArg,

    /// How long each batch of a backfill migration should take; the batch
    /// size (100 to 50000 rows) adapts towards it (PostgreSQL)
    #[arg(long, value_name = "DURATION", env = "TASKDB_BACKFILL_BATCH_TIME", default_value_t = DurationArg(crate::migrate::DEFAULT_BACKFILL_BATCH_TIME))]
    pub backfill_batch_time: DurationArg,

    /// Cap the WAL a backfill writes: it sleeps between batches to stay
    /// under it, e.g. 20MB/s (sizes in powers of 1024), or `off`; migrate
    /// suggests one when a backfill forces checkpoints more often than the
    /// server's checkpoint_warning (PostgreSQL)
    #[arg(long, value_name = "RATE", env = "TASKDB_MAX_WAL_RATE", default_value = "off", value_parser = WalRateArg::parse)]
    pub max_wal_rate: WalRateArg,
}

/// `--max-wal-rate`: a WAL rate, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRateArg(pub Option<crate::migrate::WalRate>);

impl WalRateArg {
    fn parse(s: &str) -> Result<WalRateArg, String> {
        crate::migrate::WalRate::parse(s).map(WalRateArg)
    }
}

impl MigrateOpts {
    /// The library's options for a run against `db`.
    pub fn options(&self, db: &Database) -> crate::migrate::MigrateOptions {
        crate::migrate::MigrateOptions {
            lock_timeout: self.lock_timeout.0,
            lock_retries: self.lock_retries,
            wait: db.wait,
            unsafe_threshold: self.unsafe_threshold,
            max_replica_lag: self.max_replica_lag,
            replica_wait: self.replica_wait.0,
            backfill_batch_time: self.backfill_batch_time.0,
            max_wal_rate: self.max_wal_rate.0,
            // Who ran it, for people reading the ledger.
            applied_by: format!(
                "taskdb {} ({})",
                env!("CARGO_PKG_VERSION"),
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            ),
        }
    }
}

/// A duration on the command line: parsed by [`parse_duration`], shown as
/// `50ms` / `30s` (so a default is written once, as a `Duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl std::str::FromStr for DurationArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(DurationArg)
    }
}

impl std::fmt::Display for DurationArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// Parses `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let s = input.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{input}` is not a duration (try 500ms, 30s, 2m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" | "sec" | "secs" => value,
        "m" | "min" | "mins" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{input}` (use ms, s, m or h)"
            ))
        }
    };
    if !seconds.is_finite() || !(0.0..=7.0 * 86400.0).contains(&seconds) {
        return Err(format!("`{input}` is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Entry point of the binary: runs the command, then reports its error, if
/// any, in the one place errors are printed.
pub fn main() -> ExitCode {
    let mut url_in_use = None;
    match run_process(&mut url_in_use) {
        Ok(code) => code,
        Err(e) => report(&e, url_in_use.as_ref()),
    }
}

/// A mistake in how taskdb was called: exit 2, with where help is.
#[derive(Debug, thiserror::Error)]
#[error("{message} (see {help})")]
pub struct Usage {
    pub message: String,
    /// e.g. `--help`, `taskdb lint --help`
    pub help: &'static str,
}

/// Parses the command line and runs the command. `url_in_use` is set to
/// the database URL once one is chosen, so that the error report can
/// scrub it from driver messages.
fn run_process(url_in_use: &mut Option<crate::db::DatabaseUrl>) -> anyhow::Result<ExitCode> {
    // A malformed .env is an error of its own; a missing one is fine.
    let dotenv = config::load_dotenv();
    let (cli, flag) = match parse(std::env::args_os()) {
        Ok(parsed) => parsed,
        // --help, --version
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            // clap echoes the offending argument, which may be a URL with
            // a password in it; and an error is one line, like every other.
            let text = crate::db::mask_url_passwords(&e.render().to_string());
            let first = text
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or("invalid arguments");
            return Err(Usage {
                message: first.to_string(),
                help: "--help",
            }
            .into());
        }
    };
    crate::db::set_sqlite_busy_timeout(cli.global.sqlite_busy_timeout.0);
    let stdout = io::stdout();
    let mut out = output::Output::new(stdout.lock());
    match &cli.command {
        // Reads migration files, and a database only when --database-url
        // names one: DATABASE_URL and .env have no say.
        Command::Lint(opts) => {
            let url = flag
                .as_deref()
                .map(crate::db::DatabaseUrl::parse)
                .transpose()?;
            url_in_use.clone_from(&url);
            return lint::run(opts, url.as_ref(), &mut out);
        }
        // Writes migration files and reads no database: a URL set
        // anywhere, valid or not, has no say.
        Command::New(opts) => return new::run(opts, &mut out),
        _ => {}
    }
    // Ctrl-C / SIGTERM during a migration roll back the step in progress
    // (see taskdb::interrupt); elsewhere they end the process as usual.
    let _ = crate::interrupt::install(true);
    let dotenv = dotenv.map_err(anyhow::Error::msg)?;
    let db = Database::resolve(flag.as_deref(), &dotenv, cli.command.prefers_direct_url())?
        .with_wait(cli.global.wait)
        .with_migrations_dir(cli.global.migrations_dir.as_deref());
    *url_in_use = Some(db.url.clone());
    // A closed stdout never ends a command early: `Output` drops what
    // nobody reads, so the exit code is the work's result.
    run_with_database(&cli, &db, &mut out)
}

/// Prints `e` as one `error: …` line and picks the exit code: 2 for a
/// usage error, 130 / 143 when SIGINT / SIGTERM cut the command short, 1
/// otherwise. Nothing it prints holds a password.
fn report(e: &anyhow::Error, url: Option<&crate::db::DatabaseUrl>) -> ExitCode {
    // What the command printed comes first.
    let _ = io::stdout().flush();
    if let Some(usage) = e.downcast_ref::<Usage>() {
        eprintln!("error: {usage}");
        return ExitCode::from(2);
    }
    if let Some(signal) = crate::interrupt::received() {
        crate::interrupt::stop_cancelling();
        // Whatever handled the interruption says what it left behind;
        // otherwise it was a migration step, rolled back.
        let left_behind = match e.downcast_ref::<crate::Error>() {
            Some(crate::Error::Interrupted { left_behind }) => left_behind.clone(),
            _ => crate::error::STEP_ROLLED_BACK.to_string(),
        };
        eprintln!(
            "error: interrupted by {}: {left_behind}",
            crate::interrupt::signal_name(signal)
        );
        return ExitCode::from(u8::try_from(crate::interrupt::exit_code(signal)).unwrap_or(1));
    }
    let mut text = error_chain(e);
    if let Some(url) = url {
        text = url.scrub(&text);
    }
    // Driver messages span lines; an error is one line.
    eprintln!(
        "error: {}",
        crate::db::one_line(&crate::db::mask_url_passwords(&text))
    );
    ExitCode::from(1)
}

/// The error and its causes, `outer: inner`, leaving out a cause whose text
/// the line already holds (a wrapped driver error often repeats its own
/// message, which made lines like `database is locked: database is locked`).
fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

/// Parses the command line; also returns `--database-url` when it was
/// given there, as opposed to clap's fallback to `$DATABASE_URL`.
fn parse<I, T>(args: I) -> Result<(Cli, Option<String>), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let flag = (matches.value_source("database_url") == Some(ValueSource::CommandLine))
        .then(|| cli.global.database_url.clone())
        .flatten();
    Ok((cli, flag))
}

impl Command {
    /// Commands that change the schema prefer DIRECT_DATABASE_URL.
    fn prefers_direct_url(&self) -> bool {
        matches!(
            self,
            Command::Migrate(_)
                | Command::Rollback(_)
                | Command::Redo(_)
                | Command::Repair(_)
                | Command::Verify(_)
                | Command::Adopt(_)
                | Command::Rehearse(_)
        ) || self.is_distribute()
    }

    fn is_distribute(&self) -> bool {
        #[cfg(feature = "postgres")]
        if let Command::Distribute(_) = self {
            return true;
        }
        false
    }

    /// Commands that make sense on a SQLite file that does not exist yet:
    /// `migrate` creates it, `status` shows everything pending. The others
    /// would create an empty file as a side effect, so they refuse.
    fn reads_a_missing_database(&self) -> bool {
        matches!(self, Command::Migrate(_) | Command::Status(_))
    }

    /// In JSON mode stdout carries the JSON document only.
    fn prints_json(&self) -> bool {
        match self {
            Command::Status(opts) => opts.format == OutputFormat::Json,
            Command::Verify(opts) => opts.format == OutputFormat::Json,
            Command::Rehearse(opts) => opts.format == OutputFormat::Json,
            _ => false,
        }
    }
}

/// Runs a command that works on a database (`lint` and `new` run from
/// [`run_process`], before any database is chosen).
fn run_with_database(
    cli: &Cli,
    db: &Database,
    out: &mut output::Output<'_>,
) -> anyhow::Result<ExitCode> {
    if !cli.command.prints_json() {
        writeln!(out, "database: {}", db.describe())?;
    }
    if let Command::Rehearse(opts) = &cli.command {
        return rehearse::run(opts, db, out);
    }
    if db.url.is_missing_sqlite_file() && !cli.command.reads_a_missing_database() {
        anyhow::bail!(
            "the SQLite database {} does not exist yet: `taskdb migrate` creates it",
            db.url.redacted()
        );
    }
    match &cli.command {
        Command::Migrate(opts) => migrate::run(opts, db, out),
        Command::Status(opts) => status::run(opts, db, out),
        Command::Rollback(opts) => rollback::run(opts, db, out),
        Command::Redo(opts) => redo::run(opts, db, out),
        Command::Seed(opts) => seed::run(opts, db, out),
        Command::Orphans(opts) => orphans::run(opts, db, out),
        Command::Repair(opts) => repair::run(opts, db, out),
        Command::Verify(opts) => verify::run(opts, db, out),
        Command::Adopt(opts) => adopt::run(opts, db, out),
        Command::Rehearse(opts) => rehearse::run(opts, db, out),
        #[cfg(feature = "postgres")]
        Command::Distribute(opts) => distribute::run(opts, db, out),
        Command::New(_) | Command::Lint(_) => {
            anyhow::bail!("`taskdb new` and `taskdb lint` choose no database")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn an_error_line_does_not_repeat_its_cause() {
        let driver = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("no connection to the server\n".to_string()),
        );
        let e = anyhow::Error::from(crate::Error::Query(driver));
        assert_eq!(
            error_chain(&e),
            "database error: no connection to the server"
        );
        let e = anyhow::anyhow!("inner cause").context("outer");
        assert_eq!(error_chain(&e), "outer: inner cause");
    }

    #[test]
    fn database_url_flag_is_told_apart_from_the_environment() {
        for args in [
            &["taskdb", "-D", "sqlite://a.db", "status"][..],
            &["taskdb", "status", "--database-url", "sqlite://a.db"],
            &["taskdb", "migrate", "--database-url=sqlite://a.db"],
        ] {
            let (_, flag) = parse(args).unwrap();
            assert_eq!(flag.as_deref(), Some("sqlite://a.db"), "{args:?}");
        }
        // Without the flag: None, even when clap filled the field from a
        // DATABASE_URL the test runner happens to export.
        let (_, flag) = parse(["taskdb", "status"]).unwrap();
        assert_eq!(flag, None);
    }

    #[test]
    fn duration_arguments_show_as_they_are_typed() {
        assert_eq!(
            DurationArg(crate::migrate::DEFAULT_LOCK_TIMEOUT).to_string(),
            "50ms"
        );
        assert_eq!(DurationArg(Duration::from_secs(30)).to_string(), "30s");
        for text in ["50ms", "30s", "1500ms"] {
            assert_eq!(text.parse::<DurationArg>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
