//! Running a backfill migration on PostgreSQL (its `metadata.toml` has a
//! `[backfill]`, see [`crate::source::Backfill`]): the `UPDATE` in batches
//! in primary-key order, each batch its own short transaction under the
//! lock timeout, never an `OFFSET`: a batch is the keys after the saved one,
//! up to the batch size's worth. The batch's last key is saved in the
//! ledger in the batch's own transaction, so a run killed at any point
//! resumes after the last batch that committed. The batch size adapts to
//! [`MigrateOptions::backfill_batch_time`]; between batches the standby
//! gate of [`replicas`] holds it back while a standby lags, and
//! [`throttle`] while the server's WAL is at its cap or the app waited on
//! a batch's row locks. Over its first seconds it also watches the
//! server's WAL rate, and says so if that forces checkpoints more often
//! than the server's `checkpoint_warning`.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::apply::{failed, in_write_transaction, millis, with_lock_retries, StepOutcome};
use super::ledger::{self, BackfillPosition, LedgerState};
use super::replicas::{self, Gate};
use super::throttle::{self, CheckpointWatch, LockBackoff, WalPacer};
use super::{Event, MigrateOptions};
use crate::db::sqlstate::{self, SqlState};
use crate::db::DbConnection;
use crate::error::{Error, Result};
use crate::source::{Backfill, LocalMigration};

/// The batch size's bounds and its first value, in rows.
const MIN_BATCH: u64 = 100;
const MAX_BATCH: u64 = 50_000;
const FIRST_BATCH: u64 = 1_000;

