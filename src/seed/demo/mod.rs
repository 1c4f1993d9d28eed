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
    /// How the tasks are spread over the users (even by default).
    pub shape: TaskShape,
}

/// How demo tasks are spread over the demo users, and how many are done.
/// The default is the even spread: every user `tasks_per_user` tasks,
/// 30 % of them completed.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct TaskShape {
    /// Tasks in all, instead of users × tasks_per_user (then
    /// tasks_per_user is only their mean).
    pub tasks: Option<u64>,
    /// Only the first `owners` users own tasks (the rest own none).
    pub owners: Option<u32>,
    /// Tasks per owner skewed as real owners are: a Pareto-like count
    /// with this shape α (smaller is more skewed; [`DEFAULT_SKEW`] is the
    /// 80/20 rule), the mean kept, capped at [`MAX_DEMO_TASKS_PER_USER`].
    /// `None`: every owner the same number.
    pub skew: Option<f64>,
    /// Share of tasks completed (0.30 when `None`).
    pub completed: Option<f64>,
}

/// Pareto shape of the 80/20 rule (α = log 5 / log 4): a fifth of the
/// owners hold four fifths of the tasks.
pub const DEFAULT_SKEW: f64 = 1.161;

/// Skews in (1, [`MAX_SKEW`]] are meaningful: at α ≤ 1 the mean is
/// infinite, and at α > 3 the counts are nearly even.
pub const MIN_SKEW: f64 = 1.05;
/// See [`MIN_SKEW`].
pub const MAX_SKEW: f64 = 3.0;

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
    let owners = opts.shape.owners.unwrap_or(opts.users).min(opts.users);
    let tasks = opts
        .shape
        .tasks
        .unwrap_or(u64::from(opts.users) * u64::from(opts.tasks_per_user));
    if tasks > MAX_DEMO_TASKS {
        return Err(Error::InvalidInput(format!(
            "{} users × {} tasks is {tasks} tasks; one run creates at most {MAX_DEMO_TASKS}",
            opts.users, opts.tasks_per_user
        )));
    }
    if tasks > u64::from(owners) * u64::from(MAX_DEMO_TASKS_PER_USER) {
        return Err(Error::InvalidInput(format!(
            "{tasks} tasks over {owners} owners is more than {MAX_DEMO_TASKS_PER_USER} each"
        )));
    }
    if let Some(share) = opts.shape.completed {
        if !(0.0..=1.0).contains(&share) {
            return Err(Error::InvalidInput(format!(
                "the completed share must be between 0 and 1 (got {share})"
            )));
        }
    }
    require_demo_tables(conn)?;
    let hash = user::hash_password(&opts.password)?;
    let gen = Generator::with_shape(opts.users, opts.tasks_per_user, &opts.shape);
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
        tasks: gen.total_tasks(),
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
    counts: Counts,
    /// A task is completed when a draw below 10 000 is under this.
    completed_per_10k: u64,
    now: NaiveDateTime,
}

/// How many tasks each user gets.
enum Counts {
    /// Users `0..extra` get `base + 1`, the other owners `base`, users
    /// from `owners` on none.
    Even { base: u32, extra: u32, owners: u32 },
    /// One count per user.
    Listed(Vec<u32>),
}

/// Salt of the hash that places a user in the skewed distribution: fixed,
/// so that the same sizes give the same counts in every run.
const SKEW_SALT: u64 = 0x7461_736b_6462_736b;

impl Generator {
    /// Every user `tasks_per_user` tasks.
    pub fn new(users: u32, tasks_per_user: u32) -> Self {
        Self::with_shape(users, tasks_per_user, &TaskShape::default())
    }

