//! `verify`: compares the live schema with the schema taskdb's migrations
//! produce, and checks the live schema's health.
//!
//! The expected schema has one source of truth, the migrations: it is built
//! by applying them to a scratch database of the same backend
//! ([`expected`]) and read with the same catalog reader as the live
//! database ([`catalog`]). The comparison covers tables, columns (type,
//! nullability, default), primary keys, unique rules (the case-insensitive
//! email index included), foreign keys (target, `ON DELETE`), indexes
//! (definition) and the `updated_at` triggers. The tracking tables
//! ([`catalog::IGNORED_TABLES`]) are left out.
//!
//! Health findings are reported even when the schema otherwise matches:
//! INVALID indexes, NOT VALID constraints, and duplicate or redundant
//! indexes. An index is redundant when another valid b-tree index on the
//! same table (a primary key or unique constraint's index counts) has the
//! same key columns, or starts with all of its key columns, and it adds no
//! rule of its own: a UNIQUE index is never redundant with a non-unique one
//! that covers it, because it enforces something the other does not, while
//! a non-unique index with the same keys as a UNIQUE one is.

/// The catalog reader, re-exported where `verify`'s users look for it.
pub use crate::catalog;
pub mod expected;

use std::fmt;

use catalog::{ConstraintKind, Index, Schema, Table};
pub use expected::ExpectedSource;

use crate::db::{Backend, DatabaseUrl, DbConnection, HasBackend as _};
use crate::error::{Error, Result};
use crate::source::MigrationSource;

/// What kind of difference. Serialised in snake_case (`extra_index`); the
/// set is part of `taskdb verify --format json`'s stable output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    MissingTable,
    ExtraTable,
    MissingColumn,
    ExtraColumn,
    ColumnType,
    ColumnNullability,
    ColumnDefault,
    MissingConstraint,
    ExtraConstraint,
    ChangedConstraint,
    MissingIndex,
    ExtraIndex,
    ChangedIndex,
    MissingTrigger,
    ExtraTrigger,
    ChangedTrigger,
    /// A PostgreSQL index whose build failed or was cut off.
    InvalidIndex,
    /// A PostgreSQL constraint added `NOT VALID` and never validated.
    NotValidConstraint,
    /// Same table, same key columns, same uniqueness as another index.
    DuplicateIndex,
    /// Covered by another index (see the module docs).
    RedundantIndex,
}

impl DifferenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DifferenceKind::MissingTable => "missing_table",
            DifferenceKind::ExtraTable => "extra_table",
            DifferenceKind::MissingColumn => "missing_column",
            DifferenceKind::ExtraColumn => "extra_column",
            DifferenceKind::ColumnType => "column_type",
            DifferenceKind::ColumnNullability => "column_nullability",
            DifferenceKind::ColumnDefault => "column_default",
            DifferenceKind::MissingConstraint => "missing_constraint",
            DifferenceKind::ExtraConstraint => "extra_constraint",
            DifferenceKind::ChangedConstraint => "changed_constraint",
            DifferenceKind::MissingIndex => "missing_index",
            DifferenceKind::ExtraIndex => "extra_index",
            DifferenceKind::ChangedIndex => "changed_index",
            DifferenceKind::MissingTrigger => "missing_trigger",
            DifferenceKind::ExtraTrigger => "extra_trigger",
            DifferenceKind::ChangedTrigger => "changed_trigger",
            DifferenceKind::InvalidIndex => "invalid_index",
            DifferenceKind::NotValidConstraint => "not_valid_constraint",
            DifferenceKind::DuplicateIndex => "duplicate_index",
            DifferenceKind::RedundantIndex => "redundant_index",
        }
    }

    /// Health findings about the live schema alone (not a comparison).
    pub fn is_health_finding(self) -> bool {
        matches!(
            self,
            DifferenceKind::InvalidIndex
                | DifferenceKind::NotValidConstraint
                | DifferenceKind::DuplicateIndex
                | DifferenceKind::RedundantIndex
        )
    }
}

