//! The library's error type. Every message is one line a user can act on, and
//! none carries a database password (URLs are redacted before they get here).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Result alias used throughout taskdb.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything taskdb's library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database URL could not be understood.
    #[error("invalid database URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The server could not be reached or refused the login.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },

    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] DieselError),

    /// The connection pool could not hand out a connection.
    #[error("connection pool: {0}")]
    Pool(String),

    /// A migration's SQL failed; nothing of a transactional one was kept.
    #[error("migration {migration} failed: {reason}")]
    MigrationFailed { migration: String, reason: String },

    /// The applied migrations disagree with the ones compiled into taskdb.
    #[error("{0}")]
    MigrationState(String),

    /// A version given by the user names no migration.
    #[error("unknown migration version `{0}` (see `taskdb status` for the list)")]
    UnknownVersion(String),

    /// Input from the user that taskdb refuses (bad email, empty password, …).
    #[error("{0}")]
    InvalidInput(String),

    /// A password longer than bcrypt's 72-byte input would be truncated.
    #[error("password is {0} bytes long; bcrypt uses at most 72 bytes, so it is refused rather than truncated")]
    PasswordTooLong(usize),

    /// Creating a user whose email (ignoring case) is already taken.
    #[error("a user with email `{0}` already exists (emails are unique ignoring case)")]
    EmailTaken(String),

    /// Creating a user whose id is already taken.
    #[error("a user with id `{0}` already exists")]
    UserIdTaken(String),

    /// Password hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(#[from] bcrypt::BcryptError),

    /// Tasks whose user_id matches no user: the foreign key cannot be
    /// validated until they are given an owner or deleted.
    #[error("{tasks} task(s) belong to no user ({owners} unknown user_id(s), e.g. {sample}), so the tasks → users foreign key cannot be validated; nothing past the safe steps was applied. {}", crate::orphans::remedy(*.owners, *.dev_user_tasks))]
    OrphanedTasks {
        tasks: i64,
        owners: usize,
        sample: String,
        /// How many of them belong to the development user
        /// ([`DEV_USER_ID`](crate::seed::DEV_USER_ID)), whom `taskdb seed`
        /// creates.
        dev_user_tasks: i64,
    },

    /// The operation needs confirmation it did not get.
    #[error("{0}")]
    NotConfirmed(String),

    /// The run was interrupted (Ctrl-C or SIGTERM).
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// True when the database rejected a row for breaking a unique rule.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Error::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}
