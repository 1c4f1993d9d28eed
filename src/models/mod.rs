//! Rows, inserts and typed queries, one file per table. Every function takes
//! the connection first and works on both backends: any
//! [`ModelConnection`](crate::db::ModelConnection) — `&mut` a
//! `PgConnection`, a `SqliteConnection`, a [`DbConnection`](crate::db::DbConnection)
//! or a connection checked out of a pool of them. The query runs on the
//! backend's own Diesel connection, also under `AnyConnection`.

pub mod task;
pub mod user;

pub use task::{NewTask, Task, TaskChanges, TaskCursor, TaskFilter, TaskOrder, TaskPage};
pub use user::{NewUser, PasswordPolicy, User};

diesel::define_sql_function! {
    /// SQL `lower(text)`: the case-insensitive email rule and its index.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The length of the `VARCHAR(255)` columns (ids, emails, names, titles).
pub const MAX_VARCHAR: usize = 255;

/// Refuses a value longer than its `VARCHAR(max)` column, naming the field:
/// PostgreSQL would fail with a message that names neither, and SQLite
/// would store it anyway. Counted in characters, as VARCHAR counts.
pub(crate) fn check_length(field: &'static str, value: &str, max: usize) -> crate::Result<()> {
    let length = value.chars().count();
    if length > max {
        return Err(crate::Error::TooLong { field, length, max });
    }
    Ok(())
}

/// The current time as stored in `TIMESTAMP` columns (UTC, no zone).
pub(crate) fn now_utc() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
