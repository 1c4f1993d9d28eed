//! The only place that uses the PostgreSQL parser (`squawk-syntax`, pure
//! Rust and lossless): turns a file's SQL into [`Stmt`]s. Everything else
//! in lint works on those, so a build without the parser can still read
//! lint's stored facts.
//!
//! The parser gives a concrete syntax tree (every token, rust-analyzer
//! style). This file reads it by node kind, which is all the rules need:
//! which statement, which table, which options.

use squawk_syntax::{SourceFile, SyntaxKind as K, SyntaxNode};

use super::model::{AlterCmd, ColumnInfo, ConstraintKind, DefaultKind, Stmt, StmtKind, TypeInfo};

/// Parses a whole file. `Err` holds the parser's message and the byte
/// offset it points at.
pub fn parse_postgres(sql: &str) -> Result<Vec<Stmt>, (String, Option<usize>)> {
    let parse = SourceFile::parse(sql);
    if let Some(error) = parse.errors().first() {
        let at = usize::from(error.range().start());
        return Err((format!("syntax error: {}", error.message()), Some(at)));
    }
    let root = parse.syntax_node();
    let mut out = Vec::new();
    for node in root.children() {
        let range = node.text_range();
        let start = usize::from(range.start());
        let end = usize::from(range.end()).min(sql.len());
        let first = super::first_token(sql, start).min(end);
        let text = sql
            .get(first..end)
            .unwrap_or_default()
            .trim_end()
            .trim_end_matches(';')
            .trim_end()
            .to_string();
        if text.is_empty() {
            continue;
        }
        out.push(Stmt {
            offset: first,
            text,
            kind: statement(&node),
        });
    }
    Ok(out)
}

/// An identifier as PostgreSQL folds it: quoted ones as written, others in
/// lower case.
fn ident(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_ascii_lowercase(),
    }
}

/// The (possibly schema-qualified) name a node spells, e.g. `app.tasks`.
/// `public.` is dropped: it is where an unqualified name lives on a
/// default search path, so `public.tasks` and `tasks` are one table.
fn name(node: &SyntaxNode) -> String {
    let mut out = String::new();
    for token in node
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
    {
        match token.kind() {
            K::WHITESPACE | K::COMMENT => {}
            K::DOT => out.push('.'),
            _ => out.push_str(&ident(token.text())),
        }
    }
    match out.strip_prefix("public.") {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => out,
    }
}

fn child(node: &SyntaxNode, kind: K) -> Option<SyntaxNode> {
    node.children().find(|c| c.kind() == kind)
}

fn children(node: &SyntaxNode, kind: K) -> impl Iterator<Item = SyntaxNode> {
    node.children().filter(move |c| c.kind() == kind)
}

/// Whether a direct child token or node of this kind is there.
fn has(node: &SyntaxNode, kind: K) -> bool {
    node.children_with_tokens().any(|e| e.kind() == kind)
}

fn has_descendant(node: &SyntaxNode, kind: K) -> bool {
    node.descendants_with_tokens().any(|e| e.kind() == kind)
}

/// The name of the first child of `kind`, or "".
fn name_of(node: &SyntaxNode, kind: K) -> String {
    child(node, kind).map(|n| name(&n)).unwrap_or_default()
}

/// Settings that bound how long a migration's statements may wait or run.
const TIMEOUT_SETTINGS: &[&str] = &[
    "lock_timeout",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
    "transaction_timeout",
];