impl fmt::Display for DifferenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One way the live database differs from what it should be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    pub kind: DifferenceKind,
    /// What it is about: `table users`, `column users.email`,
    /// `index idx_users_email on users`, `constraint fk_tasks_user_id on tasks`,
    /// `trigger set_updated_at on users`.
    pub object: String,
    /// What taskdb's migrations produce (None: the object should not exist).
    pub expected: Option<String>,
    /// What the live database has (None: the object is absent).
    pub actual: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: expected {}, found {}",
            self.kind,
            self.object,
            self.expected.as_deref().unwrap_or("none"),
            self.actual.as_deref().unwrap_or("none")
        )
    }
}

/// The outcome of `verify`.
#[derive(Debug, Clone)]
pub struct Report {
    pub backend: Backend,
    /// Where the expected schema was built.
    pub expected_from: ExpectedSource,
    /// The primary it was built on (password removed) when the live
    /// database is a read-only standby, or where `--expected-from` had it
    /// built when this role may create nothing; `None`: on the live server.
    pub built_on_primary: Option<String>,
    /// True when the live database is a read-only standby.
    pub live_is_standby: bool,
    /// The live schema.
    pub actual: Schema,
    /// Every difference and health finding; empty when clean.
    pub differences: Vec<Difference>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Reads the live schema of `conn` (the database at `url`), builds the
/// expected one and compares them. Changes nothing in the live database.
pub fn verify(url: &DatabaseUrl, conn: &mut DbConnection) -> Result<Report> {
    verify_with_primary(url, conn, None, &MigrationSource::Embedded)
}

/// [`verify`] that also works on a read-only hot standby: there nothing
/// can be created (no scratch database, not even a schema in a rolled-back
/// transaction), so the expected schema is built on `primary` instead
/// (in a scratch database, or a rolled-back scratch schema without
/// CREATEDB). A standby without `primary` is refused, naming what to pass.
/// So is a role that may create neither a database nor a schema
/// ([`Error::CannotBuildExpected`]), unless `primary` names another server
/// or role to build it with. The expected schema is what `source`'s
/// migrations build.
pub fn verify_with_primary(
    url: &DatabaseUrl,
    conn: &mut DbConnection,
    primary: Option<&DatabaseUrl>,
    source: &MigrationSource,
) -> Result<Report> {
    let actual = catalog::read(conn)?;
    let live_is_standby = is_standby(conn)?;
    let ((expected, expected_from), built_on_primary) = if live_is_standby {
        let Some(primary) = primary else {
            return Err(Error::MigrationState(format!(
                "{} is a read-only standby (in recovery): the schema taskdb's migrations produce cannot be built there; pass --expected-from with the primary's URL (or set DIRECT_DATABASE_URL to it; in the library, the `primary` of `verify_with_primary`) to build it on the primary",
                url.redacted()
            )));
        };
        let mut primary_conn = crate::db::connect(primary)?;
        if is_standby(&mut primary_conn)? {
            return Err(Error::MigrationState(format!(
                "{} (given to build the expected schema on) is a standby too: name the primary",
                primary.redacted()
            )));
        }
        (
            expected::expected_schema(primary, &mut primary_conn, source)?,
            Some(primary.redacted().to_string()),
        )
    } else {
        match expected::expected_schema(url, conn, source) {
            // A role that may create nothing here (a read-only one) builds
            // on the server --expected-from names, when that is another.
            Err(Error::CannotBuildExpected { .. })
                if primary.is_some_and(|p| p.redacted() != url.redacted()) =>
            {
                let elsewhere = primary.unwrap_or(url);
                let mut other = crate::db::connect(elsewhere)?;
                (
                    expected::expected_schema(elsewhere, &mut other, source)?,
                    Some(elsewhere.redacted().to_string()),
                )
            }
            built => (built?, None),
        }
    };
    // On a Citus coordinator after `taskdb distribute`, tasks is keyed by
    // (user_id, id) on purpose.
    #[cfg(feature = "postgres")]
    let expected = {
        let mut expected = expected;
        if url.backend() == Backend::Postgres
            && crate::distribute::tasks_distributed(&mut crate::db::connect_postgres(url)?)?
        {
            crate::distribute::as_distributed(&mut expected);
        }
        expected
    };
    let mut differences = compare(&expected, &actual);
    differences.extend(health(&actual));
    Ok(Report {
        backend: conn.backend(),
        expected_from,
        built_on_primary,
        live_is_standby,
        actual,
        differences,
    })
}

/// True on a PostgreSQL server in recovery (a hot standby).
fn is_standby(conn: &mut DbConnection) -> Result<bool> {
    if conn.backend() != Backend::Postgres {
        return Ok(false);
    }
    #[derive(diesel::QueryableByName)]
    struct Recovery {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        in_recovery: bool,
    }
    let row: Recovery = diesel::RunQueryDsl::get_result(
        diesel::sql_query("SELECT pg_is_in_recovery() AS in_recovery"),
        conn,
    )?;
    Ok(row.in_recovery)
}

fn diff(
    kind: DifferenceKind,
    object: String,
    expected: Option<String>,
    actual: Option<String>,
) -> Difference {
    Difference {
        kind,
        object,
        expected,
        actual,
    }
}

/// Every way `actual` differs from `expected` (health findings excluded).
pub fn compare(expected: &Schema, actual: &Schema) -> Vec<Difference> {
    use DifferenceKind::*;
    let mut out = Vec::new();
    for (name, table) in &expected.tables {
        match actual.tables.get(name) {
            None => out.push(diff(
                MissingTable,
                format!("table {name}"),
                Some(describe_columns(table)),
                None,
            )),
            Some(live) => compare_table(table, live, &mut out),
        }
    }
    for (name, table) in &actual.tables {
        if !expected.tables.contains_key(name) {
            out.push(diff(
                ExtraTable,
                format!("table {name}"),
                None,
                Some(describe_columns(table)),
            ));
        }
    }
    out
}

fn describe_columns(table: &Table) -> String {
    let cols: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    format!("({})", cols.join(", "))
}

fn describe_column(c: &catalog::Column) -> String {
    format!(
        "{} {}{}",
        c.data_type,
        if c.nullable { "NULL" } else { "NOT NULL" },
        c.default
            .as_ref()
            .map(|d| format!(" DEFAULT {d}"))
            .unwrap_or_default()
    )
}

fn compare_table(expected: &Table, actual: &Table, out: &mut Vec<Difference>) {
    use DifferenceKind::*;
    let t = &expected.name;
    for col in &expected.columns {
        let object = format!("column {t}.{}", col.name);
        let Some(live) = actual.columns.iter().find(|c| c.name == col.name) else {
            out.push(diff(
                MissingColumn,
                object,
                Some(describe_column(col)),
                None,
            ));
            continue;
        };
        if live.data_type != col.data_type {
            out.push(diff(
                ColumnType,
                object.clone(),
                Some(col.data_type.clone()),
                Some(live.data_type.clone()),
            ));
        }
        if live.nullable != col.nullable {
            let label = |n: bool| if n { "NULL" } else { "NOT NULL" }.to_string();
            out.push(diff(
                ColumnNullability,
                object.clone(),
                Some(label(col.nullable)),
                Some(label(live.nullable)),
            ));
        }
        if live.default != col.default {
            out.push(diff(
                ColumnDefault,
                object,
                col.default.clone(),
                live.default.clone(),
            ));
        }
    }
    for live in &actual.columns {
        if !expected.columns.iter().any(|c| c.name == live.name) {
            out.push(diff(
                ExtraColumn,
                format!("column {t}.{}", live.name),
                None,
                Some(describe_column(live)),
            ));
        }
    }

    // Constraints are matched by what they enforce, so a renamed one shows
    // as renamed rather than as one missing plus one extra.
    for con in &expected.constraints {
        let object = format!("{} {} on {t}", con.kind.label(), con.name);
        let Some(live) = actual
            .constraints
            .iter()
            .find(|c| c.signature() == con.signature())
        else {
            out.push(diff(
                MissingConstraint,
                object,
                Some(con.definition.clone()),
                None,
            ));
            continue;
        };
        if live.name != con.name {
            out.push(diff(
                ChangedConstraint,
                object.clone(),
                Some(format!("named {}", con.name)),
                Some(format!("named {}", live.name)),
            ));
        }
        // NOT VALID is a health finding of its own.
        if without_not_valid(&live.definition) != without_not_valid(&con.definition) {
            out.push(diff(
                ChangedConstraint,
                object,
                Some(con.definition.clone()),
                Some(live.definition.clone()),
            ));
        }
    }
    for live in &actual.constraints {
        if !expected
            .constraints
            .iter()
            .any(|c| c.signature() == live.signature())
        {
            out.push(diff(
                ExtraConstraint,
                format!("{} {} on {t}", live.kind.label(), live.name),
                None,
                Some(live.definition.clone()),
            ));
        }
    }

    // An index that implements a constraint is covered by the constraint
    // comparison above.
    for index in &expected.indexes {
        let object = format!("index {} on {t}", index.name);
        match actual.indexes.iter().find(|i| i.name == index.name) {
            None if index.constraint.is_none() => out.push(diff(
                MissingIndex,
                object,
                Some(index.definition.clone()),
                None,
            )),
            Some(live) if live.definition != index.definition => out.push(diff(
                ChangedIndex,
                object,
                Some(index.definition.clone()),
                Some(live.definition.clone()),
            )),
            _ => {}
        }
    }
    for live in &actual.indexes {
        if live.constraint.is_none() && !expected.indexes.iter().any(|i| i.name == live.name) {
            out.push(diff(
                ExtraIndex,
                format!("index {} on {t}", live.name),
                None,
                Some(live.definition.clone()),
            ));
        }
    }

    for trigger in &expected.triggers {
        let object = format!("trigger {} on {t}", trigger.name);
        match actual.triggers.iter().find(|g| g.name == trigger.name) {
            None => out.push(diff(
                MissingTrigger,
                object,
                Some(trigger.definition.clone()),
                None,
            )),
            Some(live) if live.definition != trigger.definition => out.push(diff(
                ChangedTrigger,
                object,
                Some(trigger.definition.clone()),
                Some(live.definition.clone()),
            )),
            _ => {}
        }
    }
    for live in &actual.triggers {
        if !expected.triggers.iter().any(|g| g.name == live.name) {
            out.push(diff(
                ExtraTrigger,
                format!("trigger {} on {t}", live.name),
                None,
                Some(live.definition.clone()),
            ));
        }
    }
}

fn without_not_valid(definition: &str) -> &str {
    definition.strip_suffix(" NOT VALID").unwrap_or(definition)
}

/// Findings about the live schema on its own: INVALID indexes, NOT VALID
/// constraints, duplicate and redundant indexes.
pub fn health(actual: &Schema) -> Vec<Difference> {
    use DifferenceKind::*;
    let mut out = Vec::new();
    for table in actual.tables.values() {
        let t = &table.name;
        for index in table.indexes.iter().filter(|i| !i.valid) {
            out.push(diff(
                InvalidIndex,
                format!("index {} on {t}", index.name),
                Some("valid".into()),
                Some(
                    "INVALID: its build failed or was cut off; it slows every write, serves no query and enforces nothing (drop it and build it again)"
                        .into(),
                ),
            ));
        }
        for con in table.constraints.iter().filter(|c| !c.validated) {
            out.push(diff(
                NotValidConstraint,
                format!("{} {} on {t}", con.kind.label(), con.name),
                Some("validated".into()),
                Some(
                    "NOT VALID: rows that existed when it was added were never checked (ALTER TABLE … VALIDATE CONSTRAINT)"
                        .into(),
                ),
            ));
        }
        out.extend(redundant_indexes(table));
    }
    out
}

/// An index as far as covering goes: its keys and whether it is unique.
struct Keys<'a> {
    name: &'a str,
    columns: &'a [String],
    unique: bool,
    /// Implements a constraint (reported last among duplicates).
    constraint: bool,
}

