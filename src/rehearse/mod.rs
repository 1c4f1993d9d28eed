//! `taskdb rehearse`: the pending migrations run, exactly as `migrate` runs
//! them, against a production-sized copy ([`scratch`]) while clients run
//! the app's own queries ([`clients`]) and a side connection watches locks
//! and waits ([`sampler`]). Each step gets a verdict from what happened —
//! `blocks`, `rewrites`, `breaks-clients`, `loses-data`, `fails`, or
//! `safe` — next to lint's verdict on its SQL ([`Report`]); [`svg`]
//! draws the run.
//!
//! The library prints nothing: progress goes to the caller through
//! [`Progress`]. The copy and the client threads are gone when
//! [`rehearse`] returns, whatever happened; a Ctrl-C or SIGTERM (with the
//! binary's handler installed) cancels the work, drops the copy and
//! returns [`Error::Interrupted`].

pub mod clients;
pub mod sampler;
pub mod scratch;
pub mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::db::{self, DatabaseUrl};
use crate::error::{Error, Result};
use crate::interrupt::{self, CancelGuard};
use crate::lint::{self, Level};
use crate::migrate::{self, LocalMigration, MigrateOptions, MigrationPlan, MigrationSource};
use clients::{Clients, Request};
use sampler::{Sample, Sampler};
pub use scratch::Sizes;

/// Default `--stall-limit`: a client waiting longer than this on a lock
/// is a blocked app. taskdb's own bar for writers (a backfill, a
/// migration under writes: slowest request ≤ 100 ms); a catalog-only step
/// keeps the app's waits to its lock timeout and a few milliseconds, while
/// a scan under a lock at 1M rows blocked writers 156–275 ms here.
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_millis(100);
/// Default `--clients`.
pub const DEFAULT_CLIENTS: u32 = 2;

/// What to rehearse, and how.
#[derive(Debug, Clone)]
pub struct RehearseOptions {
    pub source: MigrationSource,
    /// Rehearse every migration after this version, instead of the ones
    /// pending in the database.
    pub from: Option<String>,
    pub sizes: Sizes,
    pub clients: u32,
    pub stall_limit: Duration,
    /// The migration run's settings (lock timeout, retries); the replica
    /// gate and the pre-flight's refusal are turned off for the copy.
    pub migrate: MigrateOptions,
    /// How often each client sends a request.
    pub request_interval: Duration,
    /// Traffic before the first step: the baseline.
    pub baseline: Duration,
    /// Traffic after each step before the next: errors a step causes
    /// show up in its own window.
    pub settle: Duration,
    /// Run the lock sampler (off only to measure what it costs the
    /// clients: without it there are no locks, waits or `blocks`).
    pub sample: bool,
}

impl Default for RehearseOptions {
    fn default() -> Self {
        RehearseOptions {
            source: MigrationSource::Embedded,
            from: None,
            sizes: Sizes::default(),
            clients: DEFAULT_CLIENTS,
            stall_limit: DEFAULT_STALL_LIMIT,
            migrate: MigrateOptions::default(),
            request_interval: Duration::from_millis(10),
            baseline: Duration::from_millis(1000),
            settle: Duration::from_millis(300),
            sample: true,
        }
    }
}

/// How far a rehearsal is, for whoever shows it.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// The scratch database exists: a clone of the filled copy an earlier
    /// rehearsal kept (`reused`, the template's name), or empty, to be
    /// migrated and filled.
    Building {
        database: &'a str,
        reused: Option<&'a str>,
    },
    /// Filling it with demo data.
    Filling { sizes: Sizes },
    /// Clients started; measuring the baseline.
    Baseline,
    /// A step starts.
    Step { migration: &'a str },
}

/// A verdict on one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Safe,
    Blocks,
    Rewrites,
    BreaksClients,
    LosesData,
    Fails,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::Blocks => "blocks",
            Verdict::Rewrites => "rewrites",
            Verdict::BreaksClients => "breaks-clients",
            Verdict::LosesData => "loses-data",
            Verdict::Fails => "fails",
        }
    }
}

