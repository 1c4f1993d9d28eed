//! The connection pool backend code shares: r2d2, with a thread-affine
//! layer in front of it, opening its connections through [`connect`](super::connect) so
//! they get the same settings as every other.
//!
//! Why the layer: r2d2 keeps idle connections on a stack, so two threads
//! that each check a connection out per query keep swapping connections,
//! and every query lands on the server process (and the CPU caches) the
//! other thread just used. A short query ran at about 60 % of the rate of
//! a connection held for the whole run (docs/benchmarks/query-throughput.md).
//! Here a returned connection is parked in a slot belonging
//! to the returning thread, and that thread's next checkout takes it back
//! before asking r2d2.
//!
//! Parked connections never starve anyone: a checkout that finds neither
//! its own parked connection nor an idle one in r2d2 takes connections
//! parked for other threads before it waits in r2d2, and while any
//! checkout waits, returned connections go straight back to r2d2, which
//! hands them to the waiter. Connection health is r2d2's: a broken
//! connection, or one returned by a panicking thread (it may be inside a
//! transaction), is never parked; it goes back to r2d2, which closes it and
//! opens a replacement.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use r2d2::ManageConnection;

use super::{DatabaseUrl, DbConnection, OpenConnection};
use crate::error::{Error, Result};

/// The pool backend code shares: `pool.get()?` checks a connection out,
/// and dropping it checks it back in. Cloning is cheap and shares the pool.
///
/// Generic over the r2d2 connection manager so the same pool serves any
/// Diesel connection type; taskdb's is [`ConnectionManager`].
///
/// `Pool` without a parameter is the pool of [`DbConnection`], the
/// "whichever backends are built" connection, whose meaning changes when
/// any crate in the build turns on another backend. An app on one backend
/// uses that backend's pool instead (`PgPool` from `pg_pool`, or
/// `SqlitePool` from `sqlite_pool`), which hands out Diesel's own
/// connection in every build.
///
/// A parked connection counts as checked out for r2d2, so r2d2's
/// `idle_timeout` and `max_lifetime` reach it only once it is back in
/// r2d2's idle list (returned while another checkout waits, or by a
/// thread whose slot was already taken).
pub struct Pool<M: ManageConnection = ConnectionManager> {
    shared: Arc<Shared<M>>,
}

struct Shared<M: ManageConnection> {
    r2d2: r2d2::Pool<SharedManager<M>>,
    /// r2d2's manager, also for the health checks on connections that are
    /// parked instead of passing through r2d2.
    manager: Arc<M>,
    /// Tells this pool's slots apart from other pools' in a thread's cache.
    id: usize,
    /// One slot per connection the pool may hold; see [`thread_slot`].
    slots: Box<[Slot<M>]>,
    /// Threads new to this pool so far: the next one gets slot
    /// `next_slot % slots.len()`.
    next_slot: AtomicUsize,
    /// Checkouts that found nothing to take and are waiting in r2d2.
    waiting: AtomicUsize,
}

/// At most one parked connection. Aligned to its own cache lines so that
/// threads parking in neighbouring slots do not slow each other down.
#[repr(align(128))]
struct Slot<M: ManageConnection>(Mutex<Option<R2d2Connection<M>>>);

type R2d2Connection<M> = r2d2::PooledConnection<SharedManager<M>>;

/// Lends r2d2 the manager the pool keeps for its own health checks (r2d2
/// takes a manager by value and does not give it back).
#[derive(Debug)]
struct SharedManager<M>(Arc<M>);

impl<M: ManageConnection> ManageConnection for SharedManager<M> {
    type Connection = M::Connection;
    type Error = M::Error;

    fn connect(&self) -> std::result::Result<M::Connection, M::Error> {
        self.0.connect()
    }

    fn is_valid(&self, conn: &mut M::Connection) -> std::result::Result<(), M::Error> {
        self.0.is_valid(conn)
    }

