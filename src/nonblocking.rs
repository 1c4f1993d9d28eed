//! The calls a request handler makes, for async code (feature `tokio`).
//!
//! Diesel and bcrypt block: a query waits on the network, a password hash
//! takes 0.2–0.5 s of CPU at cost 12. Each function here runs its blocking
//! call on tokio's blocking pool (`spawn_blocking`), taking a pooled
//! connection there, so the runtime's worker threads never stall. Arguments
//! are owned (they move to the blocking thread); errors are
//! [`crate::Error`], a panic of the blocking call included
//! ([`Error::Background`]). Warnings come back as values, never printed.

use crate::db::{self, DatabaseUrl, Pool};
use crate::error::{Error, Result};
use crate::migrate::{self, Step};
use crate::models::{task, user, Task, TaskChanges, TaskFilter, TaskPage, User};

/// A pool's connection manager whose connections the model functions
/// take: taskdb's [`Pool`], `db::PgPool` or `db::SqlitePool` alike.
pub trait ModelManager: r2d2::ManageConnection<Connection = Self::Model> {
    /// The connection (a [`db::ModelConnection`]).
    type Model: db::ModelConnection + Send + 'static;
}

impl<M> ModelManager for M
where
    M: r2d2::ManageConnection,
    M::Connection: db::ModelConnection,
{
    type Model = M::Connection;
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Background(e.to_string()))?
}

/// Runs `work` with a connection of `pool`, on the blocking pool.
async fn with_conn<M: ModelManager, T: Send + 'static>(
    pool: &Pool<M>,
    work: impl FnOnce(&mut M::Connection) -> Result<T> + Send + 'static,
) -> Result<T> {
    let pool = pool.clone();
    blocking(move || {
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .await
}

/// [`db::pool`]: opening its first connection blocks.
pub async fn pool(url: DatabaseUrl, max_size: u32) -> Result<Pool> {
    blocking(move || db::pool(&url, max_size)).await
}

/// What [`run_pending`] did.
#[derive(Debug, Clone)]
pub struct Migrated {
    pub steps: Vec<Step>,
    /// E.g. that the database is ahead of this build (a release rolled
    /// back): for the app's logger.
    pub warnings: Vec<String>,
}

/// [`migrate::run_pending`], with its warnings returned instead of printed.
pub async fn run_pending(url: DatabaseUrl) -> Result<Migrated> {
    blocking(move || {
        let mut warnings = Vec::new();
        let steps = migrate::run_pending_warning(&url, &mut |w| warnings.push(w))?;
        Ok(Migrated { steps, warnings })
    })
    .await
}

/// [`user::create`] with owned fields.
pub async fn create_user<M: ModelManager>(
    pool: &Pool<M>,
    id: Option<String>,
    email: String,
    password: String,
    name: Option<String>,
) -> Result<User> {
    with_conn(pool, move |conn| {
        user::create(
            conn,
            crate::models::NewUser {
                id: id.as_deref(),
                email: &email,
                password: &password,
                name: name.as_deref(),
            },
        )
    })
    .await
}

/// [`user::authenticate`]: the bcrypt check runs on the blocking pool.
pub async fn authenticate<M: ModelManager>(
    pool: &Pool<M>,
    email: String,
    password: String,
) -> Result<Option<User>> {
    with_conn(pool, move |conn| {
        user::authenticate(conn, &email, &password)
    })
    .await
}

/// [`user::find_by_email`].
pub async fn find_user_by_email<M: ModelManager>(
    pool: &Pool<M>,
    email: String,
) -> Result<Option<User>> {
    with_conn(pool, move |conn| user::find_by_email(conn, &email)).await
}

/// [`task::create`] with owned fields.
pub async fn create_task<M: ModelManager>(
    pool: &Pool<M>,
    owner: String,
    title: String,
    description: Option<String>,
) -> Result<Task> {
    with_conn(pool, move |conn| {
        task::create(
            conn,
            &owner,
            crate::models::NewTask {
                title: &title,
                description: description.as_deref(),
                completed: false,
            },
        )
    })
    .await
}

/// [`task::list`].
pub async fn list_tasks<M: ModelManager>(
    pool: &Pool<M>,
    owner: String,
    filter: TaskFilter,
) -> Result<Vec<Task>> {
    with_conn(pool, move |conn| task::list(conn, &owner, filter)).await
}

/// [`task::page`].
pub async fn task_page<M: ModelManager>(
    pool: &Pool<M>,
    owner: String,
    filter: TaskFilter,
) -> Result<TaskPage> {
    with_conn(pool, move |conn| task::page(conn, &owner, filter)).await
}

/// [`task::get`].
pub async fn get_task<M: ModelManager>(
    pool: &Pool<M>,
    owner: String,
    id: i32,
) -> Result<Option<Task>> {
    with_conn(pool, move |conn| task::get(conn, &owner, id)).await
}

/// [`task::update`] with owned fields (`description: Some(None)` clears it).
pub async fn update_task<M: ModelManager>(
    pool: &Pool<M>,
    owner: String,
    id: i32,
    title: Option<String>,
    description: Option<Option<String>>,
    completed: Option<bool>,
) -> Result<Option<Task>> {
    with_conn(pool, move |conn| {
        task::update(
            conn,
            &owner,
            id,
            TaskChanges {
                title: title.as_deref(),
                description: description.as_ref().map(|d| d.as_deref()),
                completed,
            },
        )
    })
    .await
}

/// [`task::complete`].
pub async fn complete_task<M: ModelManager>(
    pool: &Pool<M>,
    owner: String,
    id: i32,
) -> Result<Option<Task>> {
    with_conn(pool, move |conn| task::complete(conn, &owner, id)).await
}

/// [`task::delete`].
pub async fn delete_task<M: ModelManager>(pool: &Pool<M>, owner: String, id: i32) -> Result<bool> {
    with_conn(pool, move |conn| task::delete(conn, &owner, id)).await
}

/// [`task::count`].
pub async fn count_tasks<M: ModelManager>(pool: &Pool<M>, owner: String) -> Result<i64> {
    with_conn(pool, move |conn| task::count(conn, &owner)).await
}
