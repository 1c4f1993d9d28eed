//! Lint's findings joined with live table sizes, before `migrate` takes any
//! lock. Needs no SQL parser at run time: the findings of the migrations
//! compiled into taskdb come from `migrations/lint-facts.json` (written by
//! `taskdb lint --write-facts`, embedded at build time, checked fresh by
//! the tests and CI). A migration missing there (or edited since) is linted
//! on the spot, which needs the parser this build has.
//!
//! The threshold is in rows. A finding on a table of at most that many
//! rows proceeds (an empty table, a new install); above it, an error that
//! is not allowed refuses the whole run with nothing applied.

#[cfg(feature = "postgres")]
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::render::describe_size;
use super::rules::Holds;
use super::{Finding, Level, TableSize};
use crate::db::{Backend, DbConnection, HasBackend as _};
use crate::error::{Error, Result};
#[cfg(feature = "cli")]
use crate::source::checksum;
use crate::source::{LocalMigration, MigrationSource};

/// Default `--unsafe-threshold`, in rows. A full scan or rewrite of `tasks`
/// ran at about 400,000 rows/s here (4M rows in 10.4 s, BENCHMARKS.md), so
/// 10,000 rows is about 25 ms: half the default 50 ms lock-timeout budget.
/// Above it, a step can hold its lock longer than any statement may wait.
pub const DEFAULT_UNSAFE_THRESHOLD: u64 = 10_000;

/// The facts file: each PostgreSQL migration's `up.sql` checksum and findings.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Facts {
    pub generated_by: String,
    pub migrations: Vec<MigrationFacts>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct MigrationFacts {
    pub migration: String,
    pub checksum: String,
    pub findings: Vec<Finding>,
}

/// The facts file's text for these PostgreSQL migrations.
#[cfg(feature = "cli")]
pub fn facts_json(migrations: &[LocalMigration]) -> String {
    let findings = super::lint_migrations(Backend::Postgres, migrations);
    let facts = Facts {
        generated_by: "taskdb lint --write-facts migrations/lint-facts.json (do not edit; CI checks it is fresh)".into(),
        migrations: migrations
            .iter()
            .map(|m| MigrationFacts {
                migration: m.dir_name().to_string(),
                checksum: checksum(m.up_sql()),
                findings: findings
                    .iter()
                    .filter(|f| f.migration == m.dir_name())
                    .cloned()
                    .map(|mut f| {
                        f.file = f.file.replace('\\', "/");
                        f
                    })
                    .collect(),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&facts).unwrap_or_default();
    text.push('\n');
    text
}

/// The facts of `source` (compiled in, or its `lint-facts.json`); none
/// when it has no facts file.
fn facts_of(source: &MigrationSource) -> Facts {
    source
        .facts()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Facts {
            generated_by: String::new(),
            migrations: Vec::new(),
        })
}

/// The findings of `pending`: from the source's facts, or linted now for a
/// migration the facts do not cover (with the migrations before it, so
/// each sees what earlier ones created, and with its `metadata.toml`, so
/// its allow list counts). A covered migration keeps its stored facts.
pub fn findings_of(source: &MigrationSource, pending: &[LocalMigration]) -> Vec<Finding> {
    let facts = facts_of(source);
    let stored = |m: &LocalMigration| {
        facts
            .migrations
            .iter()
            .find(|f| f.migration == m.dir_name() && f.checksum == m.checksum())
    };
    let uncovered: Vec<&str> = pending
        .iter()
        .filter(|m| stored(m).is_none())
        .map(|m| m.dir_name())
        .collect();
    let mut fresh = Vec::new();
    if !uncovered.is_empty() {
        // The source's migrations and any pending one that is not among
        // them, in version order.
        let mut every = source.migrations(Backend::Postgres).unwrap_or_default();
        for m in pending {
            if !every.iter().any(|e| e.dir_name() == m.dir_name()) {
                every.push(m.clone());
            }
        }
        every.sort_by(|a, b| a.dir_name().cmp(b.dir_name()));
        fresh = super::lint_migrations(Backend::Postgres, &every);
    }
    let mut out = Vec::new();
    for m in pending {
        match stored(m) {
            Some(f) => out.extend(f.findings.iter().cloned()),
            None => out.extend(
                fresh
                    .iter()
                    .filter(|f| f.migration == m.dir_name())
                    .cloned(),
            ),
        }
    }
    out
}

/// What the pre-flight decided for one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Sizes are judged on PostgreSQL only.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub enum Verdict {
    /// An error on a table above the threshold: the run is refused.
    Refused,
    /// Allowed by a `taskdb:allow` comment or `metadata.toml`: proceeds.
    Allowed,
    /// The table holds at most the threshold's rows: proceeds.
    Small,
    /// The table does not exist yet (an earlier pending step creates it).
    NoTable,
}

