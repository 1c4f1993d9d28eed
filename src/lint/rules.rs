//! The PostgreSQL rules: for each statement of a migration, what lock it
//! takes on which existing table, what that blocks, and the safe way to
//! write it. A table created earlier in the same migration is new: nobody
//! else can be using it, so no locking rule fires on it.

use std::collections::{HashMap, HashSet};

use super::model::{AlterCmd, ColumnInfo, ConstraintKind, DefaultKind, Stmt, StmtKind, TypeInfo};
use super::Rule;

/// Locks as PostgreSQL names them (docs: "Explicit Locking").
pub const ACCESS_EXCLUSIVE: &str = "ACCESS EXCLUSIVE";
pub const SHARE: &str = "SHARE";
pub const SHARE_ROW_EXCLUSIVE: &str = "SHARE ROW EXCLUSIVE";
pub const ROW_EXCLUSIVE: &str = "ROW EXCLUSIVE";

/// What a lock keeps the app from doing while it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blocks {
    Reads,
    Writes,
    Both,
}

impl Blocks {
    pub fn describe(self) -> &'static str {
        match self {
            Blocks::Reads => "reads",
            Blocks::Writes => "writes",
            Blocks::Both => "reads and writes",
        }
    }
}

/// How long the lock is held, for the live-size consequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Duration {
    /// For a scan or a rewrite of the whole table: grows with its size.
    FullScan,
    /// For a catalog change only, but it breaks the app version still running.
    Brief,
    /// Until the migration's transaction commits, row by row.
    UntilCommit,
}

/// A rule that fired, before allow comments and positions are applied.
#[derive(Debug, Clone)]
pub struct RawFinding {
    pub rule: Rule,
    pub table: Option<String>,
    pub lock: Option<&'static str>,
    pub blocks: Option<Blocks>,
    pub duration: Option<Duration>,
    pub message: String,
    pub recipe: Option<String>,
}

/// What earlier migrations (in order) left behind, as far as the rules care.
#[derive(Debug, Default, Clone)]
pub struct Schema {
    columns: HashMap<(String, String), TypeInfo>,
    /// (table, column) with a validated `CHECK (column IS NOT NULL)`.
    validated_not_null: HashSet<(String, String)>,
    /// (table, constraint) → column, for `CHECK (column IS NOT NULL) NOT VALID`.
    pending_not_null: HashMap<(String, String), String>,
    indexes: HashMap<String, String>,
}

/// One migration file being checked.
#[derive(Debug, Default)]
pub struct FileState {
    created_tables: HashSet<String>,
    created_indexes: HashSet<String>,
    /// Constraints added NOT VALID in this file: (table, name).
    added_not_valid: HashSet<(String, String)>,
}

impl FileState {
    fn is_new(&self, table: &str) -> bool {
        self.created_tables.contains(table)
    }
}

fn finding(
    rule: Rule,
    table: &str,
    lock: &'static str,
    blocks: Blocks,
    duration: Duration,
    message: String,
    recipe: String,
) -> RawFinding {
    RawFinding {
        rule,
        table: Some(table.to_string()).filter(|t| !t.is_empty()),
        lock: Some(lock),
        blocks: Some(blocks),
        duration: Some(duration),
        message,
        recipe: Some(recipe),
    }
}

const OWN_MIGRATION: &str =
    "-- in a migration of its own, with metadata.toml: run_in_transaction = false";

/// Inserts `CONCURRENTLY` (and `IF NOT EXISTS`, so a rerun after a failed
/// build is safe) after the first `INDEX` keyword of `text`.
fn with_concurrently(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let guard = if lower.contains("if not exists") {
        ""
    } else {
        " IF NOT EXISTS"
    };
    match lower.find("index") {
        Some(at) => format!(
            "{} CONCURRENTLY{guard}{};",
            &text[..at + 5],
            &text[at + 5..]
        ),
        None => format!("{text};"),
    }
}

/// The statement with `NOT VALID` added, when it holds one subcommand.
fn with_not_valid(stmt: &Stmt, fallback: String) -> String {
    match &stmt.kind {
        StmtKind::AlterTable { cmds, .. } if cmds.len() == 1 => format!("{} NOT VALID;", stmt.text),
        _ => fallback,
    }
}

