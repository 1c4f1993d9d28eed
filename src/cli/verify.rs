//! `taskdb verify`: the live schema against the one taskdb's migrations
//! produce, plus INVALID indexes, NOT VALID constraints and duplicate or
//! redundant indexes. Exit 1 on any difference.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::output::{self, Output};
use super::{Database, OutputFormat};
use crate::catalog::{ConstraintKind, Index, Table};
use crate::verify::{self, Report};

/// `verify --help`: what it compares and the JSON fields (a stable
/// interface for deploy scripts and CI).
pub(super) const LONG_ABOUT: &str = r#"Compares the live schema with the schema taskdb's migrations produce, built
fresh for the comparison: on PostgreSQL in a scratch database
`taskdb_verify_<random>` created and dropped on the same server (needs
CREATEDB; without it, in a schema of a transaction that is rolled back), on
SQLite in memory. Ctrl-C or SIGTERM drops the scratch database before
exiting (130 / 143); one left behind by a verify that was killed outright
is dropped by the next verify on the server, never one that a running
verify still uses. Compares tables, columns (type, nullability, default),
primary keys, unique rules, foreign keys (ON DELETE), indexes and the
updated_at triggers, and always reports INVALID indexes, NOT VALID
constraints and duplicate or redundant indexes. Tracking tables
(__diesel_schema_migrations, __taskdb_ledger, the Python runner's
schema_migrations) are ignored. Exits 1 when anything differs. Uses
$DIRECT_DATABASE_URL when set, like the migration commands.

On a read-only hot standby nothing can be created, so the expected schema
is built on the primary named by --expected-from (default
$DIRECT_DATABASE_URL) and compared with the standby's replayed schema: a
way to see that a replica has caught up with a migration. A role that may
create neither a database nor a schema (a read-only one) is refused with
what it needs, or has the expected schema built through --expected-from.

JSON output (--format json), one object:
  database       the URL, password removed
  backend        "postgres" | "sqlite"
  clean          true when nothing differs (exit 0)
  expected_from  "scratch_database" | "scratch_schema" | "in_memory"
  expected_on_primary
                 the primary's URL (password removed) when the database
                 is a read-only standby and the expected schema was built
                 there (--expected-from / DIRECT_DATABASE_URL), or that
                 URL when this role may create nothing and it was built
                 there instead; else null
  pending_migrations
                 how many migrations are not applied yet (their changes
                 show up as differences until `taskdb migrate`); null
                 when the tracking tables cannot be read
  differences    [{kind, object, expected, actual}]; expected/actual are
                 strings, or null when the object should not exist / is
                 absent. kind is one of missing_table, extra_table,
                 missing_column, extra_column, column_type,
                 column_nullability, column_default, missing_constraint,
                 extra_constraint, changed_constraint, missing_index,
                 extra_index, changed_index, missing_trigger,
                 extra_trigger, changed_trigger, invalid_index,
                 not_valid_constraint, duplicate_index, redundant_index
  schema         the live schema: {tables: {name: {name, columns: [{name,
                 type, nullable, default}], constraints: [{name, kind,
                 columns, references, on_delete, validated, definition}],
                 indexes: [{name, columns, unique, primary, valid,
                 partial, method, constraint, definition}], triggers:
                 [{name, definition}]}}}"#;

#[derive(Debug, Args)]
pub struct Opts {
    /// Output format: `text` (a report for people) or `json` (one object
    /// with the fields listed above, for scripts and CI)
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// When the database is a read-only hot standby, or the role may
    /// create neither a database nor a schema: a URL (the primary's, or a
    /// role's that may) on whose server the expected schema is built
    /// instead (default: $DIRECT_DATABASE_URL)
    #[arg(
        long,
        value_name = "URL",
        env = "DIRECT_DATABASE_URL",
        hide_env_values = true
    )]
    pub expected_from: Option<String>,
}

/// The JSON document `verify --format json` prints; its fields are
/// documented in [`LONG_ABOUT`] (the command's --help).
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    database: &'a str,
    backend: crate::Backend,
    clean: bool,
    expected_from: verify::ExpectedSource,
    expected_on_primary: Option<&'a str>,
    pending_migrations: Option<usize>,
    differences: &'a [verify::Difference],
    schema: &'a crate::catalog::Schema,
}

