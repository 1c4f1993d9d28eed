//! What holds a backfill back between its batches, besides the standby
//! gate: a cap on the WAL rate it writes (`--max-wal-rate`,
//! [`MigrateOptions::max_wal_rate`](super::MigrateOptions::max_wal_rate))
//! and the app's sessions found waiting on a batch's row locks. Each sleeps
//! between batches and says why through
//! [`Event::BackfillThrottled`](super::Event::BackfillThrottled).
//!
//! The WAL cap counts the backfill's own WAL: each batch's `UPDATE` runs
//! under `EXPLAIN (ANALYZE, WAL)`, whose `WAL Bytes` is that statement's WAL
//! as the server counts it (heap, indexes, full-page images). The server's
//! total (`pg_current_wal_lsn()`) also holds every other session's WAL,
//! which a backfill cannot slow down: paced by it, a backfill would stop
//! whenever the app (or another database on the server) is busy, and still
//! not bring the total under the cap. So the cap is the backfill's share;
//! the app's WAL comes on top. The pacing is a leaky bucket with a small
//! burst ([`WAL_BURST`]), and a batch is kept to [`BATCH_WAL_SHARE`] of the
//! cap's bytes, so the rate over any 5-second window stays within the cap
//! plus about 10 %.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::db::DbConnection;
use crate::error::Result;

/// The window over which a WAL rate is reported.
pub const WAL_WINDOW: Duration = Duration::from_secs(5);
/// WAL the pacing lets through at once after a pause, as a time at the cap.
const WAL_BURST: Duration = Duration::from_millis(100);
/// The most WAL one batch should write, as a time at the cap (the batch's
/// own WAL is only seen once it committed).
const BATCH_WAL_SHARE: Duration = Duration::from_millis(200);
/// The first and the longest sleep after a batch that made the app wait.
const LOCK_BACKOFF_FIRST: Duration = Duration::from_millis(100);
const LOCK_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A WAL rate cap: bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRate {
    pub bytes_per_second: u64,
}

impl WalRate {
    /// `20MB/s`, `512kB/s` (sizes in powers of 1024, as PostgreSQL's own
    /// settings and `--max-replica-lag` take them; the `/s` may be left
    /// out), or `off` (`None`).
    pub fn parse(input: &str) -> std::result::Result<Option<WalRate>, String> {
        let s = input.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let size = s.strip_suffix("/s").unwrap_or(s).trim();
        match super::replicas::parse_size(size) {
            Some(Ok(0)) => Err(format!("`{input}` is no rate: use `off` for no cap")),
            Some(Ok(bytes)) => Ok(Some(WalRate {
                bytes_per_second: bytes,
            })),
            Some(Err(e)) => Err(e),
            None => Err(format!(
                "`{input}` is not a WAL rate: use e.g. 20MB/s, 512kB/s or off"
            )),
        }
    }
}

impl std::fmt::Display for WalRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/s",
            super::replicas::format_size(self.bytes_per_second)
        )
    }
}

/// Why a backfill sleeps between two batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThrottleReason {
    /// The backfill's WAL is at the cap.
    WalRate {
        /// Bytes per second over the last [`WAL_WINDOW`] (or less, early on).
        recent: u64,
        cap: WalRate,
    },
    /// Sessions of the app waited on the batch's row locks (seen in
    /// `pg_stat_activity` before it committed); the next batches are
    /// smaller too.
    LockWaits { sessions: u32 },
}

/// What a batch's `UPDATE` is prefixed with under a WAL cap: it runs as
/// before, and reports its WAL (timing off: it costs a clock read a row).
pub(super) const EXPLAIN_WAL: &str =
    "EXPLAIN (ANALYZE, WAL, TIMING OFF, COSTS OFF, SUMMARY OFF, FORMAT JSON) ";
/// The transaction-local setting the batch's plan is kept in.
pub(super) const PLAN_SETTING: &str = "taskdb.backfill_plan";