    fn has_broken(&self, conn: &mut M::Connection) -> bool {
        self.0.has_broken(conn)
    }
}

impl<M: ManageConnection> Slot<M> {
    fn lock(&self) -> MutexGuard<'_, Option<R2d2Connection<M>>> {
        // Nothing panics while a slot is locked, but a poisoned slot would
        // still hold a valid Option.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Option<R2d2Connection<M>> {
        self.lock().take()
    }
}

/// This thread's slot in the pool numbered `pool_id`, handed out in
/// order of first use per pool, so the first `max_size` threads of a pool
/// get slots of their own. Cached per thread for a few pools at once.
fn thread_slot(pool_id: usize, next_slot: &AtomicUsize, slots: usize) -> Option<usize> {
    const CACHED_POOLS: usize = 4;
    thread_local! {
        static SLOTS: Cell<[(usize, usize); CACHED_POOLS]> =
            const { Cell::new([(usize::MAX, 0); CACHED_POOLS]) };
    }
    SLOTS
        .try_with(|cache| {
            let mut entries = cache.get();
            let at = pool_id % CACHED_POOLS;
            if entries[at].0 != pool_id {
                entries[at] = (pool_id, next_slot.fetch_add(1, Ordering::Relaxed) % slots);
                cache.set(entries);
            }
            entries[at].1
        })
        // None while the thread's locals are being destroyed.
        .ok()
}

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(0);

/// Counts a checkout as waiting for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn register(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<M: ManageConnection> Shared<M> {
    fn own_slot(&self) -> Option<usize> {
        thread_slot(self.id, &self.next_slot, self.slots.len())
    }

    /// The connection parked in slot `index`, if any, tested first when the
    /// pool tests connections on checkout.
    fn take_parked(&self, index: usize) -> Option<R2d2Connection<M>> {
        let mut conn = self.slots[index].take()?;
        if self.r2d2.test_on_check_out() && self.manager.is_valid(&mut conn).is_err() {
            // Back to r2d2: its own checkout tests it again and closes it.
            drop(conn);
            return None;
        }
        Some(conn)
    }

    /// Without waiting: this thread's parked connection, else an idle one
    /// from r2d2.
    fn take_nearest(&self) -> Option<R2d2Connection<M>> {
        self.own_slot()
            .and_then(|own| self.take_parked(own))
            .or_else(|| self.r2d2.try_get())
    }

    /// A connection parked for another thread, looking at the slots after
    /// this thread's own first.
    fn take_parked_elsewhere(&self) -> Option<R2d2Connection<M>> {
        let start = self.own_slot().map_or(0, |own| own + 1);
        (0..self.slots.len())
            .map(|i| (start + i) % self.slots.len())
            .find_map(|i| self.take_parked(i))
    }

    /// Parks a returned connection in this thread's slot, or hands it back
    /// to r2d2 (by dropping it) when it must not or cannot be parked.
    fn check_in(&self, mut conn: R2d2Connection<M>) {
        if std::thread::panicking()
            || self.waiting.load(Ordering::SeqCst) > 0
            || self.manager.has_broken(&mut conn)
        {
            drop(conn);
            return;
        }
        let Some(own) = self.own_slot() else {
            drop(conn);
            return;
        };
        let slot = &self.slots[own];
        let occupied = {
            let mut parked = slot.lock();
            match *parked {
                Some(_) => Some(conn),
                None => {
                    *parked = Some(conn);
                    None
                }
            }
        };
        // Another thread of this slot parked first: r2d2 takes this one
        // (dropped outside the slot's lock).
        drop(occupied);
        // A checkout that started waiting meanwhile may have looked at this
        // slot before the connection was parked; it waits in r2d2, so the
        // connection goes there. (Either it saw the connection, or this
        // load sees it waiting: both sides count or park first.)
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let parked = slot.take();
            drop(parked);
        }
    }
}