fn statement(node: &SyntaxNode) -> StmtKind {
    match node.kind() {
        K::CREATE_TABLE => create_table(node),
        K::CREATE_INDEX => StmtKind::CreateIndex {
            index: child(node, K::INDEX).map(|n| name(&n)).unwrap_or_default(),
            table: relation(node),
            concurrently: has(node, K::CONCURRENTLY_KW),
            unique: has(node, K::UNIQUE_KW),
            columns: index_keys(node),
        },
        K::CREATE_TRIGGER => StmtKind::CreateTrigger {
            table: child(node, K::ON_RELATION)
                .and_then(|on| child(&on, K::RELATION_NAME_REF))
                .map(|n| name(&n))
                .unwrap_or_default(),
        },
        K::DROP_INDEX => StmtKind::DropIndex {
            indexes: children(node, K::INDEX_REF).map(|n| name(&n)).collect(),
            concurrently: has(node, K::CONCURRENTLY_KW),
        },
        K::REINDEX => reindex(node),
        K::ALTER_TABLE => alter_table(node),
        K::DROP_TABLE => StmtKind::DropTable {
            tables: children(node, K::TABLE_NAME_REF)
                .map(|n| name(&n))
                .collect(),
        },
        K::TRUNCATE => StmtKind::Truncate {
            tables: node
                .descendants()
                .filter(|n| n.kind() == K::TABLE_NAME_REF)
                .map(|n| name(&n))
                .collect(),
        },
        K::LOCK => StmtKind::LockTable {
            tables: node
                .descendants()
                .filter(|n| n.kind() == K::RELATION_NAME_REF)
                .map(|n| name(&n))
                .collect(),
            mode: lock_mode(node),
        },
        K::VACUUM => StmtKind::Vacuum {
            full: has(node, K::FULL_KW)
                || node
                    .descendants()
                    .filter(|n| n.kind() == K::VACUUM_OPTION_NAME)
                    .any(|n| has(&n, K::FULL_KW)),
            tables: node
                .descendants()
                .filter(|n| n.kind() == K::TABLE_NAME_REF)
                .map(|n| name(&n))
                .collect(),
        },
        K::CLUSTER => StmtKind::Cluster {
            table: child(node, K::TABLE_NAME_REF).map(|n| name(&n)),
        },
        K::UPDATE | K::DELETE => StmtKind::Write {
            verb: if node.kind() == K::UPDATE {
                "UPDATE"
            } else {
                "DELETE"
            },
            table: child(node, K::RELATION_NAME)
                .map(|n| {
                    child(&n, K::RELATION_NAME_REF)
                        .map(|r| name(&r))
                        .unwrap_or_else(|| name(&n))
                })
                .unwrap_or_default(),
            whole: !has(node, K::WHERE_CLAUSE) && !has(node, K::WHERE_CURRENT_OF),
        },
        K::REFRESH => StmtKind::Refresh {
            view: name_of(node, K::VIEW_REF),
            concurrently: has(node, K::CONCURRENTLY_KW),
        },
        K::SET | K::RESET => {
            let setting = node
                .descendants()
                .find(|n| n.kind() == K::CONFIG_PARAMETER_REF)
                .map(|n| name(&n))
                .unwrap_or_default();
            if TIMEOUT_SETTINGS.contains(&setting.as_str()) {
                StmtKind::SetTimeout { setting }
            } else {
                StmtKind::Other
            }
        }
        K::DO => StmtKind::Opaque {
            what: "a DO block".into(),
        },
        K::EXECUTE => StmtKind::Opaque {
            what: "EXECUTE of a prepared statement".into(),
        },
        K::CALL => StmtKind::Opaque {
            what: format!("CALL {}", called(node).unwrap_or_default()),
        },
        K::SELECT => select(node),
        _ => StmtKind::Other,
    }
}

/// The keys of `CREATE INDEX … (key, …)`: a column by its name (folded
/// like any name), an expression by its text.
fn index_keys(node: &SyntaxNode) -> Vec<String> {
    child(node, K::PARTITION_ITEM_LIST)
        .into_iter()
        .flat_map(|list| list.children())
        .map(|item| {
            let expr = item.first_child();
            match expr {
                Some(e) if e.kind() == K::NAME_REF => name(&e),
                Some(e) => e.text().to_string().trim().to_string(),
                None => item.text().to_string().trim().to_string(),
            }
        })
        .collect()
}

/// The name of the first function a statement calls.
fn called(node: &SyntaxNode) -> Option<String> {
    node.descendants()
        .find(|n| n.kind() == K::CALL_EXPR)
        .and_then(|call| {
            call.children()
                .find(|c| matches!(c.kind(), K::NAME_REF | K::FIELD_EXPR | K::PATH))
        })
        .map(|n| name(&n))
}