/// The WAL bytes of the statement run with [`EXPLAIN_WAL`] in this
/// transaction.
pub(super) fn explained_wal_bytes(conn: &mut DbConnection) -> Result<u64> {
    #[derive(QueryableByName)]
    struct Wal {
        #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
        bytes: Option<i64>,
    }
    let row: Wal = diesel::sql_query(format!(
        "SELECT (current_setting('{PLAN_SETTING}')::json -> 0 -> 'Plan' ->> 'WAL Bytes')::bigint AS bytes"
    ))
    .get_result(conn)?;
    Ok(row.bytes.unwrap_or(0).max(0) as u64)
}

/// Sessions waiting on a lock this backend holds (in the batch's
/// transaction, before it commits: its row locks). Advisory locks (another
/// migrator waiting for the migration lock) do not count.
pub(super) fn sessions_waiting_on_me(conn: &mut DbConnection) -> Result<u32> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND wait_event <> 'advisory'
            AND pg_backend_pid() = ANY (pg_blocking_pids(pid))",
    )
    .get_result(conn)?;
    Ok(row.n.max(0) as u32)
}

/// Paces a backfill's batches to a WAL rate.
#[derive(Debug)]
pub(super) struct WalPacer {
    cap: WalRate,
    /// The WAL written so far, sampled after each batch: the last
    /// [`WAL_WINDOW`] of them.
    samples: VecDeque<(Instant, u64)>,
    /// When the WAL written so far would have been written at the cap
    /// (a leaky bucket's "theoretical arrival time").
    due: Instant,
    /// WAL bytes per row walked, averaged.
    per_row: Option<f64>,
}

impl WalPacer {
    /// Starts pacing, now.
    pub(super) fn new(cap: WalRate, now: Instant) -> Self {
        WalPacer {
            cap,
            samples: VecDeque::from([(now, 0)]),
            due: now,
            per_row: None,
        }
    }

    /// A batch of `rows` wrote `written` bytes of WAL: how long to sleep
    /// before the next one, and why (`None`: no need).
    pub(super) fn after_batch(
        &mut self,
        rows: u64,
        written: u64,
        now: Instant,
    ) -> Option<(Duration, ThrottleReason)> {
        let cap = self.cap.bytes_per_second as f64;
        let &(_, last) = self.samples.back()?;
        let lsn = last + written;
        if rows > 0 {
            let sample = written as f64 / rows as f64;
            self.per_row = Some(match self.per_row {
                None => sample,
                Some(average) => 0.7 * average + 0.3 * sample,
            });
        }
        let floor = now.checked_sub(WAL_BURST).unwrap_or(now);
        self.due = self.due.max(floor) + Duration::from_secs_f64(written as f64 / cap);
        self.samples.push_back((now, lsn));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WAL_WINDOW)
            && self.samples.len() > 2
        {
            self.samples.pop_front();
        }
        if self.due <= now {
            return None;
        }
        let &(since, from) = self.samples.front()?;
        let span = now.duration_since(since).as_secs_f64();
        let recent = if span > 0.0 {
            (lsn.saturating_sub(from) as f64 / span) as u64
        } else {
            0
        };
        Some((
            self.due - now,
            ThrottleReason::WalRate {
                recent,
                cap: self.cap,
            },
        ))
    }

    /// The most rows a batch should have, so that its WAL stays a small
    /// part of a window's worth at the cap.
    pub(super) fn max_rows(&self) -> Option<u64> {
        let per_row = self.per_row.filter(|p| *p > 0.0)?;
        let budget = self.cap.bytes_per_second as f64 * BATCH_WAL_SHARE.as_secs_f64();
        Some((budget / per_row) as u64)
    }
}

