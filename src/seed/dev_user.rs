//! The development user: its login, and seeding it.

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::db::{Backend, DbConnection, HasBackend as _};
use crate::error::{Error, Result};
use crate::models::{user, NewUser, User};

/// The development user's email.
pub const DEV_USER_EMAIL: &str = "test@example.com";
/// The development user's password. A development credential: never seed
/// it into a database that faces the internet.
pub const DEV_USER_PASSWORD: &str = "password123";
/// The development user's display name.
pub const DEV_USER_NAME: &str = "Test User";

/// What [`seed_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded {
    Created(User),
    /// A user with this id and email was already there; nothing changed.
    AlreadyPresent(User),
}

/// Columns of `users` the seed writes and reads back.
const USER_COLUMNS: &[&str] = &[
    "id",
    "email",
    "password_hash",
    "name",
    "created_at",
    "updated_at",
];
/// Columns of `tasks` the demo seed writes.
const TASK_COLUMNS: &[&str] = &[
    "user_id",
    "title",
    "description",
    "completed",
    "created_at",
    "updated_at",
];

/// Checks that the `users` table exists with every column [`seed_user`]
/// needs. That is all the seed needs: it works on a database whose
/// migration stopped at the orphaned-tasks check, which is how the app's
/// tasks of the development user get their owner.
pub fn require_users_table(conn: &mut DbConnection) -> Result<()> {
    require_table(conn, "users", USER_COLUMNS)
}

/// Checks that `users` and `tasks` exist with every column [`seed_demo`]
/// writes.
pub fn require_demo_tables(conn: &mut DbConnection) -> Result<()> {
    require_table(conn, "users", USER_COLUMNS)?;
    require_table(conn, "tasks", TASK_COLUMNS)
}

fn require_table(conn: &mut DbConnection, table: &str, needed: &[&str]) -> Result<()> {
    #[derive(QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        name: String,
    }
    // The table as the connection's search path resolves it, like the
    // seed's own queries will.
    let query = match conn.backend() {
        Backend::Postgres => diesel::sql_query(
            "SELECT attname::text AS name FROM pg_attribute
              WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
        ),
        Backend::Sqlite => diesel::sql_query("SELECT name FROM pragma_table_info(?)"),
    };
    let present: Vec<String> = query
        .bind::<Text, _>(table)
        .load::<Column>(conn)?
        .into_iter()
        .map(|c| c.name.to_ascii_lowercase())
        .collect();
    if present.is_empty() {
        return Err(Error::MigrationState(format!(
            "the database has no `{table}` table yet: run `taskdb migrate` first"
        )));
    }
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|c| !present.iter().any(|p| p == c))
        .collect();
    if !missing.is_empty() {
        return Err(Error::MigrationState(format!(
            "the `{table}` table has no column(s) {}: it is not the shape taskdb's migrations create; run `taskdb migrate` first",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// Creates the user unless it exists; needs only the `users` table (see
/// [`require_users_table`]), not a fully migrated database. Idempotent: a second run finds the
/// same id and email and changes nothing (not even the password). An
/// existing user with the same email but another id, or the same id and
/// another email, is a conflict and changes nothing either.
pub fn seed_user(conn: &mut DbConnection, new: NewUser<'_>) -> Result<Seeded> {
    user::validate_new(&new)?;
    let id = new
        .id
        .ok_or_else(|| Error::InvalidInput("seed needs a user id".into()))?;
    require_users_table(conn)?;
    if let Some(existing) = user::find_by_id(conn, id)? {
        if existing.email.eq_ignore_ascii_case(new.email) {
            return Ok(Seeded::AlreadyPresent(existing));
        }
        return Err(Error::InvalidInput(format!(
            "user `{id}` already exists with email `{}`; nothing changed",
            existing.email
        )));
    }
    if let Some(existing) = user::find_by_email(conn, new.email)? {
        return Err(Error::InvalidInput(format!(
            "email `{}` already belongs to user `{}`; nothing changed",
            new.email, existing.id
        )));
    }
    Ok(Seeded::Created(user::create(conn, new)?))
}