/// Checks one statement; `in_transaction` is the migration's setting.
pub fn check(
    stmt: &Stmt,
    in_transaction: bool,
    file: &mut FileState,
    schema: &mut Schema,
) -> Vec<RawFinding> {
    let mut out = Vec::new();
    if in_transaction && stmt.refuses_transaction() {
        out.push(RawFinding {
            rule: Rule::ConcurrentlyInTransaction,
            table: None,
            lock: None,
            blocks: None,
            duration: None,
            message: "this statement cannot run inside a transaction block, and this migration runs in one (no metadata.toml with `run_in_transaction = false`): it fails".into(),
            recipe: Some(format!("{OWN_MIGRATION}\n{};", stmt.text)),
        });
    }
    match &stmt.kind {
        StmtKind::CreateTable {
            table,
            columns,
            not_null_checks,
        } => {
            file.created_tables.insert(table.clone());
            for c in columns {
                if let Some(ty) = &c.ty {
                    schema
                        .columns
                        .insert((table.clone(), c.name.clone()), ty.clone());
                }
            }
            for (_, column) in not_null_checks {
                schema
                    .validated_not_null
                    .insert((table.clone(), column.clone()));
            }
        }
        StmtKind::CreateIndex {
            index,
            table,
            concurrently,
            ..
        } => {
            if !concurrently && !file.is_new(table) {
                out.push(finding(
                    Rule::IndexWithoutConcurrently,
                    table,
                    SHARE,
                    Blocks::Writes,
                    Duration::FullScan,
                    format!("CREATE INDEX on existing table `{table}` without CONCURRENTLY holds a SHARE lock on it for the whole build: every insert, update and delete waits"),
                    format!("{OWN_MIGRATION}\n{}", with_concurrently(&stmt.text)),
                ));
            }
            if !index.is_empty() {
                schema.indexes.insert(index.clone(), table.clone());
                file.created_indexes.insert(index.clone());
            }
        }
        StmtKind::DropIndex {
            indexes,
            concurrently,
        } => {
            for index in indexes {
                let table = schema.indexes.get(index).cloned().unwrap_or_default();
                let new = file.created_indexes.contains(index) || file.is_new(&table);
                if !concurrently && !new {
                    let on = if table.is_empty() {
                        "its table".to_string()
                    } else {
                        format!("`{table}`")
                    };
                    out.push(finding(
                        Rule::IndexWithoutConcurrently,
                        &table,
                        ACCESS_EXCLUSIVE,
                        Blocks::Both,
                        Duration::Brief,
                        format!("DROP INDEX `{index}` without CONCURRENTLY takes ACCESS EXCLUSIVE on {on}, and waits behind every running query while all new ones queue behind it"),
                        format!("{OWN_MIGRATION}\nDROP INDEX CONCURRENTLY IF EXISTS {index};"),
                    ));
                }
                schema.indexes.remove(index);
            }
        }
        StmtKind::Reindex {
            target,
            table,
            concurrently,
        } => {
            let table = table
                .clone()
                .or_else(|| schema.indexes.get(target).cloned())
                .unwrap_or_default();
            if !concurrently && !file.is_new(&table) && !file.created_indexes.contains(target) {
                out.push(finding(
                    Rule::IndexWithoutConcurrently,
                    &table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Duration::FullScan,
                    format!("REINDEX of `{target}` without CONCURRENTLY blocks writes to the table, and reads that use the index, for the whole rebuild"),
                    format!("{OWN_MIGRATION}\n{};", {
                        let lower = stmt.text.to_ascii_lowercase();
                        let kw = ["index", "table"]
                            .iter()
                            .filter_map(|k| lower.find(k).map(|at| at + k.len()))
                            .min()
                            .unwrap_or(7.min(stmt.text.len()));
                        format!("{} CONCURRENTLY{}", &stmt.text[..kw], &stmt.text[kw..])
                    }),
                ));
            }
        }
        StmtKind::AlterTable { table, cmds } => {
            for cmd in cmds {
                alter(stmt, table, cmd, in_transaction, file, schema, &mut out);
            }
        }
        StmtKind::DropTable { tables } => {
            for table in tables {
                if !file.is_new(table) {
                    out.push(finding(
                        Rule::RenameOrDrop,
                        table,
                        ACCESS_EXCLUSIVE,
                        Blocks::Both,
                        Duration::Brief,
                        format!("DROP TABLE `{table}`: the app version still running during a rolling deploy reads and writes it, and fails"),
                        format!("-- 1. release an app version that no longer uses {table}\n-- 2. then, in a later migration:\nDROP TABLE IF EXISTS {table};"),
                    ));
                }
                schema.columns.retain(|(t, _), _| t != table);
            }
        }
        StmtKind::RenameTable { table, new_name } => {
            if file.is_new(table) {
                file.created_tables.insert(new_name.clone());
            } else {
                out.push(finding(
                    Rule::RenameOrDrop,
                    table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Duration::Brief,
                    format!("renaming table `{table}` to `{new_name}` breaks every query of the app version still running during a rolling deploy"),
                    format!("-- keep the old name working while both app versions run:\nALTER TABLE {table} RENAME TO {new_name};\nCREATE VIEW {table} AS SELECT * FROM {new_name};\n-- and drop the view once no running version uses {table}"),
                ));
            }
            let moved: Vec<_> = schema
                .columns
                .iter()
                .filter(|((t, _), _)| t == table)
                .map(|((_, c), ty)| (c.clone(), ty.clone()))
                .collect();
            for (c, ty) in moved {
                schema.columns.insert((new_name.clone(), c), ty);
            }
        }
        StmtKind::RenameColumn {
            table,
            column,
            new_name,
        } => {
            if !file.is_new(table) {
                out.push(finding(
                    Rule::RenameOrDrop,
                    table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Duration::Brief,
                    format!("renaming column `{table}.{column}` to `{new_name}` breaks every query of the app version still running during a rolling deploy"),
                    format!("-- expand, then contract:\nALTER TABLE {table} ADD COLUMN {new_name} <type of {column}>;\n-- release an app version that writes both and reads {new_name}; backfill {new_name} in batches;\n-- then, in a later release:\nALTER TABLE {table} DROP COLUMN {column};"),
                ));
            }
            if let Some(ty) = schema.columns.remove(&(table.clone(), column.clone())) {
                schema.columns.insert((table.clone(), new_name.clone()), ty);
            }
        }
        StmtKind::Truncate { tables } => {
            for table in tables.iter().filter(|t| !file.is_new(t)) {
                out.push(finding(
                    Rule::Truncate,
                    table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Duration::UntilCommit,
                    format!("TRUNCATE `{table}` takes ACCESS EXCLUSIVE until the migration commits and removes every row the running app relies on"),
                    format!("-- delete in batches, each its own transaction, outside the migration:\nDELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} LIMIT 10000);"),
                ));
            }
        }
        StmtKind::LockTable { tables, mode } => {
            let blocks = match mode.as_str() {
                "ACCESS EXCLUSIVE" => Some(Blocks::Both),
                "EXCLUSIVE" | "SHARE ROW EXCLUSIVE" | "SHARE" => Some(Blocks::Writes),
                _ => None,
            };
            if let Some(blocks) = blocks {
                for table in tables.iter().filter(|t| !file.is_new(t)) {
                    out.push(RawFinding {
                        rule: Rule::LockTable,
                        table: Some(table.clone()),
                        lock: Some(lock_name(mode)),
                        blocks: Some(blocks),
                        duration: Some(Duration::UntilCommit),
                        message: format!("LOCK TABLE `{table}` IN {mode} MODE blocks {} on it until the migration commits", blocks.describe()),
                        recipe: Some("-- remove it: each statement takes the lock it needs, for as short as it can,\n-- and taskdb's lock timeout bounds how long it may wait".into()),
                    });
                }
            }
        }
        StmtKind::Vacuum { full, tables } => {
            if *full {
                let tables: Vec<String> = if tables.is_empty() {
                    vec![String::new()]
                } else {
                    tables.clone()
                };
                for table in tables.iter().filter(|t| !file.is_new(t)) {
                    let name = if table.is_empty() {
                        "every table"
                    } else {
                        table
                    };
                    out.push(finding(
                        Rule::VacuumFull,
                        table,
                        ACCESS_EXCLUSIVE,
                        Blocks::Both,
                        Duration::FullScan,
                        format!("VACUUM FULL rewrites {name} under ACCESS EXCLUSIVE: no read or write gets through until it is done"),
                        format!("VACUUM (ANALYZE) {};  -- plain VACUUM takes no lock the app waits on; reclaim space online with pg_repack outside the migration", table),
                    ));
                }
            }
        }
        StmtKind::Cluster { table } => {
            let t = table.clone().unwrap_or_default();
            if !file.is_new(&t) {
                out.push(finding(
                    Rule::Cluster,
                    &t,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Duration::FullScan,
                    format!("CLUSTER rewrites {} under ACCESS EXCLUSIVE: no read or write gets through until it is done", if t.is_empty() { "every clustered table".to_string() } else { format!("`{t}`") }),
                    "-- reorder online with pg_repack outside the migration, or leave the order to new rows".into(),
                ));
            }
        }
        StmtKind::Write { verb, table, whole } => {
            if *whole && !file.is_new(table) {
                out.push(finding(
                    Rule::UnbatchedBackfill,
                    table,
                    ROW_EXCLUSIVE,
                    Blocks::Writes,
                    Duration::UntilCommit,
                    format!("{verb} of every row of existing table `{table}` in one transaction locks each row it touches until the migration commits: the app's writes to them wait"),
                    format!("-- backfill in batches, each its own transaction, outside the migration (repeat until 0 rows):\n{}",
                        if *verb == "UPDATE" {
                            format!("UPDATE {table} SET … WHERE id IN (SELECT id FROM {table} WHERE <not yet done> LIMIT 10000);")
                        } else {
                            format!("DELETE FROM {table} WHERE id IN (SELECT id FROM {table} LIMIT 10000);")
                        }),
                ));
            }
        }
        StmtKind::Concurrent | StmtKind::Other => {}
    }
    out
}

