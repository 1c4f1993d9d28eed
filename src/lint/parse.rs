//! The only place that uses the PostgreSQL parser (`pg_query`): turns a
//! file's SQL into [`Stmt`]s. Everything else in lint works on those, so a
//! build without the parser can still read lint's stored facts.

use pg_query::protobuf::{
    self, AlterTableType, ConstrType, DropBehavior, NullTestType, ObjectType, ReindexObjectType,
};
use pg_query::{Node, NodeEnum};

use super::model::{AlterCmd, ColumnInfo, ConstraintKind, DefaultKind, Stmt, StmtKind, TypeInfo};

/// Parses a whole file. `Err` holds PostgreSQL's own message and the byte
/// offset it points at, when it gives one.
pub fn parse_postgres(sql: &str) -> Result<Vec<Stmt>, (String, Option<usize>)> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| {
        let message = match e {
            pg_query::Error::Parse(m) => m,
            other => other.to_string(),
        };
        (message, None)
    })?;
    let mut out = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let start = usize::try_from(raw.stmt_location).unwrap_or(0);
        let end = if raw.stmt_len > 0 {
            start + usize::try_from(raw.stmt_len).unwrap_or(0)
        } else {
            sql.len()
        };
        let end = end.min(sql.len());
        let first = super::first_token(sql, start).min(end);
        let text = sql
            .get(first..end)
            .unwrap_or_default()
            .trim_end()
            .to_string();
        let kind = raw
            .stmt
            .as_ref()
            .and_then(|n| n.node.as_ref())
            .map(statement)
            .unwrap_or(StmtKind::Other);
        out.push(Stmt {
            offset: first,
            text,
            kind,
        });
    }
    Ok(out)
}

fn relname(r: &Option<protobuf::RangeVar>) -> String {
    r.as_ref().map(|r| r.relname.clone()).unwrap_or_default()
}

/// The last element of a qualified name (`public.tasks` → `tasks`).
fn last_name(items: &[Node]) -> String {
    items
        .iter()
        .rev()
        .find_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn range_vars(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::RangeVar(r)) => Some(r.relname.clone()),
            Some(NodeEnum::VacuumRelation(v)) => v.relation.as_ref().map(|r| r.relname.clone()),
            _ => None,
        })
        .collect()
}

fn statement(node: &NodeEnum) -> StmtKind {
    match node {
        NodeEnum::CreateStmt(c) => create_table(c),
        NodeEnum::IndexStmt(i) => StmtKind::CreateIndex {
            index: i.idxname.clone(),
            table: relname(&i.relation),
            concurrently: i.concurrent,
            unique: i.unique,
        },
        NodeEnum::DropStmt(d) => drop(d),
        NodeEnum::ReindexStmt(r) => {
            let concurrently = r.params.iter().any(|p| match &p.node {
                Some(NodeEnum::DefElem(d)) => d.defname == "concurrently",
                _ => false,
            });
            let kind = ReindexObjectType::try_from(r.kind).unwrap_or(ReindexObjectType::Undefined);
            let named = r
                .relation
                .as_ref()
                .map(|r| r.relname.clone())
                .unwrap_or_else(|| r.name.clone());
            StmtKind::Reindex {
                table: (kind == ReindexObjectType::ReindexObjectTable).then(|| named.clone()),
                target: named,
                concurrently,
            }
        }
        NodeEnum::AlterTableStmt(a) => {
            let table = relname(&a.relation);
            let cmds = a
                .cmds
                .iter()
                .filter_map(|n| match &n.node {
                    Some(NodeEnum::AlterTableCmd(c)) => Some(c.as_ref()),
                    _ => None,
                })
                .map(alter_cmd)
                .collect::<Vec<_>>();
            let detaches_concurrently = a.cmds.iter().any(|n| match &n.node {
                Some(NodeEnum::AlterTableCmd(c)) => {
                    match c.def.as_deref().and_then(|d| d.node.as_ref()) {
                        Some(NodeEnum::PartitionCmd(p)) => p.concurrent,
                        _ => false,
                    }
                }
                _ => false,
            });
            if detaches_concurrently {
                return StmtKind::Concurrent;
            }
            let objtype = ObjectType::try_from(a.objtype).unwrap_or(ObjectType::Undefined);
            if objtype != ObjectType::ObjectTable {
                return StmtKind::Other;
            }
            StmtKind::AlterTable { table, cmds }
        }
        NodeEnum::RenameStmt(r) => {
            let kind = ObjectType::try_from(r.rename_type).unwrap_or(ObjectType::Undefined);
            match kind {
                ObjectType::ObjectTable => StmtKind::RenameTable {
                    table: relname(&r.relation),
                    new_name: r.newname.clone(),
                },
                ObjectType::ObjectColumn => StmtKind::RenameColumn {
                    table: relname(&r.relation),
                    column: r.subname.clone(),
                    new_name: r.newname.clone(),
                },
                _ => StmtKind::Other,
            }
        }
        NodeEnum::TruncateStmt(t) => StmtKind::Truncate {
            tables: range_vars(&t.relations),
        },
        NodeEnum::LockStmt(l) => StmtKind::LockTable {
            tables: range_vars(&l.relations),
            mode: lock_mode(l.mode).to_string(),
        },
        NodeEnum::VacuumStmt(v) => {
            let full = v.is_vacuumcmd
                && v.options.iter().any(|o| match &o.node {
                    Some(NodeEnum::DefElem(d)) => d.defname == "full",
                    _ => false,
                });
            StmtKind::Vacuum {
                full,
                tables: range_vars(&v.rels),
            }
        }
        NodeEnum::ClusterStmt(c) => StmtKind::Cluster {
            table: c.relation.as_ref().map(|r| r.relname.clone()),
        },
        NodeEnum::UpdateStmt(u) => StmtKind::Write {
            verb: "UPDATE",
            table: relname(&u.relation),
            whole: u.where_clause.is_none(),
        },
        NodeEnum::DeleteStmt(d) => StmtKind::Write {
            verb: "DELETE",
            table: relname(&d.relation),
            whole: d.where_clause.is_none(),
        },
        _ => StmtKind::Other,
    }
}