/// A `SELECT` that calls a function lint does not know runs code lint
/// cannot see (`SELECT diesel_manage_updated_at('users')` creates a
/// trigger); `set_config` of a timeout is a timeout override.
fn select(node: &SyntaxNode) -> StmtKind {
    for call in node.descendants().filter(|n| n.kind() == K::CALL_EXPR) {
        let Some(function) = call
            .children()
            .find(|c| matches!(c.kind(), K::NAME_REF | K::FIELD_EXPR | K::PATH))
            .map(|n| name(&n))
        else {
            continue;
        };
        let bare = function.rsplit('.').next().unwrap_or_default().to_string();
        if bare == "set_config" {
            let setting = call
                .descendants_with_tokens()
                .filter_map(|e| e.into_token())
                .find(|t| t.kind() == K::STRING)
                .map(|t| t.text().trim_matches('\'').to_ascii_lowercase())
                .unwrap_or_default();
            if TIMEOUT_SETTINGS.contains(&setting.as_str()) {
                return StmtKind::SetTimeout { setting };
            }
            continue;
        }
        if !KNOWN_FUNCTIONS.contains(&bare.as_str())
            && !NON_VOLATILE_FUNCTIONS.contains(&bare.as_str())
        {
            return StmtKind::Opaque {
                what: format!("a call of {function}()"),
            };
        }
    }
    StmtKind::Other
}

/// Built-in functions a migration may call in a `SELECT` that change no
/// schema.
const KNOWN_FUNCTIONS: &[&str] = &[
    "count",
    "max",
    "min",
    "sum",
    "avg",
    "pg_sleep",
    "current_database",
    "current_schema",
    "version",
    "pg_advisory_xact_lock",
    "pg_try_advisory_xact_lock",
    "setval",
    "nextval",
    "currval",
];

fn reindex(node: &SyntaxNode) -> StmtKind {
    let concurrently = has_descendant(node, K::CONCURRENTLY_KW);
    let target = node.children().find(|c| {
        matches!(
            c.kind(),
            K::REINDEX_TARGET_TABLE
                | K::REINDEX_TARGET_INDEX
                | K::REINDEX_TARGET_SCHEMA
                | K::REINDEX_TARGET_DATABASE
                | K::REINDEX_TARGET_SYSTEM
        )
    });
    let Some(target) = target else {
        return StmtKind::Other;
    };
    let named = target
        .children()
        .find(|c| matches!(c.kind(), K::TABLE_NAME_REF | K::INDEX_REF | K::NAME_REF))
        .map(|n| name(&n))
        .unwrap_or_default();
    StmtKind::Reindex {
        table: (target.kind() == K::REINDEX_TARGET_TABLE).then(|| named.clone()),
        target: named,
        concurrently,
    }
}

/// `LOCK TABLE` mode, `ACCESS EXCLUSIVE` when none is given.
fn lock_mode(node: &SyntaxNode) -> String {
    let Some(clause) = child(node, K::LOCK_MODE_CLAUSE) else {
        return "ACCESS EXCLUSIVE".into();
    };
    let words: Vec<String> = clause
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| !matches!(t.kind(), K::WHITESPACE | K::COMMENT | K::IN_KW | K::MODE_KW))
        .map(|t| t.text().to_ascii_uppercase())
        .collect();
    if words.is_empty() {
        "ACCESS EXCLUSIVE".into()
    } else {
        words.join(" ")
    }
}

fn create_table(node: &SyntaxNode) -> StmtKind {
    let mut columns = Vec::new();
    let mut not_null_checks = Vec::new();
    if let Some(args) = child(node, K::TABLE_ARG_LIST) {
        for elt in args.children() {
            match elt.kind() {
                K::COLUMN => {
                    let c = column(&elt);
                    for check in children(&elt, K::CHECK_CONSTRAINT) {
                        if let Some(col) = not_null_check(&check) {
                            not_null_checks.push((constraint_name(&check), col));
                        }
                    }
                    columns.push(c);
                }
                K::CHECK_CONSTRAINT => {
                    if let Some(col) = not_null_check(&elt) {
                        not_null_checks.push((constraint_name(&elt), col));
                    }
                }
                _ => {}
            }
        }
    }
    StmtKind::CreateTable {
        table: name_of(node, K::TABLE_NAME),
        if_not_exists: has(node, K::IF_NOT_EXISTS),
        columns,
        not_null_checks,
    }
}

fn constraint_name(constraint: &SyntaxNode) -> String {
    child(constraint, K::CONSTRAINT_NAME_CLAUSE)
        .and_then(|c| child(&c, K::CONSTRAINT_NAME))
        .map(|n| name(&n))
        .unwrap_or_default()
}