fn usable(index: &Index) -> bool {
    index.valid && !index.partial && index.method == "btree"
}

fn redundant_indexes(table: &Table) -> Vec<Difference> {
    use DifferenceKind::{DuplicateIndex, RedundantIndex};
    let mut candidates: Vec<Keys<'_>> = table
        .indexes
        .iter()
        .filter(|i| usable(i))
        .map(|i| Keys {
            name: &i.name,
            columns: &i.columns,
            unique: i.unique,
            constraint: i.constraint.is_some(),
        })
        .collect();
    // SQLite's INTEGER PRIMARY KEY is the rowid itself and has no index
    // entry; it still covers an index on that column.
    let pk = table
        .constraints
        .iter()
        .find(|c| c.kind == ConstraintKind::PrimaryKey);
    if let Some(pk) = pk {
        if !candidates
            .iter()
            .any(|k| k.columns == pk.columns.as_slice())
        {
            candidates.push(Keys {
                name: &pk.name,
                columns: &pk.columns,
                unique: true,
                constraint: true,
            });
        }
    }
    let mut out = Vec::new();
    for (i, a) in candidates.iter().enumerate() {
        let object = format!("index {} on {}", a.name, table.name);
        let keys = |k: &Keys<'_>| format!("{} ({})", k.name, k.columns.join(", "));
        let mut finding = None;
        for (j, b) in candidates.iter().enumerate() {
            if i == j {
                continue;
            }
            if a.columns == b.columns && a.unique == b.unique {
                // Report one of the pair: the one that implements no
                // constraint, else the later name.
                let a_goes = (!a.constraint && b.constraint)
                    || (a.constraint == b.constraint && a.name > b.name);
                if a_goes {
                    finding = Some((
                        DuplicateIndex,
                        format!("no second index on ({})", a.columns.join(", ")),
                        format!("same key columns as {}", keys(b)),
                    ));
                    break;
                }
            } else if !a.unique && a.columns.len() <= b.columns.len() {
                // A non-unique index whose keys lead another index: the
                // other one serves every lookup it serves.
                if b.columns[..a.columns.len()] == *a.columns {
                    finding = Some((
                        RedundantIndex,
                        format!("no index on ({})", a.columns.join(", ")),
                        format!("covered by {}", keys(b)),
                    ));
                    break;
                }
            }
        }
        if let Some((kind, expected, actual)) = finding {
            if a.constraint && kind == RedundantIndex {
                // A constraint's index cannot go without the constraint.
                continue;
            }
            out.push(diff(kind, object, Some(expected), Some(actual)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(name: &str, columns: &[&str], unique: bool, constraint: bool) -> Index {
        Index {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            unique,
            primary: false,
            valid: true,
            partial: false,
            method: "btree".into(),
            constraint: constraint.then(|| name.to_string()),
            definition: String::new(),
        }
    }

    fn findings(indexes: Vec<Index>) -> Vec<(String, DifferenceKind)> {
        let table = Table {
            name: "t".into(),
            indexes,
            ..Table::default()
        };
        redundant_indexes(&table)
            .into_iter()
            .map(|d| (d.object, d.kind))
            .collect()
    }

    #[test]
    fn the_seed_databases_duplicates_are_found() {
        // tasks: three indexes lead with user_id.
        let tasks = findings(vec![
            index("tasks_pkey", &["id"], true, true),
            index("ix_tasks_user_id", &["user_id"], false, false),
            index("idx_tasks_user_id", &["user_id"], false, false),
            index(
                "idx_tasks_user_completed",
                &["user_id", "completed"],
                false,
                false,
            ),
        ]);
        assert!(tasks.contains(&(
            "index ix_tasks_user_id on t".into(),
            DifferenceKind::DuplicateIndex
        )));
        assert!(tasks.contains(&(
            "index idx_tasks_user_id on t".into(),
            DifferenceKind::RedundantIndex
        )));
        assert_eq!(tasks.len(), 2, "{tasks:?}");
        // users: the UNIQUE constraint and a second UNIQUE index on email.
        let users = findings(vec![
            index("users_email_key", &["email"], true, true),
            index("idx_users_email", &["email"], true, false),
        ]);
        assert_eq!(
            users,
            vec![(
                "index idx_users_email on t".into(),
                DifferenceKind::DuplicateIndex
            )]
        );
    }

    #[test]
    fn unique_indexes_are_not_redundant_with_wider_or_non_unique_ones() {
        assert!(findings(vec![
            index("u", &["a"], true, false),
            index("wide", &["a", "b"], false, false),
            index("plain", &["b"], false, false),
            index("plain_b", &["b", "a"], true, false),
        ])
        .iter()
        .all(|(o, _)| o != "index u on t"));
        // Non-unique with the same keys as a unique one: redundant.
        assert_eq!(
            findings(vec![
                index("u", &["a"], true, false),
                index("n", &["a"], false, false)
            ]),
            vec![("index n on t".into(), DifferenceKind::RedundantIndex)]
        );
        // Invalid and partial indexes cover nothing.
        let mut partial = index("p", &["a", "b"], false, false);
        partial.partial = true;
        assert!(findings(vec![partial, index("n", &["a"], false, false)]).is_empty());
        // Different expressions are different keys.
        assert!(findings(vec![
            index("lower", &["lower(email)"], true, false),
            index("plain", &["email"], true, false),
        ])
        .is_empty());
    }
}
