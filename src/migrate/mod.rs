//! Migrations: what is compiled in ([`source`]), what the database has
//! recorded ([`ledger`]), the two joined ([`plan`]), checks before the
//! first change ([`preflight`]), one migrator at a time ([`lock`]), running
//! a step ([`apply`]) and what a rollback would destroy ([`data_loss`]).
//!
//! A backend calls [`run_pending`] on start-up. When nothing is pending it
//! costs one query after connecting: no lock, no DDL, no writes.

pub mod apply;
pub mod data_loss;
pub mod ledger;
pub mod lock;
pub mod plan;
pub mod preflight;
pub mod progress;
pub mod source;

use std::time::Duration;

use diesel_migrations::{embed_migrations, EmbeddedMigrations};

pub use apply::StepSettings;
pub use data_loss::TableLoss;
pub use plan::{describe_blockers, Blocker, MigrationPlan, MigrationState, PlanEntry};
pub use source::{migrations, resolve, LocalMigration};

use crate::db::{self, AnyConnection, Backend, DatabaseUrl};
use crate::error::{Error, Result};
use crate::interrupt::{self, CancelGuard};
use apply::StepOutcome;
use lock::MigrationLock;

/// The PostgreSQL migrations for Diesel's own harness (`MigrationHarness`),
/// for code that wants the stock runner. taskdb's runner uses the same files.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// The SQLite migrations for Diesel's own harness.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Default for how long one DDL statement may wait for a table lock. While
/// it waits, every query of the app that touches the table queues behind
/// it, so this is also the longest stall a migration causes: short, and
/// made up for by retries.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_millis(50);
/// Default for how often a step that hit the lock timeout is retried
/// (with backoff from 100 ms to 5 s: about two minutes in all).
pub const DEFAULT_LOCK_RETRIES: u32 = 30;

/// Progress of a run, for whoever shows it.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Another migrator holds the lock; this one waits.
    LockWaiting,
    /// A version applied elsewhere (the diesel CLI) got its ledger row.
    Backfilled {
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
}

/// Settings of a migration run.
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
}

