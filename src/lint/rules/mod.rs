//! The PostgreSQL rules, one file each: for each statement of a migration,
//! what lock it takes on which existing table, what that blocks, and the
//! safe way to write it. A rule is a function over a [`Ctx`]; a new rule
//! is a new file and one line in [`STATEMENT_RULES`] or [`ALTER_RULES`].
//!
//! A table created earlier in the same migration is new: nobody else can be
//! using it, so no locking rule fires on it. What each statement leaves
//! behind (tables, columns, indexes, constraints) is tracked in
//! [`track`], after the rules have seen the state before it.

// Without the parser (a backend's build: no `cli` feature) the rules never
// run: SQLite's checks and the facts file give the findings. What they
// share with those (the finding, what a lock blocks) is always here.
#[cfg(feature = "cli")]
use std::collections::{HashMap, HashSet};

#[cfg(feature = "cli")]
use super::model::{AlterCmd, Stmt, StmtKind, TypeInfo};
use super::Rule;

#[cfg(feature = "cli")]
mod add_column_not_null_without_default;
#[cfg(feature = "cli")]
mod add_column_volatile_default;
#[cfg(feature = "cli")]
mod citus_ddl_not_propagated;
#[cfg(feature = "cli")]
mod citus_trigger_on_distributed_table;
#[cfg(feature = "cli")]
mod citus_unique_without_distribution_column;
#[cfg(feature = "cli")]
mod cluster;
#[cfg(feature = "cli")]
mod column_type_breaks_cached_plans;
#[cfg(feature = "cli")]
mod column_type_rewrite;
#[cfg(feature = "cli")]
mod concurrently_in_transaction;
#[cfg(feature = "cli")]
mod constraint_without_not_valid;
#[cfg(feature = "cli")]
mod index_without_concurrently;
#[cfg(feature = "cli")]
mod lock_table;
#[cfg(feature = "cli")]
mod opaque_statement;
#[cfg(feature = "cli")]
mod refresh_without_concurrently;
#[cfg(feature = "cli")]
mod rename_or_drop;
#[cfg(feature = "cli")]
mod set_not_null_without_check;
#[cfg(feature = "cli")]
mod table_rewrite;
#[cfg(feature = "cli")]
mod timeout_override;
#[cfg(feature = "cli")]
mod track;
#[cfg(feature = "cli")]
mod truncate;
#[cfg(feature = "cli")]
mod unbatched_backfill;
#[cfg(feature = "cli")]
mod unique_constraint_under_lock;
#[cfg(feature = "cli")]
mod vacuum_full;

#[cfg(all(test, feature = "cli"))]
#[cfg(feature = "cli")]
mod test_support;

/// Locks as PostgreSQL names them (docs: "Explicit Locking").
#[cfg(feature = "cli")]
pub const ACCESS_EXCLUSIVE: &str = "ACCESS EXCLUSIVE";
#[cfg(feature = "cli")]
pub const SHARE: &str = "SHARE";
#[cfg(feature = "cli")]
pub const SHARE_ROW_EXCLUSIVE: &str = "SHARE ROW EXCLUSIVE";
#[cfg(feature = "cli")]
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

/// How long a lock is held, for the live-size consequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Holds {
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
    pub holds: Option<Holds>,
    pub message: String,
    pub recipe: Option<String>,
}

/// The tables a Citus coordinator holds for Citus, by name: a distributed
/// table with its distribution column, a reference table with `None`
/// (from `pg_dist_partition`; Citus-managed local tables are left out).
#[cfg(feature = "cli")]
pub type CitusTables = std::collections::BTreeMap<String, Option<String>>;

/// What earlier migrations (in order) left behind, as far as the rules care.
#[derive(Debug, Default, Clone)]
pub struct Schema {
    /// On a Citus coordinator (`lint --database-url`, the pre-flight): its
    /// distributed and reference tables. `None` elsewhere, and the Citus
    /// rules stay silent.
    #[cfg(feature = "cli")]
    citus: Option<CitusTables>,
    #[cfg(feature = "cli")]
    columns: HashMap<(String, String), TypeInfo>,
    /// (table, column) with a validated `CHECK (column IS NOT NULL)`.
    #[cfg(feature = "cli")]
    validated_not_null: HashSet<(String, String)>,
    /// (table, constraint) → column, for `CHECK (column IS NOT NULL) NOT VALID`.
    #[cfg(feature = "cli")]
    pending_not_null: HashMap<(String, String), String>,
    /// Index → its table.
    #[cfg(feature = "cli")]
    indexes: HashMap<String, String>,
}

#[cfg(feature = "cli")]
impl Schema {
    /// The schema of a Citus coordinator holding `tables`.
    pub fn on_citus(tables: CitusTables) -> Schema {
        Schema {
            citus: Some(tables),
            ..Schema::default()
        }
    }

