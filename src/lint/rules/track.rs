//! What each statement leaves behind for the statements and migrations
//! after it: new tables and indexes, column types, NOT NULL checks. Run
//! after the rules have judged the statement against the state before it.

use super::{FileState, Schema};
use crate::lint::model::{AlterCmd, ConstraintKind, Stmt, StmtKind};

pub fn statement(stmt: &Stmt, file: &mut FileState, schema: &mut Schema) {
    match &stmt.kind {
        StmtKind::CreateTable {
            table,
            if_not_exists,
            columns,
            not_null_checks,
        } => {
            // `IF NOT EXISTS` may have created nothing: the live table,
            // with its rows, is what the next statements touch.
            if !if_not_exists {
                file.created_tables.insert(table.clone());
            }
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
        StmtKind::CreateIndex { index, table, .. } if !index.is_empty() => {
            schema.indexes.insert(index.clone(), table.clone());
            file.created_indexes.insert(index.clone());
        }
        StmtKind::DropIndex { indexes, .. } => {
            for index in indexes {
                schema.indexes.remove(index);
            }
        }
        StmtKind::DropTable { tables } => {
            for table in tables {
                schema.columns.retain(|(t, _), _| t != table);
            }
        }
        StmtKind::RenameTable { table, new_name } => {
            if file.is_new(table) {
                file.created_tables.insert(new_name.clone());
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
            if let Some(ty) = schema.columns.remove(&(table.clone(), column.clone())) {
                schema.columns.insert((table.clone(), new_name.clone()), ty);
            }
        }
        _ => {}
    }
}

/// One subcommand of `ALTER TABLE table`.
pub fn alter(table: &str, cmd: &AlterCmd, file: &mut FileState, schema: &mut Schema) {
    let key = |c: &str| (table.to_string(), c.to_string());
    match cmd {
        AlterCmd::AddColumn(c) => {
            if let Some(ty) = &c.ty {
                schema.columns.insert(key(&c.name), ty.clone());
            }
        }
        AlterCmd::AddConstraint {
            name,
            kind,
            not_valid,
            ..
        } => {
            if let ConstraintKind::Check {
                not_null_column: Some(col),
            } = kind
            {
                if *not_valid {
                    schema.pending_not_null.insert(key(name), col.clone());
                } else {
                    schema.validated_not_null.insert(key(col));
                }
            }
            if *not_valid {
                file.added_not_valid.insert(key(name));
            }
        }
        AlterCmd::ValidateConstraint { name } => {
            if let Some(col) = schema.pending_not_null.remove(&key(name)) {
                schema.validated_not_null.insert(key(&col));
            }
        }
        AlterCmd::AlterType { column, ty, .. } => {
            if let Some(ty) = ty {
                schema.columns.insert(key(column), ty.clone());
            }
        }
        AlterCmd::DropColumn { column } => {
            schema.columns.remove(&key(column));
            schema.validated_not_null.remove(&key(column));
        }
        AlterCmd::DropConstraint { name } => {
            schema.pending_not_null.remove(&key(name));
        }
        AlterCmd::SetNotNull { .. } | AlterCmd::Rewrite { .. } | AlterCmd::Other => {}
    }
}
