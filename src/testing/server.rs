//! The test PostgreSQL server: its URL, admin connections, and the
//! statements that create, rename and drop databases on it.

use std::sync::Mutex;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use super::{DEFAULT_SERVER, SERVER_VARIABLE};
use crate::db::{self, Backend, DatabaseUrl, DbConnection};
use crate::error::{Error, Result};

/// The test server's admin URL.
pub(super) fn server_url() -> Result<DatabaseUrl> {
    let text = std::env::var(SERVER_VARIABLE).unwrap_or_else(|_| DEFAULT_SERVER.to_string());
    let url = DatabaseUrl::parse(&text)?;
    if url.backend() != Backend::Postgres {
        return Err(Error::InvalidInput(format!(
            "{SERVER_VARIABLE} must name a PostgreSQL server, not {}",
            url.redacted()
        )));
    }
    Ok(url)
}

pub(super) fn connect_admin(server: &DatabaseUrl) -> Result<DbConnection> {
    db::connect(server).map_err(|e| {
        Error::InvalidInput(format!(
            "the test PostgreSQL server is unreachable ({e}); start it, or point {SERVER_VARIABLE} at one"
        ))
    })
}

/// Runs `work` on an admin connection of its own: an idle one this process
/// opened before, or a new one. Callers never wait for each other (a
/// connection each), and a connection is opened only when every idle one
/// is taken.
pub(super) fn with_admin<T>(
    server: &DatabaseUrl,
    work: impl FnOnce(&mut DbConnection) -> Result<T>,
) -> Result<T> {
    static IDLE: Mutex<Vec<DbConnection>> = Mutex::new(Vec::new());
    let idle = IDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .pop();
    let mut admin = match idle {
        Some(conn) => conn,
        None => connect_admin(server)?,
    };
    let result = work(&mut admin);
    let broken = crate::with_backend!(&mut admin, |c| diesel::r2d2::R2D2Connection::is_broken(c));
    if !broken {
        IDLE.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(admin);
    }
    result
}

/// `CREATE DATABASE name [TEMPLATE template]`, retried while a session is
/// on the template (PostgreSQL refuses to clone it then). Clones of one
/// template may run at once: the default strategy (`WAL_LOG`, PostgreSQL
/// 15) takes no checkpoint, where `FILE_COPY` forces two per clone.
pub(super) fn create_database(
    admin: &mut DbConnection,
    name: &str,
    template: Option<&str>,
) -> Result<()> {
    let sql = match template {
        Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
        None => format!("CREATE DATABASE {name}"),
    };
    let mut attempt = 0;
    loop {
        match admin.batch_execute(&sql) {
            // 55006 (another session is on the template): it is about to
            // leave. Recognised by asking, not by the message's words.
            Err(_)
                if attempt < 100
                    && template.is_some_and(|t| {
                        attempt < 3 || other_sessions(admin, t).unwrap_or(false)
                    }) =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10 + 5 * attempt));
            }
            other => return Ok(other?),
        }
    }
}

