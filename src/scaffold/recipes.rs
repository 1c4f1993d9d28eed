//! The SQL `taskdb new` writes for each kind of change, PostgreSQL and
//! SQLite side by side.
//!
//! PostgreSQL shapes (`taskdb lint` accepts exactly these; docs/lint.md):
//! - a column is added nullable, or NOT NULL with a constant default (no
//!   table rewrite); a volatile default is refused with the backfill recipe;
//! - an index is built `CONCURRENTLY IF NOT EXISTS`, the only statement of
//!   a migration that runs outside a transaction;
//! - a foreign key or CHECK is added `NOT VALID` (a catalog change), then
//!   validated by a second migration (a scan that does not block writes);
//! - NOT NULL is a validated `CHECK (col IS NOT NULL)` first, so that
//!   `SET NOT NULL` skips its scan, then the check is dropped.
//!
//! SQLite has one writer and no online DDL, so its side is the plain form:
//! `ADD COLUMN`, `CREATE INDEX`, and for a constraint the table rebuild of
//! `2026-02-08-000003_add_tasks_user_fk`. Where PostgreSQL needs more
//! migrations than SQLite, SQLite's extra ones are no-ops that keep both
//! histories under the same names.

use super::sqlite_schema::{item_column, split_items, SqliteSchema, Table};
use super::{MigrationFiles, Result, ScaffoldError};

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipe {
    /// Commented skeletons, to fill in by hand.
    Skeleton,
    AddColumn(AddColumn),
    AddIndex(AddIndex),
    AddForeignKey(AddForeignKey),
    AddCheck(AddCheck),
    SetNotNull(ColumnRef),
}

/// `table.column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    pub table: String,
    pub column: String,
}