/// The column of a `CHECK (col IS NOT NULL)`.
fn not_null_check(check: &SyntaxNode) -> Option<String> {
    let expr = check.children().find(|c| c.kind() == K::BIN_EXPR)?;
    let parts: Vec<SyntaxNode> = expr.children().collect();
    match parts.as_slice() {
        [column, op, null]
            if column.kind() == K::NAME_REF
                && op.kind() == K::IS_NOT
                && null.kind() == K::LITERAL
                && has(null, K::NULL_KW) =>
        {
            Some(name(column))
        }
        _ => None,
    }
}

/// Type nodes: everything a column's type can be.
fn is_type(kind: K) -> bool {
    matches!(
        kind,
        K::PATH_TYPE
            | K::ARRAY_TYPE
            | K::VARCHAR_TYPE
            | K::CHARACTER_TYPE
            | K::BIT_TYPE
            | K::BIT_VARYING_TYPE
            | K::DOUBLE_TYPE
            | K::TIME_TYPE
            | K::TIMESTAMP_TYPE
            | K::INTERVAL_TYPE
            | K::PERCENT_TYPE
    )
}

fn type_info(node: &SyntaxNode) -> TypeInfo {
    let (inner, array) = match node.kind() {
        K::ARRAY_TYPE => (
            node.children()
                .find(|c| is_type(c.kind()))
                .unwrap_or_else(|| node.clone()),
            true,
        ),
        _ => (node.clone(), false),
    };
    let array = array || has_descendant(node, K::ARRAY_KW);
    let mods: Vec<i64> = inner
        .descendants()
        .filter(|n| n.kind() == K::ARG_LIST)
        .take(1)
        .flat_map(|list| {
            list.descendants_with_tokens()
                .filter_map(|e| e.into_token())
        })
        .filter(|t| t.kind() == K::INT_NUMBER)
        .filter_map(|t| t.text().parse().ok())
        .collect();
    // The words of the type without its modifiers: `character varying`,
    // `timestamp with time zone`, `pg_catalog.int4`.
    let mut words = Vec::new();
    for t in inner
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
    {
        let in_modifiers = t
            .parent_ancestors()
            .take_while(|a| a != &inner)
            .any(|a| a.kind() == K::ARG_LIST);
        if in_modifiers {
            continue;
        }
        match t.kind() {
            K::WHITESPACE | K::COMMENT | K::L_BRACK | K::R_BRACK | K::INT_NUMBER => {}
            K::DOT => words.push(".".to_string()),
            _ => words.push(ident(t.text())),
        }
    }
    let spelled = words.join(" ").replace(" . ", ".");
    let bare = spelled
        .strip_prefix("pg_catalog.")
        .unwrap_or(&spelled)
        .to_string();
    TypeInfo {
        name: normalise_type(&bare).to_string(),
        mods,
        array,
    }
}

/// PostgreSQL's internal name of a type as written (`integer` → `int4`).
fn normalise_type(name: &str) -> &str {
    match name {
        "character varying" | "varchar" => "varchar",
        "character" | "char" => "bpchar",
        "int" | "integer" | "int4" => "int4",
        "bigint" | "int8" => "int8",
        "smallint" | "int2" => "int2",
        "decimal" | "numeric" => "numeric",
        "boolean" | "bool" => "bool",
        "real" | "float4" => "float4",
        "double precision" | "float8" | "float" => "float8",
        "timestamp with time zone" | "timestamptz" => "timestamptz",
        "timestamp without time zone" | "timestamp" => "timestamp",
        "time with time zone" | "timetz" => "timetz",
        "time without time zone" | "time" => "time",
        "bit varying" | "varbit" => "varbit",
        other => other,
    }
}