impl<M: ManageConnection> Pool<M> {
    /// Checks a connection out, waiting up to the pool's connection timeout
    /// when all are in use; the error then carries the last connection
    /// error r2d2 saw, if any.
    pub fn get(&self) -> std::result::Result<PooledConnection<M>, r2d2::Error> {
        self.get_timeout(self.shared.r2d2.connection_timeout())
    }

    /// [`get`](Self::get), waiting up to `timeout` instead.
    pub fn get_timeout(
        &self,
        timeout: Duration,
    ) -> std::result::Result<PooledConnection<M>, r2d2::Error> {
        let shared = &self.shared;
        if let Some(conn) = shared.take_nearest() {
            return Ok(self.wrap(conn));
        }
        let _waiting = Waiting::register(&shared.waiting);
        if let Some(conn) = shared.take_parked_elsewhere() {
            return Ok(self.wrap(conn));
        }
        shared.r2d2.get_timeout(timeout).map(|conn| self.wrap(conn))
    }

    /// A connection if one is free now (parked or idle), without waiting.
    pub fn try_get(&self) -> Option<PooledConnection<M>> {
        let shared = &self.shared;
        shared
            .take_nearest()
            .or_else(|| shared.take_parked_elsewhere())
            .map(|conn| self.wrap(conn))
    }

    /// The most connections the pool opens.
    pub fn max_size(&self) -> u32 {
        self.shared.r2d2.max_size()
    }

    /// How long [`get`](Self::get) waits for a connection.
    pub fn connection_timeout(&self) -> Duration {
        self.shared.r2d2.connection_timeout()
    }

    /// Connections open, and how many of them are free (idle in r2d2 or
    /// parked). A snapshot: other threads change it at any moment.
    pub fn state(&self) -> PoolState {
        let shared = &self.shared;
        let parked = shared.slots.iter().filter(|s| s.lock().is_some()).count() as u32;
        let r2d2 = shared.r2d2.state();
        PoolState {
            connections: r2d2.connections,
            idle_connections: r2d2.idle_connections + parked,
        }
    }

    fn wrap(&self, conn: R2d2Connection<M>) -> PooledConnection<M> {
        PooledConnection {
            conn: Some(conn),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: ManageConnection> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: ManageConnection + fmt::Debug> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("state", &self.state())
            .field("r2d2", &self.shared.r2d2)
            .finish()
    }
}

/// What [`Pool::state`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Connections open, in use or not.
    pub connections: u32,
    /// Open connections nobody has checked out.
    pub idle_connections: u32,
}

/// A connection checked out of [`Pool`]; derefs to the connection and
/// goes back to the pool when dropped.
pub struct PooledConnection<M: ManageConnection = ConnectionManager> {
    /// Present until dropped.
    conn: Option<R2d2Connection<M>>,
    shared: Arc<Shared<M>>,
}

impl<M: ManageConnection> Deref for PooledConnection<M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl<M: ManageConnection> DerefMut for PooledConnection<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl<M: ManageConnection> Drop for PooledConnection<M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.check_in(conn);
        }
    }
}

impl<M> fmt::Debug for PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Builds a [`Pool`]: r2d2's settings, with r2d2's defaults unless
/// changed. [`pool_builder`] starts from taskdb's defaults instead.
pub struct PoolBuilder<M: ManageConnection> {
    r2d2: r2d2::Builder<SharedManager<M>>,
}

impl<M: ManageConnection> Default for PoolBuilder<M> {
    fn default() -> Self {
        PoolBuilder {
            r2d2: r2d2::Builder::new(),
        }
    }
}

impl<M: ManageConnection> PoolBuilder<M> {
    /// r2d2's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most connections the pool opens. Panics on 0, as r2d2 does.
    pub fn max_size(self, max_size: u32) -> Self {
        self.configure_r2d2(|b| b.max_size(max_size))
    }

    /// How many idle connections r2d2 keeps open (default: `max_size`).
    pub fn min_idle(self, min_idle: Option<u32>) -> Self {
        self.configure_r2d2(|b| b.min_idle(min_idle))
    }