/// A lock the migration held during a step, in all.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LockHeld {
    pub relation: String,
    pub mode: String,
    pub held_ms: f64,
}

/// The longest wait of clients on one lock during a step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientWait {
    pub relation: String,
    /// The mode the client asked for.
    pub mode: String,
    /// `migration` when a migration backend blocked it, else `other`.
    pub blocked_by: &'static str,
    pub waited_ms: f64,
}

/// One step's evidence and verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub migration: String,
    pub verdict: Vec<Verdict>,
    /// Lint's verdict on the step's SQL: `safe` or `unsafe`.
    pub lint: &'static str,
    /// The rules behind an `unsafe`.
    pub lint_rules: Vec<String>,
    /// Lint and the rehearsal disagree.
    pub disagrees: bool,
    pub duration_ms: f64,
    pub max_client_wait_ms: f64,
    pub locks: Vec<LockHeld>,
    /// Each lock with when it was taken and released (within the step).
    pub lock_spans: Vec<LockSpan>,
    pub client_waits: Vec<ClientWait>,
    pub rewrites: Vec<String>,
    pub client_errors: u64,
    /// The first new error the clients saw.
    pub client_error: Option<String>,
    pub rows_lost: i64,
    pub lost: Vec<String>,
    pub wal_bytes: i64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub baseline_p99_ms: f64,
    /// Why the step failed.
    pub error: Option<String>,
    /// When it started and ended (with its settle time), since the clock
    /// started.
    pub started_ms: f64,
    pub ended_ms: f64,
}

impl StepReport {
    pub fn is_safe(&self) -> bool {
        self.verdict == [Verdict::Safe]
    }

    /// One line saying where lint and the rehearsal disagree.
    pub fn disagreement(&self) -> Option<String> {
        if !self.disagrees {
            return None;
        }
        let rehearsal = if self.is_safe() {
            "safe".to_string()
        } else {
            self.evidence().join(", ")
        };
        let lint = if self.lint_rules.is_empty() {
            "safe".to_string()
        } else {
            format!("unsafe ({})", self.lint_rules.join(", "))
        };
        Some(format!("lint: {lint}; rehearsal: {rehearsal}"))
    }

    /// The verdicts with their evidence, for people.
    pub fn evidence(&self) -> Vec<String> {
        self.verdict
            .iter()
            .map(|v| match v {
                Verdict::Safe => "safe".to_string(),
                Verdict::Blocks => {
                    format!("blocked clients {}", format_ms(self.max_client_wait_ms))
                }
                Verdict::Rewrites => format!("rewrote {}", self.rewrites.join(", ")),
                Verdict::BreaksClients => format!(
                    "{} client error(s): {}",
                    self.client_errors,
                    self.client_error.as_deref().unwrap_or("")
                ),
                Verdict::LosesData => format!("lost {}", self.lost.join(", ")),
                Verdict::Fails => format!("failed: {}", self.error.as_deref().unwrap_or("")),
            })
            .collect()
    }
}

/// `1.8 s`, `120 ms`.
pub fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// A lock the migration held over a stretch of time (ms since the clock
/// started; joined from consecutive samples).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LockSpan {
    pub relation: String,
    pub mode: String,
    pub from_ms: f64,
    pub to_ms: f64,
}

/// Everything that happened, over time.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub spans: Vec<LockSpan>,
    pub requests: Vec<Request>,
    pub end_ms: f64,
}

