//! Rows, inserts and typed queries, one file per table. Every function takes
//! the connection first and works on both backends.

pub mod task;
pub mod user;

pub use task::{NewTask, Task, TaskChanges, TaskFilter};
pub use user::{NewUser, User};

diesel::define_sql_function! {
    /// SQL `lower(text)`: the case-insensitive email rule and its index.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The current time as stored in `TIMESTAMP` columns (UTC, no zone).
pub(crate) fn now_utc() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}
