//! The library's error type. Every message is one line a user can act on, and
//! none carries a database password (URLs are redacted before they get here).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub use crate::versions::DuplicateVersion;

/// Result alias used throughout taskdb.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything taskdb's library can fail with.
///
/// What a backend handles in a request: [`EmailTaken`](Error::EmailTaken),
/// [`UserIdTaken`](Error::UserIdTaken), [`UnknownOwner`](Error::UnknownOwner),
/// [`InvalidInput`](Error::InvalidInput), [`TooLong`](Error::TooLong),
/// [`PasswordTooLong`](Error::PasswordTooLong) (all the caller's input), and
/// [`Pool`](Error::Pool) / [`Query`](Error::Query) /
/// [`Connect`](Error::Connect) (the database). The others come from running
/// migrations, as at start-up (`run_pending`) or from the `taskdb`
/// command. New variants may be added: match with a catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database URL could not be understood.
    #[error("invalid database URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The URL names a backend this build of taskdb leaves out (a Cargo
    /// feature is off).
    #[error("{0}")]
    BackendNotBuilt(String),

    /// The server could not be reached or refused the login.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },

    /// A query failed. The driver's message is part of this one, so it is
    /// not also the error's `source` (printing the cause chain would repeat
    /// it); see the `From` impl below.
    #[error("database error: {0}")]
    Query(DieselError),

    /// The connection pool could not hand out a connection (`pool.get()?`
    /// converts r2d2's error into this).
    #[error("connection pool: {0}")]
    Pool(String),

    /// A task for a user that does not exist (the tasks → users foreign
    /// key refused it).
    #[error("no user `{0}`: a task needs an existing owner")]
    UnknownOwner(String),

    /// A migration directory given at run time could not be read.
    #[error("cannot read migrations at {path}: {reason}")]
    MigrationsDir { path: String, reason: String },

    /// A migration's SQL failed; nothing of a transactional one was kept.
    #[error("migration {migration} failed: {reason}")]
    MigrationFailed { migration: String, reason: String },

    /// `migrate` cannot run past these migrations' states (modified,
    /// missing from this build while older than its newest, or dirty); each
    /// names its way out. A database merely *ahead* of this build (a later
    /// release applied newer migrations) is not refused.
    #[error("refusing to migrate: {}", describe_blocked(.0))]
    MigrationsBlocked(Vec<BlockedMigration>),

    /// The server ended the session in the middle of a migration (a
    /// restart, a failover, a terminated backend).
    #[error("lost the connection to the server while {action} {migration} ({reason}): a step in a transaction was rolled back with the session, and one without is finished by the next run; run `{rerun}` again once the server is back")]
    ConnectionLost {
        action: &'static str,
        migration: String,
        reason: String,
        rerun: &'static str,
    },

    /// The connection holding the migration lock ended during the run (a
    /// terminated backend, a restart): the run stopped before its next
    /// step, since another migrator may now take the lock.
    #[error("lost the migration lock before {action} {migration} (the server ended the connection holding it: {reason}), so the run stopped there: another migrator could run at the same time; the steps before it are recorded; run `{rerun}` again")]
    MigrationLockLost {
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

    /// Two migration directories share a version: Diesel would run only one.
    #[error("refusing to migrate: {0}")]
    DuplicateVersion(#[from] DuplicateVersion),

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

    /// Password hashing failed (its message is part of this one, like
    /// [`Error::Query`]'s).
    #[error("password hashing failed: {0}")]
    Hash(bcrypt::BcryptError),

    /// Tasks whose user_id matches no user: the foreign key cannot be
    /// validated until they are given an owner or deleted.
    #[error("{tasks} task(s) belong to no user ({owners} unknown user_id(s), e.g. {sample}), so the tasks → users foreign key cannot be validated; nothing past the safe steps was applied. {remedy}")]
    OrphanedTasks {
        tasks: i64,
        owners: usize,
        sample: String,
        /// How many of them belong to the development user (`user123`),
        /// whom `taskdb seed` creates.
        dev_user_tasks: i64,
        /// What to do about them, naming `taskdb seed` when the
        /// development user owns some.
        remedy: String,
    },

    /// The operation needs confirmation it did not get.
    #[error("{0}")]
    NotConfirmed(String),

    /// The run was interrupted (Ctrl-C or SIGTERM, with
    /// `migrate::cancel_on_ctrl_c`); `left_behind` says what that left
    /// and what to do (a migration step rolled back, a scratch database
    /// dropped, ...).
    #[error("interrupted: {left_behind}")]
    Interrupted { left_behind: String },

    /// An async call's blocking work ended without a result: it panicked,
    /// or the runtime shut down while it ran (`taskdb::nonblocking`).
    #[error("a database call on the blocking pool ended without a result: {0}")]
    Background(String),

    /// Another connection held the SQLite write lock for longer than the
    /// busy timeout ((`db::sqlite_busy_timeout`)) this one waited.
    #[error("the SQLite database is locked by another process or connection (waited {}): its write transaction stayed open; let it finish, or wait longer with TASKDB_SQLITE_BUSY_TIMEOUT", human_duration(*.waited))]
    SqliteBusy { waited: std::time::Duration },

    /// A value longer than its column (`VARCHAR(max)`) holds, counted in
    /// characters as the column counts them.
    #[error("{field} is {length} characters long, but at most {max} characters fit (the column is VARCHAR({max}))")]
    TooLong {
        field: &'static str,
        length: usize,
        max: usize,
    },

    /// A transaction failed, and so did rolling it back: `cause` is what
    /// went wrong; the rollback's failure is secondary.
    #[error("{cause} (rolling back failed too: {rollback})")]
    RollbackFailed { cause: Box<Error>, rollback: String },

    /// The pre-flight found a pending migration that would hold a blocking
    /// lock on a table above the size threshold (each entry names the
    /// migration, the rule, the table's size and the safe recipe); nothing
    /// was applied.
    #[error("refusing to migrate: {}; nothing was applied. Rewrite the migration as the recipe says, allow the statement with `-- taskdb:allow <rule> <reason>` on the line before it, or raise the threshold (`--unsafe-threshold`, `MigrateOptions::unsafe_threshold`; now {threshold} rows)", .refused.join("; "))]
    UnsafeMigration {
        threshold: u64,
        refused: Vec<String>,
    },

    /// A streaming standby stayed past `--max-replica-lag` for all of
    /// `--replica-wait`: the run stopped between steps (or, after the last
    /// one, finished with its standbys still behind).
    #[error("standby {standby} is still behind ({lag}; the bound is {bound}) after waiting {}: {outcome}; or raise the wait or the bound (`--replica-wait` / `--max-replica-lag`; `MigrateOptions::replica_wait` / `max_replica_lag`; `--max-replica-lag off` or `LagBound::OFF` skips the check)", human_duration(*.waited))]
    ReplicaLag {
        standby: String,
        lag: String,
        bound: String,
        /// What the run left behind and what to run next.
        outcome: &'static str,
        waited: std::time::Duration,
    },

    /// The role may not see how far these standbys are behind (it lacks
    /// `pg_read_all_stats`), so `--max-replica-lag` cannot be checked: the
    /// run stops rather than pass a gate it cannot see.
    #[error("cannot see how far standby {} is behind: role {role} may not read replication progress (it needs pg_read_all_stats), so --max-replica-lag cannot be checked; {outcome}. Run `GRANT pg_read_all_stats TO {role}` as a superuser, or pass `--max-replica-lag off` (`MigrateOptions::max_replica_lag = LagBound::OFF`) to migrate without waiting for standbys", .standbys.join(", "))]
    ReplicaLagUnknown {
        standbys: Vec<String>,
        /// The session's role, quoted as SQL needs it.
        role: String,
        /// What the run left behind.
        outcome: &'static str,
    },

    /// A migration creates an index `IF NOT EXISTS`, and something else
    /// already has its name: the step would keep it. Nothing of that
    /// migration (or any after it) was applied.
    #[error("refusing to migrate: {migration} creates index {index} IF NOT EXISTS, but {found} already has that name, and the migration describes `{wanted}`: IF NOT EXISTS would keep the wrong index. Nothing of {migration} was applied; drop or rename the existing index (e.g. ALTER INDEX {index} RENAME TO {index}_old), then run `taskdb migrate` again")]
    IndexMismatch {
        migration: String,
        index: String,
        /// What holds the name now (its definition).
        found: String,
        /// The statement of the migration.
        wanted: String,
    },

    /// `verify` cannot build the schema to compare with: the role may
    /// create neither a scratch database (CREATEDB) nor a scratch schema
    /// (CREATE on the database).
    #[error("cannot build the schema taskdb's migrations produce to compare with: role {role} may create neither a scratch database (it lacks CREATEDB) nor a scratch schema in database {database} (it lacks CREATE there); grant one (`ALTER ROLE {role} CREATEDB`), or pass --expected-from (the `primary` of `verify::verify_with_primary`) with the URL of a role that may (e.g. the one that runs migrations) to build it there")]
    CannotBuildExpected { role: String, database: String },
}

/// A migration whose state `migrate` cannot run past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedMigration {
    /// As Diesel stores it, e.g. `20260208000005`.
    pub version: String,
    /// Directory name (from the code, or as the ledger remembers it).
    pub name: String,
    pub reason: BlockReason,
}

