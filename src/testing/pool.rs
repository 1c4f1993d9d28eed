//! The PostgreSQL databases of one test process: ready ones handed to
//! tests, used ones reset for the next test by background workers, and
//! the drops, batched behind the tests and at exit.
//!
//! A test claims a ready database, or waits for one a worker is about to
//! finish, or else clones its own on an admin connection of its own; no
//! step waits for another test's. A used database goes back to a worker
//! at once (the test's thread does nothing more), which resets it (see
//! `reset`) and makes it ready again, so a process clones about as many
//! databases as it runs tests at once, and drops them (forcing a
//! checkpoint, shared by drops at the same moment) in one batch at exit,
//! without waiting for the server to finish them.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use super::owner::database_name;
use super::reset::{self, Profile};
use super::server::{connect_admin, drop_databases, rename_unused, send_drops, with_admin};
use super::template;
use super::warm;
use crate::db::DatabaseUrl;
use crate::error::Result;

/// Databases waiting to be dropped before they are dropped in one batch
/// (each drop forces a checkpoint; drops at the same moment share one).
const DROP_BATCH: usize = 8;
/// Background workers at most (clones and resets); each holds a
/// connection while it works.
const MAX_WORKERS: usize = 6;
/// Clones running at once at most. Clones at the same time slow each
/// other down (each writes the whole template to the WAL): eight at once
/// took 3–5 s each on two cores, where one takes 0.1–0.4 s, so tests get
/// their databases sooner one or two at a time.
const MAX_CLONES: usize = 2;

enum Job {
    /// Make this used database ready again.
    Reset(String),
    /// Clone one more ready database.
    Clone,
}

/// What a reset must know about a fresh clone, read from this process's
/// first one.
enum Known {
    NotRead,
    /// Being read (resets wait for it).
    Reading,
    Read(Profile),
    /// Unreadable: used databases are dropped, not reset.
    Failed,
}

struct State {
    server: Option<DatabaseUrl>,
    /// Ready for a test: migrated and unused.
    ready: Vec<String>,
    /// Jobs queued or running, each to end with one more ready database
    /// (or none, if it fails).
    coming: usize,
    /// Tests waiting for one of those.
    waiting: usize,
    jobs: VecDeque<Job>,
    workers: usize,
    /// Workers in the middle of a job.
    busy: usize,
    /// To drop in the next batch.
    doomed: Vec<String>,
    /// A batch of drops is running.
    dropping: bool,
    /// The leftover sweep is running.
    sweeping: bool,
    /// Every database this process made and has neither dropped nor kept:
    /// what exit drops.
    owned: Vec<String>,
    /// Migrated databases tests have claimed so far.
    claimed: usize,
    /// Ready databases wanted ahead of the tests.
    spares: usize,
    /// Clones running in workers.
    cloning: usize,
    /// The last clone a worker tried failed.
    clone_failed: bool,
    /// The process is exiting: nothing new starts.
    closed: bool,
    profile: Known,
    /// The template this process clones (what its databases are left
    /// warm for at exit).
    template: Option<String>,
    /// Databases left per template at exit, at most (0: none left, none
    /// taken).
    warm: usize,
    /// Databases earlier processes left are being taken: claims wait for
    /// them instead of cloning.
    warming: bool,
    /// None were left the last time they were looked for: tests that
    /// wait get clones.
    warm_gone: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    server: None,
    ready: Vec::new(),
    coming: 0,
    waiting: 0,
    jobs: VecDeque::new(),
    workers: 0,
    busy: 0,
    doomed: Vec::new(),
    dropping: false,
    sweeping: false,
    owned: Vec::new(),
    claimed: 0,
    spares: 0,
    cloning: 0,
    clone_failed: false,
    closed: false,
    profile: Known::NotRead,
    template: None,
    warm: 0,
    warming: false,
    warm_gone: false,
});

/// Notified when a database becomes ready, a job ends, or the profile is
/// read.
static CHANGED: Condvar = Condvar::new();
/// Notified when a job is queued, or the process exits.
static JOBS: Condvar = Condvar::new();

impl State {
    /// No longer this process's to drop.
    fn forget(&mut self, name: &str) {
        self.owned.retain(|owned| owned != name);
    }
}

fn state() -> MutexGuard<'static, State> {
    STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn wait(
    state: MutexGuard<'static, State>,
    on: &Condvar,
    at_most: Duration,
) -> MutexGuard<'static, State> {
    on.wait_timeout(state, at_most)
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .0
}