    /// How long a checkout waits when every connection is in use.
    pub fn connection_timeout(self, timeout: Duration) -> Self {
        self.configure_r2d2(|b| b.connection_timeout(timeout))
    }

    /// Whether every checkout runs the manager's health check first (one
    /// round trip; parked connections are tested too).
    pub fn test_on_check_out(self, test: bool) -> Self {
        self.configure_r2d2(|b| b.test_on_check_out(test))
    }

    /// r2d2's `max_lifetime`: a connection older than this is closed when
    /// r2d2 finds it idle (see [`Pool`] for parked connections).
    pub fn max_lifetime(self, max_lifetime: Option<Duration>) -> Self {
        self.configure_r2d2(|b| b.max_lifetime(max_lifetime))
    }

    /// r2d2's `idle_timeout`: idle connections beyond `min_idle` are closed
    /// after this long (see [`Pool`] for parked connections).
    pub fn idle_timeout(self, idle_timeout: Option<Duration>) -> Self {
        self.configure_r2d2(|b| b.idle_timeout(idle_timeout))
    }

    /// Where r2d2 reports errors opening connections (default: the `log`
    /// crate).
    pub fn error_handler(self, handler: Box<dyn r2d2::HandleError<M::Error>>) -> Self {
        self.configure_r2d2(|b| b.error_handler(handler))
    }

    /// Runs on every connection r2d2 opens and closes.
    pub fn connection_customizer(
        self,
        customizer: Box<dyn r2d2::CustomizeConnection<M::Connection, M::Error>>,
    ) -> Self {
        self.configure_r2d2(|b| b.connection_customizer(customizer))
    }

    fn configure_r2d2(
        self,
        configure: impl FnOnce(r2d2::Builder<SharedManager<M>>) -> r2d2::Builder<SharedManager<M>>,
    ) -> Self {
        PoolBuilder {
            r2d2: configure(self.r2d2),
        }
    }

    /// Opens the pool, waiting up to the connection timeout for its first
    /// `min_idle` connections.
    pub fn build(self, manager: M) -> std::result::Result<Pool<M>, r2d2::Error> {
        let manager = Arc::new(manager);
        let r2d2 = self.r2d2.build(SharedManager(Arc::clone(&manager)))?;
        let slots = (0..r2d2.max_size())
            .map(|_| Slot(Mutex::new(None)))
            .collect();
        Ok(Pool {
            shared: Arc::new(Shared {
                r2d2,
                manager,
                id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
                slots,
                next_slot: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
            }),
        })
    }
}

/// Opens connections of type `C` for the pool with [`connect`](super::connect)'s
/// settings, so pooled connections get the same settings as every other:
/// [`DbConnection`] by default, `PgConnection` in a `PgPool`,
/// `SqliteConnection` in a `SqlitePool`.
pub struct ConnectionManager<C: OpenConnection = DbConnection> {
    url: DatabaseUrl,
    connection: PhantomData<fn() -> C>,
}

impl<C: OpenConnection> fmt::Debug for ConnectionManager<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionManager")
            .field("url", &self.url)
            .finish()
    }
}

impl<C: OpenConnection> Clone for ConnectionManager<C> {
    fn clone(&self) -> Self {
        ConnectionManager {
            url: self.url.clone(),
            connection: PhantomData,
        }
    }
}

impl ConnectionManager {
    /// A manager of [`DbConnection`]s to `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        ConnectionManager::of(url)
    }
}

impl<C: OpenConnection> ConnectionManager<C> {
    /// A manager of `C`s to `url`, e.g.
    /// `ConnectionManager::<PgConnection>::of(url)`.
    pub fn of(url: DatabaseUrl) -> Self {
        ConnectionManager {
            url,
            connection: PhantomData,
        }
    }
}

impl<C: OpenConnection> ManageConnection for ConnectionManager<C> {
    type Connection = C;
    type Error = Error;

