//! Which test process owns a database: each holds an advisory lock of its
//! own (its owner key) on a connection kept for the process's life, and
//! its databases' names carry that key. The server releases the lock when
//! the process dies (`kill -9` too), whatever host, container or PID
//! namespace it runs in. The same connection holds the process's shared
//! lock on each template it uses (see `template`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::server::{connect_admin, try_advisory_lock};
use crate::db::{DatabaseUrl, DbConnection};
use crate::error::{Error, Result};

/// First key of the advisory lock each test process holds for its life
/// ("tdbo"); the second is the process's owner key.
pub(super) const OWNER_LOCK: i32 = 0x7464_626f;

/// How often the owner connection is checked (a lost one loses the lock).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// This process's owner key and the connection holding its locks.
struct Owner {
    key: u32,
    conn: DbConnection,
    checked: Instant,
    /// Shared advisory locks held besides the owner lock, taken again with
    /// it on a new connection.
    shared: Vec<(i32, i32)>,
}

static OWNER: Mutex<Option<Owner>> = Mutex::new(None);

/// The owner key of this process: a random number whose advisory lock
/// (`OWNER_LOCK`, key) this process holds, on a connection of its own,
/// until it exits. The lock (and the shared ones) are taken again, same
/// key, if the connection was lost.
pub(super) fn owner_key(server: &DatabaseUrl) -> Result<u32> {
    let mut slot = OWNER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    owner(server, &mut slot).map(|o| o.key)
}

fn owner<'a>(server: &DatabaseUrl, slot: &'a mut Option<Owner>) -> Result<&'a mut Owner> {
    let mut wanted = None;
    let mut shared = Vec::new();
    let mut healthy = false;
    if let Some(owner) = slot.as_mut() {
        if owner.checked.elapsed() < CHECK_EVERY || owner.conn.batch_execute("SELECT 1").is_ok() {
            owner.checked = Instant::now();
            healthy = true;
        } else {
            wanted = Some(owner.key);
            shared = std::mem::take(&mut owner.shared);
        }
    }
    if healthy {
        return slot
            .as_mut()
            .ok_or_else(|| Error::InvalidInput("the test process's owner lock is gone".into()));
    }
    *slot = None;
    loop {
        // Positive, so that pg_locks shows it as written.
        let key = wanted
            .take()
            .unwrap_or_else(|| (uuid::Uuid::new_v4().as_u128() as u32) & 0x7fff_ffff);
        let mut conn = connect_admin(server)?;
        if try_advisory_lock(&mut conn, OWNER_LOCK, key as i32)? {
            for (class, key) in &shared {
                conn.batch_execute(&format!("SELECT pg_advisory_lock_shared({class}, {key})"))?;
            }
            return Ok(slot.insert(Owner {
                key,
                conn,
                checked: Instant::now(),
                shared,
            }));
        }
    }
}

/// Takes the shared advisory lock (`class`, `key`) for the rest of the
/// process's life (waiting while someone holds it exclusively).
pub(super) fn hold_shared(server: &DatabaseUrl, class: i32, key: i32) -> Result<()> {
    let mut slot = OWNER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let owner = owner(server, &mut slot)?;
    if owner.shared.contains(&(class, key)) {
        return Ok(());
    }
    owner
        .conn
        .batch_execute(&format!("SELECT pg_advisory_lock_shared({class}, {key})"))?;
    owner.shared.push((class, key));
    Ok(())
}

/// `taskdb_t_<owner>_<pid>_<random>`: the owner key (8 hex digits) tells
/// whether the process that made it still runs; the PID is for people.
pub(super) fn database_name(server: &DatabaseUrl) -> Result<String> {
    Ok(name_for(owner_key(server)?))
}

/// [`database_name`] for owner key `key`.
pub(super) fn name_for(key: u32) -> String {
    format!(
        "{DATABASE_PREFIX}{key:08x}_{}_{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Runs `work` on the connection holding this process's locks, with its
/// owner key: for a few quick statements at the process's start, before
/// any other connection is open (each costs 10–50 ms on a loaded server).
pub(super) fn with_owner_connection<T>(
    server: &DatabaseUrl,
    work: impl FnOnce(&mut DbConnection, u32) -> Result<T>,
) -> Result<T> {
    let mut slot = OWNER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let owner = owner(server, &mut slot)?;
    work(&mut owner.conn, owner.key)
}

/// How every test database's name begins.
pub(super) const DATABASE_PREFIX: &str = "taskdb_t_";

/// The owner key in a test database's name, if it has one (names made by
/// earlier versions, which judged by PID, have none).
pub(super) fn owner_of(name: &str) -> Option<i64> {
    let owner = name.strip_prefix(DATABASE_PREFIX)?.split('_').next()?;
    if owner.len() != 8 {
        return None;
    }
    i64::from_str_radix(owner, 16).ok()
}

/// Owner keys whose lock is held: their processes run.
pub(super) fn live_owners(admin: &mut DbConnection) -> Result<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        key: i64,
    }
    Ok(diesel::sql_query(format!(
        "SELECT objid::bigint AS key FROM pg_locks \
         WHERE locktype = 'advisory' AND classid = {OWNER_LOCK} AND objsubid = 2 AND granted"
    ))
    .load::<Key>(admin)?
    .into_iter()
    .map(|k| k.key)
    .collect())
}