#[derive(Debug, Clone)]
pub struct PreflightItem {
    pub finding: Finding,
    pub verdict: Verdict,
}

/// The pre-flight's findings and verdicts.
#[derive(Debug, Clone, Default)]
pub struct PreflightReport {
    pub threshold: u64,
    pub items: Vec<PreflightItem>,
}

impl PreflightReport {
    /// One line per finding, saying what happens to it.
    pub fn lines(&self) -> Vec<String> {
        self.items
            .iter()
            .map(|i| {
                let f = &i.finding;
                let what = f.consequence.clone().unwrap_or_else(|| f.message.clone());
                let verdict = match i.verdict {
                    Verdict::Refused => "refused".to_string(),
                    Verdict::Allowed => format!(
                        "proceeding, allowed: {}",
                        f.allow_reason.as_deref().unwrap_or_default()
                    ),
                    Verdict::Small if f.table.is_none() => format!(
                        "proceeding, every table is at most {} rows (--unsafe-threshold, MigrateOptions::unsafe_threshold)",
                        self.threshold
                    ),
                    Verdict::Small => format!(
                        "proceeding, the table is at most {} rows (--unsafe-threshold, MigrateOptions::unsafe_threshold)",
                        self.threshold
                    ),
                    Verdict::NoTable => "proceeding, the table does not exist yet".to_string(),
                };
                format!("lint: {} [{}]: {what}: {verdict}", f.migration, f.rule)
            })
            .collect()
    }

    fn refusal(&self) -> Option<Error> {
        let refused: Vec<String> = self
            .items
            .iter()
            .filter(|i| i.verdict == Verdict::Refused)
            .map(|i| {
                let f = &i.finding;
                // One line: the SQL of the recipe, without its comments.
                let recipe = f
                    .recipe
                    .as_deref()
                    .map(|r| {
                        r.lines()
                            .filter(|l| !l.trim_start().starts_with("--"))
                            .map(|l| l.split("  --").next().unwrap_or(l).trim())
                            .collect::<Vec<_>>()
                            .join(" ")
                            .trim_end_matches(';')
                            .to_string()
                    })
                    .filter(|r| !r.is_empty())
                    .or_else(|| f.recipe.as_deref().map(|r| r.replace('\n', " ")))
                    .unwrap_or_default();
                let what = f.consequence.clone().unwrap_or_else(|| f.message.clone());
                if recipe.is_empty() {
                    format!("{} [{}] {what}", f.migration, f.rule)
                } else {
                    format!("{} [{}] {what}; safe recipe: {recipe}", f.migration, f.rule)
                }
            })
            .collect();
        (!refused.is_empty()).then(|| Error::UnsafeMigration {
            threshold: self.threshold,
            refused,
        })
    }
}

/// Joins a table's live size with a finding: what it means at that size.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub fn consequence(f: &Finding, size: TableSize) -> String {
    let table = f.table.as_deref().unwrap_or("the table");
    let lock = f.lock.as_deref().unwrap_or("its lock");
    let blocks = f
        .blocks
        .map(|b| format!(", blocking {}", b.describe()))
        .unwrap_or_default();
    let size = describe_size(size);
    match f.holds {
        Some(Holds::FullScan) => {
            format!("holds {lock} on {table} ({size}) for a full scan{blocks}")
        }
        Some(Holds::UntilCommit) => {
            format!("holds {lock} on {table} ({size}) until the migration commits{blocks}")
        }
        _ => format!("takes {lock} on {table} ({size}){blocks}: {}", f.message),
    }
}