/// Why `migrate` stops at a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockReason {
    /// Its `up.sql` changed after it was applied.
    Modified,
    /// Applied, not in this build, and older than the build's newest
    /// migration: a gap, not a rolled-back release.
    Missing,
    /// A run without a transaction failed part-way (the recorded error).
    Dirty { error: Option<String> },
}

impl std::fmt::Display for BlockedMigration {
    /// One sentence naming the way out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = &self.name;
        match &self.reason {
            BlockReason::Modified => write!(
                f,
                "{name} was modified after it was applied (its up.sql no longer matches the recorded checksum): restore the file, or if the edit is deliberate and already reflected in the database run `taskdb repair`"
            ),
            BlockReason::Missing => write!(
                f,
                "{name} is applied in the database but no longer in this taskdb build: deploy a build that has it, or if it was removed on purpose run `taskdb repair` to forget it"
            ),
            BlockReason::Dirty { error } => write!(
                f,
                "{name} failed part-way{}: fix the cause, then run `taskdb repair` to clear the mark and `taskdb migrate` to run it again",
                error.as_deref().map(|m| format!(" ({m})")).unwrap_or_default()
            ),
        }
    }
}

/// Every blocker, each with its way out.
fn describe_blocked(blocked: &[BlockedMigration]) -> String {
    blocked
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<DieselError> for Error {
    fn from(e: DieselError) -> Self {
        // SQLITE_BUSY: the busy handler waited the whole busy timeout. The
        // driver says only "database is locked", which hides the wait.
        if let DieselError::DatabaseError(_, info) = &e {
            if info.message() == "database is locked" {
                return Error::SqliteBusy {
                    waited: crate::settings::sqlite_busy_timeout(),
                };
            }
        }
        Error::Query(e)
    }
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        // r2d2 reports the last connection error, which taskdb's connection
        // manager has already stripped of passwords.
        Error::Pool(e.to_string())
    }
}