fn column(node: &SyntaxNode) -> ColumnInfo {
    let ty = node
        .children()
        .find(|c| is_type(c.kind()))
        .map(|t| type_info(&t));
    let mut not_null = false;
    let mut default = None;
    let mut fills_rows = ty
        .as_ref()
        .filter(|t| {
            matches!(
                t.name.as_str(),
                "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
            )
        })
        .map(|t| t.name.clone());
    let mut unique = false;
    let mut check = false;
    let mut references = None;
    for con in node.children() {
        match con.kind() {
            K::NOT_NULL_CONSTRAINT => not_null = true,
            K::DEFAULT_CONSTRAINT => default = Some(default_kind(&con)),
            K::GENERATED_CONSTRAINT => {
                fills_rows = Some(if has_descendant(&con, K::STORED_KW) {
                    "GENERATED ALWAYS AS (…) STORED".into()
                } else {
                    "GENERATED … AS IDENTITY".into()
                })
            }
            K::PRIMARY_KEY_CONSTRAINT => {
                unique = true;
                not_null = true;
            }
            K::UNIQUE_CONSTRAINT => unique = true,
            K::CHECK_CONSTRAINT => check = true,
            K::REFERENCES_CONSTRAINT => references = Some(name_of(&con, K::TABLE_NAME_REF)),
            _ => {}
        }
    }
    ColumnInfo {
        name: name_of(node, K::COLUMN_NAME),
        ty,
        not_null,
        default,
        fills_rows,
        unique,
        check,
        references,
    }
}

/// Functions PostgreSQL marks immutable or stable that appear in defaults.
/// Any other function call counts as volatile: lint cannot look it up, and
/// guessing wrong the other way costs a table rewrite.
const NON_VOLATILE_FUNCTIONS: &[&str] = &[
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "timezone",
    "lower",
    "upper",
    "coalesce",
    "length",
    "make_interval",
    "make_date",
    "make_timestamp",
    "to_timestamp",
    "to_date",
    "date_trunc",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "json_build_array",
    "array_fill",
    "concat",
    "abs",
    "round",
    "current_setting",
];

fn default_kind(default: &SyntaxNode) -> DefaultKind {
    let volatile = default
        .descendants()
        .filter(|n| n.kind() == K::CALL_EXPR)
        .any(|call| {
            let function = call
                .children()
                .find(|c| matches!(c.kind(), K::NAME_REF | K::FIELD_EXPR | K::PATH))
                .map(|n| name(&n))
                .unwrap_or_default();
            let bare = function.rsplit('.').next().unwrap_or_default();
            !NON_VOLATILE_FUNCTIONS.contains(&bare)
        });
    if volatile {
        DefaultKind::Volatile
    } else {
        DefaultKind::Stable
    }
}

/// The table a `TABLE_RELATION_NAME` child names (without `ONLY` or `*`).
fn relation(node: &SyntaxNode) -> String {
    child(node, K::TABLE_RELATION_NAME)
        .and_then(|r| child(&r, K::TABLE_NAME_REF))
        .map(|n| name(&n))
        .unwrap_or_default()
}

fn alter_table(node: &SyntaxNode) -> StmtKind {
    let table = relation(node);
    let mut cmds = Vec::new();
    for action in node.children() {
        match action.kind() {
            K::TABLE_RELATION_NAME | K::IF_EXISTS => {}
            K::DETACH_PARTITION if has(&action, K::DETACH_CONCURRENTLY) => {
                return StmtKind::Concurrent;
            }
            K::TABLE_RENAME_TO => {
                return StmtKind::RenameTable {
                    table,
                    new_name: name_of(&action, K::TABLE_NAME),
                };
            }
            K::RENAME_COLUMN => {
                return StmtKind::RenameColumn {
                    table,
                    column: name_of(&action, K::COLUMN_NAME_REF),
                    new_name: name_of(&action, K::COLUMN_NAME),
                };
            }
            _ => cmds.push(alter_cmd(&action)),
        }
    }
    StmtKind::AlterTable { table, cmds }
}

