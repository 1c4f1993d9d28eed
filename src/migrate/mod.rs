//! Migrations: what is compiled in or read from a directory
//! ([`crate::source`]), what the database has
//! recorded ([`ledger`]), the two joined ([`plan`]), checks before the
//! first change ([`existing_tables`], and lint's pre-flight), one migrator at a time ([`lock`]), running
//! a step ([`apply`]) and what a rollback would destroy ([`data_loss`]).
//!
//! A backend calls [`run_pending`] on start-up. When nothing is pending it
//! costs one query after connecting: no lock, no DDL, no writes.

pub(crate) mod apply;
pub(crate) mod backfill;
pub(crate) mod data_loss;
pub(crate) mod existing_tables;
mod if_not_exists;
pub(crate) mod ledger;
pub(crate) mod lock;
mod migrator;
pub(crate) mod plan;
pub mod replicas;
pub mod step_progress;
pub mod throttle;

use std::time::Duration;

use diesel_migrations::{embed_migrations, EmbeddedMigrations};

pub use crate::source::{migrations, resolve, Backfill, LocalMigration, MigrationSource};
pub use data_loss::TableLoss;
pub use lock::ADVISORY_LOCK_KEY;
pub use migrator::Migrator;
pub use plan::{MigrationPlan, MigrationState, PlanEntry};
pub use throttle::{CheckpointPressure, ThrottleReason, WalRate};

use crate::db::DatabaseUrl;
use crate::error::Result;

/// Makes SIGINT (Ctrl-C) and SIGTERM during a PostgreSQL migration cancel
/// the running statement server-side and roll the step back, so the
/// migration fails with [`Error::Interrupted`](crate::Error::Interrupted)
/// instead of the process dying with a DDL statement still queued on the
/// server. Outside a migration, and for SQLite, a signal ends the process
/// at once (exit 128 + signal), as without this call. Call once, early in
/// `main`, before [`run_pending`]; it takes over SIGINT and SIGTERM for the
/// whole process (the `ctrl-c` feature; the `taskdb` binary always does).
#[cfg(feature = "ctrl-c")]
pub fn cancel_on_ctrl_c() -> std::io::Result<()> {
    crate::interrupt::install(false)
}

/// The PostgreSQL migrations for Diesel's own harness (`MigrationHarness`),
/// for code that wants the stock runner. taskdb's runner uses the same files.
#[cfg(feature = "postgres")]
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// The SQLite migrations for Diesel's own harness.
#[cfg(feature = "sqlite")]
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Default for how long one DDL statement may wait for a table lock. While
/// it waits, every query of the app that touches the table queues behind
/// it, so this is also the longest stall a migration causes: short, and
/// made up for by retries.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_millis(50);
/// Default for how often a step that hit the lock timeout is retried
/// (with backoff from 100 ms to 5 s: about two minutes in all).
pub const DEFAULT_LOCK_RETRIES: u32 = 30;

/// Default for how long one batch of a backfill should take: row locks
/// held this long are a short wait for the app's writes.
pub const DEFAULT_BACKFILL_BATCH_TIME: Duration = Duration::from_millis(100);

/// Progress of a run, for whoever shows it.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Another migrator holds the lock; this one waits.
    LockWaiting,
    /// A version applied elsewhere (the diesel CLI) got its ledger row.
    FoundApplied {
        migration: &'a LocalMigration,
    },
    Applying {
        migration: &'a LocalMigration,
    },
    Applied {
        migration: &'a LocalMigration,
        elapsed: Duration,
    },
    /// Another migrator applied it while this one waited.
    AlreadyApplied {
        migration: &'a LocalMigration,
    },
    Reverting {
        migration: &'a LocalMigration,
    },
    Reverted {
        migration: &'a LocalMigration,
        elapsed: Duration,
    },
    /// A step hit the lock timeout and will be retried.
    LockTimeout {
        migration: &'a LocalMigration,
        attempt: u32,
        retry_in: Duration,
    },
    /// An INVALID index left by a failed or killed build is dropped before
    /// the build runs again.
    RebuildingInvalidIndex {
        migration: &'a LocalMigration,
        index: &'a str,
    },
    /// Looking for tasks that belong to no user before the step that checks
    /// the tasks → users foreign key (it would fail on them).
    CheckingOrphans {
        migration: &'a LocalMigration,
    },
    /// None found.
    OrphansChecked {
        migration: &'a LocalMigration,
        elapsed: Duration,
    },
    /// An index build started by an earlier (killed) run is still running
    /// on the server.
    WaitingForIndexBuild {
        index: &'a str,
        pid: i32,
    },
    /// A streaming standby is past `--max-replica-lag`: the next step
    /// waits (sent again each time the primary is asked; `waited` is zero
    /// on the first report of a wait).
    ReplicaLagging {
        standby: &'a str,
        replay_lag: Option<Duration>,
        bytes_behind: Option<u64>,
        waited: Duration,
    },
    /// Every standby is back within the bound after a wait.
    ReplicasCaughtUp {
        waited: Duration,
    },
    /// A batch of a backfill migration committed, its position saved.
    BackfillProgress {
        migration: &'a LocalMigration,
        /// Rows walked so far (in key order, matching or not), this run
        /// and the runs it resumed.
        rows_done: u64,
        /// The table's size as the planner estimates it.
        rows_estimated: u64,
        /// Rows in the batch just done.
        batch_size: u64,
        /// Rows in the next batch.
        next_batch_size: u64,
        /// The WAL the batch's `UPDATE` wrote (measured only under
        /// [`MigrateOptions::max_wal_rate`]).
        wal_bytes: Option<u64>,
    },
    /// A backfill sleeps between two batches: its WAL is at
    /// [`MigrateOptions::max_wal_rate`], or the app's sessions waited on
    /// the batch's row locks.
    BackfillThrottled {
        migration: &'a LocalMigration,
        reason: ThrottleReason,
        sleep: Duration,
    },
    /// Over a backfill's first seconds the server wrote WAL fast enough to
    /// force a checkpoint more often than its `checkpoint_warning`: the
    /// app's commits will stall behind them. Sent at most once a run.
    BackfillForcesCheckpoints {
        migration: &'a LocalMigration,
        pressure: CheckpointPressure,
    },
    /// A backfill resumes after the key an earlier run saved.
    BackfillResuming {
        migration: &'a LocalMigration,
        rows_done: u64,
    },
    /// A pending migration has a lint finding on a table at most
    /// `unsafe_threshold` rows big: it proceeds, and says so.
    LintProceeding {
        line: &'a str,
    },
}