    /// How Citus holds `table`: `Some(Some(column))` distributed by it,
    /// `Some(None)` a reference table, `None` not at all (or not Citus).
    fn citus_table(&self, table: &str) -> Option<&Option<String>> {
        self.citus.as_ref().and_then(|t| t.get(table))
    }
}

/// One migration file being checked.
#[cfg(feature = "cli")]
#[derive(Debug, Default)]
pub struct FileState {
    created_tables: HashSet<String>,
    created_indexes: HashSet<String>,
    /// Constraints added NOT VALID in this file: (table, name).
    added_not_valid: HashSet<(String, String)>,
}

#[cfg(feature = "cli")]
impl FileState {
    fn is_new(&self, table: &str) -> bool {
        self.created_tables.contains(table)
    }
}

/// What a rule sees: the statement, the migration's transaction setting,
/// and the state before the statement.
#[cfg(feature = "cli")]
pub struct Ctx<'a> {
    pub stmt: &'a Stmt,
    pub in_transaction: bool,
    file: &'a FileState,
    schema: &'a Schema,
}

/// A rule over a whole statement.
#[cfg(feature = "cli")]
type StatementRule = fn(&Ctx<'_>) -> Vec<RawFinding>;
/// A rule over one subcommand of `ALTER TABLE table …`.
#[cfg(feature = "cli")]
type AlterRule = fn(&Ctx<'_>, &str, &AlterCmd) -> Vec<RawFinding>;

#[cfg(feature = "cli")]
const STATEMENT_RULES: &[StatementRule] = &[
    concurrently_in_transaction::check,
    index_without_concurrently::check,
    rename_or_drop::check,
    truncate::check,
    lock_table::check,
    vacuum_full::check,
    cluster::check,
    unbatched_backfill::check,
    refresh_without_concurrently::check,
    timeout_override::check,
    opaque_statement::check,
    citus_unique_without_distribution_column::check,
    citus_trigger_on_distributed_table::check,
    citus_ddl_not_propagated::check,
];

#[cfg(feature = "cli")]
const ALTER_RULES: &[AlterRule] = &[
    add_column_volatile_default::check,
    add_column_not_null_without_default::check,
    constraint_without_not_valid::check,
    unique_constraint_under_lock::check,
    set_not_null_without_check::check,
    column_type_rewrite::check,
    column_type_breaks_cached_plans::check,
    rename_or_drop::check_alter,
    table_rewrite::check,
    citus_unique_without_distribution_column::check_alter,
];

/// Checks one statement; `in_transaction` is the migration's setting.
/// Updates `file` and `schema` with what the statement leaves behind.
#[cfg(feature = "cli")]
pub fn check(
    stmt: &Stmt,
    in_transaction: bool,
    file: &mut FileState,
    schema: &mut Schema,
) -> Vec<RawFinding> {
    let mut out = Vec::new();
    {
        let ctx = Ctx {
            stmt,
            in_transaction,
            file,
            schema,
        };
        for rule in STATEMENT_RULES {
            out.extend(rule(&ctx));
        }
    }
    if let StmtKind::AlterTable { table, cmds } = &stmt.kind {
        // Subcommands apply in order: a later one sees what an earlier one
        // of the same statement did.
        for cmd in cmds {
            let ctx = Ctx {
                stmt,
                in_transaction,
                file,
                schema,
            };
            for rule in ALTER_RULES {
                out.extend(rule(&ctx, table, cmd));
            }
            track::alter(table, cmd, file, schema);
        }
    }
    track::statement(stmt, file, schema);
    out
}

/// A finding with every field a locking rule fills.
#[cfg(feature = "cli")]
fn finding(
    rule: Rule,
    table: &str,
    lock: &'static str,
    blocks: Blocks,
    holds: Holds,
    message: String,
    recipe: String,
) -> RawFinding {
    RawFinding {
        rule,
        table: Some(table.to_string()).filter(|t| !t.is_empty()),
        lock: Some(lock),
        blocks: Some(blocks),
        holds: Some(holds),
        message,
        recipe: Some(recipe),
    }
}

#[cfg(feature = "cli")]
const OWN_MIGRATION: &str =
    "-- in a migration of its own, with metadata.toml: run_in_transaction = false";

/// The statement with `NOT VALID` added, when it holds one subcommand.
#[cfg(feature = "cli")]
fn with_not_valid(stmt: &Stmt, fallback: String) -> String {
    match &stmt.kind {
        StmtKind::AlterTable { cmds, .. } if cmds.len() == 1 => format!("{} NOT VALID;", stmt.text),
        _ => fallback,
    }
}

#[cfg(feature = "cli")]
impl Stmt {
    /// Statements PostgreSQL refuses inside a transaction block.
    pub fn refuses_transaction(&self) -> bool {
        self.is_concurrent() || matches!(self.kind, StmtKind::Vacuum { .. })
    }
}