impl From<bcrypt::BcryptError> for Error {
    fn from(e: bcrypt::BcryptError) -> Self {
        Error::Hash(e)
    }
}

/// `700 ms`, `30 s`, `1.4 s`, `2 min 3 s`: a duration as a person reads it,
/// in messages of the library and the command line alike.
pub(crate) fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 && ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

impl Error {
    /// An interruption that rolled back the migration step in progress.
    pub(crate) fn interrupted() -> Self {
        Self::interrupted_leaving(STEP_ROLLED_BACK)
    }

    /// An interruption that left `left_behind`.
    pub(crate) fn interrupted_leaving(left_behind: impl Into<String>) -> Self {
        Error::Interrupted {
            left_behind: left_behind.into(),
        }
    }

    /// True when the error says the connection to the server is gone (by
    /// the driver's error kind: the server's words depend on its
    /// `lc_messages`).
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Query(e) => is_connection_lost(e),
            Error::ConnectionLost { .. } => true,
            _ => false,
        }
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

/// What an interruption of a migration step leaves: nothing, the step
/// rolled back.
pub(crate) const STEP_ROLLED_BACK: &str =
    "the migration in progress was rolled back; run the command again to finish";

/// True when the driver says the connection is gone: libpq folds the
/// connection's state (and the 08xxx SQLSTATEs) into `ClosedConnection`,
/// and a query it could not even send on a dead connection into
/// `UnableToSendCommand`.
pub(crate) fn is_connection_lost(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_says_them() {
        use std::time::Duration;
        assert_eq!(human_duration(Duration::from_millis(700)), "700 ms");
        assert_eq!(human_duration(Duration::from_secs(30)), "30 s");
        assert_eq!(human_duration(Duration::from_millis(1400)), "1.4 s");
        assert_eq!(human_duration(Duration::from_secs(123)), "2 min 3 s");
    }

    #[test]
    fn sqlite_busy_says_how_long_it_waited() {
        let err = Error::SqliteBusy {
            waited: crate::settings::SQLITE_BUSY_TIMEOUT,
        };
        let text = err.to_string();
        assert!(text.contains("(waited 30 s)"), "{text}");
        assert!(text.contains("TASKDB_SQLITE_BUSY_TIMEOUT"), "{text}");
    }

    #[test]
    fn a_driver_message_is_printed_once() {
        let err = Error::from(DieselError::NotFound);
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(
            format!("{:#}", anyhow::Error::from(err)),
            "database error: Record not found"
        );
    }
}