/// Settings of a migration run, and of each step in it.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// How long one DDL statement may wait for a lock before it is retried.
    pub lock_timeout: Duration,
    /// How many retries a step gets after hitting the lock timeout.
    pub lock_retries: u32,
    /// Keep retrying the first connection this long while the server is
    /// unreachable (`None`: fail at once).
    pub wait: Option<Duration>,
    /// Recorded in the ledger as who applied each migration.
    pub applied_by: String,
    /// The pre-flight refuses a lint error on a table above this many rows
    /// ([`crate::lint::preflight`]).
    pub unsafe_threshold: u64,

    /// How far behind a streaming standby may be before the next step
    /// waits for it ([`replicas::LagBound::OFF`]: no gate).
    pub max_replica_lag: replicas::LagBound,
    /// How long to wait for a lagging standby before stopping between
    /// steps.
    pub replica_wait: Duration,
    /// How long each batch of a backfill migration should take: the batch
    /// size grows and shrinks towards it.
    pub backfill_batch_time: Duration,
    /// A cap on the WAL rate a backfill writes: it sleeps between batches
    /// to stay under it (`None`: no cap). See [`throttle`].
    pub max_wal_rate: Option<WalRate>,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            lock_retries: DEFAULT_LOCK_RETRIES,
            wait: None,
            applied_by: format!("taskdb {}", env!("CARGO_PKG_VERSION")),
            unsafe_threshold: crate::lint::DEFAULT_UNSAFE_THRESHOLD,
            max_replica_lag: replicas::LagBound::default(),
            replica_wait: replicas::DEFAULT_REPLICA_WAIT,
            backfill_batch_time: DEFAULT_BACKFILL_BATCH_TIME,
            max_wal_rate: None,
        }
    }
}

/// A migration that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub version: String,
    pub name: String,
    pub elapsed: Duration,
}

/// Which migrations a rollback reverts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTarget {
    /// The newest N applied migrations.
    Steps(usize),
    /// Every applied migration newer than this version (it stays applied).
    To(String),
    /// Every applied migration.
    All,
}

/// What `repair` changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    pub name: String,
    pub action: &'static str,
}

/// Applies every pending migration to the database at `url`, safely when
/// other processes do the same at once. Returns what this call applied.
///
/// Between steps it waits for streaming standbys as
/// [`MigrateOptions::default`] bounds them (see [`replicas`]); an
/// up-to-date database costs no more than before (one query).
///
/// A database *ahead* of this build (a later release applied newer
/// migrations, then the app was rolled back) starts normally, with a
/// warning, and nothing is applied past the gap-free part. Warnings (that,
/// and a lint finding on a small table the pre-flight let through) go to
/// the `log` crate's `warn!`, under the target `taskdb`.
pub fn run_pending(url: &DatabaseUrl) -> Result<Vec<Step>> {
    run_pending_warning(
        url,
        &mut |warning| log::warn!(target: "taskdb", "{warning}"),
    )
}

/// [`run_pending`], handing its warnings to `warn` instead of the `log`
/// crate: for an app that reports them its own way.
pub fn run_pending_warning(url: &DatabaseUrl, warn: &mut dyn FnMut(String)) -> Result<Vec<Step>> {
    crate::db::refuse_in_memory(url, "run_pending")?;
    let mut migrator = Migrator::new(url.clone());
    let plan = migrator.plan()?;
    if let Some(warning) = plan.ahead_warning() {
        warn(warning);
    }
    let mut migrator = migrator.on_event(|event| {
        if let Event::LintProceeding { line } = event {
            warn(line.to_string());
        }
    });
    migrator.migrate_planned(&plan, None)
}
