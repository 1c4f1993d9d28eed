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

    /// `migrate` cannot run past these migrations' states (modified,
    /// missing from this build while older than its newest, or dirty); each
    /// names its way out. A database merely *ahead* of this build (a later
    /// release applied newer migrations) is not refused.
    #[error("refusing to migrate: {}", crate::migrate::plan::describe_blockers(.0))]
    MigrationsBlocked(Vec<crate::migrate::plan::Blocker>),

    /// The server ended the session in the middle of a migration (a
    /// restart, a failover, a terminated backend).
    #[error("lost the connection to the server while {action} {migration} ({reason}): a step in a transaction was rolled back with the session, and one without is finished by the next run; run `{rerun}` again once the server is back")]
    ConnectionLost {
        action: &'static str,
        migration: String,
        reason: String,
        rerun: &'static str,
    },

    /// An existing table that a migration would adopt is not the app's
    /// (another application owns a table of that name); nothing was changed.
    #[error("refusing to migrate: the existing table `{table}` is not the app's ({}); nothing was changed. Point taskdb at the app's own database, or move that table out of the way", .differences.join("; "))]
    IncompatibleTable {
        table: String,
        differences: Vec<String>,
    },

    /// The migration run cannot go on in the state it found (no connection,
    /// a migration without down.sql, a pooler that cannot hold a lock, …).
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
    #[error("{tasks} task(s) belong to no user ({owners} unknown user_id(s), e.g. {sample}), so the tasks → users foreign key cannot be validated; nothing past the safe steps was applied. List them with `taskdb orphans`, then give them to an existing user with `taskdb orphans --assign-to USER_ID --yes` or delete them with `taskdb orphans --delete --yes`, and run `taskdb migrate` again")]
    OrphanedTasks {
        tasks: i64,
        owners: usize,
        sample: String,
    },

    /// The operation needs confirmation it did not get.
    #[error("{0}")]
    NotConfirmed(String),

    /// The run was interrupted (Ctrl-C or SIGTERM).
    #[error("interrupted")]
    Interrupted,

    /// The pre-flight found a pending migration that would hold a blocking
    /// lock on a table above the size threshold (each entry names the
    /// migration, the rule, the table's size and the safe recipe); nothing
    /// was applied.
    #[error("refusing to migrate: {}; nothing was applied. Rewrite the migration as the recipe says, allow the statement with `-- taskdb:allow <rule> <reason>` on the line before it, or raise --unsafe-threshold (now {threshold} rows)", .refused.join("; "))]
    UnsafeMigration {
        threshold: u64,
        refused: Vec<String>,
    },
}

impl Error {
    /// True when the error says the connection to the server is gone, in
    /// any of the ways libpq and the server put it.
    pub fn is_connection_lost(&self) -> bool {
        let text = self.to_string().to_ascii_lowercase();
        [
            "no connection to the server",
            "server closed the connection unexpectedly",
            "ssl connection has been closed unexpectedly",
            "terminating connection due to",
            "connection to server was lost",
            "could not receive data from server",
            "could not send data to server",
        ]
        .iter()
        .any(|needle| text.contains(needle))
    }

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
