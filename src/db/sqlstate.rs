//! Telling server errors apart by what they are, never by their text.
//!
//! PostgreSQL words its messages in the server's `lc_messages`, which
//! initdb takes from the OS locale ("Relation »tasks« existiert nicht"), so
//! a message is no way to recognise an error; its SQLSTATE is. diesel 2.3,
//! though, passes on a server error's message, detail and hint, and a
//! [`DatabaseErrorKind`] for a handful of SQLSTATEs only (unique violation,
//! closed connection, …). So taskdb:
//!
//! - runs SQL whose failure it must tell apart inside a `DO` block that
//!   catches the conditions by name on the server and raises them again,
//!   unchanged but for a hint naming the SQLSTATE, which diesel passes on
//!   ([`trap`], [`trapped`]);
//! - asks whether a table exists instead of inferring it from an error
//!   ([`table_exists`]);
//! - reads a lost connection from diesel's error kind
//!   ([`is_connection_lost`]).
//!
//! SQLite's messages are fixed English text in the library itself, with no
//! SQLSTATE; they are not translated.

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::Bool;

use super::{Backend, DbConnection, HasBackend as _};
use crate::error::Result;

/// A server error taskdb reacts to, by its SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqlState {
    /// 55P03: a lock wait reached `lock_timeout`.
    LockNotAvailable,
    /// 25001: the statement cannot run in a transaction block, nor from a
    /// function (`VACUUM`, `CREATE DATABASE`, …).
    ActiveSqlTransaction,
}

impl SqlState {
    const ALL: [SqlState; 2] = [SqlState::LockNotAvailable, SqlState::ActiveSqlTransaction];

    /// PL/pgSQL's name of the condition.
    fn condition(self) -> &'static str {
        match self {
            SqlState::LockNotAvailable => "lock_not_available",
            SqlState::ActiveSqlTransaction => "active_sql_transaction",
        }
    }

    /// The hint a trapped error is raised again with.
    fn hint(self) -> &'static str {
        match self {
            SqlState::LockNotAvailable => "taskdb: SQLSTATE 55P03",
            SqlState::ActiveSqlTransaction => "taskdb: SQLSTATE 25001",
        }
    }
}

/// `sql` (one statement or several) as a `DO` block that runs it and
/// raises any of `states` again with its SQLSTATE as the hint, for
/// [`trapped`] to read. Errors of other kinds pass through untouched.
///
/// The block runs where `sql` would (inside the caller's transaction, or
/// as its own), with the same effect; `sql` cannot end a transaction or be
/// one of the statements PostgreSQL refuses to run from a function, which
/// then fail with [`SqlState::ActiveSqlTransaction`]. Nor can it be
/// `SELECT … INTO new_table` (PL/pgSQL refuses it in EXECUTE; `CREATE
/// TABLE … AS` is the same statement).
pub(crate) fn trap(sql: &str, states: &[SqlState]) -> String {
    trap_keeping(sql, states, None)
}

/// [`trap`] for one statement that returns one value (an `EXPLAIN (…,
/// FORMAT JSON)`): the value is kept, as text, in the transaction-local
/// setting `setting` (a `prefix.name`), for `current_setting` to read.
pub(crate) fn trap_keeping_result(sql: &str, states: &[SqlState], setting: &str) -> String {
    trap_keeping(sql, states, Some(setting))
}

fn trap_keeping(sql: &str, states: &[SqlState], setting: Option<&str>) -> String {
    // Dollar-quote tags whose names the SQL does not contain.
    let mut n = 0;
    while sql.contains(&format!("taskdb_sql{n}")) || sql.contains(&format!("taskdb_do{n}")) {
        n += 1;
    }
    let (inner, outer) = (format!("$taskdb_sql{n}$"), format!("$taskdb_do{n}$"));
    let handlers: String = states
        .iter()
        .map(|s| {
            format!(
                "\n  WHEN {c} THEN RAISE {c} USING MESSAGE = SQLERRM, HINT = '{h}';",
                c = s.condition(),
                h = s.hint()
            )
        })
        .collect();
    match setting {
        None => format!(
            "DO {outer}\nBEGIN\n  EXECUTE {inner}{sql}{inner};\nEXCEPTION{handlers}\nEND\n{outer}"
        ),
        Some(setting) => format!(
            "DO {outer}\nDECLARE result text;\nBEGIN\n  EXECUTE {inner}{sql}{inner} INTO result;\n  PERFORM set_config('{setting}', result, true);\nEXCEPTION{handlers}\nEND\n{outer}"
        ),
    }
}

/// Which of the states [`trap`] caught, if `e` is one.
pub(crate) fn trapped(e: &DieselError) -> Option<SqlState> {
    let DieselError::DatabaseError(_, info) = e else {
        return None;
    };
    SqlState::ALL
        .into_iter()
        .find(|s| info.hint() == Some(s.hint()))
}

pub(crate) use crate::error::is_connection_lost;

/// Whether table `name` exists (on PostgreSQL: is visible on the
/// `search_path`, as an unqualified query would find it).
pub(crate) fn table_exists(conn: &mut DbConnection, name: &str) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Present {
        #[diesel(sql_type = Bool)]
        present: bool,
    }
    let literal = format!("'{}'", name.replace('\'', "''"));
    let sql = match conn.backend() {
        Backend::Postgres => format!("SELECT to_regclass({literal}) IS NOT NULL AS present"),
        Backend::Sqlite => format!(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = {literal}) AS present"
        ),
    };
    let row: Present = diesel::sql_query(sql).get_result(conn)?;
    Ok(row.present)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "sqlite")]
    #[test]
    fn table_exists_asks_sqlite() {
        use diesel::connection::SimpleConnection;
        let url = crate::db::DatabaseUrl::parse(":memory:").unwrap();
        let mut conn = crate::db::connect(&url).unwrap();
        assert!(!table_exists(&mut conn, "t").unwrap());
        conn.batch_execute("CREATE TABLE t (a INTEGER)").unwrap();
        assert!(table_exists(&mut conn, "t").unwrap());
    }

    #[test]
    fn a_trap_quotes_around_sql_that_uses_its_tags() {
        let sql = "SELECT '$taskdb_sql0$', '$taskdb_do1$'";
        let block = trap(sql, &[SqlState::LockNotAvailable]);
        assert!(block.starts_with("DO $taskdb_do2$"), "{block}");
        assert!(
            block.contains(&format!("$taskdb_sql2${sql}$taskdb_sql2$")),
            "{block}"
        );
        assert!(block.contains("WHEN lock_not_available THEN RAISE lock_not_available"));
    }
}