/// `LOCK TABLE` modes, as numbered in PostgreSQL's lockdefs.h.
fn lock_mode(mode: i32) -> &'static str {
    match mode {
        1 => "ACCESS SHARE",
        2 => "ROW SHARE",
        3 => "ROW EXCLUSIVE",
        4 => "SHARE UPDATE EXCLUSIVE",
        5 => "SHARE",
        6 => "SHARE ROW EXCLUSIVE",
        7 => "EXCLUSIVE",
        _ => "ACCESS EXCLUSIVE",
    }
}

fn create_table(c: &protobuf::CreateStmt) -> StmtKind {
    let mut columns = Vec::new();
    let mut not_null_checks = Vec::new();
    for elt in &c.table_elts {
        match &elt.node {
            Some(NodeEnum::ColumnDef(d)) => {
                not_null_checks
                    .extend(constraints(&d.constraints).filter_map(named_not_null_check));
                columns.push(column(d));
            }
            Some(NodeEnum::Constraint(con)) => {
                not_null_checks.extend(named_not_null_check(con));
            }
            _ => {}
        }
    }
    StmtKind::CreateTable {
        table: relname(&c.relation),
        columns,
        not_null_checks,
    }
}

/// (name, column) of a `CHECK (column IS NOT NULL)`.
fn named_not_null_check(con: &protobuf::Constraint) -> Option<(String, String)> {
    if ConstrType::try_from(con.contype) != Ok(ConstrType::ConstrCheck) {
        return None;
    }
    not_null_check(con).map(|col| (con.conname.clone(), col))
}

fn constraints(nodes: &[Node]) -> impl Iterator<Item = &protobuf::Constraint> {
    nodes.iter().filter_map(|n| match &n.node {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    })
}

