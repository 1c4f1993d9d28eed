//! Running one migration up or down, and recording it.
//!
//! A transactional migration runs with its tracking rows in the same
//! transaction, after re-checking (inside it) that it is still pending:
//! on SQLite that transaction is `BEGIN IMMEDIATE`, which is how concurrent
//! SQLite migrators take turns. On PostgreSQL it starts with `SET LOCAL
//! lock_timeout`, so DDL never queues behind a long transaction while the
//! app's queries queue behind the DDL; a timed-out attempt is rolled back
//! and retried with backoff.
//!
//! A migration that cannot run in a transaction (one `CREATE INDEX
//! CONCURRENTLY`) is marked `running` in the ledger first. If the process
//! dies, the next run sees the mark, waits for any build still running on
//! the server, drops an INVALID index it left, and runs it again.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::ledger::{self, LedgerState};
use super::source::LocalMigration;
use super::{Event, MigrateOptions};
use crate::db::{one_line, Backend, DbConnection, HasBackend as _};
use crate::error::{Error, Result};

/// What happened to one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    Done(Duration),
    /// Another migrator applied it first.
    AlreadyDone,
}

/// Applies `m` and records it.
pub fn apply(
    conn: &mut DbConnection,
    m: &LocalMigration,
    settings: &MigrateOptions,
    report: &mut dyn FnMut(Event<'_>),
) -> Result<StepOutcome> {
    if m.run_in_transaction() {
        with_lock_retries(m, settings, report, || {
            let started = Instant::now();
            in_write_transaction(conn, settings, |conn| {
                if ledger::is_recorded(conn, &m.version())? {
                    return Ok(StepOutcome::AlreadyDone);
                }
                conn.batch_execute(m.up_sql()).map_err(|e| failed(m, &e))?;
                // A signal during a step that did not block (SQLite, or
                // fast DDL) still rolls the step back.
                crate::interrupt::check()?;
                let elapsed = started.elapsed();
                ledger::record_applied(conn, m, millis(elapsed), &settings.applied_by)?;
                Ok(StepOutcome::Done(elapsed))
            })
        })
    } else {
        apply_outside_transaction(conn, m, settings, report)
    }
}

fn apply_outside_transaction(
    conn: &mut DbConnection,
    m: &LocalMigration,
    settings: &MigrateOptions,
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
    if let Err(e) = conn.batch_execute(m.up_sql()) {
        if crate::interrupt::received().is_some() {
            // Cancelled by a signal: keep the `running` mark, as after a
            // crash, so the next run rebuilds instead of needing repair.
            return Err(Error::Interrupted);
        }
        let err = failed(m, &e);
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

/// Runs `m`'s `down.sql` and forgets it.
pub fn revert(
    conn: &mut DbConnection,
    m: &LocalMigration,
    settings: &MigrateOptions,
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
                conn.batch_execute(down).map_err(|e| failed(m, &e))?;
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
        if let Err(e) = conn.batch_execute(down) {
            if crate::interrupt::received().is_some() {
                return Err(Error::Interrupted);
            }
            let reason = one_line(&e.to_string());
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
            "BEGIN; SET LOCAL lock_timeout = '{}ms'",
            settings.lock_timeout.as_millis().max(1)
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
fn with_lock_retries(
    m: &LocalMigration,
    settings: &MigrateOptions,
    report: &mut dyn FnMut(Event<'_>),
    mut step: impl FnMut() -> Result<StepOutcome>,
) -> Result<StepOutcome> {
    let mut attempt = 0;
    loop {
        crate::interrupt::check()?;
        match step() {
            Err(_) if crate::interrupt::received().is_some() => return Err(Error::Interrupted),
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
                        "could not get its table lock within {:?} in {} attempts: a long transaction holds it; find it in pg_stat_activity, or raise --lock-timeout / --lock-retries",
                        settings.lock_timeout,
                        attempt + 1
                    ),
                })
            }
            other => return other,
        }
    }
}

fn retry_delay(attempt: u32) -> Duration {
    let base = (50 * 2u64.pow(attempt.min(7))).min(5_000);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let jitter = u64::from(clock.subsec_micros() % 50);
    Duration::from_millis(base + jitter)
}

fn is_lock_timeout(e: &Error) -> bool {
    e.to_string().contains("lock timeout")
}

fn failed(m: &LocalMigration, e: &diesel::result::Error) -> Error {
    Error::MigrationFailed {
        migration: m.dir_name().to_string(),
        reason: one_line(&e.to_string()),
    }
}

fn millis(d: Duration) -> i64 {
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
}
