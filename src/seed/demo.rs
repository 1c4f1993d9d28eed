//! Demo data: realistic users and tasks in bulk (`taskdb seed demo`), written
//! in one transaction (PostgreSQL through `COPY … FROM STDIN`, SQLite through
//! multi-row inserts), plus the generator of the rows.

use chrono::{Duration, NaiveDateTime};
use diesel::connection::TransactionManager;
use diesel::prelude::*;

use super::require_demo_tables;
use crate::db::DbConnection;
use crate::error::{Error, Result};
use crate::models::user;

/// Password of every demo user unless another is given. A development
/// credential, like [`DEV_USER_PASSWORD`](super::DEV_USER_PASSWORD).
pub const DEMO_PASSWORD: &str = "demo-password";

/// Most demo users one run creates.
pub const MAX_DEMO_USERS: u32 = 1_000_000;
/// Most tasks per demo user.
pub const MAX_DEMO_TASKS_PER_USER: u32 = 10_000;
/// Most demo tasks one run creates in all.
pub const MAX_DEMO_TASKS: u64 = 50_000_000;

/// What [`seed_demo`] creates.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub users: u32,
    pub tasks_per_user: u32,
    /// Every demo user's password (hashed once, the hash reused).
    pub password: String,
}

/// What [`seed_demo`] created.
#[derive(Debug, Clone)]
pub struct DemoSeeded {
    /// Part of every demo user's id and email, so runs never collide.
    pub run_id: String,
    pub users: u64,
    pub tasks: u64,
    /// Email of the first demo user (to log in with).
    pub first_email: String,
    /// Time spent writing rows (not hashing the password).
    pub elapsed: std::time::Duration,
}

impl DemoSeeded {
    pub fn rows(&self) -> u64 {
        self.users + self.tasks
    }

    pub fn rows_per_second(&self) -> f64 {
        self.rows() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Fills the database with realistic demo users and tasks (see
/// [`require_demo_tables`] for what it needs), all in one
/// transaction: PostgreSQL through `COPY … FROM STDIN`, SQLite through
/// multi-row inserts. The password is hashed once (bcrypt cost 12) and the
/// hash reused for every demo user. Ids and emails carry a random run id,
/// so demo data never collides with existing users or an earlier run.
/// `progress(rows_done, rows_total)` is called as rows are written.
pub fn seed_demo(
    conn: &mut DbConnection,
    opts: &DemoOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<DemoSeeded> {
    if opts.users == 0 || opts.users > MAX_DEMO_USERS {
        return Err(Error::InvalidInput(format!(
            "--users must be between 1 and {MAX_DEMO_USERS} (got {})",
            opts.users
        )));
    }
    if opts.tasks_per_user > MAX_DEMO_TASKS_PER_USER {
        return Err(Error::InvalidInput(format!(
            "--tasks-per-user must be between 0 and {MAX_DEMO_TASKS_PER_USER} (got {})",
            opts.tasks_per_user
        )));
    }
    let tasks = u64::from(opts.users) * u64::from(opts.tasks_per_user);
    if tasks > MAX_DEMO_TASKS {
        return Err(Error::InvalidInput(format!(
            "{} users × {} tasks is {tasks} tasks; one run creates at most {MAX_DEMO_TASKS}",
            opts.users, opts.tasks_per_user
        )));
    }
    require_demo_tables(conn)?;
    let hash = user::hash_password(&opts.password)?;
    let gen = Generator::new(opts.users, opts.tasks_per_user);
    let started = std::time::Instant::now();
    transaction_keeping_cause(conn, |conn| {
        crate::db::on_backend!(conn,
            Postgres(pg) => postgres::copy_postgres(pg, &gen, &hash, progress),
            Sqlite(lite) => sqlite::with_seeding_cache(lite, |lite| {
                sqlite::insert_sqlite(lite, &gen, &hash, progress)
            }),
        )
    })?;
    Ok(DemoSeeded {
        run_id: gen.run_id.clone(),
        users: u64::from(opts.users),
        tasks,
        first_email: gen.user(0).email,
        elapsed: started.elapsed(),
    })
}

/// Runs `work` in a transaction and, when it fails, reports its error
/// rather than the rollback's. SQLite rolls a transaction back by itself on
/// some errors (SQLITE_FULL among them), so the ROLLBACK that follows fails
/// with "cannot rollback - no transaction is active"; diesel's
/// `Connection::transaction` would report that and hide the cause.
fn transaction_keeping_cause<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T>,
) -> Result<T> {
    type Manager = <DbConnection as Connection>::TransactionManager;
    Manager::begin_transaction(conn)?;
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(cause) => match Manager::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(cause),
            // Already rolled back: nothing of the work was kept.
            Err(e) if e.to_string().contains("no transaction is active") => Err(cause),
            Err(e) => Err(Error::RollbackFailed {
                cause: Box::new(cause),
                rollback: e.to_string(),
            }),
        },
    }
}

const FIRST: &[&str] = &[
    "Ada", "Ben", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maria", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Victor",
    "Wen", "Ximena", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Adams", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quist", "Rossi", "Silva",
    "Tanaka", "Usman", "Varga", "Weber", "Xu", "Yilmaz", "Zhang",
];
const VERBS: &[&str] = &[
    "Write", "Review", "Fix", "Plan", "Call", "Email", "Update", "Book", "Order", "Clean",
    "Prepare", "Renew", "Pay", "Schedule", "Draft", "Test", "Deploy", "Read", "Buy", "Sort",
];
const OBJECTS: &[&str] = &[
    "the quarterly report",
    "the dentist",
    "the landlord",
    "release notes",
    "groceries",
    "the garage",
    "the onboarding doc",
    "flight to Lisbon",
    "the car insurance",
    "the team offsite",
    "invoice #1042",
    "the login bug",
    "the budget",
    "the slides",
    "the newsletter",
    "the backup script",
    "birthday present",
    "the garden",
    "tax forms",
    "the database migration",
];
const DESCRIPTIONS: &[&str] = &[
    "Before Friday.",
    "Ask Sam for the numbers first.",
    "Check the notes from last week's meeting.",
    "Low priority, but don't forget.",
    "Blocked until the contract is signed.",
    "Needs two people; see the shared calendar.",
    "Follow up if there is no answer by Monday.",
    "Keep the receipt.",
];

/// splitmix64: small, fast, good enough for demo data.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn pick<'a>(list: &[&'a str], r: u64) -> &'a str {
    list[(r % list.len() as u64) as usize]
}

