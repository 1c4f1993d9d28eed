//! What lint needs to know about one PostgreSQL statement, free of any
//! parser type: `parse.rs` fills it from the parse tree, the rules read it.
//! Names are as PostgreSQL folds them (unquoted: lower case), with the
//! schema when the SQL names one (`app.big`; `public.` is dropped).

/// A column type as written: `varchar(255)` is `{ name: "varchar", mods: [255] }`.
/// Names are PostgreSQL's internal ones (`int4`, `varchar`, `timestamptz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    pub name: String,
    pub mods: Vec<i64>,
    pub array: bool,
}

impl TypeInfo {
    /// The type as a person writes it, e.g. `varchar(255)`.
    pub fn display(&self) -> String {
        let mut s = self.name.clone();
        if !self.mods.is_empty() {
            let mods: Vec<String> = self.mods.iter().map(|m| m.to_string()).collect();
            s.push_str(&format!("({})", mods.join(",")));
        }
        if self.array {
            s.push_str("[]");
        }
        s
    }
}

/// A column default, as far as a table rewrite is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultKind {
    /// A constant or a stable expression (`now()`): PostgreSQL 11+ stores it
    /// once in the catalog, no row is rewritten.
    Stable,
    /// Calls a volatile (or unknown) function, e.g. `clock_timestamp()`,
    /// `gen_random_uuid()`: every row gets its own value, a rewrite.
    Volatile,
}

/// One column of `CREATE TABLE` or `ADD COLUMN`.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    pub ty: Option<TypeInfo>,
    pub not_null: bool,
    pub default: Option<DefaultKind>,
    /// `serial`, `bigserial`, `GENERATED … AS IDENTITY`, `GENERATED ALWAYS AS (…) STORED`:
    /// each fills every existing row, so adding one rewrites the table.
    pub fills_rows: Option<String>,
    /// An inline `PRIMARY KEY` / `UNIQUE`: an index built under the table lock.
    pub unique: bool,
    /// An inline `CHECK (…)`: every existing row is checked under the lock.
    pub check: bool,
    /// An inline `REFERENCES table`: the table it references.
    pub references: Option<String>,
}

/// What a table constraint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintKind {
    Check {
        /// Set when the check is exactly `col IS NOT NULL`.
        not_null_column: Option<String>,
    },
    ForeignKey {
        references: String,
    },
    Unique,
    PrimaryKey,
    Exclusion,
    Other,
}

/// One subcommand of `ALTER TABLE`.
#[derive(Debug, Clone)]
pub enum AlterCmd {
    AddColumn(ColumnInfo),
    AddConstraint {
        name: String,
        kind: ConstraintKind,
        not_valid: bool,
        /// The key columns of a UNIQUE / PRIMARY KEY constraint.
        columns: Vec<String>,
        /// `ADD CONSTRAINT … UNIQUE USING INDEX idx`: no build.
        using_index: bool,
    },
    ValidateConstraint {
        name: String,
    },
    SetNotNull {
        column: String,
    },
    AlterType {
        column: String,
        ty: Option<TypeInfo>,
        using: bool,
    },
    DropColumn {
        column: String,
    },
    DropConstraint {
        name: String,
    },
    /// `SET LOGGED`, `SET UNLOGGED`, `SET TABLESPACE`: a copy of the whole
    /// table under ACCESS EXCLUSIVE.
    Rewrite {
        what: String,
    },
    /// Anything else (`SET DEFAULT`, `DROP NOT NULL`, …): catalog-only
    /// changes lint does not flag.
    Other,
}

/// One statement.
#[derive(Debug, Clone)]
pub enum StmtKind {
    CreateTable {
        table: String,
        /// `IF NOT EXISTS`: when the name exists it creates nothing, so
        /// the table is not known to be new.
        if_not_exists: bool,
        columns: Vec<ColumnInfo>,
        /// Named `CHECK (col IS NOT NULL)` constraints: (name, column).
        not_null_checks: Vec<(String, String)>,
    },
    CreateIndex {
        index: String,
        table: String,
        concurrently: bool,
        unique: bool,
        /// Each key: its column, or the expression's text (`lower(email)`).
        columns: Vec<String>,
    },
    /// `CREATE [OR REPLACE] TRIGGER … ON table`.
    CreateTrigger {
        table: String,
    },
    DropIndex {
        indexes: Vec<String>,
        concurrently: bool,
    },
    Reindex {
        target: String,
        /// The table when the statement names one (`REINDEX TABLE t`).
        table: Option<String>,
        concurrently: bool,
    },
    AlterTable {
        table: String,
        cmds: Vec<AlterCmd>,
    },
    DropTable {
        tables: Vec<String>,
    },
    RenameTable {
        table: String,
        new_name: String,
    },
    RenameColumn {
        table: String,
        column: String,
        new_name: String,
    },
    Truncate {
        tables: Vec<String>,
    },
    LockTable {
        tables: Vec<String>,
        mode: String,
    },
    Vacuum {
        full: bool,
        tables: Vec<String>,
    },
    Cluster {
        table: Option<String>,
    },
    /// `UPDATE` / `DELETE`; `whole` when it has no `WHERE`.
    Write {
        verb: &'static str,
        table: String,
        whole: bool,
    },
    /// `REFRESH MATERIALIZED VIEW`.
    Refresh {
        view: String,
        concurrently: bool,
    },
    /// `SET [LOCAL] lock_timeout …`, `RESET statement_timeout`,
    /// `set_config('lock_timeout', …)`: overrides taskdb's bound.
    SetTimeout {
        setting: String,
    },
    /// Statements whose effect lint cannot see: `DO`, `EXECUTE`, `CALL`,
    /// a `SELECT` of a function that is not a known built-in.
    Opaque {
        what: String,
    },
    /// `DETACH PARTITION … CONCURRENTLY` and other statements that only
    /// matter for the transaction rule.
    Concurrent,
    Other,
}

/// One statement and where it is in its file.
#[derive(Debug, Clone)]
pub struct Stmt {
    /// Byte offset of its first token in the file.
    pub offset: usize,
    /// Its text, from the first token to the end (no trailing `;`).
    pub text: String,
    pub kind: StmtKind,
}

impl Stmt {
    /// True for statements that PostgreSQL refuses inside a transaction block.
    pub fn is_concurrent(&self) -> bool {
        match &self.kind {
            StmtKind::CreateIndex { concurrently, .. }
            | StmtKind::DropIndex { concurrently, .. }
            | StmtKind::Reindex { concurrently, .. } => *concurrently,
            StmtKind::Concurrent => true,
            _ => false,
        }
    }
}
