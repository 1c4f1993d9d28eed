//! `taskdb new`: writes the next migration for both backends, in the
//! online-safe shape of the kind asked for (see [`crate::scaffold`]).
//! Touches no database.

use std::io::Write;
use std::process::ExitCode;

use clap::{ArgGroup, Args, ValueEnum};

use super::output::Output;
use crate::scaffold::{
    self, AddCheck, AddColumn, AddForeignKey, AddIndex, Backfill, Checkout, ColumnRef, OnDelete,
    Recipe,
};

pub const LONG_ABOUT: &str = "\
Create the next migration in both migrations/postgres and migrations/sqlite,
under the same directory name (YYYY-MM-DD-NNNNNN_name, NNNNNN one more than
the newest), each with up.sql and down.sql.

Without a kind it writes commented skeletons. With a kind it writes the
online-safe recipe, split into as many migrations as PostgreSQL needs, and
the matching SQLite form:
  --add-column       nullable, or NOT NULL with a constant default
  --add-index        CREATE INDEX CONCURRENTLY alone, outside a transaction
  --add-foreign-key  NOT VALID, then VALIDATE in a second migration
  --add-check        NOT VALID, then VALIDATE in a second migration
  --set-not-null     a validated CHECK, then SET NOT NULL and drop the check
  --backfill         one UPDATE, which taskdb runs in short, resumable batches
SQLite adds constraints by rebuilding the table (every row kept).

Run it at the root of the crate (or below it). taskdb embeds its
migrations at build time: rebuild before `taskdb migrate` applies them.";

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("kind").args(["add_column", "add_index", "add_foreign_key", "add_check", "set_not_null", "backfill"])))]
pub struct Opts {
    /// The migration's name: lowercase letters, digits and underscores
    /// (e.g. add_tasks_due_date)
    pub name: String,

    /// Add a column: nullable, or NOT NULL with --not-null and a constant
    /// --default
    #[arg(long, num_args = 3, value_names = ["TABLE", "COLUMN", "TYPE"])]
    pub add_column: Option<Vec<String>>,

    /// With --add-column: the column is NOT NULL (needs --default)
    #[arg(long, requires = "add_column")]
    pub not_null: bool,

    /// With --add-column: a constant default (a number, 'text', true,
    /// false, null); now() and other volatile defaults are refused with the
    /// backfill recipe
    #[arg(
        long,
        value_name = "CONST",
        requires = "add_column",
        allow_hyphen_values = true
    )]
    pub default: Option<String>,

    /// Add an index on comma-separated columns, built CONCURRENTLY on
    /// PostgreSQL
    #[arg(long, num_args = 2, value_names = ["TABLE", "COLUMNS"])]
    pub add_index: Option<Vec<String>>,

    /// With --add-index: a unique index
    #[arg(long, requires = "add_index")]
    pub unique: bool,

    /// With --add-index: a partial index on the rows matching this
    /// predicate (e.g. 'NOT completed'). With --backfill: the rows still
    /// to change (e.g. 'priority IS NULL'; required)
    #[arg(long = "where", value_name = "PREDICATE")]
    pub predicate: Option<String>,

    /// Add a foreign key: NOT VALID, then validated by a second migration
    #[arg(long, num_args = 2, value_names = ["TABLE.COLUMN", "REFERENCED_TABLE.COLUMN"])]
    pub add_foreign_key: Option<Vec<String>>,

    /// With --add-foreign-key: what deleting the referenced row does
    #[arg(long, value_name = "ACTION", requires = "add_foreign_key")]
    pub on_delete: Option<OnDeleteArg>,

    /// Add a CHECK constraint: NOT VALID, then validated by a second
    /// migration
    #[arg(long, num_args = 2, value_names = ["TABLE", "EXPRESSION"])]
    pub add_check: Option<Vec<String>>,

    /// Make a column NOT NULL: a CHECK added NOT VALID, validated, then SET
    /// NOT NULL and the check dropped (three migrations)
    #[arg(long, value_name = "TABLE.COLUMN")]
    pub set_not_null: Option<String>,

    /// Fill in a column: one UPDATE of the rows matching --where, which
    /// `taskdb migrate` runs on PostgreSQL in short batches in primary-key
    /// order, resuming where it stopped (e.g. tasks 'priority = 0' --where
    /// 'priority IS NULL')
    #[arg(long, num_args = 2, value_names = ["TABLE", "SET_LIST"], requires = "predicate")]
    pub backfill: Option<Vec<String>>,
}

/// `ON DELETE` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnDeleteArg {
    /// Delete the referencing rows too
    Cascade,
    /// Set the referencing column to NULL
    SetNull,
    /// Refuse to delete a referenced row
    Restrict,
    /// Refuse, checked at the end of the statement (the default)
    NoAction,
}

impl From<OnDeleteArg> for OnDelete {
    fn from(arg: OnDeleteArg) -> Self {
        match arg {
            OnDeleteArg::Cascade => OnDelete::Cascade,
            OnDeleteArg::SetNull => OnDelete::SetNull,
            OnDeleteArg::Restrict => OnDelete::Restrict,
            OnDeleteArg::NoAction => OnDelete::NoAction,
        }
    }
}