impl ColumnRef {
    /// Parses `tasks.due_date`.
    pub fn parse(input: &str) -> Result<Self> {
        match input.split_once('.') {
            Some((table, column)) => Ok(ColumnRef {
                table: table.to_string(),
                column: column.to_string(),
            }),
            None => Err(ScaffoldError::Refused(format!(
                "`{input}` is not TABLE.COLUMN (e.g. tasks.project_id)"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddColumn {
    pub table: String,
    pub column: String,
    /// The SQL type as given (`timestamp`, `varchar(255)`, `integer`).
    pub sql_type: String,
    pub not_null: bool,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddIndex {
    pub table: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// A partial index's `WHERE` predicate.
    pub predicate: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Cascade,
    SetNull,
    Restrict,
    NoAction,
}

impl OnDelete {
    fn sql(self) -> &'static str {
        match self {
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::NoAction => "NO ACTION",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddForeignKey {
    pub from: ColumnRef,
    pub to: ColumnRef,
    pub on_delete: Option<OnDelete>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheck {
    pub table: String,
    pub expression: String,
}

/// One migration of a recipe, before it gets its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The directory name after the version, e.g. `add_tasks_fk_validate`.
    pub name: String,
    pub postgres: MigrationFiles,
    pub sqlite: MigrationFiles,
}

/// PostgreSQL's limit on identifier length.
const MAX_IDENTIFIER: usize = 63;

const NO_TRANSACTION_INDEX: &str = "\
# CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction. up.sql and
# down.sql hold exactly one statement each: Diesel sends a multi-statement
# file as one implicit transaction.
run_in_transaction = false
";

/// The migrations of `recipe`, named after `name`, checked against the
/// current SQLite schema (tables and columns must exist, a rebuild needs
/// the table's definition).
pub fn build(name: &str, recipe: &Recipe, schema: &SqliteSchema) -> Result<Vec<Step>> {
    match recipe {
        Recipe::Skeleton => Ok(vec![skeleton(name)]),
        Recipe::AddColumn(c) => add_column(name, c, schema),
        Recipe::AddIndex(i) => add_index(name, i, schema),
        Recipe::AddForeignKey(fk) => add_foreign_key(name, fk, schema),
        Recipe::AddCheck(check) => add_check(name, check, schema),
        Recipe::SetNotNull(c) => set_not_null(name, c, schema),
    }
}

fn files(up: String, down: String) -> MigrationFiles {
    MigrationFiles {
        up,
        down,
        metadata: None,
    }
}

fn skeleton(name: &str) -> Step {
    let postgres_up = format!(
        "\
-- {name} (PostgreSQL): write the change here.
--
-- tasks and users hold rows and take writes during a deploy, so every
-- statement must be online-safe (`taskdb lint` checks it):
-- - a new column is nullable, or NOT NULL with a constant default;
-- - an index on an existing table is CREATE INDEX CONCURRENTLY, the only
--   statement of its own migration, with metadata.toml saying
--   `run_in_transaction = false`;
-- - a foreign key or CHECK is added NOT VALID and validated by a later
--   migration; SET NOT NULL comes after a validated CHECK (col IS NOT NULL).
-- `taskdb new --help` lists the kinds that write these shapes for you.
"
    );
    let postgres_down = "\
-- Undo everything up.sql does, so `taskdb redo` and `taskdb rollback` work.
"
    .to_string();
    let sqlite_up = format!(
        "\
-- {name} (SQLite): the same change as the PostgreSQL up.sql of this
-- migration, in SQLite's terms.
--
-- ADD COLUMN needs a constant default (CURRENT_TIMESTAMP fails once the
-- table has rows). SQLite cannot add a constraint to an existing table or
-- change a column: rebuild the table as
-- migrations/sqlite/2026-02-08-000003_add_tasks_user_fk does.
"
    );
    Step {
        name: name.to_string(),
        postgres: files(postgres_up, postgres_down.clone()),
        sqlite: files(sqlite_up, postgres_down),
    }
}

/// True for a plain lowercase identifier, which needs no quoting on either
/// backend (a reserved word aside, see [`is_reserved`]).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= MAX_IDENTIFIER
}

/// Words that are no plain table or column name: PostgreSQL's reserved key
/// words and those reserved except as function or type names
/// (`pg_get_keywords()`, categories R and T, PostgreSQL 15), and the SQLite
/// key words that fail unquoted as a table or column name in `CREATE
/// TABLE`, `ALTER TABLE`, `CREATE INDEX` or `CHECK` (SQLite 3.40). Sorted.
const RESERVED: &[&str] = &[
    "add",
    "all",
    "alter",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "autoincrement",
    "between",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "commit",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "delete",
    "desc",
    "distinct",
    "do",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "exists",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "if",
    "ilike",
    "in",
    "index",
    "initially",
    "inner",
    "insert",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "nothing",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "raise",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "set",
    "similar",
    "some",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "transaction",
    "true",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "values",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// True for a word one of the backends does not take as a plain name.
fn is_reserved(word: &str) -> bool {
    RESERVED
        .binary_search(&word.to_ascii_lowercase().as_str())
        .is_ok()
}

fn check_identifier(what: &str, s: &str) -> Result<()> {
    if !is_identifier(s) {
        return Err(ScaffoldError::Refused(format!(
            "{what} `{}` is not a plain lowercase identifier ([a-z_][a-z0-9_]*, at most {MAX_IDENTIFIER} characters)",
            shown(s)
        )));
    }
    if is_reserved(s) {
        return Err(ScaffoldError::Refused(format!(
            "{what} `{s}` is a reserved word in PostgreSQL or SQLite, which would need quoting everywhere: pick another name (e.g. `{s}_id`)"
        )));
    }
    Ok(())
}

/// `s` for an error message on one line: control characters (a line break
/// above all) written as escapes.
fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// True when `s` holds a line break or another control character: text
/// that reaches a `--` comment must stay on its line.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn existing_table<'a>(schema: &'a SqliteSchema, table: &str) -> Result<&'a Table> {
    check_identifier("table", table)?;
    schema.table(table).ok_or_else(|| {
        ScaffoldError::Refused(format!(
            "no table `{table}` after the current migrations (tables: {})",
            schema.tables.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}

fn existing_column(table_name: &str, table: &Table, column: &str) -> Result<()> {
    check_identifier("column", column)?;
    if table.column(column).is_some() {
        return Ok(());
    }
    Err(ScaffoldError::Refused(format!(
        "no column `{table_name}.{column}` after the current migrations (columns: {})",
        table
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// An expression or predicate pasted into the SQL (and echoed into a
/// comment): one expression on one line, its parentheses and quotes
/// balanced, so it cannot close the `CHECK (…)` around it or start a second
/// statement. Refused rather than repaired: no comment, no `;`, no escape
/// string or dollar quote (where a quote or parenthesis would mean
/// something else to the server than here).
fn check_expression(what: &str, expr: &str) -> Result<()> {
    let refuse = |why: &str| {
        Err(ScaffoldError::Refused(format!(
            "the {what} `{}` {why}: give one SQL expression on one line",
            shown(expr)
        )))
    };
    if expr.trim().is_empty() {
        return Err(ScaffoldError::Refused(format!("the {what} is empty")));
    }
    if has_control(expr) {
        return refuse("holds a line break or another control character");
    }
    if ["--", "/*", "*/", ";"].iter().any(|s| expr.contains(s)) {
        return refuse("holds `;`, `--` or `/*`");
    }
    if expr.contains(['\\', '$']) {
        return refuse("holds `\\` or `$` (escape strings and dollar quotes are not taken)");
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            // Inside a quote, the quote itself only appears doubled.
            Some(q) if c == q => {
                if chars.peek() == Some(&q) {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' => depth += 1,
                ')' => match depth.checked_sub(1) {
                    Some(d) => depth = d,
                    None => return refuse("closes a parenthesis it did not open"),
                },
                _ => {}
            },
        }
    }
    if quote.is_some() {
        return refuse("leaves a quote open");
    }
    if depth > 0 {
        return refuse("leaves a parenthesis open");
    }
    Ok(())
}

/// A constraint or index name, refused when PostgreSQL would truncate it.
fn object_name(name: String) -> Result<String> {
    if name.len() > MAX_IDENTIFIER {
        return Err(ScaffoldError::Refused(format!(
            "the generated name `{name}` is longer than PostgreSQL's {MAX_IDENTIFIER} characters; use shorter table, column or migration names"
        )));
    }
    Ok(name)
}

/// True for a default PostgreSQL stores without rewriting the table and
/// SQLite accepts on a table with rows: a number, a quoted string, TRUE,
/// FALSE or NULL. Anything else (a function call such as `now()`,
/// `CURRENT_TIMESTAMP`, `random()`, `gen_random_uuid()`, an operator) is
/// treated as volatile.
pub fn is_constant_default(expr: &str) -> bool {
    let e = expr.trim();
    if has_control(e) || e.contains('\\') {
        return false;
    }
    let upper = e.to_ascii_uppercase();
    if matches!(upper.as_str(), "TRUE" | "FALSE" | "NULL") {
        return true;
    }
    let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
    if !digits.is_empty()
        && digits.chars().any(|c| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
    {
        return true;
    }
    if e.len() >= 2 && e.starts_with('\'') && e.ends_with('\'') {
        // Inside, a quote only appears doubled.
        return !e[1..e.len() - 1].replace("''", "").contains('\'');
    }
    false
}

/// Column types of several words, as PostgreSQL spells them (SQLite takes
/// them too).
const MULTI_WORD_TYPES: &[&str] = &[
    "bit varying",
    "character varying",
    "double precision",
    "time with time zone",
    "time without time zone",
    "timestamp with time zone",
    "timestamp without time zone",
];

/// A column type: a name, maybe with a length or precision, that both
/// backends accept as written. Nothing after it: more words would add a
/// constraint or a default the recipe did not check.
fn check_type(sql_type: &str) -> Result<()> {
    let t = sql_type.trim();
    let (base, args) = match t.split_once('(') {
        Some((base, rest)) => (base.trim(), Some(rest)),
        None => (t, None),
    };
    let words: Vec<&str> = base.split_whitespace().collect();
    let base_ok = match words.as_slice() {
        [word] => {
            word.starts_with(|c: char| c.is_ascii_alphabetic())
                && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !is_reserved(word)
        }
        _ => MULTI_WORD_TYPES.contains(&words.join(" ").to_ascii_lowercase().as_str()),
    };
    let args_ok = args.is_none_or(|rest| {
        rest.strip_suffix(')').is_some_and(|inner| {
            !inner.trim().is_empty()
                && inner
                    .split(',')
                    .all(|n| !n.trim().is_empty() && n.trim().chars().all(|c| c.is_ascii_digit()))
        })
    });
    if !base_ok || !args_ok {
        return Err(ScaffoldError::Refused(format!(
            "`{}` is not a column type (e.g. timestamp, integer, boolean, varchar(255), text, double precision)",
            shown(sql_type)
        )));
    }
    if ["SERIAL", "BIGSERIAL", "SMALLSERIAL"].contains(&base.to_ascii_uppercase().as_str()) {
        return Err(ScaffoldError::Refused(format!(
            "`{sql_type}` fills every existing row from a sequence (a volatile default), which rewrites the whole table under an exclusive lock: add an integer column nullable, backfill it in batches, then make it NOT NULL with --set-not-null"
        )));
    }
    Ok(())
}

fn volatile_default_refusal(c: &AddColumn, default: &str) -> ScaffoldError {
    let column = format!("{}.{}", c.table, c.column);
    ScaffoldError::Refused(format!(
        "refusing the default `{default}`: it is not a constant, so PostgreSQL would rewrite every row of {table} under an exclusive lock, and SQLite refuses it on a table with rows (\"Cannot add a column with non-constant default\"). Instead: 1) `taskdb new add_{table}_{col} --add-column {table} {col} {ty}` (nullable); 2) have the app write the value for new rows and backfill old ones in batches (UPDATE {table} SET {col} = … WHERE id BETWEEN … AND …, one transaction per batch); 3) `taskdb new {table}_{col}_not_null --set-not-null {column}`",
        table = c.table,
        col = c.column,
        ty = c.sql_type,
    ))
}

fn add_column(name: &str, c: &AddColumn, schema: &SqliteSchema) -> Result<Vec<Step>> {
    let table = existing_table(schema, &c.table)?;
    check_identifier("column", &c.column)?;
    if table.column(&c.column).is_some() {
        return Err(ScaffoldError::Refused(format!(
            "column `{}.{}` exists already",
            c.table, c.column
        )));
    }
    check_type(&c.sql_type)?;
    if let Some(default) = &c.default {
        if has_control(default) || default.contains('\\') {
            return Err(ScaffoldError::Refused(format!(
                "the --default `{}` holds a line break, a control character or `\\`: give a constant on one line (a number, 'text', true, false, null)",
                shown(default)
            )));
        }
        if !is_constant_default(default) {
            return Err(volatile_default_refusal(c, default));
        }
        if c.not_null && default.trim().eq_ignore_ascii_case("NULL") {
            return Err(ScaffoldError::Refused(
                "--not-null with --default NULL fails on every existing row: give a constant value"
                    .to_string(),
            ));
        }
    } else if c.not_null {
        return Err(ScaffoldError::Refused(format!(
            "a NOT NULL column without a default fails on a table with rows: give --default CONST, or add it nullable, backfill it in batches, then `taskdb new {table}_{col}_not_null --set-not-null {table}.{col}`",
            table = c.table,
            col = c.column
        )));
    }
    let mut definition = format!("{} {}", c.column, c.sql_type.trim().to_ascii_uppercase());
    if c.not_null {
        definition.push_str(" NOT NULL");
    }
    if let Some(default) = &c.default {
        definition.push_str(&format!(" DEFAULT {}", default.trim()));
    }
    // Why this ALTER rewrites no row, on a line of its own.
    let why_postgres = match &c.default {
        None => {
            "Nullable, without a default: existing rows read NULL, none is rewritten.".to_string()
        }
        Some(d) => format!(
            "The default {} is a constant: kept in the catalog, no row is rewritten.",
            d.trim()
        ),
    };
    let postgres_up = format!(
        "\
-- Adds {table}.{col}.
-- {why_postgres}
-- The ALTER needs a brief ACCESS EXCLUSIVE lock; taskdb's lock timeout keeps
-- it from queueing the app's queries behind it.
ALTER TABLE {table} ADD COLUMN {definition};
",
        table = c.table,
        col = c.column,
    );
    let down = format!(
        "ALTER TABLE {table} DROP COLUMN {col};\n",
        table = c.table,
        col = c.column
    );
    let sqlite_up = format!(
        "\
-- Adds {table}.{col}. SQLite adds a column in place when its default is a
-- constant (a non-constant one fails once the table has rows).
ALTER TABLE {table} ADD COLUMN {definition};
",
        table = c.table,
        col = c.column,
    );
    Ok(vec![Step {
        name: name.to_string(),
        postgres: files(postgres_up, down.clone()),
        sqlite: files(sqlite_up, down),
    }])
}

/// The name `taskdb new --add-index` gives an index.
pub fn index_name(i: &AddIndex) -> String {
    let columns = i.columns.join("_");
    if i.unique {
        format!("{}_{columns}_key", i.table)
    } else {
        format!("idx_{}_{columns}", i.table)
    }
}

fn add_index(name: &str, i: &AddIndex, schema: &SqliteSchema) -> Result<Vec<Step>> {
    let table = existing_table(schema, &i.table)?;
    if i.columns.is_empty() {
        return Err(ScaffoldError::Refused(
            "give the index's columns, comma-separated (e.g. user_id,due_date)".to_string(),
        ));
    }
    for column in &i.columns {
        existing_column(&i.table, table, column)?;
    }
    if let Some(predicate) = &i.predicate {
        check_expression("--where predicate", predicate)?;
    }
    let index = object_name(index_name(i))?;
    if schema.has_index(&index) {
        return Err(ScaffoldError::Refused(format!(
            "an index named `{index}` exists already"
        )));
    }
    let unique = if i.unique { "UNIQUE " } else { "" };
    let columns = i.columns.join(", ");
    let predicate = i
        .predicate
        .as_ref()
        .map(|p| format!(" WHERE {}", p.trim()))
        .unwrap_or_default();
    let target = format!("{index} ON {} ({columns}){predicate}", i.table);
    let postgres_up = format!(
        "\
-- CONCURRENTLY builds the index without blocking writes to {table}. It
-- cannot run in a transaction, so this file holds this one statement
-- (metadata.toml). A build that fails or is cut off leaves an INVALID
-- index: the next `taskdb migrate` drops and rebuilds it.
CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {target};
",
        table = i.table
    );
    let postgres_down = format!("DROP INDEX CONCURRENTLY IF EXISTS {index};\n");
    let sqlite_up = format!("CREATE {unique}INDEX {target};\n");
    let sqlite_down = format!("DROP INDEX IF EXISTS {index};\n");
    Ok(vec![Step {
        name: name.to_string(),
        postgres: MigrationFiles {
            up: postgres_up,
            down: postgres_down,
            metadata: Some(NO_TRANSACTION_INDEX.to_string()),
        },
        sqlite: files(sqlite_up, sqlite_down),
    }])
}

fn validate_step(name: &str, table: &str, constraint: &str, rebuilt: &str) -> Step {
    let postgres_up = format!(
        "\
-- Checks the rows that existed before {constraint} was added. Takes SHARE
-- UPDATE EXCLUSIVE, which does not block inserts, updates or deletes.
-- Fails, naming the constraint, if an old row breaks it: fix those rows,
-- then run `taskdb migrate` again.
ALTER TABLE {table} VALIDATE CONSTRAINT {constraint};
"
    );
    let postgres_down = "\
-- A validated constraint cannot be made NOT VALID again; reverting the
-- previous migration drops it.
SELECT 1;
"
    .to_string();
    Step {
        name: format!("{name}_validate"),
        postgres: files(postgres_up, postgres_down),
        sqlite: no_op(rebuilt),
    }
}

/// A SQLite migration that only keeps the histories aligned.
fn no_op(rebuilt: &str) -> MigrationFiles {
    let text = format!(
        "\
-- Nothing to do on SQLite: {rebuilt}
-- This migration keeps both backends' histories under the same names.
SELECT 1;
"
    );
    files(text.clone(), text)
}

/// The table rebuild SQLite needs to change `table`: a new table from
/// `items`, every row copied, the old one dropped, its indexes and triggers
/// created again. `down.sql` is the reverse rebuild, to the definition the
/// table has now.
fn sqlite_rebuild(
    table_name: &str,
    table: &Table,
    items: &[String],
    why: &str,
) -> Result<MigrationFiles> {
    if !table.referenced_by.is_empty() {
        return Err(ScaffoldError::Refused(format!(
            "SQLite adds a constraint by rebuilding the table, and `{table_name}` is referenced by {}: dropping it inside the migration's transaction would delete their rows by cascade (PRAGMA foreign_keys cannot be switched off in a transaction). Write this migration by hand: `taskdb new NAME` writes skeletons",
            table.referenced_by.join(", ")
        )));
    }
    let Some(body) = table.body() else {
        return Err(ScaffoldError::Refused(format!(
            "cannot read the definition of `{table_name}`: {}",
            table.sql
        )));
    };
    let columns = table
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let recreate: String = table
        .indexes
        .iter()
        .chain(&table.triggers)
        .map(|sql| format!("\n{};\n", sql.trim()))
        .collect();
    let up = format!(
        "\
-- {why}
-- SQLite cannot add a constraint to an existing table: rebuild it (the
-- documented 12-step way, inside this migration's transaction), every row
-- kept. A row that breaks the new rule makes the copy fail, so nothing is
-- lost silently.
CREATE TABLE {table_name}_new (
    {items}
);
INSERT INTO {table_name}_new ({columns})
    SELECT {columns} FROM {table_name};
DROP TABLE {table_name};
ALTER TABLE {table_name}_new RENAME TO {table_name};
{recreate}",
        items = items.join(",\n    "),
    );
    let down = format!(
        "\
-- Back to {table_name} as it was before, every row kept.
CREATE TABLE {table_name}_old ({body});
INSERT INTO {table_name}_old ({columns})
    SELECT {columns} FROM {table_name};
DROP TABLE {table_name};
ALTER TABLE {table_name}_old RENAME TO {table_name};
{recreate}"
    );
    Ok(files(up, down))
}

fn table_items(table_name: &str, table: &Table) -> Result<Vec<String>> {
    table.body().map(split_items).ok_or_else(|| {
        ScaffoldError::Refused(format!(
            "cannot read the definition of `{table_name}`: {}",
            table.sql
        ))
    })
}

fn add_foreign_key(name: &str, fk: &AddForeignKey, schema: &SqliteSchema) -> Result<Vec<Step>> {
    let table = existing_table(schema, &fk.from.table)?;
    existing_column(&fk.from.table, table, &fk.from.column)?;
    let parent = existing_table(schema, &fk.to.table)?;
    existing_column(&fk.to.table, parent, &fk.to.column)?;
    let constraint = object_name(format!("fk_{}_{}", fk.from.table, fk.from.column))?;
    let on_delete = fk
        .on_delete
        .map(|action| format!(" ON DELETE {}", action.sql()))
        .unwrap_or_default();
    let references = format!(
        "FOREIGN KEY ({}) REFERENCES {} ({}){on_delete}",
        fk.from.column, fk.to.table, fk.to.column
    );
    let postgres_up = format!(
        "\
-- NOT VALID skips the full-table scan, so the ALTER holds its write-blocking
-- lock only for a catalog update. New and updated rows are checked from now
-- on; the next migration checks the rows already there, under a weaker lock.
ALTER TABLE {table}
    ADD CONSTRAINT {constraint}
    {references}
    NOT VALID;
",
        table = fk.from.table
    );
    let postgres_down = format!(
        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {constraint};\n",
        fk.from.table
    );
    let mut items = table_items(&fk.from.table, table)?;
    items.push(format!("CONSTRAINT {constraint} {references}"));
    let sqlite = sqlite_rebuild(
        &fk.from.table,
        table,
        &items,
        &format!(
            "Adds the foreign key {}.{} -> {}.{}.",
            fk.from.table, fk.from.column, fk.to.table, fk.to.column
        ),
    )?;
    let rebuilt = format!(
        "the previous migration rebuilt {} and checked every row.",
        fk.from.table
    );
    Ok(vec![
        Step {
            name: name.to_string(),
            postgres: files(postgres_up, postgres_down),
            sqlite,
        },
        validate_step(name, &fk.from.table, &constraint, &rebuilt),
    ])
}

fn add_check(name: &str, check: &AddCheck, schema: &SqliteSchema) -> Result<Vec<Step>> {
    let table = existing_table(schema, &check.table)?;
    check_expression("check expression", &check.expression)?;
    let constraint = object_name(format!("chk_{name}"))?;
    let expression = check.expression.trim();
    let postgres_up = format!(
        "\
-- NOT VALID skips the full-table scan, so the ALTER holds its write-blocking
-- lock only for a catalog update. New and updated rows are checked from now
-- on; the next migration checks the rows already there, under a weaker lock.
ALTER TABLE {table}
    ADD CONSTRAINT {constraint} CHECK ({expression})
    NOT VALID;
",
        table = check.table
    );
    let postgres_down = format!(
        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {constraint};\n",
        check.table
    );
    let mut items = table_items(&check.table, table)?;
    items.push(format!("CONSTRAINT {constraint} CHECK ({expression})"));
    let sqlite = sqlite_rebuild(
        &check.table,
        table,
        &items,
        &format!("Adds the check ({expression}) on {}.", check.table),
    )?;
    let rebuilt = format!(
        "the previous migration rebuilt {} and checked every row.",
        check.table
    );
    Ok(vec![
        Step {
            name: name.to_string(),
            postgres: files(postgres_up, postgres_down),
            sqlite,
        },
        validate_step(name, &check.table, &constraint, &rebuilt),
    ])
}

fn set_not_null(name: &str, c: &ColumnRef, schema: &SqliteSchema) -> Result<Vec<Step>> {
    let table = existing_table(schema, &c.table)?;
    existing_column(&c.table, table, &c.column)?;
    if table.column(&c.column).is_some_and(|col| col.not_null) {
        return Err(ScaffoldError::Refused(format!(
            "column `{}.{}` is NOT NULL already",
            c.table, c.column
        )));
    }
    let constraint = object_name(format!("{}_{}_not_null", c.table, c.column))?;
    let check = format!("CHECK ({} IS NOT NULL)", c.column);
    let first_up = format!(
        "\
-- Step 1 of 3 towards {table}.{col} NOT NULL. SET NOT NULL alone scans the
-- whole table under an ACCESS EXCLUSIVE lock. A CHECK added NOT VALID is a
-- catalog change; new and updated rows must have a {col} from now on.
ALTER TABLE {table}
    ADD CONSTRAINT {constraint} {check}
    NOT VALID;
",
        table = c.table,
        col = c.column
    );
    let first_down = format!(
        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {constraint};\n",
        c.table
    );
    let mut items = table_items(&c.table, table)?;
    let mut found = false;
    for item in &mut items {
        if item_column(item).is_some_and(|col| col.eq_ignore_ascii_case(&c.column)) {
            item.push_str(" NOT NULL");
            found = true;
        }
    }
    if !found {
        return Err(ScaffoldError::Refused(format!(
            "cannot find the definition of `{}` in `{}`: {}",
            c.column, c.table, table.sql
        )));
    }
    let sqlite = sqlite_rebuild(
        &c.table,
        table,
        &items,
        &format!("Makes {}.{} NOT NULL.", c.table, c.column),
    )?;
    let rebuilt = format!(
        "the first of these migrations rebuilt {} with {} NOT NULL.",
        c.table, c.column
    );
    let mut validate = validate_step(name, &c.table, &constraint, &rebuilt);
    validate.postgres.up = validate.postgres.up.replacen(
        "-- Checks the rows",
        &format!(
            "-- Step 2 of 3 towards {}.{} NOT NULL. Checks the rows",
            c.table, c.column
        ),
        1,
    );
    let last_up = format!(
        "\
-- Step 3 of 3. The validated check proves no row has a NULL {col}, so SET
-- NOT NULL skips its scan (PostgreSQL 12+) and holds its lock only for a
-- catalog update. The check is redundant after it.
ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL;
ALTER TABLE {table} DROP CONSTRAINT {constraint};
",
        table = c.table,
        col = c.column
    );
    let last_down = format!(
        "\
-- Back to a nullable column guarded by the validated check (adding it
-- scans the table once; the column is NOT NULL here, so it cannot fail).
ALTER TABLE {table} ADD CONSTRAINT {constraint} {check};
ALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL;
",
        table = c.table,
        col = c.column
    );
    Ok(vec![
        Step {
            name: name.to_string(),
            postgres: files(first_up, first_down),
            sqlite,
        },
        validate,
        Step {
            name: format!("{name}_set_not_null"),
            postgres: files(last_up, last_down),
            sqlite: no_op(&rebuilt),
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The app's SQLite schema as its first release left it, written out
    /// here so that these tests do not change meaning when a migration is
    /// added to the crate.
    const FIXTURE: &str = "
        CREATE TABLE users (
            id VARCHAR(255) PRIMARY KEY NOT NULL,
            email VARCHAR(255) NOT NULL,
            name VARCHAR(255),
            created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
        );
        CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
        CREATE INDEX idx_users_created_at ON users (created_at);
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id VARCHAR(255) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            title VARCHAR(255) NOT NULL,
            description TEXT,
            completed BOOLEAN NOT NULL DEFAULT 0,
            created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
        );
        CREATE INDEX idx_tasks_user_completed ON tasks (user_id, completed);
        CREATE TRIGGER tasks_set_updated_at AFTER UPDATE ON tasks
        FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
        BEGIN
            UPDATE tasks SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
        END;
    ";

    fn fixture() -> Vec<(String, String)> {
        vec![("fixture".to_string(), FIXTURE.to_string())]
    }

    fn schema() -> SqliteSchema {
        SqliteSchema::from_migrations(&fixture()).unwrap()
    }

    /// The SQL of a file without its comment lines.
    fn statements(sql: &str) -> String {
        sql.lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn column(not_null: bool, default: Option<&str>) -> Recipe {
        Recipe::AddColumn(AddColumn {
            table: "tasks".into(),
            column: "due_date".into(),
            sql_type: "timestamp".into(),
            not_null,
            default: default.map(str::to_string),
        })
    }

    #[test]
    fn reserved_words_are_sorted_for_the_binary_search() {
        assert!(RESERVED.windows(2).all(|w| w[0] < w[1]));
        assert!(is_reserved("user") && is_reserved("Order") && !is_reserved("user_id"));
    }

    #[test]
    fn constant_defaults_are_literals() {
        for constant in ["0", "-1.5", "'open'", "'it''s'", "true", "FALSE", "null"] {
            assert!(is_constant_default(constant), "{constant}");
        }
        for volatile in [
            "now()",
            "CURRENT_TIMESTAMP",
            "clock_timestamp()",
            "random()",
            "gen_random_uuid()",
            "(now() AT TIME ZONE 'UTC')",
            "'a' || 'b'",
            "1 + 1",
            "'unterminated",
            "",
        ] {
            assert!(!is_constant_default(volatile), "{volatile}");
        }
    }

    #[test]
    fn add_column_nullable_and_not_null_with_a_constant() {
        let steps = build("add_tasks_due_date", &column(false, None), &schema()).unwrap();
        assert_eq!(steps.len(), 1);
        let step = &steps[0];
        assert_eq!(step.name, "add_tasks_due_date");
        assert_eq!(
            statements(&step.postgres.up).trim(),
            "ALTER TABLE tasks ADD COLUMN due_date TIMESTAMP;"
        );
        assert_eq!(
            step.postgres.down,
            "ALTER TABLE tasks DROP COLUMN due_date;\n"
        );
        assert_eq!(step.postgres.metadata, None);
        assert_eq!(
            statements(&step.sqlite.up).trim(),
            "ALTER TABLE tasks ADD COLUMN due_date TIMESTAMP;"
        );
        assert_eq!(step.sqlite.down, step.postgres.down);

        let steps = build(
            "add_tasks_due_date",
            &column(true, Some("'2026-01-01'")),
            &schema(),
        )
        .unwrap();
        assert_eq!(
            statements(&steps[0].postgres.up).trim(),
            "ALTER TABLE tasks ADD COLUMN due_date TIMESTAMP NOT NULL DEFAULT '2026-01-01';"
        );
    }

    #[test]
    fn add_column_refuses_volatile_defaults_with_the_backfill_recipe() {
        for default in ["now()", "CURRENT_TIMESTAMP"] {
            let err = build("x", &column(false, Some(default)), &schema())
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a constant"), "{err}");
            assert!(err.contains("backfill"), "{err}");
            assert!(err.contains("--set-not-null tasks.due_date"), "{err}");
        }
        let err = build("x", &column(true, None), &schema())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--default"), "{err}");
        let serial = Recipe::AddColumn(AddColumn {
            table: "tasks".into(),
            column: "n".into(),
            sql_type: "bigserial".into(),
            not_null: false,
            default: None,
        });
        assert!(build("x", &serial, &schema()).is_err());
    }

    #[test]
    fn add_column_refuses_unknown_tables_existing_columns_and_odd_types() {
        let mut c = AddColumn {
            table: "projects".into(),
            column: "x".into(),
            sql_type: "text".into(),
            not_null: false,
            default: None,
        };
        let err = build("x", &Recipe::AddColumn(c.clone()), &schema()).unwrap_err();
        assert!(err.to_string().contains("no table `projects`"), "{err}");
        c.table = "tasks".into();
        c.column = "title".into();
        let err = build("x", &Recipe::AddColumn(c.clone()), &schema()).unwrap_err();
        assert!(err.to_string().contains("exists already"), "{err}");
        c.column = "x".into();
        c.sql_type = "text; DROP TABLE users".into();
        assert!(build("x", &Recipe::AddColumn(c.clone()), &schema()).is_err());
        c.sql_type = "varchar(255)".into();
        assert!(build("x", &Recipe::AddColumn(c), &schema()).is_ok());
    }

    #[test]
    fn add_index_is_concurrent_and_alone_outside_a_transaction() {
        let recipe = Recipe::AddIndex(AddIndex {
            table: "tasks".into(),
            columns: vec!["user_id".into(), "created_at".into()],
            unique: false,
            predicate: Some("NOT completed".into()),
        });
        let steps = build("index_tasks_open", &recipe, &schema()).unwrap();
        assert_eq!(steps.len(), 1);
        let pg = &steps[0].postgres;
        assert_eq!(
            statements(&pg.up).trim(),
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_user_id_created_at ON tasks (user_id, created_at) WHERE NOT completed;"
        );
        assert_eq!(
            pg.down,
            "DROP INDEX CONCURRENTLY IF EXISTS idx_tasks_user_id_created_at;\n"
        );
        let metadata = pg.metadata.as_deref().unwrap();
        assert!(metadata
            .lines()
            .any(|l| l.trim() == "run_in_transaction = false"));
        // One statement per file: Diesel would wrap several in a transaction.
        assert_eq!(statements(&pg.up).matches(';').count(), 1);
        assert_eq!(
            crate::migrate::apply::created_index_names(&pg.up),
            ["idx_tasks_user_id_created_at"]
        );
        let sqlite = &steps[0].sqlite;
        assert_eq!(
            sqlite.up,
            "CREATE INDEX idx_tasks_user_id_created_at ON tasks (user_id, created_at) WHERE NOT completed;\n"
        );
        assert_eq!(sqlite.metadata, None);
        assert_eq!(
            sqlite.down,
            "DROP INDEX IF EXISTS idx_tasks_user_id_created_at;\n"
        );

        let unique = Recipe::AddIndex(AddIndex {
            table: "users".into(),
            columns: vec!["name".into()],
            unique: true,
            predicate: None,
        });
        let steps = build("x", &unique, &schema()).unwrap();
        assert!(steps[0].postgres.up.contains(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_name_key ON users (name);"
        ));
    }

    #[test]
    fn add_index_refuses_unknown_columns_and_existing_names_and_second_statements() {
        let mut i = AddIndex {
            table: "tasks".into(),
            columns: vec!["due_date".into()],
            unique: false,
            predicate: None,
        };
        let err = build("x", &Recipe::AddIndex(i.clone()), &schema()).unwrap_err();
        assert!(
            err.to_string().contains("no column `tasks.due_date`"),
            "{err}"
        );
        i.columns = vec!["user_id".into()];
        i.predicate = Some("true; DROP TABLE tasks".into());
        assert!(build("x", &Recipe::AddIndex(i.clone()), &schema()).is_err());
        i.predicate = None;
        i.columns = vec!["created_at".into()];
        i.table = "users".into();
        let err = build("x", &Recipe::AddIndex(i), &schema()).unwrap_err();
        assert!(err.to_string().contains("idx_users_created_at"), "{err}");
    }

    #[test]
    fn add_foreign_key_is_not_valid_then_validated_and_a_sqlite_rebuild() {
        let recipe = Recipe::AddForeignKey(AddForeignKey {
            from: ColumnRef::parse("tasks.title").unwrap(),
            to: ColumnRef::parse("users.id").unwrap(),
            on_delete: Some(OnDelete::SetNull),
        });
        let steps = build("tasks_title_fk", &recipe, &schema()).unwrap();
        assert_eq!(
            steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["tasks_title_fk", "tasks_title_fk_validate"]
        );
        let add = statements(&steps[0].postgres.up);
        assert!(add.contains("ADD CONSTRAINT fk_tasks_title"), "{add}");
        assert!(
            add.contains("FOREIGN KEY (title) REFERENCES users (id) ON DELETE SET NULL"),
            "{add}"
        );
        assert!(add.trim_end().ends_with("NOT VALID;"), "{add}");
        assert_eq!(
            steps[0].postgres.down,
            "ALTER TABLE tasks DROP CONSTRAINT IF EXISTS fk_tasks_title;\n"
        );
        assert_eq!(
            statements(&steps[1].postgres.up).trim(),
            "ALTER TABLE tasks VALIDATE CONSTRAINT fk_tasks_title;"
        );
        assert!(steps.iter().all(|s| s.postgres.metadata.is_none()));

        // SQLite: the rebuild in the first, a no-op in the second.
        let rebuild = &steps[0].sqlite.up;
        assert!(rebuild.contains("CREATE TABLE tasks_new ("), "{rebuild}");
        assert!(rebuild.contains(
            "CONSTRAINT fk_tasks_title FOREIGN KEY (title) REFERENCES users (id) ON DELETE SET NULL"
        ));
        assert!(rebuild.contains("DROP TABLE tasks;\nALTER TABLE tasks_new RENAME TO tasks;"));
        // The table's index and trigger come back.
        assert!(rebuild
            .contains("CREATE INDEX idx_tasks_user_completed ON tasks (user_id, completed);"));
        assert!(rebuild.contains("CREATE TRIGGER tasks_set_updated_at"));
        let down = &steps[0].sqlite.down;
        assert!(down.contains("CREATE TABLE tasks_old ("), "{down}");
        assert!(!down.contains("fk_tasks_title"), "{down}");
        assert!(down.contains("CREATE TRIGGER tasks_set_updated_at"));
        assert_eq!(statements(&steps[1].sqlite.up).trim(), "SELECT 1;");
    }

    #[test]
    fn sqlite_rebuild_up_and_down_apply_and_restore_the_table() {
        let schema = schema();
        let recipe = Recipe::AddCheck(AddCheck {
            table: "tasks".into(),
            expression: "length(title) > 0".into(),
        });
        let steps = build("tasks_title_not_empty", &recipe, &schema).unwrap();
        let mut migrations = fixture();
        let before = schema.table("tasks").unwrap().clone();
        migrations.push(("up".into(), steps[0].sqlite.up.clone()));
        let after = SqliteSchema::from_migrations(&migrations).unwrap();
        let tasks = after.table("tasks").unwrap();
        assert!(
            tasks.sql.contains("CHECK (length(title) > 0)"),
            "{}",
            tasks.sql
        );
        assert_eq!(tasks.indexes, schema.table("tasks").unwrap().indexes);
        assert_eq!(tasks.triggers, schema.table("tasks").unwrap().triggers);
        migrations.push(("down".into(), steps[0].sqlite.down.clone()));
        let reverted = SqliteSchema::from_migrations(&migrations).unwrap();
        let reverted = reverted.table("tasks").unwrap();
        // The definition comes back word for word (SQLite quotes a renamed
        // table's name, so compare what is inside the parentheses).
        assert_eq!(reverted.body(), before.body());
        assert_eq!(reverted.columns, before.columns);
        assert_eq!(reverted.indexes, before.indexes);
        assert_eq!(reverted.triggers, before.triggers);
    }

    #[test]
    fn add_check_is_not_valid_then_validated() {
        let recipe = Recipe::AddCheck(AddCheck {
            table: "tasks".into(),
            expression: "length(title) > 0".into(),
        });
        let steps = build("tasks_title_not_empty", &recipe, &schema()).unwrap();
        assert_eq!(steps.len(), 2);
        let add = statements(&steps[0].postgres.up);
        assert!(
            add.contains("ADD CONSTRAINT chk_tasks_title_not_empty CHECK (length(title) > 0)\n    NOT VALID;"),
            "{add}"
        );
        assert_eq!(steps[1].name, "tasks_title_not_empty_validate");
        assert!(steps[1]
            .postgres
            .up
            .contains("ALTER TABLE tasks VALIDATE CONSTRAINT chk_tasks_title_not_empty;"));
        assert!(steps[0]
            .sqlite
            .up
            .contains("CONSTRAINT chk_tasks_title_not_empty CHECK (length(title) > 0)"));
    }

    #[test]
    fn set_not_null_goes_through_a_validated_check() {
        let recipe = Recipe::SetNotNull(ColumnRef::parse("tasks.description").unwrap());
        let steps = build("tasks_description_not_null", &recipe, &schema()).unwrap();
        assert_eq!(
            steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            [
                "tasks_description_not_null",
                "tasks_description_not_null_validate",
                "tasks_description_not_null_set_not_null"
            ]
        );
        assert!(statements(&steps[0].postgres.up).contains(
            "ADD CONSTRAINT tasks_description_not_null CHECK (description IS NOT NULL)\n    NOT VALID;"
        ));
        assert!(steps[1]
            .postgres
            .up
            .contains("VALIDATE CONSTRAINT tasks_description_not_null;"));
        assert_eq!(
            statements(&steps[2].postgres.up).trim(),
            "ALTER TABLE tasks ALTER COLUMN description SET NOT NULL;\nALTER TABLE tasks DROP CONSTRAINT tasks_description_not_null;"
        );
        let down = statements(&steps[2].postgres.down);
        assert!(down.contains(
            "ADD CONSTRAINT tasks_description_not_null CHECK (description IS NOT NULL);"
        ));
        assert!(down.contains("ALTER COLUMN description DROP NOT NULL;"));
        assert!(steps[0].sqlite.up.contains("description TEXT NOT NULL,"));
        assert_eq!(statements(&steps[2].sqlite.up).trim(), "SELECT 1;");

        let err = build(
            "x",
            &Recipe::SetNotNull(ColumnRef::parse("tasks.title").unwrap()),
            &schema(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("NOT NULL already"), "{err}");
    }

    #[test]
    fn a_sqlite_rebuild_of_a_referenced_table_is_refused() {
        let recipe = Recipe::SetNotNull(ColumnRef::parse("users.name").unwrap());
        let err = build("x", &recipe, &schema()).unwrap_err().to_string();
        assert!(err.contains("referenced by tasks"), "{err}");
    }

    #[test]
    fn skeletons_are_comments_only() {
        let steps = build("add_projects", &Recipe::Skeleton, &SqliteSchema::default()).unwrap();
        assert_eq!(steps.len(), 1);
        for text in [
            &steps[0].postgres.up,
            &steps[0].postgres.down,
            &steps[0].sqlite.up,
        ] {
            assert!(statements(text).trim().is_empty(), "{text}");
        }
        assert!(steps[0].postgres.up.contains("CONCURRENTLY"));
    }
}
