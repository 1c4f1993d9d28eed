//! Leftovers on the server, cleared once per test process in the
//! background (never on a test's time): test databases whose process is
//! provably gone (its owner lock is free), templates half-built by a run
//! that failed or was killed, templates of other migrations
//! beyond the ones kept, and databases left warm for templates that are
//! gone or beyond the bound.

use std::sync::Once;

use super::owner::{live_owners, owner_of, DATABASE_PREFIX};
use super::server::{connect_admin, database_names, drop_databases};
use super::template;
use super::warm;
use crate::db::DatabaseUrl;

/// Starts the sweep, once per process, on a thread of its own (waited for
/// at exit, so a sweep is never cut off half-way).
pub(super) fn start_once(
    server: &DatabaseUrl,
    template: Option<&str>,
    keep_templates: usize,
    warm: usize,
) {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let server = server.clone();
        let template = template.map(str::to_string);
        super::pool::sweep_started();
        let spawned = std::thread::Builder::new()
            .name("taskdb-test-sweep".into())
            .spawn(move || {
                sweep(&server, template.as_deref(), keep_templates, warm);
                super::pool::sweep_done();
            });
        if spawned.is_err() {
            super::pool::sweep_done();
        }
    });
}

/// Drops the databases of test processes that are gone, then evicts
/// templates other than `template` (the one this process uses), then the
/// databases left warm for templates that are gone or beyond `warm` per
/// template (`0`: this process leaves none, and trims no one else's).
/// Errors end it quietly: the next process sweeps again.
fn sweep(server: &DatabaseUrl, template: Option<&str>, keep_templates: usize, warm: usize) {
    let Ok(mut admin) = connect_admin(server) else {
        return;
    };
    // The names first, then the locks: a database listed here was made
    // under a lock taken before it, so the lock shows if its process
    // still runs.
    let Ok(names) = database_names(&mut admin, &format!("{DATABASE_PREFIX}%")) else {
        return;
    };
    let Ok(live) = live_owners(&mut admin) else {
        return;
    };
    let dead: Vec<String> = names
        .into_iter()
        .filter(|name| owner_of(name).is_some_and(|owner| !live.contains(&owner)))
        .collect();
    drop_databases(server, &dead);
    let _ = template::drop_abandoned_builds(&mut admin);
    if let Some(template) = template {
        template::stamp(&mut admin, template);
        let _ = template::evict(&mut admin, template, keep_templates);
    }
    let bound = if warm == 0 { usize::MAX } else { warm };
    let _ = warm::sweep(server, &mut admin, bound);
}
