//! Running one migration up or down, and recording it.
//!
//! A transactional migration runs with its tracking rows in the same
//! transaction, after re-checking (inside it) that it is still pending:
//! on SQLite that transaction is `BEGIN IMMEDIATE`, which is how concurrent
//! SQLite migrators take turns. On PostgreSQL it starts with `SET LOCAL
//! lock_timeout`, so DDL never queues behind a long transaction while the
//! app's queries queue behind the DDL; a timed-out attempt is rolled back
//! and retried with backoff. The timeout is recognised by its SQLSTATE
//! (55P03), which the step's SQL is wrapped to report ([`sqlstate::trap`]):
//! the server's message is in its own language.
//!
//! A migration that cannot run in a transaction (one `CREATE INDEX
//! CONCURRENTLY`) is marked `running` in the ledger first. If the process
//! dies, the next run sees the mark, waits for any build still running on
//! the server, drops an INVALID index it left, and runs it again. Its
//! statement runs under the same lock timeout and retries, unless it is a
//! `CONCURRENTLY` one (see [`run_outside_transaction`]).

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::ledger::{self, LedgerState};
use super::{Event, MigrateOptions};
use crate::db::sqlstate::{self, SqlState};
use crate::db::{one_line, Backend, DbConnection, HasBackend as _};
use crate::error::{Error, Result};
use crate::source::LocalMigration;

/// What happened to one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    Done(Duration),
    /// Another migrator applied it first.
    AlreadyDone,
}

