//! The migrated PostgreSQL template every test database is cloned from,
//! named after the migrations (`taskdb_tpl_<hash>`) and built once across
//! test processes. Templates of different migrations (two checkouts, two
//! branches) live side by side on one server: each process using one holds
//! a shared advisory lock on it for its life, and unused ones beyond
//! [`TEMPLATES_VARIABLE`](super::TEMPLATES_VARIABLE) are dropped, least
//! recently used first.

use std::sync::Mutex;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::owner;
use super::server::{
    create_database, database_exists, database_names, drop_database, try_advisory_lock, with_admin,
};
use crate::db::{Backend, DatabaseUrl, DbConnection};
use crate::error::Result;
use crate::migrate;

/// Advisory lock key under which templates are built ("tdbtpl").
const BUILD_LOCK: i64 = 0x7464_6274_706c;

/// `taskdb_tpl_<hash>` over each of `backend`'s migrations (its directory
/// name and its `up.sql` checksum: the name too, so a migration renamed to
/// another version gets a template of its own) and over the shape of
/// taskdb's own tracking tables.
pub(super) fn template_key(backend: Backend) -> String {
    let mut all: String = migrate::migrations(backend)
        .iter()
        .map(|m| format!("{} {}\n", m.dir_name(), m.checksum()))
        .collect();
    all.push_str(crate::migrate::ledger::TRACKING_TABLES);
    format!("{PREFIX}{}", &crate::source::checksum(&all)[..12])
}

const PREFIX: &str = "taskdb_tpl_";

/// The advisory lock a process holds, shared, on each template it uses:
/// ([`TEMPLATE_LOCK_CLASS`](super::TEMPLATE_LOCK_CLASS), a key derived
/// from the template's name). A template is dropped only under the same
/// lock taken exclusively.
pub fn template_lock_key(template: &str) -> (i32, i32) {
    let hash = crate::source::checksum(template);
    let key = i32::from_str_radix(&hash[..7], 16).unwrap_or(0);
    (super::TEMPLATE_LOCK_CLASS, key)
}

static TEMPLATE: Mutex<Option<String>> = Mutex::new(None);

/// The migrated template's name, marked in use by this process (its
/// shared lock taken), without looking for it: what a test needs to take
/// the databases left warm for it, which are clones of it already. Clones
/// call [`ensure`].
pub(super) fn hold(server: &DatabaseUrl) -> Result<String> {
    static HELD: Mutex<Option<String>> = Mutex::new(None);
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(name) = held.as_ref() {
        return Ok(name.clone());
    }
    let name = template_key(Backend::Postgres);
    // In use before it is looked for: an eviction either finished before
    // (and it is built again) or waits until this process exits.
    let (class, key) = template_lock_key(&name);
    owner::hold_shared(server, class, key)?;
    *held = Some(name.clone());
    Ok(name)
}

/// The migrated template's name: marked in use by this process, and built
/// if no process has built it yet.
pub(super) fn ensure(server: &DatabaseUrl) -> Result<String> {
    if let Some(name) = TEMPLATE.lock().ok().and_then(|t| t.clone()) {
        return Ok(name);
    }
    // One thread looks for it (and builds it); the process's other first
    // tests wait for that one instead of each opening an admin connection
    // and queueing on the build lock.
    static LOOKING: Mutex<()> = Mutex::new(());
    let _looking = LOOKING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(name) = TEMPLATE.lock().ok().and_then(|t| t.clone()) {
        return Ok(name);
    }
    let name = hold(server)?;
    with_admin(server, |admin| build(server, admin, &name))?;
    if let Ok(mut t) = TEMPLATE.lock() {
        *t = Some(name.clone());
    }
    Ok(name)
}

/// Forgets the template, so the next [`ensure`] looks for it again.
pub(super) fn forget() {
    if let Ok(mut t) = TEMPLATE.lock() {
        *t = None;
    }
}

/// Clones the template into `name`, building the template again if it
/// vanished meanwhile (dropped by hand, or by an eviction while this
/// process had lost its lock).
pub(super) fn clone_into(server: &DatabaseUrl, admin: &mut DbConnection, name: &str) -> Result<()> {
    let template = ensure(server)?;
    match create_database(admin, name, Some(&template)) {
        // Asked, not read from the message: its words are the server's
        // lc_messages.
        Err(_) if !database_exists(admin, &template)? => {
            forget();
            let template = ensure(server)?;
            create_database(admin, name, Some(&template))
        }
        other => other,
    }
}

/// Makes sure the template `name` exists, building it under the advisory
/// build lock if no process has (and then records that it was used now).
pub(super) fn build(server: &DatabaseUrl, admin: &mut DbConnection, name: &str) -> Result<()> {
    // Built (only ever renamed into place once migrated): nothing to wait
    // for; the sweep records the use, off the tests' time.
    if database_exists(admin, name)? {
        return Ok(());
    }
    admin.batch_execute(&format!("SELECT pg_advisory_lock({BUILD_LOCK})"))?;
    let built = (|| -> Result<()> {
        // Templates are built under this lock only: one still being built
        // is a run's that failed or was killed.
        for left in database_names(admin, &format!("{PREFIX}%_build"))? {
            drop_database(admin, &left);
        }
        if !database_exists(admin, name)? {
            let building = format!("{name}_build");
            // One statement each: several in one go run as one transaction,
            // where neither may run.
            admin.batch_execute(&format!("CREATE DATABASE {building}"))?;
            let url = server.with_database(&building)?;
            let migrated = refuse_citus(&url)
                .and_then(|()| migrate::run_pending(&url).map(drop))
                .and_then(|()| {
                    Ok(admin
                        .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))?)
                });
            if let Err(e) = migrated {
                drop_database(admin, &building);
                return Err(e);
            }
        }
        stamp(admin, name);
        Ok(())
    })();
    admin.batch_execute(&format!("SELECT pg_advisory_unlock({BUILD_LOCK})"))?;
    built
}