/// A rehearsal's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub steps: Vec<StepReport>,
    /// Some step is not `safe` (the command exits 1).
    pub exceeded: bool,
    /// Migrations after a failed step, not run.
    pub not_rehearsed: Vec<String>,
    pub sizes: Sizes,
    /// The copy's sizes and shape as its own catalog gives them after
    /// `ANALYZE` (read as `--like` reads a live database).
    pub copy: Option<Sizes>,
    pub clients: u32,
    pub stall_limit_ms: f64,
    /// The copy was cloned from one an earlier rehearsal filled.
    pub reused_copy: bool,
    /// Requests the clients sent during the baseline, and its p99.
    pub baseline_requests: usize,
    pub baseline_p99_ms: f64,
    #[serde(skip)]
    pub timeline: Timeline,
}

/// The migrations to rehearse and the version the copy is built up to.
pub fn plan(
    url: &DatabaseUrl,
    source: &MigrationSource,
    from: Option<&str>,
) -> Result<(Vec<LocalMigration>, Option<String>)> {
    let all = source.migrations(db::Backend::Postgres)?;
    let rehearsed: Vec<LocalMigration> = match from {
        Some(version) => {
            let base = source.resolve(db::Backend::Postgres, version)?;
            all.iter()
                .filter(|m| m.dir_name() > base.dir_name())
                .cloned()
                .collect()
        }
        None => {
            let mut conn = db::connect(url)?;
            let plan = MigrationPlan::load_from(&mut conn, source)?;
            plan.pending().filter_map(|e| e.local.clone()).collect()
        }
    };
    let base = match rehearsed.first() {
        Some(first) => all
            .iter()
            .rfind(|m| m.dir_name() < first.dir_name())
            .map(|m| m.dir_name().to_string()),
        None => all.last().map(|m| m.dir_name().to_string()),
    };
    Ok((rehearsed, base))
}