/// The sleep after batches that made the app wait: from
/// [`LOCK_BACKOFF_FIRST`], doubling while they keep doing so, up to
/// [`LOCK_BACKOFF_MAX`]; back to the start after a batch nobody waited on.
#[derive(Debug, Default)]
pub(super) struct LockBackoff {
    next: Option<Duration>,
}

impl LockBackoff {
    /// `sessions` waited on the batch that took `batch_time`: the sleep
    /// before the next one, and why.
    pub(super) fn after_batch(
        &mut self,
        sessions: u32,
        batch_time: Duration,
    ) -> Option<(Duration, ThrottleReason)> {
        if sessions == 0 {
            self.next = None;
            return None;
        }
        // At least as long as the app may have waited on the batch.
        let sleep = self
            .next
            .unwrap_or(LOCK_BACKOFF_FIRST)
            .max(batch_time)
            .min(LOCK_BACKOFF_MAX);
        self.next = Some((sleep * 2).min(LOCK_BACKOFF_MAX));
        Some((sleep, ThrottleReason::LockWaits { sessions }))
    }
}

/// How long a backfill runs before the server's WAL rate is judged for
/// [`CheckpointWatch`].
pub(super) const CHECKPOINT_WATCH_AFTER: Duration = Duration::from_secs(3);

/// The server's settings that decide how often WAL forces a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct CheckpointSettings {
    /// `max_wal_size`, in bytes.
    pub max_wal_size: u64,
    /// `checkpoint_completion_target`.
    pub completion_target: f64,
    /// `checkpoint_warning` (zero: off).
    pub warning: Duration,
}

/// A backfill's WAL forces checkpoints more often than the server's own
/// `checkpoint_warning` would let pass unremarked. Each checkpoint writes
/// out every page dirtied since the last one, and the app's commits queue
/// behind those writes (docs/benchmarks/backfill.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointPressure {
    /// The server's WAL rate while the backfill ran (all sessions), bytes
    /// per second.
    pub wal_rate: u64,
    /// How often that rate forces a checkpoint.
    pub checkpoint_every: Duration,
    /// `max_wal_size`, in bytes.
    pub max_wal_size: u64,
    /// `checkpoint_warning`.
    pub warning: Duration,
    /// The highest WAL rate at which checkpoints stay `warning` apart: a
    /// `--max-wal-rate` for the backfill.
    pub suggested_cap: WalRate,
}

impl CheckpointSettings {
    /// At `wal_rate` bytes per second: how often a checkpoint is forced,
    /// when that is more often than `checkpoint_warning`. PostgreSQL starts
    /// one once `max_wal_size / (1 + checkpoint_completion_target)` of WAL
    /// has been written since the last.
    pub(super) fn pressure(&self, wal_rate: u64) -> Option<CheckpointPressure> {
        if self.warning.is_zero() || wal_rate == 0 || self.max_wal_size == 0 {
            return None;
        }
        let per_checkpoint = self.max_wal_size as f64 / (1.0 + self.completion_target.max(0.0));
        let every = Duration::from_secs_f64(per_checkpoint / wal_rate as f64);
        if every >= self.warning {
            return None;
        }
        // Rounded down to what `--max-wal-rate` reads back: whole MB, or kB.
        let at_warning = (per_checkpoint / self.warning.as_secs_f64()) as u64;
        let unit = if at_warning >= 1 << 20 {
            1 << 20
        } else {
            1 << 10
        };
        Some(CheckpointPressure {
            wal_rate,
            checkpoint_every: every,
            max_wal_size: self.max_wal_size,
            warning: self.warning,
            suggested_cap: WalRate {
                bytes_per_second: (at_warning / unit).max(1) * unit,
            },
        })
    }
}

