//! `taskdb lint`: checks migrations for statements that block the app on a
//! busy table, break the app version still running during a deploy, or fail
//! on a table that has rows, and gives the safe way to write each.
//!
//! - [`parse`] (the only user of the PostgreSQL parser, pure Rust) turns
//!   SQL into [`model::Stmt`]s; [`rules`] (one file per rule) checks them
//!   in order, carrying what earlier migrations created
//!   ([`rules::Schema`]); [`sqlite`] does the same for SQLite with a
//!   tokenizer.
//! - `-- taskdb:allow <rule> <reason>` on the line(s) right before a
//!   statement (that one statement only), or `[lint] allow = [{ rule = "…", reason = "…" }]` in a
//!   migration's `metadata.toml` (for migrations already applied, whose
//!   `up.sql` must not change), marks a finding allowed: it still shows.
//! - [`preflight`] joins the findings of pending migrations with the live
//!   size of each table before `migrate` takes any lock. For the migrations
//!   compiled into taskdb it reads them from `migrations/lint-facts.json`
//!   (written by `taskdb lint --write-facts`, checked fresh in CI), so it
//!   needs no parser at run time.

// Statements as the rules see them, from the PostgreSQL parser.
#[cfg(feature = "cli")]
pub mod model;
// The PostgreSQL parser (squawk-syntax) comes with the `cli` feature.
#[cfg(feature = "cli")]
mod parse;
pub mod preflight;
// `taskdb lint DIR…`: the directories and files named on its command line.
#[cfg(feature = "cli")]
mod paths;
pub mod render;
pub mod rules;
mod sqlite;

use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use preflight::{check_pending, DEFAULT_UNSAFE_THRESHOLD};
#[cfg(feature = "cli")]
pub use preflight::{check_findings, dry_run_lines, PreflightReport};
#[cfg(feature = "cli")]
pub use paths::{check_parity, lint_paths, lint_paths_on, read_dir, Report, UsageError};
pub use rules::Blocks;

pub use crate::catalog::TableSize;
use crate::db::Backend;
use crate::source::LocalMigration;

/// Every rule, with a stable kebab-case name.
// The variants spell the names users write (`allow-unknown-rule`).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    IndexWithoutConcurrently,
    ConcurrentlyInTransaction,
    ConstraintWithoutNotValid,
    UniqueConstraintUnderLock,
    SetNotNullWithoutCheck,
    ColumnTypeRewrite,
    ColumnTypeBreaksCachedPlans,
    AddColumnNotNullWithoutDefault,
    AddColumnVolatileDefault,
    RenameOrDrop,
    Truncate,
    LockTable,
    VacuumFull,
    Cluster,
    UnbatchedBackfill,
    TableRewrite,
    RefreshWithoutConcurrently,
    TimeoutOverride,
    OpaqueStatement,
    MissingDown,
    SqliteNonConstantDefault,
    SqliteUnsupportedAlter,
    BackendParity,
    ParseError,
    AllowWithoutReason,
    AllowUnknownRule,
    CitusUniqueWithoutDistributionColumn,
    CitusTriggerOnDistributedTable,
    CitusDdlNotPropagated,
}

