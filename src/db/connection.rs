//! What the typed queries in [`crate::models`] accept: any connection of a
//! backend this build has, pooled or not, so code written against one
//! backend's own types keeps compiling when another crate in the
//! dependency graph turns on more backends (Cargo unifies features).
//!
//! Each query runs on the concrete Diesel connection underneath, also when
//! it is reached through [`AnyConnection`](super::AnyConnection): no
//! `MultiConnection` dispatch per query, and PostgreSQL-only DSL works.

#[cfg(feature = "postgres")]
use diesel::PgConnection;
#[cfg(feature = "sqlite")]
use diesel::SqliteConnection;
use r2d2::ManageConnection;

use super::pool::PooledConnection;
#[cfg(all(feature = "postgres", feature = "sqlite"))]
use super::AnyConnection;

mod sealed {
    /// Only taskdb implements [`ModelConnection`](super::ModelConnection)
    /// and [`OpenConnection`](super::OpenConnection).
    pub trait Sealed {}
}
use sealed::Sealed;

/// A connection the functions in [`crate::models`] take, as `&mut conn`:
/// Diesel's `PgConnection` and `SqliteConnection` (the backends this build
/// has), [`DbConnection`](super::DbConnection), a connection checked out of
/// any pool of those (taskdb's [`Pool`](super::Pool) or a plain r2d2 one),
/// and `&mut` of any of these. Sealed: taskdb decides which.
pub trait ModelConnection: Sealed {
    /// The concrete connection underneath.
    #[doc(hidden)]
    fn concrete(&mut self) -> ConcreteConnection<'_>;
}

/// The concrete Diesel connection a [`ModelConnection`] holds (one
/// variant per backend in the build).
#[doc(hidden)]
pub enum ConcreteConnection<'a> {
    #[cfg(feature = "postgres")]
    Postgres(&'a mut PgConnection),
    #[cfg(feature = "sqlite")]
    Sqlite(&'a mut SqliteConnection),
}

/// Runs `$body` with `$c` bound to the concrete Diesel connection under a
/// [`ModelConnection`]: the body is compiled once per backend in the build.
macro_rules! on_concrete {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $crate::db::ModelConnection::concrete($conn) {
            #[cfg(feature = "postgres")]
            $crate::db::ConcreteConnection::Postgres($c) => $body,
            #[cfg(feature = "sqlite")]
            $crate::db::ConcreteConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_concrete;

#[cfg(feature = "postgres")]
impl Sealed for PgConnection {}
#[cfg(feature = "postgres")]
impl ModelConnection for PgConnection {
    fn concrete(&mut self) -> ConcreteConnection<'_> {
        ConcreteConnection::Postgres(self)
    }
}

#[cfg(feature = "sqlite")]
impl Sealed for SqliteConnection {}
#[cfg(feature = "sqlite")]
impl ModelConnection for SqliteConnection {
    fn concrete(&mut self) -> ConcreteConnection<'_> {
        ConcreteConnection::Sqlite(self)
    }
}

#[cfg(all(feature = "postgres", feature = "sqlite"))]
impl Sealed for AnyConnection {}
#[cfg(all(feature = "postgres", feature = "sqlite"))]
impl ModelConnection for AnyConnection {
    fn concrete(&mut self) -> ConcreteConnection<'_> {
        match self {
            AnyConnection::Postgres(c) => ConcreteConnection::Postgres(c),
            AnyConnection::Sqlite(c) => ConcreteConnection::Sqlite(c),
        }
    }
}

impl<C: ModelConnection + ?Sized> Sealed for &mut C {}
impl<C: ModelConnection + ?Sized> ModelConnection for &mut C {
    fn concrete(&mut self) -> ConcreteConnection<'_> {
        (**self).concrete()
    }
}

impl<M> Sealed for PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: ModelConnection,
{
}
impl<M> ModelConnection for PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: ModelConnection,
{
    fn concrete(&mut self) -> ConcreteConnection<'_> {
        (**self).concrete()
    }
}

impl<M> Sealed for r2d2::PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: ModelConnection,
{
}
impl<M> ModelConnection for r2d2::PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: ModelConnection,
{
    fn concrete(&mut self) -> ConcreteConnection<'_> {
        (**self).concrete()
    }
}

impl Sealed for ConcreteConnection<'_> {}
impl ModelConnection for ConcreteConnection<'_> {
    fn concrete(&mut self) -> ConcreteConnection<'_> {
        match self {
            #[cfg(feature = "postgres")]
            ConcreteConnection::Postgres(c) => ConcreteConnection::Postgres(c),
            #[cfg(feature = "sqlite")]
            ConcreteConnection::Sqlite(c) => ConcreteConnection::Sqlite(c),
        }
    }
}

/// A connection taskdb opens itself, with its settings (see
/// [`connect`](super::connect)), e.g. for a pool's
/// [`ConnectionManager`](super::ConnectionManager): `PgConnection`,
/// `SqliteConnection`, and [`AnyConnection`](super::AnyConnection) in a
/// build with both. Sealed.
pub trait OpenConnection:
    ModelConnection + diesel::connection::SimpleConnection + Send + Sized + 'static
{
    /// Opens a connection to `url`; a URL of another backend is refused.
    #[doc(hidden)]
    fn open(url: &super::DatabaseUrl) -> crate::Result<Self>;

    /// Whether the connection can no longer be used (Diesel's
    /// `is_broken`: e.g. a transaction left open or failed); checked
    /// without a round trip.
    #[doc(hidden)]
    fn is_broken_connection(&mut self) -> bool;
}

#[cfg(feature = "postgres")]
impl OpenConnection for PgConnection {
    fn open(url: &super::DatabaseUrl) -> crate::Result<Self> {
        super::connect_postgres(url)
    }

    fn is_broken_connection(&mut self) -> bool {
        diesel::r2d2::R2D2Connection::is_broken(self)
    }
}

#[cfg(feature = "sqlite")]
impl OpenConnection for SqliteConnection {
    fn open(url: &super::DatabaseUrl) -> crate::Result<Self> {
        super::connect_sqlite(url)
    }

    fn is_broken_connection(&mut self) -> bool {
        diesel::r2d2::R2D2Connection::is_broken(self)
    }
}

#[cfg(all(feature = "postgres", feature = "sqlite"))]
impl OpenConnection for AnyConnection {
    fn open(url: &super::DatabaseUrl) -> crate::Result<Self> {
        super::connect(url)
    }

    fn is_broken_connection(&mut self) -> bool {
        match self {
            AnyConnection::Postgres(c) => c.is_broken_connection(),
            AnyConnection::Sqlite(c) => c.is_broken_connection(),
        }
    }
}