/// Reads the checkpoint settings.
fn checkpoint_settings(conn: &mut DbConnection) -> Result<CheckpointSettings> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        max_wal_size: i64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        completion_target: f64,
        #[diesel(sql_type = BigInt)]
        warning_seconds: i64,
    }
    let row: Row = diesel::sql_query(
        "SELECT pg_size_bytes(current_setting('max_wal_size')) AS max_wal_size,
                current_setting('checkpoint_completion_target')::float8 AS completion_target,
                (SELECT setting::bigint FROM pg_settings WHERE name = 'checkpoint_warning') AS warning_seconds",
    )
    .get_result(conn)?;
    Ok(CheckpointSettings {
        max_wal_size: row.max_wal_size.max(0) as u64,
        completion_target: row.completion_target,
        warning: Duration::from_secs(row.warning_seconds.max(0) as u64),
    })
}

/// The server's WAL position, in bytes.
fn wal_position(conn: &mut DbConnection) -> Result<u64> {
    #[derive(QueryableByName)]
    struct Lsn {
        #[diesel(sql_type = BigInt)]
        lsn: i64,
    }
    let row: Lsn =
        diesel::sql_query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS lsn")
            .get_result(conn)?;
    Ok(row.lsn.max(0) as u64)
}

/// Judges, once, the server's WAL rate over a backfill's first
/// [`CHECKPOINT_WATCH_AFTER`]: whether it forces checkpoints too often.
#[derive(Debug)]
pub(super) struct CheckpointWatch {
    settings: CheckpointSettings,
    from: (Instant, u64),
}

impl CheckpointWatch {
    /// Starts watching (`None` when the settings cannot be read: the
    /// watch is advice, never a reason to stop).
    pub(super) fn start(conn: &mut DbConnection) -> Option<Self> {
        let settings = checkpoint_settings(conn).ok()?;
        let lsn = wal_position(conn).ok()?;
        Some(CheckpointWatch {
            settings,
            from: (Instant::now(), lsn),
        })
    }

    /// Whether the watch has seen enough to judge.
    pub(super) fn due(&self) -> bool {
        self.from.0.elapsed() >= CHECKPOINT_WATCH_AFTER
    }

    /// The pressure of the server's WAL rate since the watch started, if
    /// checkpoints come too often (`None` too when the position cannot be
    /// read).
    pub(super) fn judge(&self, conn: &mut DbConnection) -> Option<CheckpointPressure> {
        let (since, from) = self.from;
        let span = since.elapsed();
        let lsn = wal_position(conn).ok()?;
        let rate = (lsn.saturating_sub(from) as f64 / span.as_secs_f64()) as u64;
        self.settings.pressure(rate)
    }
}

