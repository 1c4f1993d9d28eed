//! `taskdb lint DIR…`: the migration directories and files named on its
//! command line, read and linted, and the parity check across backends.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{lint_migrations, read_metadata, Finding, Level, Rule};
use crate::db::Backend;
use crate::source::LocalMigration;

/// The parity check: every migration name in both backends, unless its
/// `metadata.toml` says `[lint] backend_only = { backend = "…", reason = "…" }`.
pub fn check_parity(postgres: &[LocalMigration], sqlite: &[LocalMigration]) -> Vec<Finding> {
    let mut out = Vec::new();
    let names = |ms: &[LocalMigration]| -> BTreeMap<String, String> {
        ms.iter()
            .map(|m| {
                let logical = m
                    .dir_name()
                    .split_once('_')
                    .map(|(_, n)| n)
                    .unwrap_or(m.dir_name());
                (logical.to_string(), m.dir_name().to_string())
            })
            .collect()
    };
    let pg = names(postgres);
    let lite = names(sqlite);
    for (ours, theirs, other_name, this_backend) in [
        (postgres, &lite, "sqlite", "postgres"),
        (sqlite, &pg, "postgres", "sqlite"),
    ] {
        for m in ours {
            let logical = m
                .dir_name()
                .split_once('_')
                .map(|(_, n)| n)
                .unwrap_or(m.dir_name());
            if theirs.contains_key(logical) {
                continue;
            }
            let meta = read_metadata(m.metadata());
            let file = format!("{}/metadata.toml", m.location());
            let finding = |message: String, recipe: String| Finding {
                recipe: Some(recipe),
                ..Finding::at(Rule::BackendParity, m.dir_name(), &file, 1, 1, message)
            };
            let recipe = format!("-- write migrations/{other_name}/<version>_{logical}, or mark this one in its metadata.toml\n-- (keep run_in_transaction: Diesel reads a metadata.toml without it as false):\n[lint]\nbackend_only = {{ backend = \"{this_backend}\", reason = \"<why {other_name} needs no such step>\" }}");
            match meta.backend_only {
                Some((backend, Some(_))) if backend == this_backend => {}
                Some((backend, None)) if backend == this_backend => out.push(finding(
                    format!("{} is marked {this_backend}-only without a reason", m.dir_name()),
                    recipe,
                )),
                _ => out.push(finding(
                    format!("{} has no {other_name} counterpart (no migration named `{logical}` in migrations/{other_name})", m.dir_name()),
                    recipe,
                )),
            }
        }
    }
    out
}

/// Why lint could not run (a usage problem: exit 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// What one PATH argument named.
#[derive(Debug)]
struct Target {
    backend: Backend,
    /// The backend directory (holds the migrations).
    dir: PathBuf,
    /// Only these migrations' findings are reported (`None`: all).
    only: Option<String>,
}

fn backend_of(dir: &Path, forced: Option<Backend>) -> Result<Backend, UsageError> {
    if let Some(b) = forced {
        return Ok(b);
    }
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("postgres") => Ok(Backend::Postgres),
        Some("sqlite") => Ok(Backend::Sqlite),
        _ => Err(UsageError(format!(
            "cannot tell the backend of {}: its directory is not named `postgres` or `sqlite`; pass --backend",
            dir.display()
        ))),
    }
}

fn target(path: &Path, forced: Option<Backend>) -> Result<Target, UsageError> {
    if !path.is_dir() {
        return Err(UsageError(format!(
            "{} is not a directory of migrations",
            path.display()
        )));
    }
    if path.join("up.sql").is_file() {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        return Ok(Target {
            backend: backend_of(parent, forced)?,
            dir: parent.to_path_buf(),
            only: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        });
    }
    Ok(Target {
        backend: backend_of(path, forced)?,
        dir: path.to_path_buf(),
        only: None,
    })
}

/// Reads every migration directory (one with `up.sql`) in `dir`, oldest first.
pub fn read_dir(dir: &Path) -> Result<Vec<LocalMigration>, UsageError> {
    let (migrations, unreadable) = read_migrations(dir)?;
    match unreadable.first() {
        Some(f) => Err(UsageError(format!("{}: {}", f.file, f.message))),
        None => Ok(migrations),
    }
}

/// [`read_dir`], with an `up.sql` that is not UTF-8 text turned into a
/// finding about that file (the others are still read).
fn read_migrations(dir: &Path) -> Result<(Vec<LocalMigration>, Vec<Finding>), UsageError> {
    let (migrations, not_utf8) =
        crate::source::read_backend_dir(dir).map_err(|e| UsageError(e.to_string()))?;
    let unreadable = not_utf8
        .into_iter()
        .map(|bad| {
            let file = bad.path.display().to_string();
            let (line, column) = (bad.line, bad.column);
            let mut f = Finding::at(
                Rule::ParseError,
                &bad.dir_name,
                &file,
                line,
                column,
                format!("{file} is not UTF-8 text (an invalid byte at line {line}, column {column}): migrations are read as UTF-8"),
            );
            f.recipe = Some(format!(
                "iconv -f <its encoding> -t UTF-8 {file} > up.sql.utf8 && mv up.sql.utf8 {file}"
            ));
            f
        })
        .collect();
    Ok((migrations, unreadable))
}

/// Everything lint found under the given paths.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub migrations: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.fails(false)).count()
    }
    pub fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| !f.allowed && f.level == Level::Warning)
            .count()
    }
    pub fn allowed(&self) -> usize {
        self.findings.iter().filter(|f| f.allowed).count()
    }
}

/// Lints `paths` (each a backend directory or one migration directory).
/// The backend parity check runs when whole `postgres` and `sqlite`
/// directories were both given.
pub fn lint_paths(paths: &[PathBuf], forced: Option<Backend>) -> Result<Report, UsageError> {
    lint_paths_on(paths, forced, None)
}

/// [`lint_paths`] against a Citus coordinator holding `citus` (`taskdb
/// lint --database-url`): PostgreSQL migrations get the Citus rules too.
pub fn lint_paths_on(
    paths: &[PathBuf],
    forced: Option<Backend>,
    citus: Option<&super::rules::CitusTables>,
) -> Result<Report, UsageError> {
    let mut report = Report::default();
    let mut whole: BTreeMap<&'static str, Vec<LocalMigration>> = BTreeMap::new();
    for path in paths {
        let t = target(path, forced)?;
        let (migrations, unreadable) = read_migrations(&t.dir)?;
        let mut findings = unreadable;
        findings.extend(match (t.backend, citus) {
            (Backend::Postgres, Some(tables)) => {
                super::lint_migrations_on_citus(&migrations, tables.clone())
            }
            _ => lint_migrations(t.backend, &migrations),
        });
        match &t.only {
            Some(only) => {
                report.migrations += 1;
                report
                    .findings
                    .extend(findings.into_iter().filter(|f| &f.migration == only));
            }
            None => {
                report.migrations += migrations.len();
                report.findings.extend(findings);
                let key = match t.backend {
                    Backend::Postgres => "postgres",
                    Backend::Sqlite => "sqlite",
                };
                whole.insert(key, migrations);
            }
        }
    }
    if let (Some(pg), Some(lite)) = (whole.get("postgres"), whole.get("sqlite")) {
        report.findings.extend(check_parity(pg, lite));
    }
    Ok(report)
}
