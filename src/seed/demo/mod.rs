//! Demo data: realistic users and tasks in bulk (`taskdb seed demo`), written
//! in one transaction (PostgreSQL through `COPY … FROM STDIN`, SQLite through
//! multi-row inserts), plus the generator of the rows.

#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "sqlite")]
mod sqlite;

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
            Postgres(pg) => pg::copy_postgres(pg, &gen, &hash, progress),
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
