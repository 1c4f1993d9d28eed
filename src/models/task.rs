//! Tasks. Every query here takes the owner's user id and filters by it, so
//! another user's task is indistinguishable from a missing one: there is no
//! way to read or change a task without saying whose it is.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{check_length, now_utc, MAX_VARCHAR};
use crate::db::{on_concrete, ModelConnection};
use crate::error::{Error, Result};
use crate::schema::tasks;

/// The most rows [`list`] returns when the caller gives no limit.
pub const DEFAULT_LIST_LIMIT: i64 = 100;

/// The most rows one call of [`list`] or [`page`] returns, whatever the
/// limit asked: a request handler passing a client's `limit` through
/// cannot make one query read a whole table. Page on with the cursor.
pub const MAX_LIST_LIMIT: i64 = 1000;

/// A row of `tasks`.
///
/// `id` is an `i32` because the column is the app's `SERIAL` from before
/// user accounts, adopted unchanged (the seed's types);
/// `user_id` is a string because users' ids are `VARCHAR(255)` (UUIDs by
/// default, or the ids an adopted database already has).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Identifiable, serde::Serialize)]
#[diesel(table_name = tasks)]
#[cfg_attr(feature = "postgres", diesel(check_for_backend(diesel::pg::Pg)))]
#[cfg_attr(feature = "sqlite", diesel(check_for_backend(diesel::sqlite::Sqlite)))]
pub struct Task {
    pub id: i32,
    pub user_id: String,
    pub title: String,
    pub description: Option<String>,
    pub completed: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A task to create; its owner is a separate argument of [`create`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NewTask<'a> {
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub completed: bool,
}

#[derive(Insertable)]
#[diesel(table_name = tasks)]
struct TaskRow<'a> {
    user_id: &'a str,
    title: &'a str,
    description: Option<&'a str>,
    completed: bool,
}

/// Fields to change; `None` leaves a field as it is. `description:
/// Some(None)` clears the description.
#[derive(Debug, Clone, Copy, Default, AsChangeset)]
#[diesel(table_name = tasks)]
pub struct TaskChanges<'a> {
    pub title: Option<&'a str>,
    pub description: Option<Option<&'a str>>,
    pub completed: Option<bool>,
}

/// Which of a user's tasks [`list`] returns, and in which order.
#[derive(Debug, Clone, Copy)]
pub struct TaskFilter {
    /// Only done (`Some(true)`) or open (`Some(false)`) tasks.
    pub completed: Option<bool>,
    /// At most this many (at most [`MAX_LIST_LIMIT`]; below 0 is 0).
    pub limit: i64,
    /// Newest first (the default) or oldest first, by `(created_at, id)`.
    pub order: TaskOrder,
    /// Only tasks after this one in `order`: the next page. Pass back
    /// [`TaskCursor::after`] of the last task of the page before.
    pub after: Option<TaskCursor>,
}

impl Default for TaskFilter {
    fn default() -> Self {
        TaskFilter {
            completed: None,
            limit: DEFAULT_LIST_LIMIT,
            order: TaskOrder::default(),
            after: None,
        }
    }
}

/// The order of [`list`]: by creation, ties broken by id, so it is stable
/// and pages never overlap. Both are served by the `(user_id, created_at,
/// id)` index without a sort.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TaskOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// Where a page of [`list`] ended (keyset pagination): a position in the
/// `(created_at, id)` order, not an offset, so a page costs the same deep
/// in a long list and rows added meanwhile do not shift it. Its text form
/// (`Display` / `FromStr`) is what a handler hands to its client and takes
/// back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskCursor {
    pub created_at: NaiveDateTime,
    pub id: i32,
}

impl TaskCursor {
    /// The cursor of the page that ends with `task`.
    pub fn after(task: &Task) -> Self {
        TaskCursor {
            created_at: task.created_at,
            id: task.id,
        }
    }
}

impl std::fmt::Display for TaskCursor {
    /// `<microseconds since 1970>.<id>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}",
            self.created_at.and_utc().timestamp_micros(),
            self.id
        )
    }
}

impl std::str::FromStr for TaskCursor {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid = || Error::InvalidInput(format!("`{text}` is not a task list cursor"));
        let (micros, id) = text.split_once('.').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let created_at = chrono::DateTime::from_timestamp_micros(micros)
            .ok_or_else(invalid)?
            .naive_utc();
        Ok(TaskCursor {
            created_at,
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

fn validate_title(title: &str) -> Result<()> {
    if title.trim().is_empty() {
        return Err(Error::InvalidInput("task title must not be empty".into()));
    }
    check_length("task title", title, MAX_VARCHAR)
}

/// Creates a task owned by `owner`. Fails with [`Error::UnknownOwner`]
/// when no such user exists.
pub fn create(conn: &mut impl ModelConnection, owner: &str, new: NewTask<'_>) -> Result<Task> {
    validate_title(new.title)?;
    // No user has a longer id; PostgreSQL would only say "value too long".
    check_length("user id", owner, MAX_VARCHAR)?;
    let row = TaskRow {
        user_id: owner,
        title: new.title,
        description: new.description,
        completed: new.completed,
    };
    let inserted = on_concrete!(conn, |c| diesel::insert_into(tasks::table)
        .values(&row)
        .returning(Task::as_returning())
        .get_result(c));
    match inserted {
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _,
        )) => Err(Error::UnknownOwner(owner.to_string())),
        other => Ok(other?),
    }
}

/// `owner`'s tasks in `filter.order`, optionally only done or open ones,
/// one page at a time (`filter.after`). On PostgreSQL an index scan of
/// `(user_id, created_at, id)` that stops at the limit: no sort, however
/// many tasks the owner has.
pub fn list(conn: &mut impl ModelConnection, owner: &str, filter: TaskFilter) -> Result<Vec<Task>> {
    load(conn, owner, filter, filter.limit.clamp(0, MAX_LIST_LIMIT))
}

/// One page of [`list`], and whether more follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// The cursor of the next page (`filter.after`), or `None` when this
    /// page is the last.
    pub next: Option<TaskCursor>,
}