fn lock_name(mode: &str) -> &'static str {
    match mode {
        "ACCESS EXCLUSIVE" => ACCESS_EXCLUSIVE,
        "EXCLUSIVE" => "EXCLUSIVE",
        "SHARE ROW EXCLUSIVE" => SHARE_ROW_EXCLUSIVE,
        _ => SHARE,
    }
}

fn alter(
    stmt: &Stmt,
    table: &str,
    cmd: &AlterCmd,
    in_transaction: bool,
    file: &mut FileState,
    schema: &mut Schema,
    out: &mut Vec<RawFinding>,
) {
    let new = file.is_new(table);
    let key = |c: &str| (table.to_string(), c.to_string());
    match cmd {
        AlterCmd::AddColumn(c) => {
            if !new {
                add_column(table, c, out);
            }
            if let Some(ty) = &c.ty {
                schema.columns.insert(key(&c.name), ty.clone());
            }
        }
        AlterCmd::AddConstraint {
            name,
            kind,
            not_valid,
            columns,
            using_index,
        } => {
            let shown = if name.is_empty() { "<name>" } else { name };
            match kind {
                ConstraintKind::Check { not_null_column } => {
                    if let Some(col) = not_null_column {
                        if *not_valid {
                            schema.pending_not_null.insert(key(name), col.clone());
                        } else {
                            schema.validated_not_null.insert(key(col));
                        }
                    }
                    if *not_valid {
                        file.added_not_valid.insert(key(name));
                    } else if !new {
                        out.push(finding(
                            Rule::ConstraintWithoutNotValid,
                            table,
                            ACCESS_EXCLUSIVE,
                            Blocks::Both,
                            Duration::FullScan,
                            format!("CHECK constraint `{shown}` added to existing table `{table}` without NOT VALID: every row is checked while ACCESS EXCLUSIVE blocks all reads and writes"),
                            format!("{}\n-- then, in a later migration (SHARE UPDATE EXCLUSIVE: reads and writes go on):\nALTER TABLE {table} VALIDATE CONSTRAINT {shown};", with_not_valid(stmt, format!("ALTER TABLE {table} ADD CONSTRAINT {shown} CHECK (…) NOT VALID;"))),
                        ));
                    }
                }
                ConstraintKind::ForeignKey { references } => {
                    if *not_valid {
                        file.added_not_valid.insert(key(name));
                    } else if !new {
                        out.push(finding(
                            Rule::ConstraintWithoutNotValid,
                            table,
                            SHARE_ROW_EXCLUSIVE,
                            Blocks::Writes,
                            Duration::FullScan,
                            format!("foreign key `{shown}` added to existing table `{table}` without NOT VALID: every row is checked while SHARE ROW EXCLUSIVE on `{table}` and `{references}` blocks their writes"),
                            format!("{}\n-- then, in a later migration (SHARE UPDATE EXCLUSIVE: reads and writes go on):\nALTER TABLE {table} VALIDATE CONSTRAINT {shown};", with_not_valid(stmt, format!("ALTER TABLE {table} ADD CONSTRAINT {shown} FOREIGN KEY (…) REFERENCES {references} (…) NOT VALID;"))),
                        ));
                    }
                }
                ConstraintKind::Unique | ConstraintKind::PrimaryKey | ConstraintKind::Exclusion
                    if !using_index && !new =>
                {
                    let what = match kind {
                        ConstraintKind::Unique => "UNIQUE",
                        ConstraintKind::PrimaryKey => "PRIMARY KEY",
                        _ => "EXCLUDE",
                    };
                    let cols = if columns.is_empty() {
                        "…".to_string()
                    } else {
                        columns.join(", ")
                    };
                    let index = if name.is_empty() {
                        format!("{table}_{}_key", columns.join("_"))
                    } else {
                        name.clone()
                    };
                    out.push(finding(
                        Rule::UniqueConstraintUnderLock,
                        table,
                        ACCESS_EXCLUSIVE,
                        Blocks::Both,
                        Duration::FullScan,
                        format!("{what} constraint `{shown}` on existing table `{table}` builds its index under ACCESS EXCLUSIVE: no read or write gets through until the build is done"),
                        format!("{OWN_MIGRATION}\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {index} ON {table} ({cols});\n-- then, in the next migration (a catalog change only):\nALTER TABLE {table} ADD CONSTRAINT {index} {what} USING INDEX {index};"),
                    ));
                }
                _ => {}
            }
        }
        AlterCmd::ValidateConstraint { name } => {
            if in_transaction && file.added_not_valid.contains(&key(name)) && !new {
                out.push(finding(
                    Rule::ConstraintWithoutNotValid,
                    table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Duration::FullScan,
                    format!("constraint `{name}` is validated in the same transaction that added it: the scan runs under the ACCESS EXCLUSIVE lock of the ADD, so NOT VALID gains nothing"),
                    format!("-- move it to a later migration:\nALTER TABLE {table} VALIDATE CONSTRAINT {name};"),
                ));
            }
            if let Some(col) = schema.pending_not_null.remove(&key(name)) {
                schema.validated_not_null.insert(key(&col));
            }
        }
        AlterCmd::SetNotNull { column } => {
            if !new && !schema.validated_not_null.contains(&key(column)) {
                let check = format!("{table}_{column}_not_null");
                out.push(finding(
                    Rule::SetNotNullWithoutCheck,
                    table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Duration::FullScan,
                    format!("SET NOT NULL on `{table}.{column}` scans every row under ACCESS EXCLUSIVE, because no validated CHECK ({column} IS NOT NULL) exists"),
                    format!("ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID;\n-- next migration (SHARE UPDATE EXCLUSIVE: reads and writes go on):\nALTER TABLE {table} VALIDATE CONSTRAINT {check};\n-- next migration (PostgreSQL 12+ uses the validated check and skips the scan):\nALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL;\nALTER TABLE {table} DROP CONSTRAINT {check};"),
                ));
            }
        }
        AlterCmd::AlterType { column, ty, using } => {
            let old = schema.columns.get(&key(column)).cloned();
            if !new {
                if let Some(why) = rewrite_reason(old.as_ref(), ty.as_ref(), *using) {
                    let to = ty
                        .as_ref()
                        .map(|t| t.display())
                        .unwrap_or_else(|| "…".into());
                    out.push(finding(
                        Rule::ColumnTypeRewrite,
                        table,
                        ACCESS_EXCLUSIVE,
                        Blocks::Both,
                        Duration::FullScan,
                        format!("changing `{table}.{column}` to {to} {why}, under ACCESS EXCLUSIVE: no read or write gets through until it is done"),
                        format!("ALTER TABLE {table} ADD COLUMN {column}_new {to};\n-- release an app version that writes both; backfill {column}_new in batches outside the migration;\n-- switch reads to {column}_new, then in a later release:\nALTER TABLE {table} DROP COLUMN {column};\nALTER TABLE {table} RENAME COLUMN {column}_new TO {column};"),
                    ));
                }
            }
            if let Some(ty) = ty {
                schema.columns.insert(key(column), ty.clone());
            }
        }
        AlterCmd::DropColumn { column } => {
            if !new {
                out.push(finding(
                    Rule::RenameOrDrop,
                    table,
                    ACCESS_EXCLUSIVE,
                    Blocks::Both,
                    Duration::Brief,
                    format!("dropping column `{table}.{column}` breaks every query of the app version still running during a rolling deploy that names it"),
                    format!("-- 1. release an app version that no longer reads or writes {column}\n-- 2. then, in a later migration:\nALTER TABLE {table} DROP COLUMN IF EXISTS {column};"),
                ));
            }
            schema.columns.remove(&key(column));
            schema.validated_not_null.remove(&key(column));
        }
        AlterCmd::DropConstraint { name } => {
            schema.pending_not_null.remove(&key(name));
        }
        AlterCmd::Other => {}
    }
}

