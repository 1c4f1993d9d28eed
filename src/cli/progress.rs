//! A live progress line on stderr for long steps (index builds, the
//! foreign key check, demo seeding): elapsed time and, for a concurrent
//! index build, its phase and blocks done. Only on a terminal: piped or
//! redirected output gets no progress line at all.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::db::{self, Backend, DatabaseUrl};
use crate::migrate::step_progress::{self as server, IndexBuildProgress};
use crate::migrate::{Event, ThrottleReason};

/// How often the line is redrawn.
const REDRAW: Duration = Duration::from_millis(200);
/// How often the server is asked about an index build.
const POLL: Duration = Duration::from_millis(500);

/// True when a progress line would reach a person.
pub fn enabled() -> bool {
    io::stderr().is_terminal()
}

/// `  ⋯ label  12.3 s  detail`.
pub fn format_line(label: &str, elapsed: Duration, detail: Option<&str>) -> String {
    let mut line = format!("  ⋯ {label}  {:.1} s", elapsed.as_secs_f64());
    if let Some(detail) = detail.filter(|d| !d.is_empty()) {
        line.push_str("  ");
        line.push_str(detail);
    }
    line
}

/// `building index: scanning table, blocks 1200/4800 (25%)`.
pub fn format_index_build(p: &IndexBuildProgress) -> String {
    let mut s = p.phase.clone();
    if p.blocks_total > 0 {
        s.push_str(&format!(
            ", blocks {}/{} ({}%)",
            p.blocks_done,
            p.blocks_total,
            p.blocks_done * 100 / p.blocks_total
        ));
    } else if p.tuples_total > 0 {
        s.push_str(&format!(", tuples {}/{}", p.tuples_done, p.tuples_total));
    }
    s
}

/// `rows 12000/50000 (24%)`.
pub fn format_rows(done: u64, total: u64) -> String {
    format!("rows {done}/{total} ({}%)", done * 100 / total.max(1))
}

/// `WAL at 21.3 MB/s over the last 5 s, cap 20MB/s; sleeping 250 ms`: why
/// a backfill sleeps between batches.
pub fn format_throttle(reason: &ThrottleReason, sleep: Duration) -> String {
    let why = match reason {
        ThrottleReason::WalRate { recent, cap } => format!(
            "WAL at {}/s over the last {} s, cap {cap}",
            crate::migrate::replicas::human_size(*recent),
            crate::migrate::throttle::WAL_WINDOW.as_secs()
        ),
        ThrottleReason::LockWaits { sessions } => format!(
            "{sessions} session(s) of the app waited on the last batch's row locks; smaller batches"
        ),
    };
    format!(
        "{why}; sleeping {}",
        crate::cli::output::human_duration(sleep)
    )
}

/// `4.2 s behind, 12.0 MB of WAL`: how far a standby is behind.
pub fn format_replica_lag(replay_lag: Option<Duration>, bytes_behind: Option<u64>) -> String {
    let lag = replay_lag
        .map(crate::cli::output::human_duration)
        .unwrap_or_else(|| "0 ms".into());
    match bytes_behind {
        Some(b) => format!(
            "{lag} behind, {} of WAL",
            crate::migrate::replicas::human_size(b)
        ),
        None => format!("{lag} behind"),
    }
}

/// True for a standby-lag report after the first of one wait (the first
/// is printed; the rest only update the progress line).
pub fn continues_wait(event: &Event<'_>) -> bool {
    matches!(event, Event::ReplicaLagging { waited, .. } if !waited.is_zero())
}