impl Opts {
    /// The recipe the options ask for. clap has already made sure at most
    /// one kind is given, each with its number of values.
    pub fn recipe(&self) -> scaffold::Result<Recipe> {
        if let (Some([table, set]), Some(predicate)) =
            (self.backfill.as_deref(), self.predicate.as_ref())
        {
            return Ok(Recipe::Backfill(Backfill {
                table: table.clone(),
                set: set.clone(),
                predicate: predicate.clone(),
            }));
        }
        if let Some([table, column, sql_type]) = self.add_column.as_deref() {
            return Ok(Recipe::AddColumn(AddColumn {
                table: table.clone(),
                column: column.clone(),
                sql_type: sql_type.clone(),
                not_null: self.not_null,
                default: self.default.clone(),
            }));
        }
        if let Some([table, columns]) = self.add_index.as_deref() {
            return Ok(Recipe::AddIndex(AddIndex {
                table: table.clone(),
                columns: columns
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect(),
                unique: self.unique,
                predicate: self.predicate.clone(),
            }));
        }
        if let Some([from, to]) = self.add_foreign_key.as_deref() {
            return Ok(Recipe::AddForeignKey(AddForeignKey {
                from: ColumnRef::parse(from)?,
                to: ColumnRef::parse(to)?,
                on_delete: self.on_delete.map(OnDelete::from),
            }));
        }
        if let Some([table, expression]) = self.add_check.as_deref() {
            return Ok(Recipe::AddCheck(AddCheck {
                table: table.clone(),
                expression: expression.clone(),
            }));
        }
        if let Some(column) = &self.set_not_null {
            return Ok(Recipe::SetNotNull(ColumnRef::parse(column)?));
        }
        Ok(Recipe::Skeleton)
    }
}

pub fn run(opts: &Opts, out: &mut Output<'_>) -> anyhow::Result<ExitCode> {
    if opts.predicate.is_some() && opts.add_index.is_none() && opts.backfill.is_none() {
        return Err(super::Usage {
            message: "--where goes with --add-index or --backfill".to_string(),
            help: "taskdb new --help",
        }
        .into());
    }
    let recipe = opts.recipe()?;
    let cwd = std::env::current_dir()?;
    let checkout = Checkout::find(&cwd)?;
    // Numbered and written under the lock: another `taskdb new` at the
    // same time would take the same number.
    let lock = checkout.lock()?;
    let today = chrono::Utc::now().date_naive();
    let planned = scaffold::plan(&checkout, &opts.name, &recipe, today)?;
    let written = scaffold::write(&checkout, &planned)?;
    drop(lock);
    writeln!(
        out,
        "Created {} migration(s) in both migrations/postgres and migrations/sqlite:",
        planned.len()
    )?;
    for path in &written {
        let shown = path.strip_prefix(checkout.root()).unwrap_or(path);
        writeln!(out, "  {}", shown.display())?;
    }
    // The pre-flight's facts cover the new files at once, so a build made
    // now does not lint them at start-up (or, without the parser, refuse
    // them). Edited files are covered again by `taskdb lint --write-facts`.
    let facts = checkout.root().join("migrations/lint-facts.json");
    if facts.is_file() {
        let covered =
            super::lint::write_facts(&checkout.root().join("migrations/postgres"), &facts)?;
        writeln!(
            out,
            "Updated migrations/lint-facts.json (the pre-flight's facts, {covered} migration(s))."
        )?;
    }
    let steps = planned.len();
    writeln!(out)?;
    writeln!(out, "Next:")?;
    if recipe == Recipe::Skeleton {
        writeln!(
            out,
            "  1. Write up.sql and down.sql for both backends (down.sql undoes up.sql)."
        )?;
    } else {
        writeln!(
            out,
            "  1. Read the files; edit them if the change needs more (keep both backends alike)."
        )?;
    }
    writeln!(
        out,
        "     After any edit: `taskdb lint --write-facts migrations/lint-facts.json` (CI checks it)."
    )?;
    writeln!(
        out,
        "  2. Build (taskdb embeds its migrations), then against a development database:"
    )?;
    writeln!(
        out,
        "     `taskdb migrate`, and `taskdb redo --steps {steps}` to check down.sql, on PostgreSQL and SQLite."
    )?;
    writeln!(
        out,
        "  3. Regenerate src/schema.rs from the migrated PostgreSQL database:"
    )?;
    writeln!(
        out,
        "     diesel print-schema --database-url postgres://… > src/schema.rs"
    )?;
    if let Recipe::AddColumn(c) = &recipe {
        // schema.rs alone does not reach the typed API: the row types list
        // their columns, and Diesel checks them against schema.rs.
        let types = match c.table.as_str() {
            "tasks" => "Task, NewTask and TaskChanges in src/models/task.rs",
            "users" => "User and NewUser in src/models/user.rs",
            _ => "the row types of that table in src/models/",
        };
        writeln!(
            out,
            "     Then add `{}` to {types}, so the app can read and write it.",
            c.column
        )?;
    }
    writeln!(
        out,
        "  4. Run the tests (scripts/test); CI also lints the PostgreSQL migrations."
    )?;
    Ok(ExitCode::SUCCESS)
}