/// Applies the backfill migration `m` (PostgreSQL), resuming from the
/// position an earlier run saved.
pub(super) fn apply(
    conn: &mut DbConnection,
    m: &LocalMigration,
    spec: &Backfill,
    settings: &MigrateOptions,
    report: &mut dyn FnMut(Event<'_>),
) -> Result<StepOutcome> {
    if !spec.matches_up_sql(m.up_sql()) {
        return Err(Error::MigrationFailed {
            migration: m.dir_name().to_string(),
            reason: format!(
                "its metadata.toml [backfill] says `{};` but up.sql says something else: make them the same change",
                spec.update_sql()
            ),
        });
    }
    let version = m.version();
    let recorded = ledger::is_recorded(conn, &version)?;
    if recorded && ledger::state(conn, &version)? != Some(LedgerState::Reverting) {
        return Ok(StepOutcome::AlreadyDone);
    }
    // Marked first (the saved position, if any, stays), so a killed run is
    // seen as interrupted and resumed.
    ledger::write_ledger(conn, m, LedgerState::Running, None, 0, &settings.applied_by)?;
    let mut position = ledger::backfill_position(conn, &version)?;
    if let Some(p) = &position {
        report(Event::BackfillResuming {
            migration: m,
            rows_done: p.rows.max(0) as u64,
        });
    }
    ledger::start_backfill_run(conn, &version, position.as_ref().map_or(0, |p| p.rows))?;
    let estimated = estimated_rows(conn, &spec.table)?;
    let started = Instant::now();
    let mut size = BatchSize::new(settings.backfill_batch_time);
    let mut wal = settings
        .max_wal_rate
        .map(|cap| WalPacer::new(cap, Instant::now()));
    let mut lock_backoff = LockBackoff::default();
    // Advice, judged once over the first seconds: taken off when done.
    let mut checkpoints = CheckpointWatch::start(conn);
    // The batch size, within what the WAL cap allows.
    let rows = |size: &BatchSize, wal: &Option<WalPacer>| {
        let capped = wal.as_ref().and_then(WalPacer::max_rows);
        capped.map_or(size.rows(), |max| size.rows().min(max.max(MIN_BATCH)))
    };
    let mut first = true;
    loop {
        crate::interrupt::check().map_err(|e| resumable(e, position.as_ref()))?;
        if !std::mem::take(&mut first) {
            replicas::wait_for_standbys(
                conn,
                settings.max_replica_lag,
                settings.replica_wait,
                Gate::BetweenBatches,
                report,
            )
            .map_err(|e| resumable(e, position.as_ref()))?;
        }
        let batch = rows(&size, &wal);
        let batch_started = Instant::now();
        let mut walked = None;
        let mut timed_out = false;
        with_lock_retries(
            m,
            settings,
            &mut |event| {
                timed_out |= matches!(event, Event::LockTimeout { .. });
                report(event)
            },
            || {
                walked = Some(run_batch(
                    conn,
                    m,
                    spec,
                    settings,
                    position.as_ref(),
                    batch,
                )?);
                Ok(StepOutcome::Done(Duration::ZERO))
            },
        )
        .map_err(|e| resumable(e, position.as_ref()))?;
        let Some(Batch {
            next,
            waiting,
            wal_bytes,
        }) = walked.flatten()
        else {
            break;
        };
        let batch_time = batch_started.elapsed();
        let done = (next.rows - position.as_ref().map_or(0, |p| p.rows)).max(0) as u64;
        size.record(done, batch_time);
        // The batch waited for row locks, or made the app wait for its own:
        // smaller batches hold fewer rows for less time.
        let lock_wait = lock_backoff.after_batch(waiting, batch_time);
        if timed_out || lock_wait.is_some() {
            size.shrink();
        }
        position = Some(next);
        let p = position.as_ref();
        let wal_wait = match (wal.as_mut(), wal_bytes) {
            (Some(pacer), Some(bytes)) => pacer.after_batch(done, bytes, Instant::now()),
            _ => None,
        };
        report(Event::BackfillProgress {
            migration: m,
            rows_done: p.map_or(0, |p| p.rows.max(0) as u64),
            rows_estimated: estimated,
            batch_size: done,
            next_batch_size: rows(&size, &wal),
            wal_bytes,
        });
        if let Some(pressure) = checkpoints.take_if(|w| w.due()).and_then(|w| w.judge(conn)) {
            report(Event::BackfillForcesCheckpoints {
                migration: m,
                pressure,
            });
        }
        let mut sleep = Duration::ZERO;
        for (wait, reason) in [lock_wait, wal_wait].into_iter().flatten() {
            report(Event::BackfillThrottled {
                migration: m,
                reason,
                sleep: wait,
            });
            sleep = sleep.max(wait);
        }
        throttle::sleep_interruptibly(sleep).map_err(|e| resumable(e, p))?;
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

/// How far an unfinished backfill migration got, as its ledger row says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SavedProgress {
    /// Rows walked (in key order, matching or not), all runs together.
    pub rows_done: u64,
    /// The table's rows as estimated now (at least `rows_done`).
    pub rows_estimated: u64,
    /// Rows per second of its latest run, up to its last saved batch.
    pub rows_per_second: Option<f64>,
}

/// The progress of backfill migration `m`; `None` when it saved no
/// position (or the ledger predates positions). For `taskdb status`.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) fn saved_progress(conn: &mut DbConnection, m: &LocalMigration) -> Option<SavedProgress> {
    let spec = m.backfill().ok()??;
    let saved = ledger::backfill_position(conn, &m.version()).ok()??;
    let done = saved.rows.max(0) as u64;
    let estimated = estimated_rows(conn, &spec.table).unwrap_or(0);
    Some(SavedProgress {
        rows_done: done,
        rows_estimated: estimated.max(done),
        rows_per_second: ledger::backfill_rate(conn, &m.version()).ok().flatten(),
    })
}

/// A batch done: where it ended, how many of the app's sessions were
/// waiting on its row locks as it was about to commit, and the WAL its
/// `UPDATE` wrote (measured under a WAL cap only).
struct Batch {
    next: BackfillPosition,
    waiting: u32,
    wal_bytes: Option<u64>,
}

/// One batch in its own transaction: the keys after `after` up to `rows`
/// of them, updated where they match, and the position saved. `None` when
/// no key is left.
fn run_batch(
    conn: &mut DbConnection,
    m: &LocalMigration,
    spec: &Backfill,
    settings: &MigrateOptions,
    after: Option<&BackfillPosition>,
    rows: u64,
) -> Result<Option<Batch>> {
    #[derive(QueryableByName)]
    struct Upper {
        #[diesel(sql_type = Nullable<Text>)]
        key: Option<String>,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let key = &spec.key;
    // The saved key is the key column's text: as a quoted literal it reads
    // back as the column's type, whatever that is.
    let lower = after
        .map(|p| format!("{key} > {}", literal(&p.key)))
        .unwrap_or_else(|| "TRUE".to_string());
    in_write_transaction(conn, settings, |conn| {
        let upper: Upper = diesel::sql_query(format!(
            "SELECT max({key})::text AS key, count(*) AS n
               FROM (SELECT {key} FROM {table} WHERE {lower} ORDER BY {key} LIMIT {rows}) batch",
            table = spec.table
        ))
        .get_result(conn)?;
        let Some(upper_key) = upper.key else {
            return Ok(None);
        };
        let update = format!(
            "UPDATE {table} SET {set} WHERE {lower} AND {key} <= {upper} AND ({predicate})",
            table = spec.table,
            set = spec.set,
            upper = literal(&upper_key),
            predicate = spec.predicate
        );
        let trapped = [SqlState::LockNotAvailable];
        let wal_bytes = if settings.max_wal_rate.is_some() {
            // The statement's own WAL, as the server counts it.
            conn.batch_execute(&sqlstate::trap_keeping_result(
                &format!("{}{update}", throttle::EXPLAIN_WAL),
                &trapped,
                throttle::PLAN_SETTING,
            ))
            .map_err(|e| failed(m, e))?;
            Some(throttle::explained_wal_bytes(conn)?)
        } else {
            conn.batch_execute(&sqlstate::trap(&update, &trapped))
                .map_err(|e| failed(m, e))?;
            None
        };
        // Asked while the batch still holds its row locks.
        let waiting = throttle::sessions_waiting_on_me(conn)?;
        let next = BackfillPosition {
            key: upper_key,
            rows: after.map_or(0, |p| p.rows) + upper.n,
        };
        ledger::save_backfill_position(conn, &m.version(), &next)?;
        Ok(Some(Batch {
            next,
            waiting,
            wal_bytes,
        }))
    })
}

/// A failed or interrupted batch was rolled back; the batches before it
/// stay done, and the next run resumes after them.
fn resumable(e: Error, saved: Option<&BackfillPosition>) -> Error {
    match (e, saved) {
        (Error::Interrupted { .. }, Some(p)) => Error::interrupted_leaving(format!(
            "the backfill's batch in progress was rolled back; the first {} rows (up to key {}) are done and saved: `taskdb migrate` resumes after them",
            p.rows, p.key
        )),
        (Error::MigrationFailed { migration, reason }, Some(p)) => Error::MigrationFailed {
            migration,
            reason: format!(
                "{reason}; the first {} rows (up to key {}) are done and saved: `taskdb migrate` resumes after them",
                p.rows, p.key
            ),
        },
        (e, _) => e,
    }
}

/// `s` as a single-quoted SQL literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The table's rows as the planner estimates them (0 when unknown).
#[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
fn estimated_rows(conn: &mut DbConnection, table: &str) -> Result<u64> {
    crate::db::on_backend!(conn,
        Postgres(pg) => Ok(crate::catalog::table_size::table_size(pg, table)?
            .map_or(0, |s| s.rows.max(0) as u64)),
        Sqlite(_lite) => Ok(0),
    )
}

/// The next batch's size: aimed at a batch duration from a moving average
/// of the time per row, changing at most twofold from one batch to the
/// next, within [`MIN_BATCH`]..=[`MAX_BATCH`].
#[derive(Debug, Clone)]
struct BatchSize {
    target: Duration,
    rows: u64,
    /// Seconds per row, averaged.
    per_row: Option<f64>,
}

impl BatchSize {
    fn new(target: Duration) -> Self {
        BatchSize {
            target,
            rows: FIRST_BATCH,
            per_row: None,
        }
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    /// Halves the next batch (down to the floor).
    fn shrink(&mut self) {
        self.rows = (self.rows / 2).max(MIN_BATCH);
    }

    /// A batch of `rows` took `elapsed`.
    fn record(&mut self, rows: u64, elapsed: Duration) {
        if rows == 0 {
            return;
        }
        let sample = elapsed.as_secs_f64() / rows as f64;
        let average = match self.per_row {
            None => sample,
            Some(average) => 0.7 * average + 0.3 * sample,
        };
        self.per_row = Some(average);
        let ideal = if average > 0.0 {
            self.target.as_secs_f64() / average
        } else {
            MAX_BATCH as f64
        };
        let bounded = ideal.clamp(self.rows as f64 / 2.0, self.rows as f64 * 2.0);
        self.rows = (bounded as u64).clamp(MIN_BATCH, MAX_BATCH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_moves_towards_the_target_by_at_most_twofold_within_bounds() {
        let mut size = BatchSize::new(Duration::from_millis(100));
        assert_eq!(size.rows(), 1_000);
        // 10 µs a row: 10,000 rows would take 100 ms; it doubles on the way.
        size.record(1_000, Duration::from_millis(10));
        assert_eq!(size.rows(), 2_000);
        for _ in 0..10 {
            let rows = size.rows();
            size.record(rows, Duration::from_micros(10 * rows));
        }
        assert_eq!(size.rows(), 10_000);
        // Much slower rows: it halves, batch after batch, down to the floor.
        for _ in 0..20 {
            let rows = size.rows();
            size.record(rows, Duration::from_millis(rows));
        }
        assert_eq!(size.rows(), MIN_BATCH);
        // Instant rows: up to the ceiling.
        for _ in 0..20 {
            let rows = size.rows();
            size.record(rows, Duration::ZERO);
        }
        assert_eq!(size.rows(), MAX_BATCH);
    }
}