/// Refuses a server whose new databases come with the Citus extension (its
/// `template1` has it): every test database is a clone of the template,
/// and a clone of a Citus database keeps the metadata of shards it does
/// not own. A Citus coordinator whose `template1` is plain works as any
/// server: its test databases are plain ones.
fn refuse_citus(url: &DatabaseUrl) -> Result<()> {
    let mut conn = crate::db::connect(url)?;
    let row: super::server::Any = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') AS any",
    )
    .get_result(&mut conn)?;
    if row.any {
        return Err(crate::Error::InvalidInput(format!(
            "taskdb::testing cannot use this server: its new databases come with the citus \
             extension (template1 has it), and each test database is a clone, which would \
             keep Citus metadata of shards it does not own; point {} at a plain PostgreSQL \
             server, or a coordinator whose template1 has no citus extension",
            super::SERVER_VARIABLE
        )));
    }
    Ok(())
}

/// Drops templates left half-built by a run that failed or was killed:
/// templates are built under the build lock only, so one named `…_build`
/// once the lock is had is no one's. Waits for a build under way (in the
/// background sweep, at most 10 s).
pub(super) fn drop_abandoned_builds(admin: &mut DbConnection) -> Result<()> {
    let locked = admin.batch_execute(&format!(
        "SET lock_timeout = '10s'; SELECT pg_advisory_lock({BUILD_LOCK}); RESET lock_timeout"
    ));
    if locked.is_err() {
        let _ = admin.batch_execute("RESET lock_timeout");
        return Ok(());
    }
    let dropped = database_names(admin, &format!("{PREFIX}%_build")).map(|left| {
        for name in left {
            drop_database(admin, &name);
        }
    });
    admin.batch_execute(&format!("SELECT pg_advisory_unlock({BUILD_LOCK})"))?;
    dropped
}

/// Records that template `name` was used now, for the eviction of the
/// least recently used. Only the owner (or a superuser) may comment; a
/// template someone else built keeps the time its builder wrote.
pub(super) fn stamp(admin: &mut DbConnection, name: &str) {
    let _ = admin.batch_execute(&format!(
        "COMMENT ON DATABASE {name} IS 'taskdb test template, last used {}'",
        unix_now()
    ));
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Drops templates other than `current` beyond the `keep` most recently
/// used (`current` counts as one), skipping any a process holds. Returns
/// the ones dropped.
pub(super) fn evict(admin: &mut DbConnection, current: &str, keep: usize) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Template {
        #[diesel(sql_type = Text)]
        name: String,
    }
    let others: Vec<Template> = diesel::sql_query(
        "SELECT datname::text AS name FROM pg_database \
         WHERE datname LIKE 'taskdb\\_tpl\\_%' AND datname NOT LIKE '%\\_build' AND datname <> $1 \
         ORDER BY COALESCE(substring(shobj_description(oid, 'pg_database') \
                                     FROM 'last used ([0-9]+)$')::bigint, 0) DESC, datname",
    )
    .bind::<Text, _>(current)
    .load(admin)?;
    let mut dropped = Vec::new();
    for stale in others.iter().skip(keep.saturating_sub(1)) {
        let (class, key) = template_lock_key(&stale.name);
        if !try_advisory_lock(admin, class, key)? {
            continue; // in use
        }
        // Fails while a clone of it runs: left for a later run.
        if admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", stale.name))
            .is_ok()
        {
            dropped.push(stale.name.clone());
        }
        admin.batch_execute(&format!("SELECT pg_advisory_unlock({class}, {key})"))?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::super::server::{connect_admin, database_names};
    use super::super::{DEFAULT_SERVER, SERVER_VARIABLE};
    use super::*;

    #[test]
    fn a_failed_template_build_leaves_no_database_behind() {
        // Migrations fail where no schema can be created in; the server's
        // own queries do not need one.
        let text = std::env::var(SERVER_VARIABLE).unwrap_or_else(|_| DEFAULT_SERVER.to_string());
        let glue = if text.contains('?') { '&' } else { '?' };
        let server = DatabaseUrl::parse(&format!(
            "{text}{glue}options=-c%20search_path%3Dtaskdb_no_such_schema"
        ))
        .unwrap();
        let mut admin = connect_admin(&server).unwrap();
        let name = format!(
            "taskdb_tpl_probe{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        assert!(build(&server, &mut admin, &name).is_err());
        let left = database_names(&mut admin, &format!("{name}%")).unwrap();
        assert_eq!(left, Vec::<String>::new(), "left behind");
    }
}