    /// Tasks spread as `shape` says (the mean per user `tasks_per_user`
    /// unless `shape.tasks` gives the total). The caller has checked that
    /// the total fits the owners at [`MAX_DEMO_TASKS_PER_USER`] each.
    pub fn with_shape(users: u32, tasks_per_user: u32, shape: &TaskShape) -> Self {
        let uuid = uuid::Uuid::new_v4();
        let run_id = uuid.simple().to_string()[..8].to_string();
        let owners = shape.owners.unwrap_or(users).min(users);
        let total = shape
            .tasks
            .unwrap_or(u64::from(users) * u64::from(tasks_per_user));
        let counts = match shape.skew {
            Some(alpha) if owners > 0 => Counts::Listed(skewed_counts(users, owners, total, alpha)),
            _ => {
                let owners = if total == 0 { 0 } else { owners.max(1) };
                Counts::Even {
                    base: u32::try_from(total / u64::from(owners.max(1))).unwrap_or(u32::MAX),
                    extra: (total % u64::from(owners.max(1))) as u32,
                    owners,
                }
            }
        };
        Generator {
            run_id,
            seed: uuid.as_u64_pair().0,
            users,
            counts,
            completed_per_10k: (shape.completed.unwrap_or(0.30).clamp(0.0, 1.0) * 10_000.0).round()
                as u64,
            now: crate::models::now_utc(),
        }
    }

    /// How many tasks user `i` gets.
    pub fn tasks_of(&self, i: u32) -> u32 {
        match &self.counts {
            Counts::Even {
                base,
                extra,
                owners,
            } => match i {
                i if i >= *owners => 0,
                i if i < *extra => base + 1,
                _ => *base,
            },
            Counts::Listed(counts) => counts.get(i as usize).copied().unwrap_or(0),
        }
    }

    pub fn total_tasks(&self) -> u64 {
        match &self.counts {
            Counts::Even {
                base,
                extra,
                owners,
            } => u64::from(*base) * u64::from(*owners) + u64::from(*extra),
            Counts::Listed(counts) => counts.iter().map(|&c| u64::from(c)).sum(),
        }
    }

    pub fn total_rows(&self) -> u64 {
        u64::from(self.users) + self.total_tasks()
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
            completed: (r >> 4) % 10_000 < self.completed_per_10k,
            created_at,
            updated_at: created_at + Duration::seconds(touched),
        }
    }
}