impl Rule {
    pub const ALL: [Rule; 29] = [
        Rule::IndexWithoutConcurrently,
        Rule::ConcurrentlyInTransaction,
        Rule::ConstraintWithoutNotValid,
        Rule::UniqueConstraintUnderLock,
        Rule::SetNotNullWithoutCheck,
        Rule::ColumnTypeRewrite,
        Rule::ColumnTypeBreaksCachedPlans,
        Rule::AddColumnNotNullWithoutDefault,
        Rule::AddColumnVolatileDefault,
        Rule::RenameOrDrop,
        Rule::Truncate,
        Rule::LockTable,
        Rule::VacuumFull,
        Rule::Cluster,
        Rule::UnbatchedBackfill,
        Rule::TableRewrite,
        Rule::RefreshWithoutConcurrently,
        Rule::TimeoutOverride,
        Rule::OpaqueStatement,
        Rule::MissingDown,
        Rule::SqliteNonConstantDefault,
        Rule::SqliteUnsupportedAlter,
        Rule::BackendParity,
        Rule::ParseError,
        Rule::AllowWithoutReason,
        Rule::AllowUnknownRule,
        Rule::CitusUniqueWithoutDistributionColumn,
        Rule::CitusTriggerOnDistributedTable,
        Rule::CitusDdlNotPropagated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::IndexWithoutConcurrently => "index-without-concurrently",
            Rule::ConcurrentlyInTransaction => "concurrently-in-transaction",
            Rule::ConstraintWithoutNotValid => "constraint-without-not-valid",
            Rule::UniqueConstraintUnderLock => "unique-constraint-under-lock",
            Rule::SetNotNullWithoutCheck => "set-not-null-without-check",
            Rule::ColumnTypeRewrite => "column-type-rewrite",
            Rule::ColumnTypeBreaksCachedPlans => "column-type-breaks-cached-plans",
            Rule::AddColumnNotNullWithoutDefault => "add-column-not-null-without-default",
            Rule::AddColumnVolatileDefault => "add-column-volatile-default",
            Rule::RenameOrDrop => "rename-or-drop",
            Rule::Truncate => "truncate",
            Rule::LockTable => "lock-table",
            Rule::VacuumFull => "vacuum-full",
            Rule::Cluster => "cluster",
            Rule::UnbatchedBackfill => "unbatched-backfill",
            Rule::TableRewrite => "table-rewrite",
            Rule::RefreshWithoutConcurrently => "refresh-without-concurrently",
            Rule::TimeoutOverride => "timeout-override",
            Rule::OpaqueStatement => "opaque-statement",
            Rule::MissingDown => "missing-down",
            Rule::SqliteNonConstantDefault => "sqlite-non-constant-default",
            Rule::SqliteUnsupportedAlter => "sqlite-unsupported-alter",
            Rule::BackendParity => "backend-parity",
            Rule::ParseError => "parse-error",
            Rule::AllowWithoutReason => "allow-without-reason",
            Rule::AllowUnknownRule => "allow-unknown-rule",
            Rule::CitusUniqueWithoutDistributionColumn => {
                "citus-unique-without-distribution-column"
            }
            Rule::CitusTriggerOnDistributedTable => "citus-trigger-on-distributed-table",
            Rule::CitusDdlNotPropagated => "citus-ddl-not-propagated",
        }
    }

    /// The rules that only a Citus coordinator's tables make fire: the
    /// pre-flight refuses them at any table size.
    pub fn is_citus(self) -> bool {
        matches!(
            self,
            Rule::CitusUniqueWithoutDistributionColumn
                | Rule::CitusTriggerOnDistributedTable
                | Rule::CitusDdlNotPropagated
        )
    }

    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }

    pub fn level(self) -> Level {
        match self {
            Rule::MissingDown
            | Rule::SqliteNonConstantDefault
            | Rule::SqliteUnsupportedAlter
            | Rule::OpaqueStatement
            | Rule::ColumnTypeBreaksCachedPlans
            // Taskdb's own migrations create the updated_at triggers; on a
            // coordinator the pre-flight still refuses a pending one.
            | Rule::CitusTriggerOnDistributedTable => Level::Warning,
            _ => Level::Error,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Rule::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown lint rule `{name}`")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: Rule,
    pub level: Level,
    /// The migration directory name.
    pub migration: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub table: Option<String>,
    pub lock: Option<String>,
    pub blocks: Option<Blocks>,
    /// How long the lock is held: `full-scan`, `brief`, `until-commit`.
    pub holds: Option<rules::Holds>,
    pub message: String,
    pub recipe: Option<String>,
    pub allowed: bool,
    pub allow_reason: Option<String>,
    /// The statement's first line, for the human output.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<String>,
    /// With `--database-url`: the table's live size.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<TableSize>,
    /// With `--database-url`: what the finding means at that size.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub consequence: Option<String>,
}

impl Finding {
    /// A finding of `rule` at a place in a file, with nothing else known
    /// yet (no table, lock or recipe).
    pub fn at(
        rule: Rule,
        migration: &str,
        file: &str,
        line: usize,
        column: usize,
        message: String,
    ) -> Finding {
        Finding {
            rule,
            level: rule.level(),
            migration: migration.to_string(),
            file: file.to_string(),
            line,
            column,
            table: None,
            lock: None,
            blocks: None,
            holds: None,
            message,
            recipe: None,
            allowed: false,
            allow_reason: None,
            source: None,
            size: None,
            consequence: None,
        }
    }

    /// An error that is not allowed fails lint (and warnings, with `--deny warnings`).
    #[cfg(feature = "cli")]
    pub fn fails(&self, deny_warnings: bool) -> bool {
        !self.allowed && (self.level == Level::Error || deny_warnings)
    }
}

/// What `metadata.toml` tells lint.
#[derive(Debug, Default)]
struct Metadata {
    run_in_transaction: bool,
    allow: Vec<(String, Option<String>)>,
    backend_only: Option<(String, Option<String>)>,
    error: Option<String>,
}

fn read_metadata(text: Option<&str>) -> Metadata {
    let mut m = Metadata {
        run_in_transaction: true,
        ..Metadata::default()
    };
    let Some(text) = text else {
        return m;
    };
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            m.error = Some(format!(
                "metadata.toml is not valid TOML: {}",
                crate::db::one_line(&e.to_string())
            ));
            return m;
        }
    };
    // Diesel's own reading: a metadata.toml without the key means false.
    m.run_in_transaction = table
        .get("run_in_transaction")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if let Some(lint) = table.get("lint").and_then(|v| v.as_table()) {
        for entry in lint
            .get("allow")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let rule = entry
                .get("rule")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let reason = entry
                .get("reason")
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|r| !r.is_empty());
            m.allow.push((rule.to_string(), reason.map(String::from)));
        }
        if let Some(only) = lint.get("backend_only").and_then(|v| v.as_table()) {
            let backend = only
                .get("backend")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let reason = only
                .get("reason")
                .and_then(|v| v.as_str())
                .map(str::trim)
                .filter(|r| !r.is_empty());
            m.backend_only = Some((backend.to_string(), reason.map(String::from)));
        }
    }
    m
}