/// Sleeps `d`, waking for an interrupt (Ctrl-C) within 50 ms.
pub(super) fn sleep_interruptibly(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    loop {
        crate::interrupt::check()?;
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn wal_rates_parse_as_typed() {
        assert_eq!(
            WalRate::parse("20MB/s").unwrap(),
            Some(WalRate {
                bytes_per_second: 20 * MB
            })
        );
        assert_eq!(
            WalRate::parse(" 512kB ").unwrap(),
            Some(WalRate {
                bytes_per_second: 512 << 10
            })
        );
        assert_eq!(WalRate::parse("off").unwrap(), None);
        for bad in ["", "fast", "20", "0MB/s", "20MB/h", "-1MB/s"] {
            assert!(WalRate::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            WalRate::parse("20MB/s").unwrap().unwrap().to_string(),
            "20MB/s"
        );
    }

    /// Batches of 100 ms writing 4 MB each against a 10 MB/s cap: the
    /// pacing sleeps so that every 5 s window stays within the cap + 10 %.
    #[test]
    fn pacing_keeps_every_window_near_the_cap() {
        let cap = WalRate {
            bytes_per_second: 10 * MB,
        };
        let t0 = Instant::now();
        let mut now = t0;
        let mut lsn = 0;
        let mut pacer = WalPacer::new(cap, now);
        let mut points = vec![(now, lsn)];
        let mut slept = false;
        while now.duration_since(t0) < Duration::from_secs(30) {
            now += Duration::from_millis(100);
            lsn += 4 * MB;
            points.push((now, lsn));
            if let Some((sleep, reason)) = pacer.after_batch(1_000, 4 * MB, now) {
                assert!(matches!(reason, ThrottleReason::WalRate { .. }));
                slept = true;
                now += sleep;
                points.push((now, lsn));
            }
        }
        assert!(slept);
        // The WAL position over time, linear within a batch.
        let at = |t: Instant| -> f64 {
            let i = points.partition_point(|(p, _)| *p <= t);
            match (points.get(i.wrapping_sub(1)), points.get(i)) {
                (Some((t1, l1)), Some((t2, l2))) if t2 > t1 => {
                    let f = (t - *t1).as_secs_f64() / (*t2 - *t1).as_secs_f64();
                    *l1 as f64 + f * (*l2 as f64 - *l1 as f64)
                }
                (Some((_, l)), _) => *l as f64,
                _ => 0.0,
            }
        };
        let mut worst = 0.0f64;
        let mut start = t0;
        while start + WAL_WINDOW <= now {
            worst = worst.max((at(start + WAL_WINDOW) - at(start)) / WAL_WINDOW.as_secs_f64());
            start += Duration::from_millis(10);
        }
        assert!(
            worst <= 1.1 * (10 * MB) as f64,
            "{:.1} MB/s",
            worst / MB as f64
        );
        // 4 MB a batch is past the batch share: the pacer asks for less.
        assert_eq!(pacer.max_rows(), Some(500));
    }

    /// PostgreSQL's defaults: 1GB, 0.9, 30 s. A checkpoint every
    /// 1GB / 1.9 of WAL: at 60 MB/s about every 9 s, too often; at 15 MB/s
    /// about every 36 s, fine.
    #[test]
    fn checkpoint_pressure_follows_the_servers_own_trigger_and_warning() {
        let defaults = CheckpointSettings {
            max_wal_size: 1 << 30,
            completion_target: 0.9,
            warning: Duration::from_secs(30),
        };
        let p = defaults.pressure(60 * MB).unwrap();
        assert_eq!(p.checkpoint_every.as_secs(), 8);
        assert_eq!(p.wal_rate, 60 * MB);
        // 1GB / 1.9 / 30 s = 17.96 MB/s, rounded down.
        assert_eq!(p.suggested_cap.to_string(), "17MB/s");
        assert_eq!(defaults.pressure(15 * MB), None);
        assert_eq!(defaults.pressure(0), None);
        // checkpoint_warning = 0 turns PostgreSQL's warning off, and this.
        let off = CheckpointSettings {
            warning: Duration::ZERO,
            ..defaults
        };
        assert_eq!(off.pressure(600 * MB), None);
        // A tiny max_wal_size: the suggestion in kB.
        let tiny = CheckpointSettings {
            max_wal_size: 32 * MB,
            ..defaults
        };
        assert_eq!(
            tiny.pressure(20 * MB).unwrap().suggested_cap.to_string(),
            "574kB/s"
        );
    }

    #[test]
    fn lock_backoff_doubles_while_the_app_waits_and_resets() {
        let mut b = LockBackoff::default();
        let ms = Duration::from_millis;
        assert_eq!(b.after_batch(0, ms(50)), None);
        assert_eq!(
            b.after_batch(2, ms(50)),
            Some((ms(100), ThrottleReason::LockWaits { sessions: 2 }))
        );
        assert_eq!(b.after_batch(1, ms(50)).unwrap().0, ms(200));
        assert_eq!(b.after_batch(1, ms(900)).unwrap().0, ms(900));
        assert_eq!(b.after_batch(1, ms(50)).unwrap().0, ms(1800));
        assert_eq!(b.after_batch(1, ms(50)).unwrap().0, ms(2000));
        assert_eq!(b.after_batch(0, ms(50)), None);
        assert_eq!(b.after_batch(1, ms(50)).unwrap().0, ms(100));
    }
}