pub fn run(opts: &Opts, db: &Database, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    let mut conn = db.connect()?;
    // Best effort: a role may see the schema but not the tracking tables.
    let pending = crate::migrate::MigrationPlan::load_from(&mut conn, &db.migrations)
        .ok()
        .map(|plan| plan.pending().count());
    let primary = opts
        .expected_from
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .map(crate::db::DatabaseUrl::parse)
        .transpose()?;
    let report = verify::verify_with_primary(&db.url, &mut conn, primary.as_ref(), &db.migrations)?;
    match opts.format {
        OutputFormat::Json => {
            let json = JsonReport {
                database: db.url.redacted(),
                backend: report.backend,
                clean: report.is_clean(),
                expected_from: report.expected_from,
                expected_on_primary: report.built_on_primary.as_deref(),
                pending_migrations: pending,
                differences: &report.differences,
                schema: &report.actual,
            };
            // Serialised first, so a closed pipe surfaces as an io error.
            let text = serde_json::to_string_pretty(&json)?;
            writeln!(out, "{text}")?;
        }
        OutputFormat::Text => {
            print_report(&report, out)?;
            if let Some(pending) = pending.filter(|n| *n > 0) {
                writeln!(
                    out,
                    "Note: {pending} migration(s) are pending; `taskdb migrate` applies them (`--dry-run` shows their SQL)."
                )?;
            }
        }
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(report: &Report, out: &mut Output<'_>) -> anyhow::Result<()> {
    writeln!(out, "Database Schema Verification ({})", report.backend)?;
    match &report.built_on_primary {
        Some(primary) if report.live_is_standby => writeln!(
            out,
            "Expected schema: built on the primary {primary}, in {} (this database is a read-only standby)",
            report.expected_from.describe()
        )?,
        Some(elsewhere) => writeln!(
            out,
            "Expected schema: built on {elsewhere} (--expected-from), in {} (this role may create nothing here)",
            report.expected_from.describe()
        )?,
        None => writeln!(
            out,
            "Expected schema: built in {}",
            report.expected_from.describe()
        )?,
    }
    // The seed's order: users, then tasks, then anything else.
    let mut tables: Vec<&Table> = report.actual.tables.values().collect();
    tables.sort_by_key(|t| (t.name != "users", t.name != "tasks", t.name.clone()));
    for table in &tables {
        writeln!(out)?;
        writeln!(out, "{} Table:", output::capitalised(&table.name))?;
        writeln!(
            out,
            "{:<15} {:<28} {:<9} Default",
            "Column", "Type", "Nullable"
        )?;
        for c in &table.columns {
            writeln!(
                out,
                "{:<15} {:<28} {:<9} {}",
                c.name,
                c.data_type,
                if c.nullable { "NULL" } else { "NOT NULL" },
                c.default.as_deref().unwrap_or("")
            )?;
        }
    }
    for table in &tables {
        writeln!(out)?;
        writeln!(out, "Indexes on {}:", output::capitalised(&table.name))?;
        if table.indexes.is_empty() {
            writeln!(out, "- none")?;
        }
        for index in &table.indexes {
            writeln!(out, "- {}", describe_index(index))?;
        }
    }
    writeln!(out)?;
    writeln!(out, "Foreign Key Constraints:")?;
    let mut any = false;
    for table in &tables {
        for fk in table
            .constraints
            .iter()
            .filter(|c| c.kind == ConstraintKind::ForeignKey)
        {
            any = true;
            let (ref_table, ref_cols) = fk.references.clone().unwrap_or_default();
            writeln!(
                out,
                "{}: {}.{} -> {}.{} (ON DELETE {}){}",
                fk.name,
                table.name,
                fk.columns.join(","),
                ref_table,
                ref_cols.join(","),
                fk.on_delete.as_deref().unwrap_or("NO ACTION"),
                if fk.validated { "" } else { " NOT VALID" }
            )?;
        }
    }
    if !any {
        writeln!(out, "none")?;
    }
    writeln!(out)?;
    writeln!(out, "Triggers:")?;
    for table in &tables {
        for trigger in &table.triggers {
            writeln!(out, "- {} on {}", trigger.name, table.name)?;
        }
    }
    writeln!(out)?;
    if report.is_clean() {
        writeln!(
            out,
            "✓ The schema matches taskdb's migrations; no invalid, unvalidated or redundant objects."
        )?;
    } else {
        writeln!(out, "✗ {} difference(s):", report.differences.len())?;
        for d in &report.differences {
            writeln!(out, "  {d}")?;
        }
    }
    Ok(())
}

fn describe_index(index: &Index) -> String {
    let what = if index.primary {
        "PRIMARY KEY on "
    } else if index.unique {
        "UNIQUE on "
    } else {
        "on "
    };
    let mut notes = Vec::new();
    if !index.valid {
        notes.push("INVALID");
    }
    if index.partial {
        notes.push("partial");
    }
    format!(
        "{} ({what}{}){}",
        index.name,
        index.columns.join(", "),
        if notes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", notes.join(", "))
        }
    )
}
