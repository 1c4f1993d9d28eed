//! Accounts: the `users` table, password hashing and login.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{check_length, lower, now_utc, MAX_VARCHAR};
use crate::db::{on_concrete, ModelConnection};
use crate::error::{Error, Result};
use crate::schema::users;

/// bcrypt cost used for every stored password (the app's existing hashes
/// use 12, so they verify and cost the same).
pub const BCRYPT_COST: u32 = 12;

/// How passwords are hashed: bcrypt at a cost. [`PasswordPolicy::DEFAULT`]
/// (cost 12, the app's existing hashes) everywhere but in tests, where
/// [`PasswordPolicy::CHEAPEST`] (bcrypt's minimum, 4) makes a hash take
/// about a millisecond instead of a quarter of a second. A stored hash
/// records its own cost, so either verifies with [`authenticate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    cost: u32,
}

impl PasswordPolicy {
    /// Cost 12: what production uses.
    pub const DEFAULT: PasswordPolicy = PasswordPolicy { cost: BCRYPT_COST };
    /// bcrypt's minimum cost (4): for tests only.
    pub const CHEAPEST: PasswordPolicy = PasswordPolicy {
        cost: MIN_BCRYPT_COST,
    };

    /// A policy of `cost` (bcrypt accepts 4 to 31).
    pub fn with_cost(cost: u32) -> Result<Self> {
        if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost) {
            return Err(Error::InvalidInput(format!(
                "bcrypt cost must be between {} and {} (got {cost})",
                MIN_BCRYPT_COST, MAX_BCRYPT_COST
            )));
        }
        Ok(PasswordPolicy { cost })
    }

    pub fn cost(self) -> u32 {
        self.cost
    }

    /// Hashes a password at this cost after validating it.
    pub fn hash(self, password: &str) -> Result<String> {
        validate_password(password)?;
        Ok(bcrypt::hash(password, self.cost)?)
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy::DEFAULT
    }
}

/// bcrypt's cheapest cost (the crate keeps its own bounds private).
pub const MIN_BCRYPT_COST: u32 = 4;
/// bcrypt's highest cost.
pub const MAX_BCRYPT_COST: u32 = 31;

/// bcrypt reads at most this many bytes of a password.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// A row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, serde::Serialize)]
#[diesel(table_name = users)]
#[cfg_attr(feature = "postgres", diesel(check_for_backend(diesel::pg::Pg)))]
#[cfg_attr(feature = "sqlite", diesel(check_for_backend(diesel::sqlite::Sqlite)))]
pub struct User {
    pub id: String,
    pub email: String,
    #[serde(skip)]
    pub password_hash: String,
    pub name: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// What a caller supplies to create a user; the password is hashed here.
/// `Default` leaves everything empty (and the id generated), for struct
/// update syntax: `NewUser { email, password, ..Default::default() }`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewUser<'a> {
    /// Generated (a UUID) when `None`.
    pub id: Option<&'a str>,
    pub email: &'a str,
    pub password: &'a str,
    pub name: Option<&'a str>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct UserRow<'a> {
    id: &'a str,
    email: &'a str,
    password_hash: &'a str,
    name: Option<&'a str>,
}

/// Checks an email the way sign-up should: one `@`, something on both
/// sides, a dot in the domain, no spaces, at most 255 characters.
pub fn validate_email(email: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidInput(format!(
            "invalid email `{email}`: {why}"
        )))
    };
    check_length("email", email, MAX_VARCHAR)?;
    if email.chars().any(char::is_whitespace) {
        return bad("contains whitespace");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(())
        }
        _ => bad("expected name@domain.tld"),
    }
}

/// Checks a user id: not empty, at most 255 characters.
pub fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidInput("user id must not be empty".into()));
    }
    check_length("user id", id, MAX_VARCHAR)
}

/// Checks a display name: at most 255 characters.
pub fn validate_name(name: Option<&str>) -> Result<()> {
    match name {
        Some(name) => check_length("user name", name, MAX_VARCHAR),
        None => Ok(()),
    }
}

/// Checks everything [`create`] stores, before any database work: id,
/// email, name and password.
pub fn validate_new(new: &NewUser<'_>) -> Result<()> {
    if let Some(id) = new.id {
        validate_id(id)?;
    }
    validate_email(new.email)?;
    validate_name(new.name)?;
    validate_password(new.password)
}

/// Refuses passwords bcrypt would mangle: empty ones, and ones longer than
/// its 72-byte input (bcrypt would silently ignore the rest).
pub fn validate_password(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(Error::InvalidInput("password must not be empty".into()));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::PasswordTooLong(password.len()));
    }
    Ok(())
}

/// Hashes a password with bcrypt at [`BCRYPT_COST`] after validating it.
pub fn hash_password(password: &str) -> Result<String> {
    PasswordPolicy::DEFAULT.hash(password)
}

/// Creates a user, its password hashed at [`PasswordPolicy::DEFAULT`].
/// Fails with [`Error::EmailTaken`] when the email exists in any letter
/// case (the database enforces it; this only names the error).
pub fn create(conn: &mut impl ModelConnection, new: NewUser<'_>) -> Result<User> {
    create_with(conn, new, PasswordPolicy::DEFAULT)
}