/// A migrated database for a test: a ready one, or the first a worker
/// makes ready (a reset, or a clone this claim queued). The first claim of
/// the process takes `first_take` of the databases earlier processes left
/// for `template` (as many as it runs tests at once: a process per test
/// takes two, not every one another process beside it would want), and a
/// test that would wait takes more before anything is cloned; at exit up
/// to `warm` are left (see `warm`). `spares` ready
/// databases are kept ahead once the process has used more than one (a
/// test binary of one test would only clone and drop spares for nothing);
/// with `spares` 0 the test clones its own, and used databases are
/// dropped instead of reset.
pub(super) fn claim(
    server: &DatabaseUrl,
    template: &str,
    spares: usize,
    warm: usize,
    first_take: usize,
) -> Result<String> {
    at_exit_once(server);
    if spares == 0 {
        return clone(server);
    }
    let claimed = {
        let mut state = state();
        state.claimed += 1;
        state.spares = spares;
        state.waiting += 1;
        // The first claim: what earlier processes left is looked for.
        if state.template.is_none() {
            state.template = Some(template.to_string());
            state.warm = warm;
            if warm > 0 {
                state = take_left(state, server, template, first_take.clamp(1, warm));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut grown = false;
        let claimed = loop {
            if let Some(name) = state.ready.pop() {
                break Some(name);
            }
            if state.warming {
                state = wait(state, &CHANGED, Duration::from_millis(100));
                continue;
            }
            // Left by earlier processes, one rename away: better than
            // waiting for a clone, or for a reset (which takes longer).
            if state.warm > 0 && !state.warm_gone && !state.closed {
                let wanted = state.waiting.saturating_sub(state.coming).max(1);
                state = take_left(state, server, template, wanted);
                continue;
            }
            // This test waits: one more database for the process (and
            // the next of this template), even if a reset serves this
            // test first, while it has fewer than it may leave warm.
            let clones = state
                .jobs
                .iter()
                .filter(|job| matches!(job, Job::Clone))
                .count();
            if !grown && !state.closed && state.owned.len() + clones < state.warm {
                grown = true;
                state.coming += 1;
                state.jobs.push_back(Job::Clone);
            }
            // A job coming for every waiting test.
            while state.coming < state.waiting && !state.closed {
                state.coming += 1;
                state.jobs.push_back(Job::Clone);
            }
            start_worker(&mut state);
            let left = deadline.saturating_duration_since(Instant::now());
            // No worker, or their clones fail: the test clones its own
            // (and reports the error, if it persists).
            if state.workers == 0 || state.clone_failed || left.is_zero() {
                break None;
            }
            state = wait(state, &CHANGED, left);
        };
        state.waiting -= 1;
        top_up(&mut state, spares);
        claimed
    };
    match claimed {
        Some(name) => Ok(name),
        None => {
            let name = clone(server)?;
            read_profile_once(server, &name);
            Ok(name)
        }
    }
}

/// Takes up to `at_most` of the databases earlier processes left for
/// `template` (the lock is let go meanwhile; claims wait for it) and puts
/// them to use; none found marks them gone.
fn take_left(
    mut state: MutexGuard<'static, State>,
    server: &DatabaseUrl,
    template: &str,
    at_most: usize,
) -> MutexGuard<'static, State> {
    state.warming = true;
    drop(state);
    let taken = warm::take(server, template, at_most, |name| {
        self::state().owned.push(name.to_string())
    });
    let mut state = self::state();
    state.warming = false;
    match taken {
        Ok(taken) if !(taken.clean.is_empty() && taken.dirty.is_empty()) => {
            take_warm(&mut state, server, taken)
        }
        _ => state.warm_gone = true,
    }
    CHANGED.notify_all();
    state
}

/// Puts the databases taken from earlier processes to use: the ready ones
/// ready, the others queued for their reset. Resets need the profile of a
/// fresh clone: if it is not read yet, it is read from one ready database
/// (as good as a fresh clone) on a thread of its own, which no test gets
/// until then.
fn take_warm(state: &mut MutexGuard<'static, State>, server: &DatabaseUrl, taken: warm::Taken) {
    let mut clean = taken.clean;
    if matches!(state.profile, Known::NotRead) && clean.len() >= 2 {
        if let Some(probe) = clean.pop() {
            state.profile = Known::Reading;
            let server = server.clone();
            let spawned = std::thread::Builder::new()
                .name("taskdb-test-profile".into())
                .spawn(move || {
                    let profile = server
                        .with_database(&probe)
                        .and_then(|url| reset::profile(&url));
                    let mut state = self::state();
                    match profile {
                        Ok(profile) => {
                            state.profile = Known::Read(profile);
                            state.ready.push(probe);
                        }
                        Err(_) => {
                            state.profile = Known::Failed;
                            doom(&mut state, probe);
                        }
                    }
                    CHANGED.notify_all();
                });
            if spawned.is_err() {
                state.profile = Known::NotRead;
            }
        }
    }
    state.ready.extend(clean);
    for name in taken.dirty {
        if matches!(state.profile, Known::Read(_) | Known::Reading) {
            state.coming += 1;
            state.jobs.push_back(Job::Reset(name));
            start_worker(state);
        } else {
            doom(state, name);
        }
    }
}

/// A database with no tables at all.
pub(super) fn create_empty(server: &DatabaseUrl) -> Result<String> {
    at_exit_once(server);
    let name = database_name(server)?;
    self::state().owned.push(name.clone());
    match with_admin(server, |admin| {
        super::server::create_database(admin, &name, None)
    }) {
        Ok(()) => Ok(name),
        Err(e) => {
            self::state().forget(&name);
            Err(e)
        }
    }
}

/// Clones the template into a new database of this process.
fn clone(server: &DatabaseUrl) -> Result<String> {
    let name = database_name(server)?;
    // Owned before it exists: an exit meanwhile drops it all the same.
    self::state().owned.push(name.clone());
    match with_admin(server, |admin| template::clone_into(server, admin, &name)) {
        Ok(()) => Ok(name),
        Err(e) => {
            self::state().forget(&name);
            Err(e)
        }
    }
}

/// Reads the profile from `name`, a fresh clone, if no one has yet.
fn read_profile_once(server: &DatabaseUrl, name: &str) {
    {
        let mut state = state();
        if !matches!(state.profile, Known::NotRead) {
            return;
        }
        // Taken: others go on without it.
        state.profile = Known::Reading;
    }
    let profile = server
        .with_database(name)
        .and_then(|url| reset::profile(&url));
    let mut state = state();
    state.profile = match profile {
        Ok(profile) => Known::Read(profile),
        Err(_) => Known::Failed,
    };
    CHANGED.notify_all();
}

/// Queues clones until the ready databases and those coming reach the
/// stock wanted.
fn top_up(state: &mut State, spares: usize) {
    let target = spares.min(state.claimed.saturating_sub(1));
    while !state.closed && state.ready.len() + state.coming < target {
        state.coming += 1;
        state.jobs.push_back(Job::Clone);
        start_worker(state);
    }
}

/// Takes back a database a test is done with: reset for the next test if
/// it was `migrated` and spares are on, dropped (in a batch) otherwise.
pub(super) fn give_back(name: String, migrated: bool, spares: usize) {
    let mut state = state();
    let resettable = matches!(state.profile, Known::Read(_) | Known::Reading);
    if migrated && spares > 0 && resettable && !state.closed {
        state.coming += 1;
        // Before any clone: a reset ends sooner.
        state.jobs.push_front(Job::Reset(name));
        start_worker(&mut state);
    } else {
        doom(&mut state, name);
    }
}

/// Keeps database `name` for inspection: renamed to `taskdb_kept_…` (a
/// name no sweep touches) and no longer this process's. Returns its name.
pub(super) fn keep(server: &DatabaseUrl, name: &str) -> String {
    let kept = format!(
        "taskdb_kept_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let renamed = with_admin(server, |admin| rename_unused(admin, name, &kept)).is_ok();
    self::state().forget(name);
    if renamed {
        kept
    } else {
        name.to_string()
    }
}

fn doom(state: &mut State, name: String) {
    state.doomed.push(name);
    if state.doomed.len() >= DROP_BATCH && !state.dropping && !state.closed {
        if let Some(server) = state.server.clone() {
            let batch = std::mem::take(&mut state.doomed);
            state.dropping = true;
            let spawned = std::thread::Builder::new()
                .name("taskdb-test-drops".into())
                .spawn(move || {
                    drop_databases(&server, &batch);
                    let mut state = self::state();
                    for name in &batch {
                        state.forget(name);
                    }
                    state.dropping = false;
                    CHANGED.notify_all();
                });
            if spawned.is_err() {
                state.dropping = false;
            }
        }
    }
}

fn start_worker(state: &mut State) {
    let idle = state.workers - state.busy;
    if idle >= state.jobs.len() || state.workers >= MAX_WORKERS {
        JOBS.notify_one();
        return;
    }
    let Some(server) = state.server.clone() else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("taskdb-test-worker".into())
        .spawn(move || work(&server));
    if spawned.is_ok() {
        state.workers += 1;
    }
}

/// A worker: runs jobs until the process exits.
fn work(server: &DatabaseUrl) {
    let mut admin = None;
    let mut state = state();
    loop {
        if state.closed {
            state.workers -= 1;
            CHANGED.notify_all();
            return;
        }
        let at_clone_limit = state.cloning >= MAX_CLONES;
        let next = state
            .jobs
            .iter()
            .position(|job| matches!(job, Job::Reset(_)) || !at_clone_limit);
        let Some(job) = next.and_then(|at| state.jobs.remove(at)) else {
            state = wait(state, &JOBS, Duration::from_secs(1));
            continue;
        };
        if matches!(job, Job::Clone) {
            // Not needed any more: a reset served the test that asked.
            // Unless databases are left warm and the process has fewer than
            // it may leave: a test waited, so the next process of this
            // template would wait too with no more than this one had.
            let wanted = state.waiting + state.spares.min(state.claimed.saturating_sub(1));
            let growing = state.owned.len() < state.warm;
            if state.ready.len() + state.coming > wanted && !growing {
                state.coming -= 1;
                continue;
            }
            state.cloning += 1;
        }
        if matches!(job, Job::Reset(_)) {
            // The profile is read on another thread; it ends.
            while matches!(state.profile, Known::Reading) && !state.closed {
                state = wait(state, &CHANGED, Duration::from_millis(100));
            }
            if state.closed {
                // Left for the exit, which leaves it to the next process.
                state.jobs.push_front(job);
                continue;
            }
        }
        state.busy += 1;
        let profile = match &state.profile {
            Known::Read(profile) => Some(profile.clone()),
            _ => None,
        };
        drop(state);
        let is_clone = matches!(job, Job::Clone);
        let outcome = match job {
            Job::Reset(name) => {
                let reset = profile.is_some_and(|profile| {
                    server
                        .with_database(&name)
                        .and_then(|url| reset::reset(&url, &name, &profile))
                        .unwrap_or(false)
                });
                if reset {
                    Ok(name)
                } else {
                    Err(Some(name))
                }
            }
            Job::Clone => {
                if admin.is_none() {
                    admin = connect_admin(server).ok();
                }
                match database_name(server) {
                    Ok(name) => {
                        self::state().owned.push(name.clone());
                        let cloned = match admin.as_mut() {
                            Some(admin) => template::clone_into(server, admin, &name),
                            None => with_admin(server, |admin| {
                                template::clone_into(server, admin, &name)
                            }),
                        };
                        match cloned {
                            Ok(()) => {
                                read_profile_once(server, &name);
                                Ok(name)
                            }
                            Err(_) => {
                                admin = None;
                                self::state().forget(&name);
                                Err(None)
                            }
                        }
                    }
                    Err(_) => Err(None),
                }
            }
        };
        state = self::state();
        state.busy -= 1;
        state.coming -= 1;
        if is_clone {
            state.cloning -= 1;
            state.clone_failed = outcome.is_err();
            JOBS.notify_all();
        }
        match outcome {
            Ok(name) => state.ready.push(name),
            Err(Some(name)) => doom(&mut state, name),
            Err(None) => {}
        }
        CHANGED.notify_all();
    }
}

pub(super) fn sweep_started() {
    state().sweeping = true;
}

pub(super) fn sweep_done() {
    state().sweeping = false;
    CHANGED.notify_all();
}

/// Registers, once, the drop of every database this process still owns
/// when it exits (libtest's `main` returns or calls `process::exit`; both
/// run C `atexit` handlers): the ready ones, the ones waiting for a drop,
/// any a test still holds. The drops are sent, not waited for: the server
/// finishes them (and their checkpoint) after the process has gone. A
/// process killed before that leaves them to the next run's sweep.
fn at_exit_once(server: &DatabaseUrl) {
    static REGISTERED: Once = Once::new();
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
    }
    extern "C" fn at_exit() {
        // A panic must not unwind into C.
        let _ = std::panic::catch_unwind(|| {
            let mut state = state();
            state.closed = true;
            JOBS.notify_all();
            // Let the workers, the sweep and a batch of drops finish what
            // they are in: killed half-way, the server would still
            // complete it.
            let deadline = Instant::now() + Duration::from_secs(30);
            while (state.busy > 0 || state.sweeping || state.dropping) && Instant::now() < deadline
            {
                state = wait(state, &CHANGED, Duration::from_millis(50));
            }
            let mut names = std::mem::take(&mut state.owned);
            let clean = std::mem::take(&mut state.ready);
            let dirty: Vec<String> = std::mem::take(&mut state.jobs)
                .into_iter()
                .filter_map(|job| match job {
                    Job::Reset(name) => Some(name),
                    Job::Clone => None,
                })
                .collect();
            state.doomed.clear();
            let Some(server) = state.server.clone() else {
                return;
            };
            let template = state.template.clone();
            let warm = state.warm;
            drop(state);
            // What the next process of this template takes instead of
            // cloning; the rest is dropped.
            if let Some(template) = template {
                let left = warm::leave(&server, &template, &clean, &dirty, warm);
                names.retain(|name| !left.contains(name));
            }
            send_drops(&server, &names);
        });
    }
    REGISTERED.call_once(|| {
        state().server = Some(server.clone());
        // SAFETY: atexit only records the pointer of a function that takes
        // nothing and catches its own panics.
        unsafe {
            atexit(at_exit);
        }
    });
}