/// Live sizes of `tables` (PostgreSQL), each a name as a migration
/// writes it (`tasks`, `app.big`); a table that does not exist is left
/// out. Rows are the planner's estimate from the table's current pages
/// ([`crate::catalog::table_size`]), whatever its statistics say.
#[cfg(feature = "postgres")]
pub fn table_sizes(
    conn: &mut diesel::PgConnection,
    tables: &[String],
) -> Result<BTreeMap<String, TableSize>> {
    let mut out = BTreeMap::new();
    for table in tables {
        if let Some(size) = crate::catalog::table_size::table_size(conn, table)? {
            out.insert(table.clone(), size);
        }
    }
    Ok(out)
}

/// The distributed and reference tables of a Citus coordinator, from
/// `pg_dist_partition`; `None` without the Citus extension. (Only the
/// parser's Citus rules use them.)
#[cfg(all(feature = "postgres", feature = "cli"))]
pub fn citus_tables(conn: &mut diesel::PgConnection) -> Result<Option<super::rules::CitusTables>> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Flag {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        b: bool,
    }
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        column: Option<String>,
    }
    let citus = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS b",
    )
    .get_result::<Flag>(conn)?
    .b;
    if !citus {
        return Ok(None);
    }
    // Names as lint writes them: the schema only when not `public`.
    let held: Vec<Held> = diesel::sql_query(
        "SELECT regexp_replace(p.logicalrelid::regclass::text, '^public\\.', '') AS name,
                CASE WHEN p.partmethod = 'h'
                     THEN column_to_column_name(p.logicalrelid, p.partkey) END AS column
           FROM pg_dist_partition p
          WHERE p.partmethod = 'h' OR p.repmodel = 't'",
    )
    .load(conn)?;
    Ok(Some(held.into_iter().map(|h| (h.name, h.column)).collect()))
}

/// [`citus_tables`] of any connection: `None` on SQLite.
#[cfg(feature = "cli")]
pub fn citus_tables_of(conn: &mut DbConnection) -> Result<Option<super::rules::CitusTables>> {
    crate::db::on_backend!(conn,
        Postgres(pg) => citus_tables(pg),
        Sqlite(_lite) => Ok(None),
    )
}

/// The Citus findings of `pending` on a coordinator holding `tables`:
/// every migration linted with the Citus rules (each seeing what the ones
/// before it created), the Citus rules' findings of the pending ones kept.
#[cfg(feature = "cli")]
fn citus_findings_of(
    source: &MigrationSource,
    pending: &[LocalMigration],
    tables: super::rules::CitusTables,
) -> Vec<Finding> {
    let mut every = source.migrations(Backend::Postgres).unwrap_or_default();
    for m in pending {
        if !every.iter().any(|e| e.dir_name() == m.dir_name()) {
            every.push(m.clone());
        }
    }
    every.sort_by(|a, b| a.dir_name().cmp(b.dir_name()));
    super::lint_migrations_on_citus(&every, tables)
        .into_iter()
        .filter(|f| f.rule.is_citus() && pending.iter().any(|m| m.dir_name() == f.migration))
        .collect()
}

/// The findings of `pending` ([`findings_of`]) and, on a Citus
/// coordinator, the Citus rules' findings too. A build without the parser
/// (`cli`) has no Citus findings: the facts file is written without a
/// database, so it cannot hold them.
fn findings_with_citus(
    source: &MigrationSource,
    pending: &[LocalMigration],
    conn: &mut DbConnection,
) -> Result<Vec<Finding>> {
    #[cfg_attr(not(feature = "cli"), allow(unused_mut))]
    let mut findings = findings_of(source, pending);
    #[cfg(feature = "cli")]
    if let Some(tables) = citus_tables_of(conn)? {
        findings.extend(citus_findings_of(source, pending, tables));
    }
    #[cfg(not(feature = "cli"))]
    let _ = conn;
    Ok(findings)
}

