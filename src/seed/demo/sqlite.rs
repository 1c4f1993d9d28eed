//! SQLite: multi-row `INSERT`s, one prepared statement reused for the tasks.

use diesel::connection::SimpleConnection;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Bool, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;

use super::*;
use crate::schema::users;

// Without `treat_none_as_default_value = false` diesel cannot prove no
// value is DEFAULT (which SQLite's VALUES lacks), and inserts a batch
// row by row inside a savepoint: slower, and on SQLITE_FULL the failed
// savepoint rollback hides the cause.
#[derive(Insertable)]
#[diesel(table_name = users)]
#[diesel(treat_none_as_default_value = false)]
struct UserRow<'a> {
    id: String,
    email: String,
    password_hash: &'a str,
    name: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// SQLite page cache while seeding, in KiB: the tasks table and its index
/// outgrow the default 2 MiB many times over, and a page spilled to the
/// WAL before the commit is written again when it changes.
const SEEDING_CACHE_KIB: i64 = 64 * 1024;

/// Runs `work` with a larger page cache on this connection (memory only;
/// durability is untouched), restoring the previous size afterwards.
pub(super) fn with_seeding_cache<T>(
    conn: &mut SqliteConnection,
    work: impl FnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<T> {
    #[derive(QueryableByName)]
    struct CacheSize {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        cache_size: i64,
    }
    let before = diesel::sql_query("PRAGMA cache_size")
        .get_result::<CacheSize>(conn)?
        .cache_size;
    conn.batch_execute(&format!("PRAGMA cache_size = -{SEEDING_CACHE_KIB}"))?;
    let result = work(conn);
    let restored = conn.batch_execute(&format!("PRAGMA cache_size = {before}"));
    let value = result?;
    restored?;
    Ok(value)
}

/// Rows per users INSERT: 6 bound values each, well under SQLite's limit
/// of 32766 variables per statement.
const SQLITE_USER_BATCH: usize = 1000;

/// Rows per tasks INSERT (6 bound values each; SQLite allows 32766).
const SQLITE_TASK_BATCH: usize = 1000;

pub(super) fn insert_sqlite(
    conn: &mut SqliteConnection,
    gen: &Generator,
    hash: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let total = gen.total_rows();
    let mut done = 0u64;
    let mut batch = Vec::with_capacity(SQLITE_USER_BATCH);
    for i in 0..gen.users {
        let u = gen.user(i);
        batch.push(UserRow {
            id: u.id,
            email: u.email,
            password_hash: hash,
            name: u.name,
            created_at: u.created_at,
            updated_at: u.created_at,
        });
        if batch.len() == SQLITE_USER_BATCH || i + 1 == gen.users {
            diesel::insert_into(users::table)
                .values(&batch)
                .execute(conn)?;
            done += batch.len() as u64;
            batch.clear();
            progress(done, total);
        }
    }
    // Every title there is, made once; rows borrow them.
    let titles: Vec<String> = VERBS
        .iter()
        .flat_map(|verb| OBJECTS.iter().map(move |object| format!("{verb} {object}")))
        .collect();
    // All stamps of a run share the fraction of `now` (ages are whole
    // seconds), so it is formatted once.
    let fraction = sqlite_fraction(gen.now);
    let mut rows: Vec<TaskValues> = Vec::with_capacity(SQLITE_TASK_BATCH);
    let mut filled = 0;
    let mut owner = String::new();
    for i in 0..gen.users {
        owner.clear();
        {
            use std::fmt::Write as _;
            let _ = write!(owner, "demo-{}-{i}", gen.run_id);
        }
        for n in 0..gen.tasks_of(i) {
            let t = gen.task_draw(i, n);
            if filled == rows.len() {
                rows.push(TaskValues::default());
            }
            let row = &mut rows[filled];
            row.user_id.clear();
            row.user_id.push_str(&owner);
            row.title = &titles[t.verb * OBJECTS.len() + t.object];
            row.description = t.description;
            row.completed = t.completed;
            row.created_at.clear();
            push_sqlite_timestamp(&mut row.created_at, t.created_at, &fraction);
            row.updated_at.clear();
            push_sqlite_timestamp(&mut row.updated_at, t.updated_at, &fraction);
            filled += 1;
            if filled == SQLITE_TASK_BATCH {
                TaskInsert { rows: &rows }.execute(conn)?;
                done += filled as u64;
                filled = 0;
                progress(done, total);
            }
        }
    }
    if filled > 0 {
        TaskInsert {
            rows: &rows[..filled],
        }
        .execute(conn)?;
        done += filled as u64;
        progress(done, total);
    }
    Ok(())
}

/// One task row's values, in buffers refilled for every batch: writing a
/// batch allocates nothing.
#[derive(Default)]
struct TaskValues<'a> {
    user_id: String,
    title: &'a str,
    description: Option<&'static str>,
    completed: bool,
    created_at: String,
    updated_at: String,
}

/// `INSERT INTO tasks (…) VALUES (…), (…), …` of `rows`, their values bound
/// by reference. Its SQL depends only on the number of rows, so Diesel's
/// statement cache prepares it once and every full batch reuses it (a
/// batch of Insertables is prepared anew each time: SQLite parsing 6000
/// placeholders per statement).
struct TaskInsert<'a, 'v> {
    rows: &'a [TaskValues<'v>],
}

impl QueryId for TaskInsert<'_, '_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Sqlite> for TaskInsert<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql(
        "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at) VALUES ",
    );
        for (i, row) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<Text, str>(&row.user_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, str>(row.title)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&row.description)?;
            out.push_sql(", ");
            out.push_bind_param::<Bool, bool>(&row.completed)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, str>(&row.created_at)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, str>(&row.updated_at)?;
            out.push_sql(")");
        }
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for TaskInsert<'_, '_> {}

/// The fractional seconds as Diesel writes a SQLite timestamp (chrono's
/// `%.f`: nothing, or 3, 6 or 9 digits).
fn sqlite_fraction(t: NaiveDateTime) -> String {
    t.format("%.f").to_string()
}

/// Appends `t` as Diesel stores a `Timestamp` in SQLite (`%F %T%.f`),
/// without chrono's format parser: it ran twice per row. `fraction` is
/// [`sqlite_fraction`] of `t`.
fn push_sqlite_timestamp(out: &mut String, t: NaiveDateTime, fraction: &str) {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        out.push_str(&t.format("%F %T%.f").to_string());
        return;
    }
    let mut two = |sep: Option<char>, v: u32| {
        if let Some(sep) = sep {
            out.push(sep);
        }
        out.push(char::from(b'0' + (v / 10) as u8));
        out.push(char::from(b'0' + (v % 10) as u8));
    };
    let year = year as u32;
    two(None, year / 100);
    two(None, year % 100);
    two(Some('-'), t.month());
    two(Some('-'), t.day());
    two(Some(' '), t.hour());
    two(Some(':'), t.minute());
    two(Some(':'), t.second());
    out.push_str(fraction);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_are_written_as_diesel_writes_them() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
        for (h, m, s, nanos) in [
            (0, 0, 0, 0),
            (9, 5, 3, 120_000_000),
            (23, 59, 59, 123_456_000),
            (12, 30, 1, 123_456_789),
            (1, 2, 3, 1),
        ] {
            let t = day.and_hms_nano_opt(h, m, s, nanos).unwrap();
            let mut ours = String::new();
            push_sqlite_timestamp(&mut ours, t, &sqlite_fraction(t));
            assert_eq!(ours, t.format("%F %T%.f").to_string());
        }
    }
}