fn add_column(table: &str, c: &ColumnInfo, out: &mut Vec<RawFinding>) {
    let ty = c.ty.as_ref().map(|t| t.display()).unwrap_or_default();
    let col = &c.name;
    if let Some(fills) = &c.fills_rows {
        out.push(finding(
            Rule::AddColumnVolatileDefault,
            table,
            ACCESS_EXCLUSIVE,
            Blocks::Both,
            Duration::FullScan,
            format!("adding `{table}.{col}` as {fills} fills every existing row: a table rewrite under ACCESS EXCLUSIVE"),
            format!("ALTER TABLE {table} ADD COLUMN {col} bigint;  -- nullable, no rewrite\nCREATE SEQUENCE IF NOT EXISTS {table}_{col}_seq OWNED BY {table}.{col};\nALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT nextval('{table}_{col}_seq');  -- new rows only\n-- backfill old rows in batches outside the migration, then add NOT NULL the set-not-null-without-check way"),
        ));
    } else if c.default == Some(DefaultKind::Volatile) {
        out.push(finding(
            Rule::AddColumnVolatileDefault,
            table,
            ACCESS_EXCLUSIVE,
            Blocks::Both,
            Duration::FullScan,
            format!("adding `{table}.{col}` with a volatile default gives every existing row its own value: a table rewrite under ACCESS EXCLUSIVE"),
            format!("ALTER TABLE {table} ADD COLUMN {col} {ty};  -- nullable, no rewrite\nALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT <the default>;  -- new rows only\n-- backfill old rows in batches outside the migration;\n-- then NOT NULL via CHECK ({col} IS NOT NULL) NOT VALID, VALIDATE, SET NOT NULL (three migrations)"),
        ));
    } else if c.not_null && c.default.is_none() {
        out.push(finding(
            Rule::AddColumnNotNullWithoutDefault,
            table,
            ACCESS_EXCLUSIVE,
            Blocks::Both,
            Duration::Brief,
            format!("adding `{table}.{col}` NOT NULL without a default fails on a table that has rows (every row would hold NULL)"),
            format!("ALTER TABLE {table} ADD COLUMN {col} {ty} NOT NULL DEFAULT <constant>;  -- a constant default: no rewrite (PostgreSQL 11+)"),
        ));
    }
    if c.unique {
        out.push(finding(
            Rule::UniqueConstraintUnderLock,
            table,
            ACCESS_EXCLUSIVE,
            Blocks::Both,
            Duration::FullScan,
            format!("adding `{table}.{col}` with UNIQUE / PRIMARY KEY builds its index under ACCESS EXCLUSIVE"),
            format!("ALTER TABLE {table} ADD COLUMN {col} {ty};\n{OWN_MIGRATION}\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {table}_{col}_key ON {table} ({col});\n-- then:\nALTER TABLE {table} ADD CONSTRAINT {table}_{col}_key UNIQUE USING INDEX {table}_{col}_key;"),
        ));
    }
}