/// Rehearses the migrations pending in `url`'s database (or those after
/// `options.from`) on a copy made on its server. Changes nothing in that
/// database.
pub fn rehearse(
    url: &DatabaseUrl,
    options: &RehearseOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Report> {
    if url.backend() != db::Backend::Postgres {
        return Err(Error::InvalidInput(
            "rehearse applies to PostgreSQL".to_string(),
        ));
    }
    options.sizes.check()?;
    let (rehearsed, base) = plan(url, &options.source, options.from.as_deref())?;
    if rehearsed.is_empty() {
        return Ok(judge(
            Vec::new(),
            Vec::new(),
            &[],
            &[],
            Duration::ZERO,
            &[],
            options,
            Duration::ZERO,
        ));
    }
    let template = scratch::template_name(&options.source, base.as_deref(), options.sizes)?;
    let cancel = CancelGuard::arm(url);
    let mut scratch = scratch::Scratch::create(url, &cancel, Some(&template))?;
    progress(Progress::Building {
        database: &scratch.name,
        reused: scratch.cloned.then_some(template.as_str()),
    });
    let result = run_on_copy(
        &mut scratch,
        &cancel,
        &rehearsed,
        base.as_deref(),
        &template,
        options,
        progress,
    );
    let scratch_cloned = scratch.cloned;
    let dropped = scratch.drop_now(&cancel);
    if interrupt::received().is_some() {
        return Err(Error::interrupted_leaving(match dropped {
            Ok(()) => "the rehearsal was cut short; its scratch database was dropped and nothing else was changed".to_string(),
            Err(e) => format!("the rehearsal was cut short; its scratch database could not be dropped ({e}); the next rehearsal drops it"),
        }));
    }
    let mut report = result?;
    dropped?;
    report.reused_copy = scratch_cloned;
    Ok(report)
}

fn run_on_copy(
    scratch: &mut scratch::Scratch,
    cancel: &CancelGuard,
    rehearsed: &[LocalMigration],
    base: Option<&str>,
    template: &str,
    options: &RehearseOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Report> {
    if !scratch.cloned {
        scratch.migrate_to(&options.source, base)?;
        interrupt::check()?;
        progress(Progress::Filling {
            sizes: options.sizes,
        });
        scratch.fill(options.sizes, cancel)?;
        interrupt::check()?;
        scratch.keep_as_template(template);
        interrupt::check()?;
    }
    let copy = Sizes::from_catalog(&mut db::connect(&scratch.url)?)?;
    let clock = Instant::now();
    let sampler = if options.sample {
        Some(Sampler::start(&scratch.url, clock)?)
    } else {
        None
    };
    let clients = match Clients::start(
        &scratch.url,
        options.clients,
        options.request_interval,
        clock,
    ) {
        Ok(clients) => clients,
        Err(e) => {
            sampler.map(Sampler::stop);
            return Err(e);
        }
    };
    progress(Progress::Baseline);
    let baseline_from = clock.elapsed();
    let steps = run_steps(scratch, rehearsed, options, progress, clock);
    let requests = clients.stop();
    let samples = sampler.map(Sampler::stop).unwrap_or_default();
    let (runs, not_rehearsed) = steps?;
    interrupt::check()?;
    let mut report = judge(
        runs,
        not_rehearsed,
        &requests,
        &samples,
        baseline_from,
        rehearsed,
        options,
        clock.elapsed(),
    );
    report.copy = Some(copy);
    Ok(report)
}

/// What the runner saw of one step.
struct StepRun {
    migration: String,
    started: Duration,
    finished: Duration,
    ended: Duration,
    error: Option<String>,
    changes: sampler::Changes,
    wal_bytes: i64,
}

fn run_steps(
    scratch: &scratch::Scratch,
    rehearsed: &[LocalMigration],
    options: &RehearseOptions,
    progress: &mut dyn FnMut(Progress<'_>),
    clock: Instant,
) -> Result<(Vec<StepRun>, Vec<String>)> {
    let mut observer = db::connect(&scratch.url)?;
    std::thread::sleep(options.baseline);
    let mut migrator = migrate::Migrator::new(scratch.url.clone())
        .with_source(options.source.clone())
        .with_options(MigrateOptions {
            max_replica_lag: migrate::replicas::LagBound::OFF,
            // Rehearsing is how to find out what lint fears: run it.
            unsafe_threshold: u64::MAX,
            ..options.migrate.clone()
        });
    let mut runs = Vec::new();
    let mut not_rehearsed = Vec::new();
    for (i, m) in rehearsed.iter().enumerate() {
        interrupt::check()?;
        let before = sampler::snapshot(&mut observer)?;
        progress(Progress::Step {
            migration: m.dir_name(),
        });
        let started = clock.elapsed();
        let outcome = migrator.migrate(Some(m.dir_name()));
        let finished = clock.elapsed();
        if interrupt::received().is_some() {
            return Err(Error::interrupted_leaving("the rehearsal was cut short"));
        }
        std::thread::sleep(options.settle);
        let after = sampler::snapshot(&mut observer)?;
        let wal_bytes = sampler::wal_since(&mut observer, &before.wal_lsn)?;
        let failed = outcome.is_err();
        runs.push(StepRun {
            migration: m.dir_name().to_string(),
            started,
            finished,
            ended: clock.elapsed(),
            error: outcome
                .err()
                .map(|e| db::one_line(&scratch.url.scrub(&e.to_string()))),
            changes: sampler::compare(&before, &after),
            wal_bytes,
        });
        if failed {
            not_rehearsed = rehearsed[i + 1..]
                .iter()
                .map(|m| m.dir_name().to_string())
                .collect();
            break;
        }
    }
    Ok((runs, not_rehearsed))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile (0..=1) of `values`, 0 when empty.
fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64) * q).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Locks the migration held, as spans (consecutive samples joined).
fn lock_spans(samples: &[Sample]) -> Vec<LockSpan> {
    let mut open: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    let mut spans = Vec::new();
    for (i, sample) in samples.iter().enumerate() {
        let at = ms(sample.at);
        let until = samples
            .get(i + 1)
            .map(|s| ms(s.at))
            .unwrap_or(at + ms(sampler::SAMPLE_INTERVAL));
        let held: BTreeSet<(String, String)> = sample
            .locks
            .iter()
            .filter(|l| l.migration && l.granted)
            .map(|l| (l.relation.clone(), l.mode.clone()))
            .collect();
        let gone: Vec<(String, String)> = open
            .keys()
            .filter(|k| !held.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some((from, to)) = open.remove(&key) {
                spans.push(LockSpan {
                    relation: key.0,
                    mode: key.1,
                    from_ms: from,
                    to_ms: to,
                });
            }
        }
        for key in held {
            open.entry(key).or_insert((at, until)).1 = until;
        }
    }
    for ((relation, mode), (from, to)) in open {
        spans.push(LockSpan {
            relation,
            mode,
            from_ms: from,
            to_ms: to,
        });
    }
    spans.sort_by(|a, b| a.from_ms.total_cmp(&b.from_ms));
    spans
}

#[allow(clippy::too_many_arguments)]
fn judge(
    runs: Vec<StepRun>,
    not_rehearsed: Vec<String>,
    requests: &[Request],
    samples: &[Sample],
    baseline_from: Duration,
    rehearsed: &[LocalMigration],
    options: &RehearseOptions,
    end: Duration,
) -> Report {
    let spans = lock_spans(samples);
    let first_step = runs.first().map(|r| r.started).unwrap_or(end);
    let in_window = |r: &&Request, from: Duration, to: Duration| r.at >= from && r.at < to;
    let mut baseline: Vec<f64> = requests
        .iter()
        .filter(|r| in_window(r, baseline_from, first_step) && r.error.is_none())
        .map(|r| ms(r.latency))
        .collect();
    let baseline_requests = baseline.len();
    let baseline_p99 = quantile(&mut baseline, 0.99);
    let mut seen_errors: BTreeSet<String> = requests
        .iter()
        .filter(|r| r.at < first_step)
        .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.op)))
        .collect();
    let lint_findings = lint::preflight::findings_of(&options.source, rehearsed);
    let mut steps = Vec::new();
    for run in runs {
        let (from, to) = (run.started, run.ended);
        let window: Vec<&Request> = requests.iter().filter(|r| in_window(r, from, to)).collect();
        let mut latencies: Vec<f64> = window.iter().map(|r| ms(r.latency)).collect();
        let new_errors: Vec<String> = window
            .iter()
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.op)))
            .filter(|e| !seen_errors.contains(e))
            .collect();
        let client_errors = window.iter().filter(|r| r.error.is_some()).count() as u64;
        let client_error = new_errors.first().cloned();
        seen_errors.extend(new_errors.iter().cloned());
        // Locks and waits.
        let mut held: BTreeMap<(String, String), f64> = BTreeMap::new();
        for span in &spans {
            let overlap = span.to_ms.min(ms(to)) - span.from_ms.max(ms(from));
            if overlap > 0.0 {
                *held
                    .entry((span.relation.clone(), span.mode.clone()))
                    .or_default() += overlap;
            }
        }
        let step_spans: Vec<LockSpan> = spans
            .iter()
            .filter(|sp| sp.to_ms > ms(from) && sp.from_ms < ms(to))
            .map(|sp| LockSpan {
                from_ms: sp.from_ms.max(ms(from)),
                to_ms: sp.to_ms.min(ms(to)),
                ..sp.clone()
            })
            .collect();
        let mut waits: BTreeMap<(String, String, &'static str), f64> = BTreeMap::new();
        for sample in samples.iter().filter(|s| s.at >= from && s.at < to) {
            for l in sample.locks.iter().filter(|l| !l.migration && !l.granted) {
                let by = if l.blocked_by_migration {
                    "migration"
                } else {
                    "other"
                };
                let w = waits
                    .entry((l.relation.clone(), l.mode.clone(), by))
                    .or_default();
                *w = w.max(l.waited_ms);
            }
        }
        let max_wait = waits.values().copied().fold(0.0, f64::max);
        let mut verdict = Vec::new();
        if max_wait > ms(options.stall_limit) {
            verdict.push(Verdict::Blocks);
        }
        if !run.changes.rewrites.is_empty() {
            verdict.push(Verdict::Rewrites);
        }
        if client_error.is_some() {
            verdict.push(Verdict::BreaksClients);
        }
        if run.changes.rows_lost > 0 {
            verdict.push(Verdict::LosesData);
        }
        if run.error.is_some() {
            verdict.push(Verdict::Fails);
        }
        if verdict.is_empty() {
            verdict.push(Verdict::Safe);
        }
        let lint_rules: Vec<String> = lint_findings
            .iter()
            .filter(|f| f.migration == run.migration && predicts_harm(f) && !f.allowed)
            .map(|f| f.rule.name().to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let lint_safe = lint_rules.is_empty();
        let safe = verdict == [Verdict::Safe];
        steps.push(StepReport {
            migration: run.migration,
            lint: if lint_safe { "safe" } else { "unsafe" },
            lint_rules,
            disagrees: lint_safe != safe,
            verdict,
            duration_ms: ms(run.finished - run.started),
            max_client_wait_ms: max_wait,
            locks: held
                .into_iter()
                .map(|((relation, mode), held_ms)| LockHeld {
                    relation,
                    mode,
                    held_ms,
                })
                .collect(),
            lock_spans: step_spans,
            client_waits: waits
                .into_iter()
                .map(|((relation, mode, blocked_by), waited_ms)| ClientWait {
                    relation,
                    mode,
                    blocked_by,
                    waited_ms,
                })
                .collect(),
            rewrites: run.changes.rewrites,
            client_errors,
            client_error,
            rows_lost: run.changes.rows_lost,
            lost: run.changes.lost,
            wal_bytes: run.wal_bytes,
            p50_ms: quantile(&mut latencies, 0.5),
            p99_ms: quantile(&mut latencies, 0.99),
            max_ms: latencies.last().copied().unwrap_or(0.0),
            baseline_p99_ms: baseline_p99,
            error: run.error,
            started_ms: ms(from),
            ended_ms: ms(to),
        });
    }
    Report {
        exceeded: steps.iter().any(|s| !s.is_safe()),
        steps,
        not_rehearsed,
        sizes: options.sizes,
        copy: None,
        clients: options.clients,
        stall_limit_ms: ms(options.stall_limit),
        reused_copy: false,
        baseline_requests,
        baseline_p99_ms: baseline_p99,
        timeline: Timeline {
            spans,
            requests: requests.to_vec(),
            end_ms: ms(end),
        },
    }
}