/// `DROP DATABASE … WITH (FORCE)`; errors are ignored (a database already
/// gone, or taken by a concurrent sweep). Each drop forces a checkpoint:
/// drops waiting at the same time share one, so callers drop in batches.
pub(super) fn drop_database(admin: &mut DbConnection, name: &str) {
    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

/// Drops `names` several at once, on connections of their own, so their
/// forced checkpoints coincide.
pub(super) fn drop_databases(server: &DatabaseUrl, names: &[String]) {
    if names.is_empty() {
        return;
    }
    const AT_ONCE: usize = 8;
    std::thread::scope(|scope| {
        for chunk in names.chunks(names.len().div_ceil(AT_ONCE)) {
            scope.spawn(move || {
                if let Ok(mut admin) = connect_admin(server) {
                    for name in chunk {
                        drop_database(&mut admin, name);
                    }
                }
            });
        }
    });
}

/// Sends `DROP DATABASE … WITH (FORCE)` for each of `names`, each on a
/// connection of its own, and returns without waiting for them: the
/// server completes a statement whose client has gone (unless
/// `client_connection_check_interval` is set), so a process at exit does
/// not wait out the checkpoints. One it does not complete is the next
/// test process's to sweep (the owner lock goes with this process).
#[cfg(feature = "postgres")]
pub(super) fn send_drops(server: &DatabaseUrl, names: &[String]) {
    use std::ffi::CString;
    let Ok(conninfo) = CString::new(server.expose_secret()) else {
        return drop_databases(server, names);
    };
    std::thread::scope(|scope| {
        for name in names {
            let conninfo = &conninfo;
            scope.spawn(move || {
                let Ok(sql) = CString::new(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                else {
                    return;
                };
                // SAFETY: both strings are NUL-terminated and outlive the
                // calls; the connection is used by this thread only and
                // finished (freed) exactly once.
                unsafe {
                    let conn = pq_sys::PQconnectdb(conninfo.as_ptr());
                    if conn.is_null() {
                        return;
                    }
                    if pq_sys::PQstatus(conn) == pq_sys::ConnStatusType::CONNECTION_OK {
                        // Sent and flushed (a blocking connection) on
                        // success; the result is never read.
                        pq_sys::PQsendQuery(conn, sql.as_ptr());
                    }
                    pq_sys::PQfinish(conn);
                }
            });
        }
    });
}

/// [`drop_databases`]: no libpq to send without waiting.
#[cfg(not(feature = "postgres"))]
pub(super) fn send_drops(server: &DatabaseUrl, names: &[String]) {
    drop_databases(server, names)
}

/// `ALTER DATABASE name RENAME TO new` after ending the sessions still on
/// it (as `DROP … WITH (FORCE)` does), retried while they exit.
pub(super) fn rename_unused(admin: &mut DbConnection, name: &str, new: &str) -> Result<()> {
    let mut attempt = 0;
    loop {
        end_sessions(admin, name)?;
        match admin.batch_execute(&format!("ALTER DATABASE {name} RENAME TO {new}")) {
            // 55006: a session is still leaving (the race is why the first
            // few tries do not ask).
            Err(_) if attempt < 100 && (attempt < 3 || other_sessions(admin, name)?) => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return Ok(other?),
        }
    }
}

/// Ends every other session on database `name`.
pub(super) fn end_sessions(conn: &mut DbConnection, name: &str) -> Result<()> {
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind::<Text, _>(name)
    .execute(conn)?;
    Ok(())
}

/// A one-row `SELECT EXISTS (…) AS any`.
#[derive(QueryableByName)]
pub(super) struct Any {
    #[diesel(sql_type = Bool)]
    pub(super) any: bool,
}

/// Whether a session other than this one is connected to database `name`
/// (why PostgreSQL refuses to clone, rename or drop it: SQLSTATE 55006).
pub(super) fn other_sessions(conn: &mut DbConnection, name: &str) -> Result<bool> {
    let row: Any = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()) AS any",
    )
    .bind::<Text, _>(name)
    .get_result(conn)?;
    Ok(row.any)
}

/// Whether database `name` exists.
pub(super) fn database_exists(admin: &mut DbConnection, name: &str) -> Result<bool> {
    let row: Any =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS any")
            .bind::<Text, _>(name)
            .get_result(admin)?;
    Ok(row.any)
}

/// The databases whose names match `like` (`_` is literal).
pub(super) fn database_names(admin: &mut DbConnection, like: &str) -> Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        datname: String,
    }
    Ok(
        diesel::sql_query("SELECT datname::text AS datname FROM pg_database WHERE datname LIKE $1")
            .bind::<Text, _>(like.replace('_', "\\_"))
            .load::<Name>(admin)?
            .into_iter()
            .map(|n| n.datname)
            .collect(),
    )
}

/// Whether `pg_try_advisory_lock(class, key)` got the lock.
pub(super) fn try_advisory_lock(conn: &mut DbConnection, class: i32, key: i32) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Bool)]
        locked: bool,
    }
    let row: Locked = diesel::sql_query(format!(
        "SELECT pg_try_advisory_lock({class}, {key}) AS locked"
    ))
    .get_result(conn)?;
    Ok(row.locked)
}