/// Why a type change rewrites or rescans the table, or `None` when
/// PostgreSQL only changes the catalog (binary-coercible, no narrower).
fn rewrite_reason(old: Option<&TypeInfo>, new: Option<&TypeInfo>, using: bool) -> Option<String> {
    if using {
        return Some("with USING rewrites every row".into());
    }
    let Some(new) = new else {
        return Some("may rewrite every row".into());
    };
    let Some(old) = old else {
        return Some(
            "from a type lint cannot see (the column was not created by these migrations) may rewrite every row; only varchar(n) → varchar(m ≥ n) / text and numeric(p,s) → numeric(q ≥ p,s) are free"
                .to_string(),
        );
    };
    if old.array != new.array {
        return Some(format!("from {} rewrites every row", old.display()));
    }
    let textual = |t: &TypeInfo| t.name == "text" || (t.name == "varchar" && t.mods.is_empty());
    let free = match (old.name.as_str(), new.name.as_str()) {
        _ if old == new => true,
        ("varchar", "varchar") => {
            new.mods.is_empty() || old.mods.first() <= new.mods.first() && !old.mods.is_empty()
        }
        ("varchar" | "text", _) if textual(new) => true,
        ("numeric", "numeric") => {
            new.mods.is_empty()
                || (!old.mods.is_empty()
                    && old.mods.first() <= new.mods.first()
                    && old.mods.get(1).unwrap_or(&0) == new.mods.get(1).unwrap_or(&0))
        }
        ("varbit", "varbit") => {
            new.mods.is_empty() || old.mods.first() <= new.mods.first() && !old.mods.is_empty()
        }
        ("cidr", "inet") => true,
        _ => false,
    };
    if free {
        return None;
    }
    let narrows = old.name == new.name;
    Some(if narrows {
        format!("from {} rescans every row to check it fits", old.display())
    } else {
        format!("from {} rewrites every row", old.display())
    })
}