/// A finding that says the step will hurt the app: an error, or a
/// warning about something a rehearsal sees happen (the app's prepared
/// queries failing after a type change). Other warnings (a missing
/// `down.sql`, a statement lint cannot see into) predict nothing.
fn predicts_harm(f: &lint::Finding) -> bool {
    f.level == Level::Error || f.rule == lint::Rule::ColumnTypeBreaksCachedPlans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), 50.0);
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut [], 0.99), 0.0);
    }

    #[test]
    fn consecutive_samples_make_one_span() {
        let row = |mode: &str| sampler::LockRow {
            pid: 1,
            migration: true,
            relation: "tasks".into(),
            mode: mode.into(),
            granted: true,
            waited_ms: 0.0,
            blocked_by_migration: false,
        };
        let sample = |at: u64, locks: Vec<sampler::LockRow>| Sample {
            at: Duration::from_millis(at),
            locks,
        };
        let spans = lock_spans(&[
            sample(0, vec![]),
            sample(10, vec![row("ShareLock")]),
            sample(20, vec![row("ShareLock")]),
            sample(30, vec![]),
            sample(40, vec![row("AccessExclusiveLock")]),
        ]);
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].from_ms, spans[0].to_ms), (10.0, 30.0));
        assert_eq!(spans[1].mode, "AccessExclusiveLock");
    }
}
