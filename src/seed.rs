//! Development data: the app's test user (the same account the app's
//! first migration scripts created, so existing task rows keep an owner).

use crate::db::AnyConnection;
use crate::error::{Error, Result};
use crate::models::{user, NewUser, User};

/// The development user's id.
pub const DEV_USER_ID: &str = "user123";
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

/// Creates the user unless it exists. Idempotent: a second run finds the
/// same id and email and changes nothing (not even the password). An
/// existing user with the same email but another id, or the same id and
/// another email, is a conflict and changes nothing either.
pub fn seed_user(conn: &mut AnyConnection, new: NewUser<'_>) -> Result<Seeded> {
    user::validate_email(new.email)?;
    user::validate_password(new.password)?;
    let id = new
        .id
        .ok_or_else(|| Error::InvalidInput("seed needs a user id".into()))?;
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