impl Stmt {
    /// Statements PostgreSQL refuses inside a transaction block.
    pub fn refuses_transaction(&self) -> bool {
        self.is_concurrent() || matches!(self.kind, StmtKind::Vacuum { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, mods: &[i64]) -> TypeInfo {
        TypeInfo {
            name: name.into(),
            mods: mods.to_vec(),
            array: false,
        }
    }

    #[test]
    fn binary_coercible_type_changes_are_free() {
        for (old, new) in [
            (t("varchar", &[100]), t("varchar", &[255])),
            (t("varchar", &[100]), t("varchar", &[])),
            (t("varchar", &[100]), t("text", &[])),
            (t("text", &[]), t("varchar", &[])),
            (t("numeric", &[10, 2]), t("numeric", &[12, 2])),
            (t("numeric", &[10, 2]), t("numeric", &[])),
            (t("cidr", &[]), t("inet", &[])),
        ] {
            assert_eq!(
                rewrite_reason(Some(&old), Some(&new), false),
                None,
                "{old:?} → {new:?}"
            );
        }
    }

    #[test]
    fn rewriting_type_changes_are_flagged() {
        for (old, new) in [
            (t("varchar", &[255]), t("varchar", &[100])),
            (t("int4", &[]), t("int8", &[])),
            (t("text", &[]), t("varchar", &[50])),
            (t("varchar", &[]), t("varchar", &[50])),
            (t("numeric", &[10, 2]), t("numeric", &[12, 4])),
            (t("timestamp", &[]), t("timestamptz", &[])),
        ] {
            assert!(
                rewrite_reason(Some(&old), Some(&new), false).is_some(),
                "{old:?} → {new:?}"
            );
        }
        let v = t("varchar", &[100]);
        assert!(rewrite_reason(Some(&v), Some(&t("varchar", &[255])), true).is_some());
        assert!(rewrite_reason(None, Some(&t("text", &[])), false).is_some());
    }
}
