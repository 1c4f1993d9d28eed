//! The [`Migrator`]: one run against one database, from plan to lock to
//! each step and its record, reporting [`Event`]s as it goes.

use std::time::Duration;

use super::apply::{self, StepOutcome};
use super::lock::{self, MigrationLock};
use super::plan::{MigrationPlan, MigrationState, PlanEntry};
use super::replicas::Gate;
use super::{
    data_loss, existing_tables, if_not_exists, ledger, replicas, Event, MigrateOptions, Repair,
    RollbackTarget, Step, TableLoss,
};
use crate::db::{self, Backend, DatabaseUrl, DbConnection};
use crate::error::{Error, Result};
use crate::interrupt::{self, CancelGuard};
use crate::source::{LocalMigration, MigrationSource};

/// Runs migrations against one database: plan, lock, apply, record.
pub struct Migrator<'r> {
    url: DatabaseUrl,
    /// `url` with this run's `application_name`, for the connections that
    /// change the schema (so people can tell them apart on the server).
    session_url: DatabaseUrl,
    options: MigrateOptions,
    source: MigrationSource,
    conn: Option<DbConnection>,
    cancel: Option<CancelGuard>,
    report: EventSink<'r>,
}

/// Where a run's [`Event`]s go.
type EventSink<'r> = Box<dyn FnMut(Event<'_>) + 'r>;

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
            source: MigrationSource::Embedded,
            conn: None,
            cancel: None,
            report: Box::new(|_| {}),
        }
    }

    pub fn with_options(mut self, options: MigrateOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs the migrations of `source` instead of the ones compiled in
    /// (`taskdb --migrations-dir`).
    pub fn with_source(mut self, source: MigrationSource) -> Self {
        self.source = source;
        self
    }

    /// Where this migrator's migrations come from.
    pub fn source(&self) -> &MigrationSource {
        &self.source
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
    pub fn connection(&mut self) -> Result<&mut DbConnection> {
        self.parts().map(|(conn, _, _)| conn)
    }

    /// The migration connection (opened on first use), the run's options
    /// and its event callback, borrowed together: a step reports while it
    /// runs on the connection.
    fn parts(&mut self) -> Result<(&mut DbConnection, &MigrateOptions, &mut EventSink<'r>)> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let mut conn = db::connect_with_wait(&self.session_url, self.options.wait)?;
                if let Some(cancel) = &self.cancel {
                    cancel.watch(&mut conn)?;
                }
                conn
            }
        };
        Ok((self.conn.insert(conn), &self.options, &mut self.report))
    }

    /// The plan as the database stands. Changes nothing.
    pub fn plan(&mut self) -> Result<MigrationPlan> {
        if self.conn.is_none() && self.url.is_missing_sqlite_file() {
            return MigrationPlan::for_new_database(self.backend(), &self.source);
        }
        let source = self.source.clone();
        MigrationPlan::load_from(self.connection()?, &source)
    }

    /// Takes the lock and makes sure the tracking tables exist.
    fn lock(&mut self) -> Result<MigrationLock> {
        let lock = self.acquire_lock()?;
        self.create_tracking_tables()?;
        Ok(lock)
    }

    /// Takes the migration lock (and changes nothing else).
    fn acquire_lock(&mut self) -> Result<MigrationLock> {
        // The migration connection may wait idle as long as the lock does.
        let url = self.session_url.clone();
        lock::keep_session_alive(self.connection()?, &url)?;
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
        let (conn, options, _) = self.parts()?;
        apply::in_write_transaction(conn, options, ledger::create_tables)
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
        let mut lock = self.acquire_lock()?;
        let plan = self.plan()?;
        plan.ensure_runnable()?;
        // Lint's findings on the steps this run applies, against live table
        // sizes: refused before any lock on a table or any change.
        let source = self.source.clone();
        let preflight = crate::lint::check_pending(
            &source,
            &plan.pending_up_to(to)?,
            self.options.unsafe_threshold,
            self.connection()?,
        )?;
        for line in preflight.lines() {
            (self.report)(Event::LintProceeding { line: &line });
        }
        // Under the lock (no other migrator changes the schema meanwhile)
        // and before the tracking tables: a refused database is left
        // exactly as it was.
        let pending: Vec<LocalMigration> = plan.pending().filter_map(|e| e.local.clone()).collect();
        existing_tables::check_existing_tables(self.connection()?, &pending)?;
        let todo = plan.pending_up_to(to)?;
        // The first step's standby gate, before the tracking tables too: a
        // gate that cannot see the standbys refuses with nothing changed.
        if !todo.is_empty() {
            self.standby_gate_before_step()?;
        }
        self.create_tracking_tables()?;
        for entry in plan.entries.iter().filter(|e| e.needs_ledger_row()) {
            if let Some(m) = &entry.local {
                ledger::record_found_applied(self.connection()?, m)?;
                (self.report)(Event::FoundApplied { migration: m });
            }
        }
        let steps = self.apply_each(&mut lock, &todo)?;
        lock.release()?;
        Ok(steps)
    }

    /// Waits until the standbys have replayed within the bound, before a
    /// step.
    fn standby_gate_before_step(&mut self) -> Result<()> {
        let (conn, options, report) = self.parts()?;
        replicas::wait_for_standbys(
            conn,
            options.max_replica_lag,
            options.replica_wait,
            Gate::BeforeStep,
            report,
        )
        .map_err(interrupted)?;
        Ok(())
    }

    /// Applies `todo`, whose first step's standby gate the caller has
    /// just passed, checking before each step that the lock still holds.
    fn apply_each(
        &mut self,
        lock: &mut MigrationLock,
        todo: &[LocalMigration],
    ) -> Result<Vec<Step>> {
        let pooled = self.session_url.is_pooled();
        let mut steps = Vec::new();
        // Set right after a step that was followed by the standby gate, so
        // the next step does not ask the primary twice in a row.
        let mut standbys_checked = true;
        for (i, m) in todo.iter().enumerate() {
            interrupt::check()?;
            lock.ensure_held()
                .map_err(|reason| lock_lost(reason, m, Direction::Up))?;
            if !std::mem::take(&mut standbys_checked) {
                self.standby_gate_before_step()?;
            }
            let (conn, options, report) = self.parts()?;
            // Right before the step, not before the run: the step before it
            // builds the index that makes the check cheap, and new orphans
            // cannot appear meanwhile (the NOT VALID key checks new rows).
            if m.checks_task_owners() {
                report(Event::CheckingOrphans { migration: m });
                let started = std::time::Instant::now();
                crate::orphans::ensure_none(conn).map_err(interrupted)?;
                report(Event::OrphansChecked {
                    migration: m,
                    elapsed: started.elapsed(),
                });
            }
            // An IF NOT EXISTS step keeps whatever has its name: it must be
            // what the step describes.
            if_not_exists::check_existing_indexes(conn, m)?;
            report(Event::Applying { migration: m });
            match apply::apply(conn, m, options, pooled, report)
                .map_err(interrupted)
                .map_err(|e| connection_lost(e, m, Direction::Up))?
            {
                StepOutcome::Done(elapsed) => {
                    report(Event::Applied {
                        migration: m,
                        elapsed,
                    });
                    steps.push(step(m, elapsed));
                    // Its WAL (an index build's) reached the standbys with
                    // no transaction to bound it: the run ends, or the next
                    // step starts, only once they have replayed it.
                    if !m.run_in_transaction() {
                        replicas::wait_for_standbys(
                            conn,
                            options.max_replica_lag,
                            options.replica_wait,
                            if i + 1 == todo.len() {
                                Gate::AfterLastStep
                            } else {
                                Gate::BeforeStep
                            },
                            report,
                        )
                        .map_err(interrupted)?;
                        standbys_checked = true;
                    }
                }
                StepOutcome::AlreadyDone => report(Event::AlreadyApplied { migration: m }),
            }
        }
        Ok(steps)
    }

    /// The applied migrations `target` would revert, newest first.
    pub fn rollback_targets(&mut self, target: &RollbackTarget) -> Result<Vec<LocalMigration>> {
        let plan = self.plan()?;
        let floor = match target {
            RollbackTarget::To(v) => Some(plan.resolve(v)?),
            _ => None,
        };
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
                e.local.clone().ok_or_else(|| {
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
        let mut lock = self.lock()?;
        self.ensure_still_newest(reverting)?;
        let pooled = self.session_url.is_pooled();
        let mut steps = Vec::new();
        for m in reverting {
            interrupt::check()?;
            lock.ensure_held()
                .map_err(|reason| lock_lost(reason, m, Direction::Down))?;
            let (conn, options, report) = self.parts()?;
            report(Event::Reverting { migration: m });
            if let StepOutcome::Done(elapsed) = apply::revert(conn, m, options, pooled, report)
                .map_err(interrupted)
                .map_err(|e| connection_lost(e, m, Direction::Down))?
            {
                report(Event::Reverted {
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
        let mut lock = self.lock()?;
        let mut again: Vec<LocalMigration> = reverting.to_vec();
        again.reverse();
        let applied = self.apply_each(&mut lock, &again)?;
        lock.release()?;
        Ok((reverted, applied))
    }

    /// The way out of a blocked `migrate`: re-records the checksum of a
    /// modified migration (after a deliberate edit), forgets a missing one,
    /// and clears the dirty mark of one that failed part-way so `migrate`
    /// runs it again.
    pub fn repair(&mut self) -> Result<Vec<Repair>> {
        let lock = self.lock()?;
        let plan = self.plan()?;
        let mut repairs = Vec::new();
        for entry in plan.blockers() {
            let (conn, settings, _) = self.parts()?;
            let action = match (entry.state, &entry.local) {
                (MigrationState::Modified, Some(m)) => {
                    apply::in_write_transaction(conn, settings, |c| {
                        ledger::forget_ledger(c, &entry.version)?;
                        ledger::record_found_applied(c, m)
                    })?;
                    "re-recorded the checksum of its current up.sql"
                }
                (MigrationState::Missing, _) => {
                    apply::in_write_transaction(conn, settings, |c| {
                        ledger::forget(c, &entry.version)
                    })?;
                    "forgot it (it is no longer applied as far as taskdb and Diesel know)"
                }
                (MigrationState::Dirty, _) => {
                    apply::in_write_transaction(conn, settings, |c| {
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
    match (&e, interrupt::received()) {
        // It already says what it left behind.
        (Error::Interrupted { .. }, _) | (_, None) => e,
        (_, Some(_)) => Error::interrupted(),
    }
}

/// Which way a step runs.
#[derive(Clone, Copy)]
enum Direction {
    Up,
    Down,
}

impl Direction {
    /// What a step in this direction is doing, and the command that
    /// finishes the run.
    fn action_and_rerun(self) -> (&'static str, &'static str) {
        match self {
            Direction::Up => ("applying", "taskdb migrate"),
            Direction::Down => ("reverting", "taskdb rollback"),
        }
    }
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
    let (action, rerun) = direction.action_and_rerun();
    Error::ConnectionLost {
        action,
        migration: m.dir_name().to_string(),
        reason,
        rerun,
    }
}

/// The run stops before `m`: with the lock gone, another migrator may be
/// running too.
fn lock_lost(reason: String, m: &LocalMigration, direction: Direction) -> Error {
    let (action, rerun) = direction.action_and_rerun();
    Error::MigrationLockLost {
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