/// Applies `m` and records it. `pooled`: `conn` goes through a transaction
/// pooler, so no setting may outlive a transaction on it.
pub fn apply(
    conn: &mut DbConnection,
    m: &LocalMigration,
    settings: &MigrateOptions,
    pooled: bool,
    report: &mut dyn FnMut(Event<'_>),
) -> Result<StepOutcome> {
    if !m.run_in_transaction() && conn.backend() == Backend::Postgres {
        if let Some(spec) = m.backfill()? {
            return super::backfill::apply(conn, m, &spec, settings, report);
        }
    }
    if m.run_in_transaction() {
        with_lock_retries(m, settings, report, || {
            let started = Instant::now();
            in_write_transaction(conn, settings, |conn| {
                if ledger::is_recorded(conn, &m.version())? {
                    return Ok(StepOutcome::AlreadyDone);
                }
                run_in_transaction(conn, m.up_sql()).map_err(|e| failed(m, e))?;
                // A signal during a step that did not block (SQLite, or
                // fast DDL) still rolls the step back.
                crate::interrupt::check()?;
                let elapsed = started.elapsed();
                ledger::record_applied(conn, m, millis(elapsed), &settings.applied_by)?;
                Ok(StepOutcome::Done(elapsed))
            })
        })
    } else {
        apply_outside_transaction(conn, m, settings, pooled, report)
    }
}

fn apply_outside_transaction(
    conn: &mut DbConnection,
    m: &LocalMigration,
    settings: &MigrateOptions,
    pooled: bool,
    report: &mut dyn FnMut(Event<'_>),
) -> Result<StepOutcome> {
    // Recorded, yet marked `reverting`: a revert was cut off half-way and
    // applying it again is how `migrate` restores it.
    let recorded = ledger::is_recorded(conn, &m.version())?;
    if recorded && ledger::state(conn, &m.version())? != Some(LedgerState::Reverting) {
        return Ok(StepOutcome::AlreadyDone);
    }
    if conn.backend() == Backend::Postgres {
        for index in created_index_names(m.up_sql()) {
            wait_for_index_builds(conn, &index, report)?;
            if is_invalid_index(conn, &index)? {
                report(Event::RebuildingInvalidIndex {
                    migration: m,
                    index: &index,
                });
                conn.batch_execute(&format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {}",
                    quote_ident(&index)
                ))?;
            }
        }
    }
    ledger::write_ledger(conn, m, LedgerState::Running, None, 0, &settings.applied_by)?;
    let started = Instant::now();
    // Set when the last attempt failed before it changed anything: it timed
    // out on a lock, or was refused as it cannot run in a transaction.
    let mut untouched = false;
    let run = with_lock_retries(m, settings, report, || {
        let result = run_outside_transaction(conn, m.up_sql(), settings, pooled);
        untouched = result
            .as_ref()
            .is_err_and(|e| sqlstate::trapped(e).is_some());
        result
            .map(|()| StepOutcome::Done(Duration::ZERO))
            .map_err(|e| failed_outside_transaction(m, e))
    });
    if let Err(err) = run {
        if crate::interrupt::received().is_some() {
            // Cancelled by a signal: keep the `running` mark, as after a
            // crash, so the next run rebuilds instead of needing repair.
            return Err(Error::interrupted());
        }
        if untouched {
            // Nothing ran: the ledger goes back to what it said, and the
            // migration is not dirty.
            if recorded {
                ledger::write_ledger(
                    conn,
                    m,
                    LedgerState::Reverting,
                    None,
                    0,
                    &settings.applied_by,
                )?;
            } else {
                ledger::forget_ledger(conn, &m.version())?;
            }
            return Err(err);
        }
        let reason = match &err {
            Error::MigrationFailed { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        ledger::write_ledger(
            conn,
            m,
            LedgerState::Failed,
            Some(&reason),
            0,
            &settings.applied_by,
        )?;
        return Err(Error::MigrationFailed {
            migration: m.dir_name().to_string(),
            reason: format!(
                "{reason}; it ran without a transaction, so it is marked dirty: fix the cause, run `taskdb repair`, then `taskdb migrate`"
            ),
        });
    }
    let elapsed = started.elapsed();
    in_write_transaction(conn, settings, |conn| {
        if recorded {
            ledger::write_ledger(
                conn,
                m,
                LedgerState::Applied,
                None,
                millis(elapsed),
                &settings.applied_by,
            )
        } else {
            ledger::record_applied(conn, m, millis(elapsed), &settings.applied_by)
        }
    })?;
    Ok(StepOutcome::Done(elapsed))
}

/// Runs `m`'s `down.sql` and forgets it (`pooled` as for [`apply`]).
pub fn revert(
    conn: &mut DbConnection,
    m: &LocalMigration,
    settings: &MigrateOptions,
    pooled: bool,
    report: &mut dyn FnMut(Event<'_>),
) -> Result<StepOutcome> {
    let Some(down) = m.down_sql() else {
        return Err(Error::MigrationState(format!(
            "{} has no down.sql, so it cannot be reverted",
            m.dir_name()
        )));
    };
    let version = m.version();
    if m.run_in_transaction() {
        with_lock_retries(m, settings, report, || {
            let started = Instant::now();
            in_write_transaction(conn, settings, |conn| {
                if !ledger::is_recorded(conn, &version)? {
                    return Ok(StepOutcome::AlreadyDone);
                }
                run_in_transaction(conn, down).map_err(|e| failed(m, e))?;
                ledger::forget(conn, &version)?;
                Ok(StepOutcome::Done(started.elapsed()))
            })
        })
    } else {
        if !ledger::is_recorded(conn, &version)? {
            return Ok(StepOutcome::AlreadyDone);
        }
        // Marked first, as applies are: a revert cut off half-way (an
        // INVALID index left by a cancelled DROP INDEX CONCURRENTLY) must
        // not pass for applied.
        ledger::write_ledger(
            conn,
            m,
            LedgerState::Reverting,
            None,
            0,
            &settings.applied_by,
        )?;
        let started = Instant::now();
        if let Err(e) = run_outside_transaction(conn, down, settings, pooled) {
            if crate::interrupt::received().is_some() {
                return Err(Error::interrupted());
            }
            if sqlstate::is_connection_lost(&e) {
                return Err(e.into());
            }
            let reason = match failed_outside_transaction(m, e) {
                Error::MigrationFailed { reason, .. } => reason,
                other => other.to_string(),
            };
            ledger::write_ledger(
                conn,
                m,
                LedgerState::Failed,
                Some(&format!("revert failed: {reason}")),
                0,
                &settings.applied_by,
            )?;
            return Err(Error::MigrationFailed {
                migration: m.dir_name().to_string(),
                reason: format!(
                    "its revert failed: {reason}; it ran without a transaction, so it is marked dirty: fix the cause, run `taskdb repair`, then `taskdb rollback` again"
                ),
            });
        }
        in_write_transaction(conn, settings, |conn| ledger::forget(conn, &version))?;
        Ok(StepOutcome::Done(started.elapsed()))
    }
}

/// Runs `body` in a write transaction: `BEGIN IMMEDIATE` on SQLite (waits
/// for the file's write lock up front), `BEGIN` plus a local lock timeout
/// on PostgreSQL.
pub(crate) fn in_write_transaction<T>(
    conn: &mut DbConnection,
    settings: &MigrateOptions,
    body: impl FnOnce(&mut DbConnection) -> Result<T>,
) -> Result<T> {
    match conn.backend() {
        Backend::Sqlite => conn.batch_execute("BEGIN IMMEDIATE")?,
        Backend::Postgres => conn.batch_execute(&format!(
            "BEGIN; SET LOCAL lock_timeout = {}",
            lock_timeout_literal(settings)
        ))?,
    }
    match body(conn) {
        Ok(value) => {
            conn.batch_execute("COMMIT")?;
            Ok(value)
        }
        Err(e) => {
            let _ = conn.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

/// Retries `step` while it fails on the lock timeout, backing off from
/// 100 ms to 5 s between attempts (with jitter, so racing migrators and
/// the app's own retries do not fall into step).
pub(super) fn with_lock_retries(
    m: &LocalMigration,
    settings: &MigrateOptions,
    report: &mut dyn FnMut(Event<'_>),
    mut step: impl FnMut() -> Result<StepOutcome>,
) -> Result<StepOutcome> {
    let mut attempt = 0;
    loop {
        crate::interrupt::check()?;
        match step() {
            Err(_) if crate::interrupt::received().is_some() => return Err(Error::interrupted()),
            Err(e) if is_lock_timeout(&e) && attempt < settings.lock_retries => {
                attempt += 1;
                let delay = retry_delay(attempt);
                report(Event::LockTimeout {
                    migration: m,
                    attempt,
                    retry_in: delay,
                });
                std::thread::sleep(delay);
            }
            Err(e) if is_lock_timeout(&e) => {
                return Err(Error::MigrationFailed {
                    migration: m.dir_name().to_string(),
                    reason: format!(
                        "could not get its table lock within {:?} in {} attempts: a long transaction holds it; find it in pg_stat_activity, or raise the lock timeout or retries (`--lock-timeout` / `--lock-retries`; `MigrateOptions::lock_timeout` / `lock_retries`)",
                        settings.lock_timeout,
                        attempt + 1
                    ),
                })
            }
            other => return other,
        }
    }
}

/// The wait before lock-timeout retry `attempt` (1, 2, …): 100 ms
/// doubling to 5 s, with jitter. `distribute` waits the same.
pub(crate) fn retry_delay(attempt: u32) -> Duration {
    let base = (50 * 2u64.pow(attempt.min(7))).min(5_000);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let jitter = u64::from(clock.subsec_micros() % 50);
    Duration::from_millis(base + jitter)
}

/// `lock_timeout` as an SQL literal.
fn lock_timeout_literal(settings: &MigrateOptions) -> String {
    format!("'{}ms'", settings.lock_timeout.as_millis().max(1))
}

/// Runs a step's SQL inside the step's transaction; on PostgreSQL wrapped
/// so that a lock timeout says so by its SQLSTATE.
fn run_in_transaction(conn: &mut DbConnection, sql: &str) -> diesel::QueryResult<()> {
    match conn.backend() {
        Backend::Postgres => {
            conn.batch_execute(&sqlstate::trap(sql, &[SqlState::LockNotAvailable]))
        }
        Backend::Sqlite => conn.batch_execute(sql),
    }
}

/// Runs the SQL of a step that runs without a transaction of taskdb's,
/// its lock waits bounded by the lock timeout like every other step's.
///
/// `CONCURRENTLY` statements are the exception: they take SHARE UPDATE
/// EXCLUSIVE, which no read or write of the app waits for, and then wait
/// for the transactions using the table through lock waits of their own,
/// which a lock timeout would cut short, leaving an INVALID index behind.
///
/// Anything else runs as one implicit transaction with `SET LOCAL
/// lock_timeout` (the setting ends with it, also behind a transaction
/// pooler). A statement that cannot run in a transaction at all (`VACUUM
/// FULL`, …) then runs on its own, with the timeout set for the session
/// around it, on a direct connection only: behind a pooler that setting
/// would stay on a server connection other clients get next.
fn run_outside_transaction(
    conn: &mut DbConnection,
    sql: &str,
    settings: &MigrateOptions,
    pooled: bool,
) -> diesel::QueryResult<()> {
    if conn.backend() != Backend::Postgres || is_concurrent(sql) {
        return conn.batch_execute(sql);
    }
    let timeout = lock_timeout_literal(settings);
    let wrapped = sqlstate::trap(
        sql,
        &[SqlState::LockNotAvailable, SqlState::ActiveSqlTransaction],
    );
    match conn.batch_execute(&format!("SET LOCAL lock_timeout = {timeout};\n{wrapped}")) {
        Err(e) if sqlstate::trapped(&e) == Some(SqlState::ActiveSqlTransaction) && !pooled => {
            conn.batch_execute(&format!("SET lock_timeout = {timeout}"))?;
            let result = conn.batch_execute(sql);
            let reset = conn.batch_execute("RESET lock_timeout");
            result.and(reset)
        }
        other => other,
    }
}

/// True when `sql` has a `CONCURRENTLY` (outside `--` comments).
fn is_concurrent(sql: &str) -> bool {
    sql.lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '(' || c == ';'))
        .any(|w| w.eq_ignore_ascii_case("CONCURRENTLY"))
}

/// A lock timeout, as [`run_in_transaction`] and
/// [`run_outside_transaction`] report it.
fn is_trapped_lock_timeout(e: &diesel::result::Error) -> bool {
    sqlstate::trapped(e) == Some(SqlState::LockNotAvailable)
}

fn is_lock_timeout(e: &Error) -> bool {
    matches!(e, Error::Query(e) if is_trapped_lock_timeout(e))
}

/// A step's SQL failed. A lock timeout and a lost connection keep the
/// driver's error, so the retry loop and the caller can tell them by kind;
/// anything else is the migration's failure, in the server's words.
pub(super) fn failed(m: &LocalMigration, e: diesel::result::Error) -> Error {
    if is_trapped_lock_timeout(&e) || sqlstate::is_connection_lost(&e) {
        return Error::Query(e);
    }
    Error::MigrationFailed {
        migration: m.dir_name().to_string(),
        reason: one_line(&e.to_string()),
    }
}

/// [`failed`], for a statement that must run outside any transaction and
/// so cannot be bounded by a lock timeout behind a transaction pooler.
fn failed_outside_transaction(m: &LocalMigration, e: diesel::result::Error) -> Error {
    if sqlstate::trapped(&e) == Some(SqlState::ActiveSqlTransaction) {
        return Error::MigrationFailed {
            migration: m.dir_name().to_string(),
            reason: format!(
                "{}: it cannot run in a transaction, so its lock wait can be bounded only by a session setting, which a transaction pooler would leave on a server connection other clients get; set DIRECT_DATABASE_URL to a direct connection to the server (migrations prefer it)",
                one_line(&e.to_string())
            ),
        };
    }
    failed(m, e)
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Names of indexes a migration creates (`CREATE [UNIQUE] INDEX
/// [CONCURRENTLY] [IF NOT EXISTS] name`).
pub(crate) fn created_index_names(sql: &str) -> Vec<String> {
    let words: Vec<String> = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .flat_map(|l| l.split_whitespace())
        .map(|w| w.to_string())
        .collect();
    let mut names = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if !w.eq_ignore_ascii_case("CREATE") {
            continue;
        }
        let mut j = i + 1;
        let upper = |k: usize| words.get(k).map(|w| w.to_ascii_uppercase());
        if upper(j).as_deref() == Some("UNIQUE") {
            j += 1;
        }
        if upper(j).as_deref() != Some("INDEX") {
            continue;
        }
        j += 1;
        if upper(j).as_deref() == Some("CONCURRENTLY") {
            j += 1;
        }
        if upper(j).as_deref() == Some("IF") {
            j += 3;
        }
        if let Some(name) = words.get(j) {
            if !name.eq_ignore_ascii_case("ON") {
                names.push(name.trim_matches('"').to_string());
            }
        }
    }
    names
}

fn is_invalid_index(conn: &mut DbConnection, name: &str) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE NOT i.indisvalid AND c.relname = $1 AND pg_table_is_visible(c.oid)",
    )
    .bind::<Text, _>(name)
    .get_result(conn)?;
    Ok(row.n > 0)
}

/// A client killed with `kill -9` does not stop its server-side statement:
/// an index build it started may still be running. Wait for it rather than
/// race it.
fn wait_for_index_builds(
    conn: &mut DbConnection,
    name: &str,
    report: &mut dyn FnMut(Event<'_>),
) -> Result<()> {
    #[derive(QueryableByName)]
    struct Builder {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let mut told = false;
    loop {
        let builders: Vec<Builder> = diesel::sql_query(
            "SELECT pid FROM pg_stat_activity
              WHERE pid <> pg_backend_pid() AND datname = current_database()
                AND state <> 'idle' AND query ILIKE '%index%concurrently%'
                AND position(lower($1) in lower(query)) > 0",
        )
        .bind::<Text, _>(name)
        .load(conn)?;
        let Some(first) = builders.first() else {
            return Ok(());
        };
        crate::interrupt::check()?;
        if !told {
            report(Event::WaitingForIndexBuild {
                index: name,
                pid: first.pid,
            });
            told = true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Double-quotes an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_created_index_names() {
        assert_eq!(
            created_index_names(
                "-- comment\nCREATE INDEX CONCURRENTLY IF NOT EXISTS idx_a ON t (a);"
            ),
            vec!["idx_a"]
        );
        assert_eq!(
            created_index_names("create unique index \"Ix\" on t (lower(e))"),
            vec!["Ix"]
        );
        assert!(created_index_names("DROP INDEX CONCURRENTLY IF EXISTS x;").is_empty());
    }

    /// Steps that run outside a transaction, against a real server.
    #[cfg(all(feature = "postgres", feature = "testing"))]
    mod outside_a_transaction {
        use std::time::{Duration, Instant};

        use diesel::connection::SimpleConnection;

        use super::super::*;
        use std::borrow::Cow;

        use crate::source::MigrationSql;
        use crate::testing::TestDb;

        static ADD_COLUMN: MigrationSql = MigrationSql {
            dir_name: Cow::Borrowed("2099-01-01-000001_add_tasks_probe"),
            location: Cow::Borrowed(concat!(
                "migrations/postgres/",
                "2099-01-01-000001_add_tasks_probe"
            )),
            up: Cow::Borrowed("ALTER TABLE tasks ADD COLUMN probe INTEGER"),
            down: Some(Cow::Borrowed("ALTER TABLE tasks DROP COLUMN probe")),
            metadata: Some(Cow::Borrowed("run_in_transaction = false")),
            run_in_transaction: false,
        };

        static BUILD_INDEX: MigrationSql = MigrationSql {
            dir_name: Cow::Borrowed("2099-01-01-000002_index_tasks_title"),
            location: Cow::Borrowed(concat!(
                "migrations/postgres/",
                "2099-01-01-000002_index_tasks_title"
            )),
            up: Cow::Borrowed(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_probe_title ON tasks (title)",
            ),
            down: Some(Cow::Borrowed(
                "DROP INDEX CONCURRENTLY IF EXISTS idx_tasks_probe_title",
            )),
            metadata: Some(Cow::Borrowed("run_in_transaction = false")),
            run_in_transaction: false,
        };

        static VACUUM_FULL: MigrationSql = MigrationSql {
            dir_name: Cow::Borrowed("2099-01-01-000003_vacuum_full_tasks"),
            location: Cow::Borrowed(concat!(
                "migrations/postgres/",
                "2099-01-01-000003_vacuum_full_tasks"
            )),
            up: Cow::Borrowed("VACUUM FULL tasks"),
            down: None,
            metadata: Some(Cow::Borrowed("run_in_transaction = false")),
            run_in_transaction: false,
        };

        fn options() -> MigrateOptions {
            MigrateOptions {
                lock_timeout: Duration::from_millis(50),
                ..MigrateOptions::default()
            }
        }

        /// Applies `sql` as a migration while `other` holds a transaction
        /// open for `held`; returns how long a query on `tasks` issued
        /// meanwhile waited, and the step's result.
        fn apply_beside(
            db: &TestDb,
            sql: &'static MigrationSql,
            other: &str,
            held: Duration,
        ) -> (Duration, Result<StepOutcome>) {
            let m = LocalMigration::from_sql(sql);
            let mut other_conn = db.conn().unwrap();
            other_conn.batch_execute(other).unwrap();
            std::thread::scope(|s| {
                let step = s.spawn(|| {
                    let mut conn = db.conn().unwrap();
                    apply(&mut conn, &m, &options(), false, &mut |_| {})
                });
                std::thread::sleep(Duration::from_millis(300));
                let reader = s.spawn(|| {
                    let mut conn = db.conn().unwrap();
                    let started = Instant::now();
                    conn.batch_execute("SELECT COUNT(*) FROM tasks").unwrap();
                    started.elapsed()
                });
                std::thread::sleep(held - Duration::from_millis(300));
                other_conn.batch_execute("ROLLBACK").unwrap();
                (reader.join().unwrap(), step.join().unwrap())
            })
        }

        #[test]
        fn a_blocking_statement_waits_for_its_lock_no_longer_than_the_lock_timeout() {
            let db = TestDb::postgres().unwrap();
            // The app's long read: ALTER TABLE must wait for it, and must
            // not make the app's next reads queue behind it meanwhile.
            let (waited, step) = apply_beside(
                &db,
                &ADD_COLUMN,
                "BEGIN; SELECT COUNT(*) FROM tasks",
                Duration::from_millis(1500),
            );
            assert!(
                waited < Duration::from_millis(700),
                "a read of tasks queued behind the step for {waited:?}"
            );
            // Retried on the lock timeout until the long read ended.
            assert!(matches!(step, Ok(StepOutcome::Done(_))), "{step:?}");
        }

        #[test]
        fn a_statement_that_cannot_run_in_a_transaction_is_bounded_too() {
            let db = TestDb::postgres().unwrap();
            let (waited, step) = apply_beside(
                &db,
                &VACUUM_FULL,
                "BEGIN; SELECT COUNT(*) FROM tasks",
                Duration::from_millis(1500),
            );
            assert!(
                waited < Duration::from_millis(700),
                "a read of tasks queued behind the step for {waited:?}"
            );
            // Run on its own (it refuses a transaction), it is not retried:
            // the timeout fails it.
            assert!(step.is_err(), "{step:?}");
        }

        #[test]
        fn through_a_pooler_a_statement_that_cannot_run_in_a_transaction_is_refused_untouched() {
            let db = TestDb::postgres().unwrap();
            let m = LocalMigration::from_sql(&VACUUM_FULL);
            let mut conn = db.conn().unwrap();
            let err = apply(&mut conn, &m, &options(), true, &mut |_| {}).unwrap_err();
            assert!(err.to_string().contains("DIRECT_DATABASE_URL"), "{err}");
            // Nothing ran, so nothing is dirty.
            assert_eq!(ledger::state(&mut conn, &m.version()).unwrap(), None);
        }

        #[test]
        fn a_concurrent_index_build_still_waits_for_a_long_writer() {
            let db = TestDb::postgres().unwrap();
            // CONCURRENTLY waits for transactions writing the table; that
            // wait must not be cut short by the lock timeout (it would
            // leave an INVALID index), and it blocks no query of the app.
            let (waited, step) = apply_beside(
                &db,
                &BUILD_INDEX,
                "BEGIN; UPDATE tasks SET title = title",
                Duration::from_millis(1000),
            );
            assert!(matches!(step, Ok(StepOutcome::Done(_))), "{step:?}");
            assert!(waited < Duration::from_millis(700), "{waited:?}");
        }
    }
}