/// One live line, redrawn by a thread until finished or dropped.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    detail: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts a line for `label`; `None` when stderr is not a terminal. With
    /// `poll_url`, a second connection to that PostgreSQL database reports
    /// the phase and blocks of a running index build.
    pub fn start(label: String, poll_url: Option<DatabaseUrl>) -> Option<Ticker> {
        if !enabled() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let detail = Arc::new(Mutex::new(None));
        let thread = {
            let stop = stop.clone();
            let detail = detail.clone();
            std::thread::spawn(move || draw(label, poll_url, stop, detail))
        };
        Some(Ticker {
            stop,
            detail,
            thread: Some(thread),
        })
    }

    /// Replaces the text after the elapsed time.
    pub fn set_detail(&self, text: String) {
        if let Ok(mut d) = self.detail.lock() {
            *d = Some(text);
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn draw(
    label: String,
    poll_url: Option<DatabaseUrl>,
    stop: Arc<AtomicBool>,
    detail: Arc<Mutex<Option<String>>>,
) {
    let started = Instant::now();
    let mut conn = None;
    let mut last_poll: Option<Instant> = None;
    let mut polled: Option<String> = None;
    let mut err = io::stderr();
    while !stop.load(Ordering::Relaxed) {
        if let Some(url) = &poll_url {
            if last_poll.is_none_or(|t| t.elapsed() >= POLL) {
                last_poll = Some(Instant::now());
                if conn.is_none() {
                    conn = db::connect(url).ok();
                }
                if let Some(c) = conn.as_mut() {
                    polled = server::index_build(c)
                        .ok()
                        .flatten()
                        .map(|p| format_index_build(&p));
                }
            }
        }
        let text = detail
            .lock()
            .ok()
            .and_then(|d| d.clone())
            .or(polled.clone());
        let _ = write!(
            err,
            "\r\x1b[2K{}",
            format_line(&label, started.elapsed(), text.as_deref())
        );
        let _ = err.flush();
        std::thread::sleep(REDRAW);
    }
    // Leave the terminal as it was: the line disappears.
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}

/// Turns migration events into a progress line for each step while it runs.
pub struct MigrationProgress {
    url: DatabaseUrl,
    current: Option<Ticker>,
}

impl MigrationProgress {
    pub fn new(url: DatabaseUrl) -> Self {
        MigrationProgress { url, current: None }
    }

    /// Removes the current line (before anything else is printed).
    pub fn clear(&mut self) {
        self.current = None;
    }

    /// Call after the event is printed: a step that starts gets a line.
    pub fn observe(&mut self, event: &Event<'_>) {
        if let Event::ReplicaLagging {
            standby,
            replay_lag,
            bytes_behind,
            ..
        } = event
        {
            // One line for the whole wait, its detail updated each poll.
            if self.current.is_none() {
                self.current = Ticker::start("waiting for standbys".into(), None);
            }
            if let Some(t) = &self.current {
                t.set_detail(format!(
                    "{standby}: {}",
                    format_replica_lag(*replay_lag, *bytes_behind)
                ));
            }
            return;
        }
        if let Event::BackfillProgress {
            rows_done,
            rows_estimated,
            batch_size,
            ..
        } = event
        {
            // The step's line stays; its detail is the backfill's progress.
            if let Some(t) = &self.current {
                t.set_detail(format!(
                    "backfill {}, batches of {batch_size}",
                    format_rows(*rows_done, (*rows_estimated).max(*rows_done))
                ));
            }
            return;
        }
        if let Event::BackfillThrottled { reason, sleep, .. } = event {
            if let Some(t) = &self.current {
                t.set_detail(format!(
                    "backfill throttling: {}",
                    format_throttle(reason, *sleep)
                ));
            }
            return;
        }
        self.current = None;
        let (label, step) = match event {
            Event::Applying { migration } => (migration.dir_name().to_string(), Some(migration)),
            Event::Reverting { migration } => (migration.dir_name().to_string(), None),
            Event::CheckingOrphans { migration } => (
                format!("looking for orphaned tasks before {}", migration.name()),
                None,
            ),
            _ => return,
        };
        // Only a build outside a transaction (CONCURRENTLY) can be watched
        // from another connection.
        let poll = (self.url.backend() == Backend::Postgres
            && step
                .is_some_and(|m| !m.run_in_transaction() && m.backfill().ok().flatten().is_none()))
        .then(|| self.url.clone());
        self.current = Ticker::start(label, poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_formats() {
        assert_eq!(
            format_line(
                "2026-02-08-000004_index",
                Duration::from_millis(12_345),
                None
            ),
            "  ⋯ 2026-02-08-000004_index  12.3 s"
        );
        assert_eq!(
            format_line("seed", Duration::from_millis(500), Some("rows 5/10 (50%)")),
            "  ⋯ seed  0.5 s  rows 5/10 (50%)"
        );
        assert_eq!(format_rows(12_000, 50_000), "rows 12000/50000 (24%)");
        let p = IndexBuildProgress {
            index: "idx".into(),
            phase: "building index: scanning table".into(),
            blocks_done: 1200,
            blocks_total: 4800,
            tuples_done: 0,
            tuples_total: 0,
        };
        assert_eq!(
            format_index_build(&p),
            "building index: scanning table, blocks 1200/4800 (25%)"
        );
        let p = IndexBuildProgress {
            phase: "building index: loading tuples in tree".into(),
            blocks_done: 0,
            blocks_total: 0,
            tuples_done: 10,
            tuples_total: 40,
            ..p
        };
        assert_eq!(
            format_index_build(&p),
            "building index: loading tuples in tree, tuples 10/40"
        );
    }
}