impl Default for MigrateOptions {
    fn default() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        MigrateOptions {
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            lock_retries: DEFAULT_LOCK_RETRIES,
            wait: None,
            applied_by: format!("taskdb {} ({user})", env!("CARGO_PKG_VERSION")),
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
/// A database *ahead* of this build (a later release applied newer
/// migrations, then the app was rolled back) starts normally: a warning
/// goes to stderr and nothing is applied past the gap-free part.
pub fn run_pending(url: &DatabaseUrl) -> Result<Vec<Step>> {
    let mut migrator = Migrator::new(url.clone());
    let plan = migrator.plan()?;
    if let Some(warning) = plan.ahead_warning() {
        eprintln!("taskdb: warning: {warning}");
    }
    migrator.migrate_planned(&plan, None)
}

/// Runs migrations against one database: plan, lock, apply, record.
pub struct Migrator<'r> {
    url: DatabaseUrl,
    /// `url` with this run's `application_name`, for the connections that
    /// change the schema (so people can tell them apart on the server).
    session_url: DatabaseUrl,
    options: MigrateOptions,
    conn: Option<AnyConnection>,
    cancel: Option<CancelGuard>,
    report: Box<dyn FnMut(Event<'_>) + 'r>,
}

impl<'r> Migrator<'r> {
    pub fn new(url: DatabaseUrl) -> Self {
        // The PID for people reading pg_stat_activity; the random part
        // because replicas in containers share PIDs (see interrupt).
        let session_name = format!(
            "taskdb-migrate-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Migrator {
            session_url: url.with_application_name(&session_name),
            url,
            options: MigrateOptions::default(),
            conn: None,
            cancel: None,
            report: Box::new(|_| {}),
        }
    }

    pub fn with_options(mut self, options: MigrateOptions) -> Self {
        self.options = options;
        self
    }

    /// Calls `report` with each [`Event`] of the run.
    pub fn on_event(mut self, report: impl FnMut(Event<'_>) + 'r) -> Self {
        self.report = Box::new(report);
        self
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The migration connection, opened on first use.
    pub fn connection(&mut self) -> Result<&mut AnyConnection> {
        if self.conn.is_none() {
            let mut conn = db::connect_with_wait(&self.session_url, self.options.wait)?;
            if let Some(cancel) = &self.cancel {
                cancel.watch(&mut conn)?;
            }
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::MigrationState("no connection".into()))
    }

    /// The plan as the database stands. Changes nothing.
    pub fn plan(&mut self) -> Result<MigrationPlan> {
        if self.conn.is_none() && self.url.is_missing_sqlite_file() {
            return Ok(MigrationPlan::for_new_database(self.backend()));
        }
        MigrationPlan::load(self.connection()?)
    }

    fn settings(&self) -> StepSettings {
        StepSettings {
            lock_timeout: self.options.lock_timeout,
            lock_retries: self.options.lock_retries,
            applied_by: self.options.applied_by.clone(),
        }
    }

    /// Takes the lock and makes sure the tracking tables exist.
    fn lock(&mut self) -> Result<MigrationLock> {
        let lock = self.acquire_lock()?;
        self.create_tracking_tables()?;
        Ok(lock)
    }

    /// Takes the migration lock (and changes nothing else).
    fn acquire_lock(&mut self) -> Result<MigrationLock> {
        // From here on a signal cancels this run's own statements (by
        // backend PID) and rolls back instead of killing the process. The
        // PIDs cost a query each, so only past the fast path.
        let cancel = self
            .cancel
            .get_or_insert_with(|| CancelGuard::arm(&self.url));
        let report = &mut self.report;
        let lock = MigrationLock::acquire_watched(&self.session_url, Some(cancel), || {
            report(Event::LockWaiting)
        })?;
        self.connection()?;
        // Before any DDL. (Opened earlier, by the plan, so not watched yet.)
        if let (Some(cancel), Some(conn)) = (&self.cancel, self.conn.as_mut()) {
            cancel.watch(conn)?;
        }
        Ok(lock)
    }

    fn create_tracking_tables(&mut self) -> Result<()> {
        let settings = self.settings();
        let conn = self.connection()?;
        apply::in_write_transaction(conn, &settings, ledger::create_tables)
    }

    /// Applies pending migrations in order, up to and including `to` when
    /// given. Refuses to start while any migration is modified, missing or
    /// dirty.
    pub fn migrate(&mut self, to: Option<&str>) -> Result<Vec<Step>> {
        let plan = self.plan()?;
        self.migrate_planned(&plan, to)
    }

    /// [`migrate`](Self::migrate) with a plan the caller already loaded
    /// (and showed): an up-to-date database then costs no further query.
    pub fn migrate_planned(&mut self, plan: &MigrationPlan, to: Option<&str>) -> Result<Vec<Step>> {
        // An unknown version is an error even when nothing is pending.
        plan.pending_up_to(to)?;
        if plan.is_up_to_date() {
            return Ok(Vec::new());
        }
        let lock = self.acquire_lock()?;
        let plan = self.plan()?;
        plan.ensure_runnable()?;
        // Under the lock (no other migrator changes the schema meanwhile)
        // and before the tracking tables: a refused database is left
        // exactly as it was.
        let pending: Vec<LocalMigration> = plan.pending().filter_map(|e| e.local).collect();
        preflight::check_existing_tables(self.connection()?, &pending)?;
        self.create_tracking_tables()?;
        for entry in plan.entries.iter().filter(|e| e.needs_ledger_row()) {
            if let Some(m) = &entry.local {
                ledger::backfill(self.connection()?, m)?;
                (self.report)(Event::Backfilled { migration: m });
            }
        }
        let todo = plan.pending_up_to(to)?;
        let steps = self.apply_each(&todo)?;
        lock.release()?;
        Ok(steps)
    }

    fn apply_each(&mut self, todo: &[LocalMigration]) -> Result<Vec<Step>> {
        let settings = self.settings();
        let mut steps = Vec::new();
        for m in todo {
            interrupt::check()?;
            let conn = self
                .conn
                .as_mut()
                .ok_or_else(|| Error::MigrationState("no connection".into()))?;
            // Right before the step, not before the run: the step before it
            // builds the index that makes the check cheap, and new orphans
            // cannot appear meanwhile (the NOT VALID key checks new rows).
            if m.checks_task_owners() {
                (self.report)(Event::CheckingOrphans { migration: m });
                let started = std::time::Instant::now();
                crate::orphans::ensure_none(conn).map_err(interrupted)?;
                (self.report)(Event::OrphansChecked {
                    migration: m,
                    elapsed: started.elapsed(),
                });
            }
            (self.report)(Event::Applying { migration: m });
            match apply::apply(conn, m, &settings, &mut self.report)
                .map_err(interrupted)
                .map_err(|e| connection_lost(e, m, Direction::Up))?
            {
                StepOutcome::Done(elapsed) => {
                    (self.report)(Event::Applied {
                        migration: m,
                        elapsed,
                    });
                    steps.push(step(m, elapsed));
                }
                StepOutcome::AlreadyDone => (self.report)(Event::AlreadyApplied { migration: m }),
            }
        }
        Ok(steps)
    }

    /// The applied migrations `target` would revert, newest first.
    pub fn rollback_targets(&mut self, target: &RollbackTarget) -> Result<Vec<LocalMigration>> {
        let backend = self.backend();
        let floor = match target {
            RollbackTarget::To(v) => Some(resolve(backend, v)?.version()),
            _ => None,
        };
        let plan = self.plan()?;
        let mut applied: Vec<&PlanEntry> = plan.applied().collect();
        applied.reverse();
        let chosen: Vec<&PlanEntry> = match target {
            RollbackTarget::Steps(n) => applied.into_iter().take(*n).collect(),
            RollbackTarget::All => applied,
            RollbackTarget::To(_) => applied
                .into_iter()
                .filter(|e| floor.as_ref().is_some_and(|f| &e.version > f))
                .collect(),
        };
        chosen
            .into_iter()
            .map(|e| {
                e.local.ok_or_else(|| {
                    Error::MigrationState(format!(
                        "cannot revert {}: it is not in this taskdb build, so its down.sql is unknown",
                        e.name
                    ))
                })
            })
            .collect()
    }

    /// Tables the given rollback would drop while they hold rows.
    pub fn data_loss(&mut self, reverting: &[LocalMigration]) -> Result<Vec<TableLoss>> {
        data_loss::data_loss(self.connection()?, reverting)
    }

    /// Reverts the given migrations, in the order given (newest first).
    ///
    /// They were chosen (and shown, and confirmed) before the lock was
    /// taken; another migrator may have applied newer ones meanwhile. So,
    /// under the lock, they must still be exactly the newest applied
    /// migrations, or nothing is reverted.
    pub fn rollback(&mut self, reverting: &[LocalMigration]) -> Result<Vec<Step>> {
        let lock = self.lock()?;
        self.ensure_still_newest(reverting)?;
        let settings = self.settings();
        let mut steps = Vec::new();
        for m in reverting {
            interrupt::check()?;
            (self.report)(Event::Reverting { migration: m });
            let conn = self
                .conn
                .as_mut()
                .ok_or_else(|| Error::MigrationState("no connection".into()))?;
            if let StepOutcome::Done(elapsed) = apply::revert(conn, m, &settings, &mut self.report)
                .map_err(interrupted)
                .map_err(|e| connection_lost(e, m, Direction::Down))?
            {
                (self.report)(Event::Reverted {
                    migration: m,
                    elapsed,
                });
                steps.push(step(m, elapsed));
            }
        }
        lock.release()?;
        Ok(steps)
    }

    /// Refuses when `reverting` is no longer the newest applied migrations,
    /// newest first.
    fn ensure_still_newest(&mut self, reverting: &[LocalMigration]) -> Result<()> {
        let plan = self.plan()?;
        let newest: Vec<&str> = plan
            .applied()
            .rev()
            .take(reverting.len())
            .map(|e| e.name.as_str())
            .collect();
        let chosen: Vec<&str> = reverting.iter().map(|m| m.dir_name()).collect();
        if newest == chosen {
            return Ok(());
        }
        Err(Error::MigrationState(format!(
            "the database changed while this rollback waited for the migration lock: the newest applied migration(s) are now {}, not {} as planned; nothing was reverted. Run the command again to see the new plan",
            if newest.is_empty() { "none".to_string() } else { newest.join(", ") },
            chosen.join(", ")
        )))
    }

    /// Reverts the newest `n` migrations and applies them again.
    pub fn redo(&mut self, reverting: &[LocalMigration]) -> Result<(Vec<Step>, Vec<Step>)> {
        let reverted = self.rollback(reverting)?;
        let lock = self.lock()?;
        let mut again: Vec<LocalMigration> = reverting.to_vec();
        again.reverse();
        let applied = self.apply_each(&again)?;
        lock.release()?;
        Ok((reverted, applied))
    }

    /// The way out of a blocked `migrate`: re-records the checksum of a
    /// modified migration (after a deliberate edit), forgets a missing one,
    /// and clears the dirty mark of one that failed part-way so `migrate`
    /// runs it again.
    pub fn repair(&mut self) -> Result<Vec<Repair>> {
        let lock = self.lock()?;
        let settings = self.settings();
        let plan = self.plan()?;
        let mut repairs = Vec::new();
        for entry in plan.blockers() {
            let conn = self.connection()?;
            let action = match (entry.state, &entry.local) {
                (MigrationState::Modified, Some(m)) => {
                    apply::in_write_transaction(conn, &settings, |c| {
                        ledger::forget_ledger(c, &entry.version)?;
                        ledger::backfill(c, m)
                    })?;
                    "re-recorded the checksum of its current up.sql"
                }
                (MigrationState::Missing, _) => {
                    apply::in_write_transaction(conn, &settings, |c| {
                        ledger::forget(c, &entry.version)
                    })?;
                    "forgot it (it is no longer applied as far as taskdb and Diesel know)"
                }
                (MigrationState::Dirty, _) => {
                    apply::in_write_transaction(conn, &settings, |c| {
                        ledger::forget_ledger(c, &entry.version)
                    })?;
                    "cleared the dirty mark; `taskdb migrate` runs it again"
                }
                _ => continue,
            };
            repairs.push(Repair {
                name: entry.name.clone(),
                action,
            });
        }
        lock.release()?;
        Ok(repairs)
    }
}

/// A statement cancelled by the signal handler fails with the server's
/// "canceling statement" message; report it as the interrupt it was.
fn interrupted(e: Error) -> Error {
    match interrupt::received() {
        Some(_) => Error::Interrupted,
        None => e,
    }
}

/// Which way a step runs.
#[derive(Clone, Copy)]
enum Direction {
    Up,
    Down,
}

/// A step that failed because the session ended says so, and what to run
/// next, instead of the driver's bare "no connection to the server".
fn connection_lost(e: Error, m: &LocalMigration, direction: Direction) -> Error {
    if !e.is_connection_lost() {
        return e;
    }
    let reason = match &e {
        Error::MigrationFailed { reason, .. } => reason.clone(),
        other => db::one_line(&other.to_string()),
    };
    let (action, rerun) = match direction {
        Direction::Up => ("applying", "taskdb migrate"),
        Direction::Down => ("reverting", "taskdb rollback"),
    };
    Error::ConnectionLost {
        action,
        migration: m.dir_name().to_string(),
        reason,
        rerun,
    }
}

fn step(m: &LocalMigration, elapsed: Duration) -> Step {
    Step {
        version: m.version(),
        name: m.dir_name().to_string(),
        elapsed,
    }
}