fn alter_cmd(action: &SyntaxNode) -> AlterCmd {
    match action.kind() {
        K::ADD_COLUMN => AlterCmd::AddColumn(column(action)),
        K::ADD_CONSTRAINT => {
            let Some(con) = action.children().find(|c| {
                matches!(
                    c.kind(),
                    K::CHECK_CONSTRAINT
                        | K::FOREIGN_KEY_CONSTRAINT
                        | K::UNIQUE_CONSTRAINT
                        | K::PRIMARY_KEY_CONSTRAINT
                        | K::EXCLUDE_CONSTRAINT
                )
            }) else {
                return AlterCmd::Other;
            };
            let kind = match con.kind() {
                K::CHECK_CONSTRAINT => ConstraintKind::Check {
                    not_null_column: not_null_check(&con),
                },
                K::FOREIGN_KEY_CONSTRAINT => ConstraintKind::ForeignKey {
                    references: name_of(&con, K::TABLE_NAME_REF),
                },
                K::UNIQUE_CONSTRAINT => ConstraintKind::Unique,
                K::PRIMARY_KEY_CONSTRAINT => ConstraintKind::PrimaryKey,
                _ => ConstraintKind::Exclusion,
            };
            let columns = con
                .descendants()
                .filter(|n| n.kind() == K::CONSTRAINT_COLUMN_REF_LIST)
                .take(1)
                .flat_map(|list| list.children())
                .filter(|n| n.kind() == K::COLUMN_NAME_REF)
                .map(|n| name(&n))
                .collect();
            AlterCmd::AddConstraint {
                name: constraint_name(&con),
                kind,
                not_valid: has(&con, K::NOT_VALID) || has(action, K::NOT_VALID),
                columns,
                using_index: has(&con, K::USING_INDEX_NAME),
            }
        }
        K::VALIDATE_CONSTRAINT => AlterCmd::ValidateConstraint {
            name: name_of(action, K::CONSTRAINT_NAME_REF),
        },
        K::ALTER_COLUMN => {
            let column = name_of(action, K::COLUMN_NAME_REF);
            if has(action, K::SET_NOT_NULL) {
                AlterCmd::SetNotNull { column }
            } else if let Some(set_type) = child(action, K::SET_TYPE) {
                AlterCmd::AlterType {
                    column,
                    ty: set_type
                        .children()
                        .find(|c| is_type(c.kind()))
                        .map(|t| type_info(&t)),
                    using: has(&set_type, K::USING_EXPR),
                }
            } else {
                AlterCmd::Other
            }
        }
        K::DROP_COLUMN => AlterCmd::DropColumn {
            column: name_of(action, K::COLUMN_NAME_REF),
        },
        K::DROP_CONSTRAINT => AlterCmd::DropConstraint {
            name: name_of(action, K::CONSTRAINT_NAME_REF),
        },
        K::SET_LOGGED => AlterCmd::Rewrite {
            what: "SET LOGGED".into(),
        },
        K::SET_UNLOGGED => AlterCmd::Rewrite {
            what: "SET UNLOGGED".into(),
        },
        K::SET_TABLESPACE => AlterCmd::Rewrite {
            what: "SET TABLESPACE".into(),
        },
        _ => AlterCmd::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> StmtKind {
        let mut stmts = parse_postgres(sql).expect("parses");
        assert_eq!(stmts.len(), 1, "{sql}");
        stmts.remove(0).kind
    }

    #[test]
    fn names_keep_their_schema_and_fold_like_postgres() {
        match one("CREATE INDEX i ON App.\"Big\" (x);") {
            StmtKind::CreateIndex { table, .. } => assert_eq!(table, "app.Big"),
            other => panic!("{other:?}"),
        }
        match one("CREATE INDEX i ON public.tasks (x);") {
            StmtKind::CreateIndex { table, .. } => assert_eq!(table, "tasks"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn types_get_postgres_internal_names() {
        match one("ALTER TABLE t ALTER COLUMN a TYPE character varying(20), ALTER COLUMN b TYPE BIGINT, ALTER COLUMN c TYPE timestamp with time zone, ALTER COLUMN d TYPE numeric(10, 2)[];") {
            StmtKind::AlterTable { cmds, .. } => {
                let shown: Vec<String> = cmds
                    .iter()
                    .map(|c| match c {
                        AlterCmd::AlterType { ty: Some(t), .. } => t.display(),
                        other => format!("{other:?}"),
                    })
                    .collect();
                assert_eq!(shown, ["varchar(20)", "int8", "timestamptz", "numeric(10,2)[]"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statements_keep_their_offsets_and_text() {
        let sql = "-- a\nSELECT 1;  CREATE TABLE x (a int);\n";
        let stmts = parse_postgres(sql).unwrap();
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0].offset, 5);
        assert_eq!(stmts[0].text, "SELECT 1");
        assert_eq!(stmts[1].text, "CREATE TABLE x (a int)");
    }

    #[test]
    fn a_syntax_error_says_where() {
        let (message, at) = parse_postgres("CREATE TABLE (;").unwrap_err();
        assert!(message.starts_with("syntax error"), "{message}");
        assert!(at.is_some());
    }
}