fn drop(d: &protobuf::DropStmt) -> StmtKind {
    let kind = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
    let names: Vec<String> = d
        .objects
        .iter()
        .filter_map(|o| match &o.node {
            Some(NodeEnum::List(l)) => Some(last_name(&l.items)),
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect();
    // CASCADE may take other objects with it; it is still the same drop.
    let _ = DropBehavior::try_from(d.behavior);
    match kind {
        ObjectType::ObjectIndex => StmtKind::DropIndex {
            indexes: names,
            concurrently: d.concurrent,
        },
        ObjectType::ObjectTable => StmtKind::DropTable { tables: names },
        _ => StmtKind::Other,
    }
}

fn type_info(t: &Option<protobuf::TypeName>) -> Option<TypeInfo> {
    let t = t.as_ref()?;
    let name = last_name(&t.names).to_ascii_lowercase();
    let mods = t
        .typmods
        .iter()
        .filter_map(|m| match &m.node {
            Some(NodeEnum::AConst(c)) => match &c.val {
                Some(protobuf::a_const::Val::Ival(i)) => Some(i64::from(i.ival)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    Some(TypeInfo {
        name: normalise_type(&name).to_string(),
        mods,
        array: !t.array_bounds.is_empty(),
    })
}

/// The parser already maps `varchar` → `varchar`, `integer` → `int4`, …
/// (SQL-standard names arrive as `pg_catalog.<internal>`); a few aliases the
/// grammar leaves alone are mapped here.
fn normalise_type(name: &str) -> &str {
    match name {
        "character varying" => "varchar",
        "int" | "integer" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "decimal" => "numeric",
        other => other,
    }
}

fn column(d: &protobuf::ColumnDef) -> ColumnInfo {
    let ty = type_info(&d.type_name);
    let mut not_null = d.is_not_null;
    let mut default = d.raw_default.as_deref().map(default_kind);
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
    for con in constraints(&d.constraints) {
        match ConstrType::try_from(con.contype).unwrap_or(ConstrType::Undefined) {
            ConstrType::ConstrNotnull => not_null = true,
            ConstrType::ConstrDefault => {
                default = con.raw_expr.as_deref().map(default_kind);
            }
            ConstrType::ConstrIdentity => fills_rows = Some("GENERATED … AS IDENTITY".into()),
            ConstrType::ConstrGenerated => {
                fills_rows = Some("GENERATED ALWAYS AS (…) STORED".into())
            }
            ConstrType::ConstrPrimary => {
                unique = true;
                not_null = true;
            }
            ConstrType::ConstrUnique => unique = true,
            _ => {}
        }
    }
    ColumnInfo {
        name: d.colname.clone(),
        ty,
        not_null,
        default,
        fills_rows,
        unique,
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

fn default_kind(expr: &Node) -> DefaultKind {
    let Ok(json) = serde_json::to_value(expr) else {
        return DefaultKind::Volatile;
    };
    if calls_volatile(&json) {
        DefaultKind::Volatile
    } else {
        DefaultKind::Stable
    }
}

/// Walks the parse tree as JSON (every node type, without a visitor per
/// type) looking for a `FuncCall` that is not known to be stable.
fn calls_volatile(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(map) => map.iter().any(|(key, value)| {
            if key == "FuncCall" {
                let name = value
                    .get("funcname")
                    .and_then(|f| f.as_array())
                    .and_then(|parts| parts.last())
                    .and_then(|p| p.pointer("/node/String/sval"))
                    .and_then(|s| s.as_str())
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if !NON_VOLATILE_FUNCTIONS.contains(&name.as_str()) {
                    return true;
                }
            }
            calls_volatile(value)
        }),
        serde_json::Value::Array(items) => items.iter().any(calls_volatile),
        _ => false,
    }
}

/// The column of a `CHECK (col IS NOT NULL)`.
fn not_null_check(c: &protobuf::Constraint) -> Option<String> {
    match c.raw_expr.as_deref()?.node.as_ref()? {
        NodeEnum::NullTest(t)
            if NullTestType::try_from(t.nulltesttype) == Ok(NullTestType::IsNotNull) =>
        {
            match t.arg.as_deref()?.node.as_ref()? {
                NodeEnum::ColumnRef(r) => Some(last_name(&r.fields)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn alter_cmd(c: &protobuf::AlterTableCmd) -> AlterCmd {
    let subtype = AlterTableType::try_from(c.subtype).unwrap_or(AlterTableType::Undefined);
    let def = c.def.as_deref().and_then(|d| d.node.as_ref());
    match subtype {
        AlterTableType::AtAddColumn => match def {
            Some(NodeEnum::ColumnDef(d)) => AlterCmd::AddColumn(column(d)),
            _ => AlterCmd::Other,
        },
        AlterTableType::AtAddConstraint => match def {
            Some(NodeEnum::Constraint(con)) => {
                let kind = match ConstrType::try_from(con.contype).unwrap_or(ConstrType::Undefined)
                {
                    ConstrType::ConstrCheck => ConstraintKind::Check {
                        not_null_column: not_null_check(con),
                    },
                    ConstrType::ConstrForeign => ConstraintKind::ForeignKey {
                        references: relname(&con.pktable),
                    },
                    ConstrType::ConstrUnique => ConstraintKind::Unique,
                    ConstrType::ConstrPrimary => ConstraintKind::PrimaryKey,
                    ConstrType::ConstrExclusion => ConstraintKind::Exclusion,
                    _ => ConstraintKind::Other,
                };
                AlterCmd::AddConstraint {
                    name: con.conname.clone(),
                    kind,
                    not_valid: con.skip_validation,
                    columns: con
                        .keys
                        .iter()
                        .filter_map(|k| match &k.node {
                            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                            _ => None,
                        })
                        .collect(),
                    using_index: !con.indexname.is_empty(),
                }
            }
            _ => AlterCmd::Other,
        },
        AlterTableType::AtValidateConstraint => AlterCmd::ValidateConstraint {
            name: c.name.clone(),
        },
        AlterTableType::AtSetNotNull => AlterCmd::SetNotNull {
            column: c.name.clone(),
        },
        AlterTableType::AtAlterColumnType => match def {
            Some(NodeEnum::ColumnDef(d)) => AlterCmd::AlterType {
                column: c.name.clone(),
                ty: type_info(&d.type_name),
                using: d.raw_default.is_some(),
            },
            _ => AlterCmd::Other,
        },
        AlterTableType::AtDropColumn => AlterCmd::DropColumn {
            column: c.name.clone(),
        },
        AlterTableType::AtDropConstraint => AlterCmd::DropConstraint {
            name: c.name.clone(),
        },
        _ => AlterCmd::Other,
    }
}