/// [`list`], saying whether another page follows (it reads one row more
/// than the page to know).
pub fn page(conn: &mut impl ModelConnection, owner: &str, filter: TaskFilter) -> Result<TaskPage> {
    let limit = filter.limit.clamp(0, MAX_LIST_LIMIT);
    let mut tasks = load(conn, owner, filter, limit + 1)?;
    let more = tasks.len() as i64 > limit;
    tasks.truncate(limit as usize);
    let next = if more {
        tasks.last().map(TaskCursor::after)
    } else {
        None
    };
    Ok(TaskPage { tasks, next })
}

/// The rows of [`list`], at most `limit` of them.
fn load(
    conn: &mut impl ModelConnection,
    owner: &str,
    filter: TaskFilter,
    limit: i64,
) -> Result<Vec<Task>> {
    let rows = on_concrete!(conn, |c| {
        let mut query = tasks::table
            .filter(tasks::user_id.eq(owner))
            .select(Task::as_select())
            .limit(limit)
            .into_boxed();
        query = match filter.order {
            TaskOrder::NewestFirst => query.order((tasks::created_at.desc(), tasks::id.desc())),
            TaskOrder::OldestFirst => query.order((tasks::created_at.asc(), tasks::id.asc())),
        };
        if let Some(completed) = filter.completed {
            query = query.filter(tasks::completed.eq(completed));
        }
        if let Some(after) = filter.after {
            // A row comparison, which PostgreSQL turns into an index bound (an
            // OR of the two cases would scan from the start of the list).
            let before = match filter.order {
                TaskOrder::NewestFirst => "<",
                TaskOrder::OldestFirst => ">",
            };
            query = query.filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "(tasks.created_at, tasks.id) {before} ("
                ))
                .bind::<diesel::sql_types::Timestamp, _>(after.created_at)
                .sql(", ")
                .bind::<diesel::sql_types::Integer, _>(after.id)
                .sql(")"),
            );
        }
        query.load(c)
    })?;
    Ok(rows)
}

/// One of `owner`'s tasks; `None` if it does not exist or is someone else's.
pub fn get(conn: &mut impl ModelConnection, owner: &str, id: i32) -> Result<Option<Task>> {
    Ok(on_concrete!(conn, |c| tasks::table
        .filter(tasks::id.eq(id))
        .filter(tasks::user_id.eq(owner))
        .select(Task::as_select())
        .first(c)
        .optional())?)
}

/// Changes one of `owner`'s tasks and returns it as stored; `None` if it does
/// not exist or is someone else's (nothing is changed then).
pub fn update(
    conn: &mut impl ModelConnection,
    owner: &str,
    id: i32,
    changes: TaskChanges<'_>,
) -> Result<Option<Task>> {
    if let Some(title) = changes.title {
        validate_title(title)?;
    }
    let target = tasks::table
        .filter(tasks::id.eq(id))
        .filter(tasks::user_id.eq(owner));
    let task = on_concrete!(conn, |c| diesel::update(target)
        .set((&changes, tasks::updated_at.eq(now_utc())))
        .returning(Task::as_returning())
        .get_result(c)
        .optional())?;
    Ok(task)
}

/// Marks one of `owner`'s tasks done and returns it; `None` if it does not
/// exist or is someone else's.
pub fn complete(conn: &mut impl ModelConnection, owner: &str, id: i32) -> Result<Option<Task>> {
    update(
        conn,
        owner,
        id,
        TaskChanges {
            completed: Some(true),
            ..TaskChanges::default()
        },
    )
}

/// Deletes one of `owner`'s tasks; false if it does not exist or is someone
/// else's (nothing is deleted then).
pub fn delete(conn: &mut impl ModelConnection, owner: &str, id: i32) -> Result<bool> {
    let target = tasks::table
        .filter(tasks::id.eq(id))
        .filter(tasks::user_id.eq(owner));
    let deleted = on_concrete!(conn, |c| diesel::delete(target).execute(c))?;
    Ok(deleted > 0)
}

/// How many tasks `owner` has.
pub fn count(conn: &mut impl ModelConnection, owner: &str) -> Result<i64> {
    count_matching(conn, owner, TaskFilter::default())
}

/// How many of `owner`'s tasks [`list`] would page through with `filter`:
/// its `completed` condition counts; its limit, order and cursor do not
/// (they choose a page, not the set), so the filter a handler lists with
/// gives the total its client pages through.
pub fn count_matching(
    conn: &mut impl ModelConnection,
    owner: &str,
    filter: TaskFilter,
) -> Result<i64> {
    let count = on_concrete!(conn, |c| {
        let mut query = tasks::table
            .filter(tasks::user_id.eq(owner))
            .count()
            .into_boxed();
        if let Some(completed) = filter.completed {
            query = query.filter(tasks::completed.eq(completed));
        }
        query.get_result(c)
    })?;
    Ok(count)
}