/// Adds each finding's live table size and consequence (`taskdb lint --database-url`).
#[cfg(feature = "cli")]
pub fn annotate(conn: &mut DbConnection, findings: &mut [Finding]) -> Result<()> {
    crate::db::on_backend!(conn,
        Postgres(pg) => {
            let sizes = table_sizes(pg, &tables_of(findings))?;
            for f in findings.iter_mut() {
                if let Some(size) = f.table.as_ref().and_then(|t| sizes.get(t)) {
                    f.size = Some(*size);
                    f.consequence = Some(consequence(f, *size));
                }
            }
            Ok(())
        },
        Sqlite(_lite) => {
            let _ = findings; // SQLite has no table sizes to add.
            Ok(())
        },
    )
}

#[cfg(feature = "postgres")]
fn tables_of(findings: &[Finding]) -> Vec<String> {
    let mut tables: Vec<String> = findings.iter().filter_map(|f| f.table.clone()).collect();
    tables.sort();
    tables.dedup();
    tables
}

/// Judges findings against live sizes.
pub fn judge(
    conn: &mut DbConnection,
    mut findings: Vec<Finding>,
    threshold: u64,
) -> Result<PreflightReport> {
    // An opaque statement is a warning to a reader, but the pre-flight
    // cannot tell what it locks: unless allowed, it is judged like a file
    // lint cannot check.
    // A Citus rule's finding (a warning too) is wrong on the cluster.
    findings.retain(|f| {
        f.level == Level::Error
            || ((f.rule == super::Rule::OpaqueStatement || f.rule.is_citus()) && !f.allowed)
    });
    let report = PreflightReport {
        threshold,
        items: Vec::new(),
    };
    if findings.is_empty() {
        return Ok(report);
    }
    crate::db::on_backend!(conn,
        Postgres(pg) => {
            let sizes = table_sizes(pg, &tables_of(&findings))?;
            // A finding that names no table (a file lint cannot read, a
            // DO block, a timeout override) could touch any: it is judged
            // by the largest table there is.
            let largest = if findings.iter().any(|f| f.table.is_none() && !f.allowed) {
                largest_table(pg)?
            } else {
                None
            };
            Ok(judge_sizes(findings, &sizes, largest, report))
        },
        Sqlite(_lite) => Ok(report),
    )
}

/// The largest user table by rows (of the three largest by bytes), with
/// its name: what a finding that names no table is judged by.
#[cfg(feature = "postgres")]
fn largest_table(conn: &mut diesel::PgConnection) -> Result<Option<(String, TableSize)>> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let names: Vec<Name> = diesel::sql_query(
        "SELECT c.oid::regclass::text AS name FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'm') \
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
            AND n.nspname NOT LIKE 'pg_toast%' \
          ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 3",
    )
    .load(conn)?;
    let mut largest: Option<(String, TableSize)> = None;
    for Name { name } in names {
        if let Some(size) = crate::catalog::table_size::table_size(conn, &name)? {
            if largest.as_ref().is_none_or(|(_, l)| size.rows > l.rows) {
                largest = Some((name, size));
            }
        }
    }
    Ok(largest)
}

/// Each finding's verdict, given the live sizes of its tables (and the
/// largest table, for findings that name none).
#[cfg(feature = "postgres")]
fn judge_sizes(
    findings: Vec<Finding>,
    sizes: &BTreeMap<String, TableSize>,
    largest: Option<(String, TableSize)>,
    mut report: PreflightReport,
) -> PreflightReport {
    let threshold = report.threshold;
    let small = |s: TableSize| u64::try_from(s.rows).unwrap_or(0) <= threshold;
    for mut f in findings {
        let size = f.table.as_ref().and_then(|t| sizes.get(t)).copied();
        if let Some(size) = size {
            f.size = Some(size);
            f.consequence = Some(consequence(&f, size));
        }
        let verdict = if f.allowed {
            Verdict::Allowed
        } else if f.rule.is_citus() {
            // Wrong on a Citus cluster whatever the table's size.
            Verdict::Refused
        } else {
            match (&f.table, size) {
                (Some(_), None) => Verdict::NoTable,
                (Some(_), Some(s)) if small(s) => Verdict::Small,
                (Some(_), Some(_)) => Verdict::Refused,
                (None, _) => {
                    // Unsafe only where it can hurt: on a database whose
                    // every table is small, nothing can queue for long.
                    let (verdict, what) = match &largest {
                        None => (Verdict::Small, "this database has no table yet".to_string()),
                        Some((name, l)) => (
                            if small(*l) {
                                Verdict::Small
                            } else {
                                Verdict::Refused
                            },
                            format!("the largest table here is {name} ({})", describe_size(*l)),
                        ),
                    };
                    f.consequence = Some(format!("{}; {what}", f.message));
                    verdict
                }
            }
        };
        report.items.push(PreflightItem {
            finding: f,
            verdict,
        });
    }
    report
}