pub struct DemoUser {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

pub struct DemoTask<'a> {
    pub title: String,
    pub description: Option<&'a str>,
    pub completed: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub struct Generator {
    pub run_id: String,
    seed: u64,
    users: u32,
    tasks_per_user: u32,
    now: NaiveDateTime,
}

impl Generator {
    pub fn new(users: u32, tasks_per_user: u32) -> Self {
        let uuid = uuid::Uuid::new_v4();
        let run_id = uuid.simple().to_string()[..8].to_string();
        Generator {
            run_id,
            seed: uuid.as_u64_pair().0,
            users,
            tasks_per_user,
            now: crate::models::now_utc(),
        }
    }

    pub fn total_rows(&self) -> u64 {
        u64::from(self.users) * (1 + u64::from(self.tasks_per_user))
    }

    pub fn user(&self, i: u32) -> DemoUser {
        let r = mix(self.seed ^ u64::from(i));
        let first = pick(FIRST, r);
        let last = pick(LAST, r >> 16);
        DemoUser {
            id: format!("demo-{}-{i}", self.run_id),
            email: format!(
                "{}.{}.{i}@demo-{}.example.com",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase(),
                self.run_id
            ),
            name: format!("{first} {last}"),
            // Signed up within the last year.
            created_at: self.now - Duration::seconds((r >> 32) as i64 % (365 * 86_400)),
        }
    }

    pub fn task(&self, user: u32, n: u32) -> DemoTask<'static> {
        let draw = self.task_draw(user, n);
        DemoTask {
            title: format!("{} {}", VERBS[draw.verb], OBJECTS[draw.object]),
            description: draw.description,
            completed: draw.completed,
            created_at: draw.created_at,
            updated_at: draw.updated_at,
        }
    }

    /// What [`Generator::task`] returns, with the title as indexes into
    /// [`VERBS`] and [`OBJECTS`] rather than a new string.
    fn task_draw(&self, user: u32, n: u32) -> TaskDraw {
        let r = mix(self.seed.rotate_left(17) ^ (u64::from(user) << 20) ^ u64::from(n));
        let age = (r >> 20) as i64 % (180 * 86_400);
        let created_at = self.now - Duration::seconds(age);
        let touched = ((r >> 44) as i64 % (7 * 86_400)).min(age);
        TaskDraw {
            verb: (r % VERBS.len() as u64) as usize,
            object: ((r >> 8) % OBJECTS.len() as u64) as usize,
            description: (r % 10 < 4).then(|| pick(DESCRIPTIONS, r >> 12)),
            completed: (r >> 4) % 100 < 30,
            created_at,
            updated_at: created_at + Duration::seconds(touched),
        }
    }
}