/// [`create`] with the password hashed under `policy`.
pub fn create_with(
    conn: &mut impl ModelConnection,
    new: NewUser<'_>,
    policy: PasswordPolicy,
) -> Result<User> {
    validate_new(&new)?;
    let hash = policy.hash(new.password)?;
    insert_hashed(conn, new.id, new.email, &hash, new.name)
}

/// Inserts a user whose password is already hashed (demo data reuses one
/// hash for many users; adopting keeps existing hashes).
pub fn insert_hashed(
    conn: &mut impl ModelConnection,
    id: Option<&str>,
    email: &str,
    password_hash: &str,
    name: Option<&str>,
) -> Result<User> {
    check_length("email", email, MAX_VARCHAR)?;
    check_length("password hash", password_hash, MAX_VARCHAR)?;
    validate_name(name)?;
    let generated;
    let id = match id {
        Some(id) => {
            validate_id(id)?;
            id
        }
        None => {
            generated = uuid::Uuid::new_v4().to_string();
            &generated
        }
    };
    let row = UserRow {
        id,
        email,
        password_hash,
        name,
    };
    let inserted = on_concrete!(&mut *conn, |c| diesel::insert_into(users::table)
        .values(&row)
        .execute(c))
    .map_err(Error::from);
    match inserted {
        Err(e) if e.is_unique_violation() => {
            if find_by_id(conn, id)?.is_some() {
                Err(Error::UserIdTaken(id.to_string()))
            } else {
                Err(Error::EmailTaken(email.to_string()))
            }
        }
        Err(e) => Err(e),
        Ok(_) => find_by_id(conn, id)?
            .ok_or_else(|| Error::InvalidInput(format!("user `{id}` vanished after insert"))),
    }
}

/// Finds a user by id.
pub fn find_by_id(conn: &mut impl ModelConnection, id: &str) -> Result<Option<User>> {
    Ok(on_concrete!(conn, |c| users::table
        .find(id)
        .select(User::as_select())
        .first(c)
        .optional())?)
}

/// The login lookup: email compared ignoring case, served by the
/// `lower(email)` unique index on both backends.
pub fn find_by_email(conn: &mut impl ModelConnection, email: &str) -> Result<Option<User>> {
    Ok(on_concrete!(conn, |c| users::table
        .filter(lower(users::email).eq(lower(email)))
        .select(User::as_select())
        .first(c)
        .optional())?)
}

/// Checks an email and password. Returns the user on success and `None` for
/// a wrong password or an unknown email alike; both cases spend one bcrypt
/// verification, so response time does not reveal which emails exist.
pub fn authenticate(
    conn: &mut impl ModelConnection,
    email: &str,
    password: &str,
) -> Result<Option<User>> {
    authenticate_with(conn, email, password, PasswordPolicy::DEFAULT)
}

/// [`authenticate`] where passwords are hashed under `policy`: an unknown
/// email then costs one verification at that policy's cost, like a known
/// one.
pub fn authenticate_with(
    conn: &mut impl ModelConnection,
    email: &str,
    password: &str,
    policy: PasswordPolicy,
) -> Result<Option<User>> {
    let user = find_by_email(conn, email)?;
    let dummy;
    let hash = match &user {
        Some(user) => user.password_hash.as_str(),
        None => {
            dummy = dummy_hash(policy);
            dummy.as_str()
        }
    };
    // An over-long password cannot have been stored; still pay the cost.
    let ok =
        password.len() <= MAX_PASSWORD_BYTES && bcrypt::verify(password, hash).unwrap_or(false);
    Ok(user.filter(|_| ok))
}

/// A hash of a random password at the policy's cost, for unknown emails
/// (made once per cost).
fn dummy_hash(policy: PasswordPolicy) -> String {
    static HASHES: std::sync::Mutex<Vec<(u32, String)>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut hashes) = HASHES.lock() else {
        return FALLBACK_DUMMY_HASH.to_string();
    };
    if let Some((_, hash)) = hashes.iter().find(|(cost, _)| *cost == policy.cost) {
        return hash.clone();
    }
    // Hashing a 36-byte string cannot fail; fall back to a fixed cost-12
    // hash of an unknown password all the same.
    let hash = bcrypt::hash(uuid::Uuid::new_v4().to_string(), policy.cost)
        .unwrap_or_else(|_| FALLBACK_DUMMY_HASH.to_string());
    hashes.push((policy.cost, hash.clone()));
    hash
}

const FALLBACK_DUMMY_HASH: &str = "$2b$12$C6UzMDM.H6dfI/f/IKxGhuW1nP8l8sKc9j0v8M1s1y3Yqk1c9r6xS";

/// Deletes a user; the database deletes their tasks with them (ON DELETE
/// CASCADE). Returns whether a user was deleted.
pub fn delete(conn: &mut impl ModelConnection, id: &str) -> Result<bool> {
    Ok(on_concrete!(conn, |c| diesel::delete(users::table.find(id)).execute(c))? > 0)
}

/// Changes a user's display name; `updated_at` moves with it.
pub fn rename(conn: &mut impl ModelConnection, id: &str, name: Option<&str>) -> Result<bool> {
    validate_name(name)?;
    Ok(on_concrete!(conn, |c| diesel::update(users::table.find(id))
        .set((users::name.eq(name), users::updated_at.eq(now_utc())))
        .execute(c))?
        > 0)
}