/// The pre-flight of `migrate` and `run_pending`: refuses (with
/// [`Error::UnsafeMigration`], nothing applied) when a pending migration
/// has an error finding, not allowed, on a table above `threshold` rows.
/// Costs no query when the pending migrations have no error finding.
pub fn check_pending(
    source: &MigrationSource,
    pending: &[LocalMigration],
    threshold: u64,
    conn: &mut DbConnection,
) -> Result<PreflightReport> {
    if conn.backend() != Backend::Postgres || pending.is_empty() {
        return Ok(PreflightReport::default());
    }
    let findings = findings_with_citus(source, pending, conn)?;
    check_findings(findings, threshold, conn)
}

/// [`check_pending`] for findings the caller already has (e.g. from
/// [`super::lint_migrations`] on migrations not compiled into this build).
pub fn check_findings(
    findings: Vec<Finding>,
    threshold: u64,
    conn: &mut DbConnection,
) -> Result<PreflightReport> {
    let report = judge(conn, findings, threshold)?;
    match report.refusal() {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// What the pre-flight would say, for `migrate --dry-run` (never refuses).
#[cfg(feature = "cli")]
pub fn dry_run_lines(
    source: &MigrationSource,
    pending: &[LocalMigration],
    threshold: u64,
    conn: &mut DbConnection,
) -> Result<Vec<String>> {
    if conn.backend() != Backend::Postgres || pending.is_empty() {
        return Ok(Vec::new());
    }
    let findings = findings_with_citus(source, pending, conn)?;
    let report = judge(conn, findings, threshold)?;
    let mut lines = report.lines();
    if lines.is_empty() {
        lines.push("lint: no findings in the pending migrations".into());
    }
    Ok(lines)
}

/// Checks a PostgreSQL migration directory's facts against a facts file:
/// `Err` names what differs.
#[cfg(feature = "cli")]
pub fn check_facts(
    migrations: &[LocalMigration],
    file_text: &str,
) -> std::result::Result<(), String> {
    let want = facts_json(migrations);
    let want: Facts = serde_json::from_str(&want).map_err(|e| e.to_string())?;
    let have: Facts =
        serde_json::from_str(file_text).map_err(|e| format!("the facts file is not valid: {e}"))?;
    for m in &want.migrations {
        match have.migrations.iter().find(|h| h.migration == m.migration) {
            None => return Err(format!("{} is missing from the facts file", m.migration)),
            Some(h) if h.checksum != m.checksum => {
                return Err(format!(
                    "{}'s up.sql changed since the facts were written",
                    m.migration
                ))
            }
            Some(h) if h.findings != m.findings => {
                return Err(format!(
                    "{}'s findings differ from the facts file",
                    m.migration
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = have
        .migrations
        .iter()
        .find(|h| !want.migrations.iter().any(|m| m.migration == h.migration))
    {
        return Err(format!(
            "{} is in the facts file but not in the migrations",
            extra.migration
        ));
    }
    Ok(())
}

/// The embedded facts, for tests: `Err` names what differs from the
/// migrations compiled into this build.
#[cfg(feature = "cli")]
pub fn check_embedded_facts() -> std::result::Result<(), String> {
    let compiled = facts_of(&MigrationSource::Embedded);
    for m in crate::source::migrations(Backend::Postgres) {
        match compiled
            .migrations
            .iter()
            .find(|f| f.migration == m.dir_name())
        {
            Some(f) if f.checksum == m.checksum() => {}
            Some(_) => {
                return Err(format!(
                    "{} changed since the facts were written",
                    m.dir_name()
                ))
            }
            None => return Err(format!("{} has no facts", m.dir_name())),
        }
    }
    Ok(())
}

#[cfg(all(test, feature = "cli", feature = "postgres"))]
mod tests {
    use super::*;
    use crate::lint::Rule;

    /// A refusal with no recipe to give says nothing about one (it used to
    /// end in an empty "safe recipe: ").
    #[test]
    fn a_refusal_without_a_recipe_does_not_promise_one() {
        let finding = Finding::at(
            Rule::ParseError,
            "2099-01-01-000001_x",
            "migrations/postgres/2099-01-01-000001_x/up.sql",
            1,
            1,
            "cannot tell what it locks".into(),
        );
        let report = PreflightReport {
            threshold: 10,
            items: vec![PreflightItem {
                finding,
                verdict: Verdict::Refused,
            }],
        };
        let text = report.refusal().expect("refused").to_string();
        assert!(
            text.contains("[parse-error] cannot tell what it locks"),
            "{text}"
        );
        assert!(!text.contains("safe recipe"), "{text}");
    }

    /// A migration the facts file does not cover is linted on the spot,
    /// with its own `metadata.toml`, and the covered ones keep their facts:
    /// one new migration does not turn every other one into findings.
    #[test]
    fn an_uncovered_migration_is_linted_with_its_metadata_and_alone() {
        let mut pending = crate::source::migrations(Backend::Postgres);
        pending.push(LocalMigration::leaked_with_metadata(
            "2099-01-01-000001_touch_tasks",
            "SELECT diesel_manage_updated_at('tasks');\nCREATE INDEX idx_probe ON tasks (title);",
            Some("run_in_transaction = true\n[lint]\nallow = [{ rule = \"opaque-statement\", reason = \"only a trigger\" }]"),
        ));
        let findings = findings_of(&MigrationSource::Embedded, &pending);
        let rules: Vec<(&str, bool)> = findings
            .iter()
            .filter(|f| !f.allowed && f.rule != Rule::MissingDown)
            .map(|f| {
                (
                    f.migration.as_str(),
                    f.rule == Rule::IndexWithoutConcurrently,
                )
            })
            .collect();
        assert_eq!(
            rules,
            [("2099-01-01-000001_touch_tasks", true)],
            "{findings:#?}"
        );
        let opaque = findings
            .iter()
            .find(|f| {
                f.migration == "2099-01-01-000001_touch_tasks" && f.rule == Rule::OpaqueStatement
            })
            .expect("the opaque call is found");
        assert!(opaque.allowed, "its metadata.toml allows it");
    }
}

/// With or without the parser (`cli`): the lean build, whose pre-flight
/// cannot read a migration the facts do not cover, judges it by the
/// largest table rather than refusing a database of small ones.
#[cfg(all(test, feature = "postgres", feature = "testing"))]
mod small_databases {
    use super::*;

    #[test]
    fn an_uncovered_migration_proceeds_on_a_database_of_small_tables() {
        let db = crate::testing::TestDb::postgres().unwrap();
        let mut conn = db.conn().unwrap();
        let uncovered = LocalMigration::leaked_with_metadata(
            "2099-01-01-000001_index_tasks_title",
            "CREATE INDEX idx_probe_title ON tasks (title);",
            Some("run_in_transaction = true"),
        );
        let report = check_pending(
            &MigrationSource::Embedded,
            &[uncovered],
            DEFAULT_UNSAFE_THRESHOLD,
            &mut conn,
        )
        .unwrap();
        assert!(!report.items.is_empty(), "it has a finding");
        assert!(
            report.items.iter().all(|i| i.verdict == Verdict::Small),
            "{:#?}",
            report.items
        );
    }
}