struct TaskDraw {
    verb: usize,
    object: usize,
    description: Option<&'static str>,
    completed: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// PostgreSQL: the rows as `COPY … FROM STDIN` text.
#[cfg(feature = "postgres")]
mod postgres {
    use std::cell::RefCell;
    use std::io::Write as _;

    use diesel::pg::CopyFormat;
    use diesel::PgConnection;

    use super::*;
    use crate::schema::{tasks, users};

    fn ts(t: NaiveDateTime) -> String {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// How often progress is reported (rows).
    const REPORT_EVERY: u64 = 10_000;

    pub(super) fn copy_postgres(
        conn: &mut PgConnection,
        gen: &Generator,
        hash: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let total = gen.total_rows();
        let progress = RefCell::new(progress);
        let done = RefCell::new(0u64);
        let tick = |rows: u64| {
            let mut d = done.borrow_mut();
            *d += rows;
            if *d % REPORT_EVERY < rows || *d == total {
                (progress.borrow_mut())(*d, total);
            }
        };
        // Text format: the generated values hold no tab, newline or
        // backslash, so they need no escaping.
        diesel::copy_from(users::table)
            .from_raw_data(
                (
                    users::id,
                    users::email,
                    users::password_hash,
                    users::name,
                    users::created_at,
                    users::updated_at,
                ),
                |out| {
                    // One write per row would be one protocol message per row.
                    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
                    for i in 0..gen.users {
                        let u = gen.user(i);
                        let at = ts(u.created_at);
                        writeln!(out, "{}\t{}\t{hash}\t{}\t{at}\t{at}", u.id, u.email, u.name)
                            .map_err(io_error)?;
                        tick(1);
                    }
                    out.flush().map_err(io_error)?;
                    diesel::QueryResult::Ok(())
                },
            )
            .with_format(CopyFormat::Text)
            .execute(conn)?;
        diesel::copy_from(tasks::table)
            .from_raw_data(
                (
                    tasks::user_id,
                    tasks::title,
                    tasks::description,
                    tasks::completed,
                    tasks::created_at,
                    tasks::updated_at,
                ),
                |out| {
                    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
                    let mut line = String::with_capacity(160);
                    for i in 0..gen.users {
                        let owner = format!("demo-{}-{i}", gen.run_id);
                        for n in 0..gen.tasks_per_user {
                            let t = gen.task(i, n);
                            line.clear();
                            use std::fmt::Write as _;
                            let _ = writeln!(
                                line,
                                "{owner}\t{}\t{}\t{}\t{}\t{}",
                                t.title,
                                t.description.unwrap_or("\\N"),
                                if t.completed { 't' } else { 'f' },
                                ts(t.created_at),
                                ts(t.updated_at)
                            );
                            out.write_all(line.as_bytes()).map_err(io_error)?;
                        }
                        tick(u64::from(gen.tasks_per_user));
                    }
                    out.flush().map_err(io_error)?;
                    diesel::QueryResult::Ok(())
                },
            )
            .with_format(CopyFormat::Text)
            .execute(conn)?;
        Ok(())
    }

    fn io_error(e: std::io::Error) -> diesel::result::Error {
        diesel::result::Error::SerializationError(Box::new(e))
    }
}

/// SQLite: multi-row `INSERT`s, one prepared statement reused for the tasks.
#[cfg(feature = "sqlite")]
mod sqlite {
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
            for n in 0..gen.tasks_per_user {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_thirty_percent_completed_and_varied_dates() {
        let gen = Generator::new(50, 40);
        let all: Vec<DemoTask> = (0..50)
            .flat_map(|u| (0..40).map(move |n| (u, n)))
            .map(|(u, n)| gen.task(u, n))
            .collect();
        let done = all.iter().filter(|t| t.completed).count() as f64 / all.len() as f64;
        assert!((0.25..0.35).contains(&done), "{done}");
        let described = all.iter().filter(|t| t.description.is_some()).count();
        assert!(described > 0 && described < all.len());
        let days: std::collections::HashSet<_> = all.iter().map(|t| t.created_at.date()).collect();
        assert!(days.len() > 30, "{}", days.len());
        assert!(all.iter().all(|t| t.updated_at >= t.created_at));
        let emails: std::collections::HashSet<_> = (0..50).map(|i| gen.user(i).email).collect();
        assert_eq!(emails.len(), 50);
    }
}