/// Byte offset of the first token at or after `from` (skips blanks and comments).
#[cfg(feature = "cli")]
pub(crate) fn first_token(sql: &str, from: usize) -> usize {
    let bytes = sql.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
        } else if bytes[i] == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            match sql[i + 2..].find("*/") {
                Some(end) => i += 2 + end + 2,
                None => return sql.len(),
            }
        } else {
            break;
        }
    }
    i
}

/// 1-based line and column of a byte offset.
fn position(sql: &str, offset: usize) -> (usize, usize) {
    let before = &sql[..offset.min(sql.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map(|nl| before[nl + 1..].chars().count() + 1)
        .unwrap_or_else(|| before.chars().count() + 1);
    (line, column)
}

/// An allow comment: rule name, reason, and its line.
struct Allow {
    rule: String,
    reason: Option<String>,
    line: usize,
}

/// The `-- taskdb:allow` comments in the run of comment lines right above
/// the line `line` (1-based).
fn allows_above(lines: &[&str], line: usize) -> Vec<Allow> {
    let mut out = Vec::new();
    let mut i = line.saturating_sub(1);
    while i > 0 {
        let text = lines[i - 1].trim();
        let Some(comment) = text.strip_prefix("--") else {
            break;
        };
        if let Some(rest) = comment.trim().strip_prefix("taskdb:allow") {
            let mut parts = rest.trim().splitn(2, char::is_whitespace);
            let rule = parts.next().unwrap_or_default().to_string();
            let reason = parts
                .next()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(String::from);
            out.push(Allow {
                rule,
                reason,
                line: i,
            });
        }
        i -= 1;
    }
    out
}

/// Lints the migrations of one backend directory, oldest first. Each sees
/// what the ones before it created.
pub fn lint_migrations(backend: Backend, migrations: &[LocalMigration]) -> Vec<Finding> {
    lint_migrations_in(backend, migrations, rules::Schema::default())
}

/// [`lint_migrations`] on a Citus coordinator holding `tables`: the Citus
/// rules fire too.
#[cfg(feature = "cli")]
pub fn lint_migrations_on_citus(
    migrations: &[LocalMigration],
    tables: rules::CitusTables,
) -> Vec<Finding> {
    lint_migrations_in(Backend::Postgres, migrations, rules::Schema::on_citus(tables))
}

fn lint_migrations_in(
    backend: Backend,
    migrations: &[LocalMigration],
    mut schema: rules::Schema,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for m in migrations {
        lint_one(backend, m, &mut schema, &mut findings);
    }
    findings
}

#[cfg_attr(not(feature = "cli"), allow(unused_variables))]
fn lint_one(
    backend: Backend,
    m: &LocalMigration,
    schema: &mut rules::Schema,
    out: &mut Vec<Finding>,
) {
    let file = format!("{}/up.sql", m.location());
    let meta = read_metadata(m.metadata());
    let base = |rule: Rule, file: &str, line: usize, column: usize, message: String| {
        Finding::at(rule, m.dir_name(), file, line, column, message)
    };
    let meta_file = format!("{}/metadata.toml", m.location());
    if let Some(error) = &meta.error {
        out.push(base(Rule::ParseError, &meta_file, 1, 1, error.clone()));
    }
    // A backfill's [backfill] must describe up.sql's UPDATE: taskdb runs
    // the former, the diesel CLI the latter.
    match m.backfill() {
        Err(e) => out.push(base(Rule::ParseError, &meta_file, 1, 1, e.to_string())),
        Ok(Some(b)) if !b.matches_up_sql(m.up_sql()) => out.push(base(
            Rule::ParseError,
            &meta_file,
            1,
            1,
            format!(
                "[backfill] describes `{};`, which is not up.sql's statement: taskdb refuses to run it; make them the same change",
                b.update_sql()
            ),
        )),
        _ => {}
    }
    for (rule, reason) in &meta.allow {
        if Rule::from_name(rule).is_none() {
            out.push(base(
                Rule::AllowUnknownRule,
                &meta_file,
                1,
                1,
                format!("[lint] allow names `{rule}`, which is no lint rule"),
            ));
        } else if reason.is_none() {
            let mut f = base(
                Rule::AllowWithoutReason,
                &meta_file,
                1,
                1,
                format!("[lint] allow of `{rule}` gives no reason: say why it is safe here"),
            );
            f.recipe = Some(format!(
                "[lint]\nallow = [{{ rule = \"{rule}\", reason = \"<why it is safe here>\" }}]"
            ));
            out.push(f);
        }
    }
    match m.down_sql().map(str::trim) {
        None | Some("") => {
            let mut f = base(
                Rule::MissingDown,
                &format!("{}/down.sql", m.location()),
                1,
                1,
                format!(
                    "{} has {}: `taskdb rollback` cannot revert it",
                    m.dir_name(),
                    if m.down_sql().is_none() {
                        "no down.sql"
                    } else {
                        "an empty down.sql"
                    }
                ),
            );
            f.recipe = Some("-- undo what up.sql does, or state that it cannot be undone:\nSELECT 1;  -- deliberately a no-op: <why>".into());
            out.push(f);
        }
        _ => {}
    }
    let lines: Vec<&str> = m.up_sql().lines().collect();
    // Statement offset → raw findings.
    let mut per_statement: Vec<(usize, Option<String>, Vec<rules::RawFinding>)> = Vec::new();
    match backend {
        // Without the parser nothing is known about the statements: one
        // error with no table, which the pre-flight refuses whatever the
        // table sizes (migrations compiled in read lint-facts.json instead).
        #[cfg(not(feature = "cli"))]
        Backend::Postgres => {
            out.push(base(
                Rule::ParseError,
                &file,
                1,
                1,
                "this build of taskdb has no PostgreSQL parser (the `cli` feature) and migrations/lint-facts.json has no facts for this file, so it cannot tell whether it locks a busy table: regenerate the facts with `taskdb lint --write-facts migrations/lint-facts.json`".into(),
            ));
            return;
        }
        #[cfg(feature = "cli")]
        Backend::Postgres => match parse::parse_postgres(m.up_sql()) {
            Err((message, at)) => {
                let (line, column) = position(m.up_sql(), at.unwrap_or(0));
                out.push(base(
                    Rule::ParseError,
                    &file,
                    line,
                    column,
                    format!("cannot parse this file as PostgreSQL: {message}"),
                ));
                return;
            }
            Ok(stmts) => {
                let mut state = rules::FileState::default();
                let several = stmts.len() > 1;
                for (i, stmt) in stmts.iter().enumerate() {
                    let mut raw = rules::check(stmt, meta.run_in_transaction, &mut state, schema);
                    if !meta.run_in_transaction && several && i == 1 {
                        raw.push(rules::RawFinding {
                            rule: Rule::ConcurrentlyInTransaction,
                            table: None,
                            lock: None,
                            blocks: None,
                            holds: None,
                            message: format!("a migration with `run_in_transaction = false` must hold exactly one statement; this one has {}: Diesel sends the file as one query, which PostgreSQL runs as one implicit transaction (CONCURRENTLY fails in it)", stmts.len()),
                            recipe: Some("-- one migration per statement, each with metadata.toml: run_in_transaction = false".into()),
                        });
                    }
                    let first_line = stmt.text.lines().next().map(String::from);
                    per_statement.push((stmt.offset, first_line, raw));
                }
            }
        },
        Backend::Sqlite => match sqlite::split(m.up_sql()) {
            Err((message, at)) => {
                let (line, column) = position(m.up_sql(), at);
                out.push(base(
                    Rule::ParseError,
                    &file,
                    line,
                    column,
                    format!("cannot read this file: {message}"),
                ));
                return;
            }
            Ok(stmts) => {
                let mut created = HashSet::new();
                for stmt in &stmts {
                    let raw = sqlite::check(stmt, &mut created);
                    let first_line = m.up_sql()[stmt.offset..].lines().next().map(String::from);
                    per_statement.push((stmt.offset, first_line, raw));
                }
            }
        },
    }
    // An allow comment belongs to the one statement that follows it, even
    // when another statement starts on the same line.
    let mut used_allows = HashSet::new();
    for (offset, first_line, raw) in per_statement {
        let (line, column) = position(m.up_sql(), offset);
        let allows: Vec<Allow> = allows_above(&lines, line)
            .into_iter()
            .filter(|a| used_allows.insert(a.line))
            .collect();
        for a in &allows {
            if Rule::from_name(&a.rule).is_none() {
                out.push(base(
                    Rule::AllowUnknownRule,
                    &file,
                    a.line,
                    1,
                    format!("`taskdb:allow {}` names no lint rule", a.rule),
                ));
            } else if a.reason.is_none() {
                let mut f = base(
                    Rule::AllowWithoutReason,
                    &file,
                    a.line,
                    1,
                    format!(
                        "`taskdb:allow {}` gives no reason: say why it is safe here",
                        a.rule
                    ),
                );
                f.recipe = Some(format!("-- taskdb:allow {} <why it is safe here>", a.rule));
                out.push(f);
            }
        }
        for r in raw {
            let reason = allows
                .iter()
                .find(|a| a.rule == r.rule.name() && a.reason.is_some())
                .and_then(|a| a.reason.clone())
                .or_else(|| {
                    meta.allow
                        .iter()
                        .find(|(rule, reason)| rule == r.rule.name() && reason.is_some())
                        .and_then(|(_, reason)| reason.clone())
                });
            let mut f = base(r.rule, &file, line, column, r.message);
            f.table = r.table;
            f.lock = r.lock.map(String::from);
            f.blocks = r.blocks;
            f.holds = r.holds;
            f.recipe = r.recipe;
            f.allowed = reason.is_some();
            f.allow_reason = reason;
            f.source = first_line.clone();
            out.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_round_trip() {
        for r in Rule::ALL {
            assert_eq!(Rule::from_name(r.name()), Some(r));
        }
    }

    /// Without the parser a PostgreSQL migration the facts do not cover is
    /// an error on no table, which the pre-flight refuses at any size.
    #[cfg(not(feature = "cli"))]
    #[test]
    fn without_the_parser_a_postgres_migration_is_an_error_on_no_table() {
        let m = LocalMigration::from_files(
            "2030-01-01-000000_add_index",
            "migrations/postgres/2030-01-01-000000_add_index".into(),
            "CREATE INDEX CONCURRENTLY tasks_title ON tasks (title);".into(),
            Some("DROP INDEX tasks_title;".into()),
            Some("run_in_transaction = false".into()),
        );
        let findings = lint_migrations(Backend::Postgres, &[m]);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, Rule::ParseError);
        assert_eq!(findings[0].level, Level::Error);
        assert_eq!(findings[0].table, None);
        assert!(findings[0].message.contains("lint-facts.json"));
    }

    #[cfg(feature = "cli")]
    #[test]
    fn positions_are_one_based() {
        let sql = "-- c\n\n  SELECT 1;";
        let at = first_token(sql, 0);
        assert_eq!(position(sql, at), (3, 3));
    }
}
