//! `taskdb lint`: checks migration files; with `--database-url`, adds each
//! table's live size. Reads no database otherwise (not even DATABASE_URL).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::output::Output;
use crate::db::{Backend, DatabaseUrl};
use crate::lint::{self, render};
use crate::source::LocalMigration;

pub const LONG_ABOUT: &str = "\
Check migrations for statements that block a busy table, break the app
version still running during a deploy, or fail on a table that has rows;
each finding names its rule, the lock it takes, what that lock blocks, and
the safe way to write the statement.

PATH is a migration directory (one with up.sql) or a directory of them;
the backend comes from the parent directory's name (postgres, sqlite) or
--backend. Default: ./migrations/postgres and ./migrations/sqlite, which
also checks that every migration exists for both backends (unless its
metadata.toml says `[lint] backend_only = { backend = \"postgres\", reason = \"…\" }`).

PostgreSQL files are read by PostgreSQL's own parser. A table created
earlier in the same migration is new and gets no locking finding.

Allow a finding with `-- taskdb:allow <rule> <reason>` on the line before
the statement, or `[lint] allow = [{ rule = \"…\", reason = \"…\" }]` in
metadata.toml; it still shows, marked allowed. An allow without a reason
is itself an error.

With --database-url (the flag only; DATABASE_URL is not read), findings on
existing tables report the table's live size. `taskdb migrate` runs the
same checks against the database before taking any lock (see
--unsafe-threshold there).

Exit codes: 0 no error (and no warning with --deny warnings), 1 findings,
2 usage.";

/// How findings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// rustc-style diagnostics.
    Human,
    /// One JSON document on stdout.
    Json,
}

/// What `--deny` turns into failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Deny {
    /// Warnings fail lint too.
    Warnings,
}

/// The backend of migration directories whose name does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Postgres,
    Sqlite,
}

#[derive(Debug, Args)]
pub struct Opts {
    /// Migration directories, or directories of them (default:
    /// migrations/postgres and migrations/sqlite)
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Output format
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,

    /// Fail on warnings too
    #[arg(long, value_enum, value_name = "warnings")]
    pub deny: Option<Deny>,

    /// The backend of PATHs whose directory is not named postgres or sqlite
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,

    /// Write the findings of the PostgreSQL migrations to FILE, for the
    /// pre-flight of builds without the SQL parser
    /// (migrations/lint-facts.json)
    #[arg(long, value_name = "FILE", conflicts_with = "check_facts")]
    pub write_facts: Option<PathBuf>,

    /// Fail (exit 1) when FILE is not what --write-facts would write
    #[arg(long, value_name = "FILE")]
    pub check_facts: Option<PathBuf>,
}

fn usage(message: &str) -> anyhow::Result<ExitCode> {
    Err(super::Usage {
        message: message.to_string(),
        help: "taskdb lint --help",
    }
    .into())
}

/// Refuses a directory of migrations (or the one around a migration
/// directory given alone) where two migrations share a version, naming
/// both. A path that cannot be read is left to the linter to report.
fn check_versions(path: &std::path::Path) -> anyhow::Result<()> {
    let dir = if path.join("up.sql").is_file() {
        match path.parent() {
            Some(parent) if parent.as_os_str().is_empty() => std::path::Path::new("."),
            Some(parent) => parent,
            None => return Ok(()),
        }
    } else {
        path
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("up.sql").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    crate::versions::check_unique(&names)
        .map_err(|duplicate| anyhow::anyhow!("{}: {duplicate}", dir.display()))
}

/// The PostgreSQL migrations in `dir`, named as the facts file names them
/// (relative to the crate, whatever the spelling of `dir`).
fn facts_migrations(dir: &Path) -> Result<Vec<LocalMigration>, lint::UsageError> {
    Ok(lint::read_dir(dir)?
        .into_iter()
        .map(|m| m.relocated(format!("migrations/postgres/{}", m.dir_name())))
        .collect())
}

/// Writes the pre-flight's facts of the PostgreSQL migrations in
/// `postgres_dir` to `file`; returns how many migrations it covers.
pub fn write_facts(postgres_dir: &Path, file: &Path) -> anyhow::Result<usize> {
    let migrations = facts_migrations(postgres_dir).map_err(|e| anyhow::anyhow!(e.0))?;
    std::fs::write(file, lint::preflight::facts_json(&migrations))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
    Ok(migrations.len())
}

/// Lints; with `url` (PostgreSQL), adds live table sizes.
pub fn run(
    opts: &Opts,
    url: Option<&DatabaseUrl>,
    out: &mut Output<'_>,
) -> anyhow::Result<ExitCode> {
    let paths = if opts.paths.is_empty() {
        vec![
            PathBuf::from("migrations/postgres"),
            PathBuf::from("migrations/sqlite"),
        ]
    } else {
        opts.paths.clone()
    };
    for path in &paths {
        check_versions(path)?;
    }
    let forced = opts.backend.map(|b| match b {
        BackendArg::Postgres => Backend::Postgres,
        BackendArg::Sqlite => Backend::Sqlite,
    });
    if let Some(file) = opts.write_facts.as_ref().or(opts.check_facts.as_ref()) {
        let Some(dir) = paths.iter().find(|p| {
            forced == Some(Backend::Postgres) || p.file_name().is_some_and(|n| n == "postgres")
        }) else {
            return usage(
                "--write-facts and --check-facts need the PostgreSQL migration directory",
            );
        };
        let migrations = match facts_migrations(dir) {
            Ok(m) => m,
            Err(e) => return usage(&e.0),
        };
        if opts.write_facts.is_some() {
            std::fs::write(file, lint::preflight::facts_json(&migrations))
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
            writeln!(
                out,
                "lint: wrote the facts of {} migration(s) to {}",
                migrations.len(),
                file.display()
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        if let Err(why) = lint::preflight::check_facts(&migrations, &text) {
            anyhow::bail!(
                "{} is stale: {why}; run `taskdb lint --write-facts {}` and commit it",
                file.display(),
                file.display()
            );
        }
        if opts.format == Format::Human {
            writeln!(out, "lint: {} is fresh", file.display())?;
        }
    }
    // Against a Citus coordinator, the Citus rules judge the migrations by
    // the tables it distributes.
    let mut conn = match url.filter(|u| u.backend() == Backend::Postgres) {
        Some(url) => Some(crate::db::connect(url)?),
        None => None,
    };
    let citus = match conn.as_mut() {
        Some(c) => lint::preflight::citus_tables_of(c)?,
        None => None,
    };
    let mut report = match lint::lint_paths_on(&paths, forced, citus.as_ref()) {
        Ok(r) => r,
        Err(e) => return usage(&e.0),
    };
    if let Some(conn) = conn.as_mut() {
        lint::preflight::annotate(conn, &mut report.findings)?;
    }
    match opts.format {
        Format::Human => write!(out, "{}", render::human_report(&report))?,
        Format::Json => writeln!(out, "{}", render::json_report(&report))?,
    }
    let deny_warnings = opts.deny == Some(Deny::Warnings);
    let fails = report.findings.iter().any(|f| f.fails(deny_warnings));
    Ok(if fails {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