    fn connect(&self) -> Result<C> {
        C::open(&self.url)
    }

    fn is_valid(&self, conn: &mut C) -> Result<()> {
        conn.batch_execute("SELECT 1").map_err(Error::from)
    }

    /// Checked on every check-in, without a round trip: a connection that
    /// failed (Diesel marks a broken transaction) is closed and replaced.
    fn has_broken(&self, conn: &mut C) -> bool {
        std::thread::panicking() || conn.is_broken_connection()
    }
}

/// A pool of Diesel's own `PgConnection`: the pool type of a
/// PostgreSQL-only app. Unlike [`Pool`] (of [`DbConnection`]), its
/// connection type does not change when another crate in the build turns
/// on `sqlite`.
#[cfg(feature = "postgres")]
pub type PgPool = Pool<ConnectionManager<diesel::PgConnection>>;

/// A pool of Diesel's own `SqliteConnection`: the pool type of a
/// SQLite-only app, whatever other backends the build has.
#[cfg(feature = "sqlite")]
pub type SqlitePool = Pool<ConnectionManager<diesel::SqliteConnection>>;

/// A pool builder with taskdb's defaults. `test_on_check_out` is off: the
/// health-check query on every checkout costs a round trip per request
/// (about half the throughput of a short query on loopback), and a broken
/// connection is still detected by `has_broken` and replaced.
pub fn pool_builder() -> PoolBuilder<ConnectionManager> {
    defaults()
}

/// [`pool_builder`]'s settings, for a pool of any connection type.
fn defaults<C: OpenConnection>() -> PoolBuilder<ConnectionManager<C>> {
    PoolBuilder::new()
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
}

/// An in-memory SQLite database exists only inside the connection that
/// opened it: every other connection sees an empty one.
pub(crate) fn refuse_in_memory(url: &DatabaseUrl, what: &str) -> Result<()> {
    if url.is_in_memory() {
        return Err(Error::InvalidInput(format!(
            "{what} cannot use an in-memory SQLite database: each connection would get its own empty one; use a file (taskdb::testing::TestDb::sqlite() makes one per test)"
        )));
    }
    Ok(())
}

/// Builds a pool of up to `max_size` connections to `url`. An in-memory
/// SQLite database is refused (see [`DatabaseUrl::is_in_memory`]).
pub fn pool(url: &DatabaseUrl, max_size: u32) -> Result<Pool> {
    typed_pool(url, max_size)
}

/// [`pool`] of `PgConnection`s, for a PostgreSQL-only app: its type stays
/// the same whatever features other crates turn on. A URL of another
/// backend is refused.
#[cfg(feature = "postgres")]
pub fn pg_pool(url: &DatabaseUrl, max_size: u32) -> Result<PgPool> {
    typed_pool(url, max_size)
}

/// [`pool`] of `SqliteConnection`s, for a SQLite-only app. A URL of
/// another backend is refused.
#[cfg(feature = "sqlite")]
pub fn sqlite_pool(url: &DatabaseUrl, max_size: u32) -> Result<SqlitePool> {
    typed_pool(url, max_size)
}

fn typed_pool<C: OpenConnection>(
    url: &DatabaseUrl,
    max_size: u32,
) -> Result<Pool<ConnectionManager<C>>> {
    refuse_in_memory(url, "a pool")?;
    if max_size == 0 {
        return Err(Error::InvalidInput(
            "a pool needs room for at least one connection (max size 0)".into(),
        ));
    }
    build_pool(url, defaults().max_size(max_size))
}

/// Opens `builder`'s pool to `url`, with the password kept out of errors.
pub(crate) fn build_pool<C: OpenConnection>(
    url: &DatabaseUrl,
    builder: PoolBuilder<ConnectionManager<C>>,
) -> Result<Pool<ConnectionManager<C>>> {
    builder
        .build(ConnectionManager::of(url.clone()))
        .map_err(|e| Error::Pool(url.scrub(&e.to_string())))
}