/// Tasks per user, heavy-tailed: owner `i` sits at quantile `u` of a
/// Pareto distribution of shape `alpha` (its rank among the owners by a
/// fixed hash of `i`, so the quantiles are evenly covered and the same
/// sizes always give the same counts), its weight `(1 - u)^(-1/alpha)`.
/// Counts are the weights scaled to add up to exactly `total`, none over
/// [`MAX_DEMO_TASKS_PER_USER`] (the scale found by bisection, the rounding
/// remainder handed out one task at a time). Users from `owners` on get
/// none.
fn skewed_counts(users: u32, owners: u32, total: u64, alpha: f64) -> Vec<u32> {
    let alpha = alpha.clamp(MIN_SKEW, f64::MAX);
    let cap = MAX_DEMO_TASKS_PER_USER;
    let n = owners as usize;
    let mut order: Vec<(u64, u32)> = (0..owners).map(|i| (mix(SKEW_SALT ^ u64::from(i)), i)).collect();
    order.sort_unstable();
    let mut weights = vec![0f64; n];
    for (rank, &(_, i)) in order.iter().enumerate() {
        let u = (rank as f64 + 0.5) / n as f64;
        weights[i as usize] = (1.0 - u).powf(-1.0 / alpha);
    }
    let total = total.min(u64::from(owners) * u64::from(cap));
    let sum_at = |scale: f64| -> u64 {
        weights
            .iter()
            .map(|w| ((scale * w).floor() as u64).min(u64::from(cap)))
            .sum()
    };
    // At `hi` every owner is at the cap (each weight is at least 1).
    let (mut lo, mut hi) = (0.0f64, f64::from(cap) + 1.0);
    for _ in 0..64 {
        let mid = (lo + hi) / 2.0;
        if sum_at(mid) <= total {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut counts: Vec<u32> = weights
        .iter()
        .map(|w| ((lo * w).floor() as u64).min(u64::from(cap)) as u32)
        .collect();
    let mut missing = total - counts.iter().map(|&c| u64::from(c)).sum::<u64>();
    while missing > 0 {
        for c in counts.iter_mut() {
            if missing == 0 {
                break;
            }
            if *c < cap {
                *c += 1;
                missing -= 1;
            }
        }
    }
    counts.resize(users as usize, 0);
    counts
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

    fn skewed(users: u32, per_user: u32) -> Generator {
        Generator::with_shape(
            users,
            per_user,
            &TaskShape {
                skew: Some(DEFAULT_SKEW),
                ..TaskShape::default()
            },
        )
    }

    /// Share of all tasks held by the heaviest `fraction` of users.
    fn top_share(gen: &Generator, users: u32, fraction: f64) -> f64 {
        let mut counts: Vec<u64> = (0..users).map(|i| u64::from(gen.tasks_of(i))).collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top = ((f64::from(users) * fraction).ceil() as usize).max(1);
        counts[..top].iter().sum::<u64>() as f64 / counts.iter().sum::<u64>() as f64
    }

    #[test]
    fn skewed_counts_keep_the_mean_exactly_and_have_a_heavy_tail() {
        let gen = skewed(10_000, 100);
        assert_eq!(gen.total_tasks(), 1_000_000);
        assert_eq!(gen.total_rows(), 1_010_000);
        let counts: Vec<u32> = (0..10_000).map(|i| gen.tasks_of(i)).collect();
        assert!(counts.iter().all(|&c| c <= MAX_DEMO_TASKS_PER_USER));
        let top1 = top_share(&gen, 10_000, 0.01);
        assert!(top1 >= 0.10, "top 1% own {top1}");
        let top20 = top_share(&gen, 10_000, 0.20);
        assert!((0.70..0.90).contains(&top20), "top 20% own {top20}");
        // Most users have fewer than the mean.
        let below = counts.iter().filter(|&&c| c < 100).count();
        assert!(below > 6_000, "{below} of 10000 below the mean");
        // The even spread, for contrast.
        let even = Generator::new(10_000, 100);
        assert_eq!(even.total_tasks(), 1_000_000);
        assert!((top_share(&even, 10_000, 0.01) - 0.01).abs() < 1e-9);
    }

    #[test]
    fn skewed_counts_are_the_same_in_every_run_and_respect_the_cap() {
        let a = skewed(5_000, 50);
        let b = skewed(5_000, 50);
        assert_ne!(a.run_id, b.run_id);
        assert!((0..5_000).all(|i| a.tasks_of(i) == b.tasks_of(i)));
        // A mean near the cap: the heavy users stop at it, the total holds.
        let full = skewed(100, MAX_DEMO_TASKS_PER_USER - 10);
        assert_eq!(
            full.total_tasks(),
            100 * u64::from(MAX_DEMO_TASKS_PER_USER - 10)
        );
        assert!((0..100).all(|i| full.tasks_of(i) <= MAX_DEMO_TASKS_PER_USER));
    }

    #[test]
    fn an_exact_total_over_some_owners_with_a_completed_share() {
        for skew in [None, Some(1.5)] {
            let gen = Generator::with_shape(
                100,
                0,
                &TaskShape {
                    tasks: Some(1_234),
                    owners: Some(40),
                    skew,
                    completed: Some(0.7),
                },
            );
            assert_eq!(gen.total_tasks(), 1_234, "{skew:?}");
            assert!((40..100).all(|i| gen.tasks_of(i) == 0), "{skew:?}");
            let done = (0..100)
                .flat_map(|u| (0..gen.tasks_of(u)).map(move |n| (u, n)))
                .filter(|&(u, n)| gen.task(u, n).completed)
                .count() as f64
                / 1_234.0;
            assert!((0.65..0.75).contains(&done), "{done}");
        }
    }
}
