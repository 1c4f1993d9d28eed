//! The rehearsal's copy: a scratch database `taskdb_rehearse_<random>` on
//! the server of the database rehearsed, migrated to the schema before the
//! rehearsed migrations by taskdb's own runner, filled with demo data
//! (the demo seeder's generator, through COPY) and analysed. Dropped at the
//! end, whatever happens; one left by a rehearsal killed outright is
//! dropped by the next (each running rehearsal holds an advisory lock on
//! its scratch database's name, as `verify` does), and so is the
//! `<template>_build` of one killed while keeping its copy as a template
//! (locked the same way while it is made).
//!
//! A filled copy is kept as a template, `taskdb_rehearse_tpl_<hash>`, keyed
//! like `taskdb::testing`'s templates (each migration up to the copy's
//! schema: directory name and `up.sql` checksum; the tracking tables'
//! shape) plus the sizes: the next rehearsal at the same schema and sizes
//! clones it (`CREATE DATABASE … TEMPLATE`) instead of generating the rows
//! again. A server keeps the three most recently used.

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;

use crate::db::{self, DatabaseUrl, DbConnection};
use crate::error::{Error, Result};
use crate::interrupt::CancelGuard;
use crate::migrate::{self, MigrationSource};
use crate::seed::demo::{seed_demo, DemoOptions, TaskShape, DEMO_PASSWORD};

/// Prefix of every scratch database's name.
pub const SCRATCH_PREFIX: &str = "taskdb_rehearse_";

/// Prefix of the filled copies kept for the next rehearsal.
pub const TEMPLATE_PREFIX: &str = "taskdb_rehearse_tpl_";

/// The template a copy of `source` migrated up to `base` and filled to
/// `sizes` is kept as.
pub fn template_name(source: &MigrationSource, base: Option<&str>, sizes: Sizes) -> Result<String> {
    let mut key: String = source
        .migrations(crate::db::Backend::Postgres)?
        .iter()
        .filter(|m| base.is_some_and(|b| m.dir_name() <= b))
        .map(|m| format!("{} {}\n", m.dir_name(), m.checksum()))
        .collect();
    key.push_str(crate::migrate::ledger::TRACKING_TABLES);
    key.push_str(&format!("\nrehearse copy {sizes}"));
    Ok(format!(
        "{TEMPLATE_PREFIX}{}",
        &crate::source::checksum(&key)[..12]
    ))
}

/// What a template's name ends with while it is being made (created,
/// then renamed to the template's name).
const BUILD_SUFFIX: &str = "_build";

/// First key of the advisory lock on a scratch database's name ("trhr").
const SCRATCH_LOCK_CLASS: i32 = 0x7472_6872;

/// How many filled copies a server keeps (the most recently used).
const KEEP_TEMPLATES: usize = 3;

/// Notes on `template` that it was used now, for the eviction of the
/// least recently used. Best effort (only its owner may comment).
fn mark_used(admin: &mut DbConnection, template: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let _ = admin.batch_execute(&format!(
        "COMMENT ON DATABASE {template} IS 'taskdb rehearse copy, last used {now}'"
    ));
}

/// How big the copy is, and how its tasks are spread over its users.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sizes {
    pub tasks: u64,
    pub users: u32,
    /// Users who own tasks (`None`: every user).
    pub owners: Option<u32>,
    /// Pareto shape α of tasks per owner (see
    /// [`TaskShape::skew`](crate::seed::demo::TaskShape)); `None`: even.
    pub skew: Option<f64>,
    /// Share of tasks completed (`None`: the generator's 30 %).
    pub completed: Option<f64>,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            tasks: 100_000,
            users: 1_000,
            owners: None,
            skew: Some(crate::seed::demo::DEFAULT_SKEW),
            completed: None,
        }
    }
}

impl Sizes {
    /// `tasks=N,users=M` (either may be left out; tasks per user are
    /// skewed as by [`DEFAULT_SKEW`](crate::seed::demo::DEFAULT_SKEW)),
    /// plus `skew=α` or `skew=even`.
    pub fn parse(text: &str) -> std::result::Result<Sizes, String> {
        let mut sizes = Sizes::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                format!("`{part}` is not NAME=COUNT (e.g. tasks=1000000,users=10000)")
            })?;
            if name.trim() == "skew" {
                sizes.skew = match value.trim() {
                    "even" => None,
                    alpha => Some(
                        alpha
                            .parse::<f64>()
                            .ok()
                            .filter(|a| {
                                (crate::seed::demo::MIN_SKEW..=crate::seed::demo::MAX_SKEW)
                                    .contains(a)
                            })
                            .ok_or_else(|| {
                                format!(
                                    "skew is `even` or a Pareto shape between {} and {} (smaller is more skewed)",
                                    crate::seed::demo::MIN_SKEW,
                                    crate::seed::demo::MAX_SKEW
                                )
                            })?,
                    ),
                };
                continue;
            }
            let count: u64 = value
                .trim()
                .replace('_', "")
                .parse()
                .map_err(|_| format!("`{value}` is not a number of rows"))?;
            match name.trim() {
                "tasks" => sizes.tasks = count,
                "users" => {
                    sizes.users = u32::try_from(count)
                        .ok()
                        .filter(|n| (1..=crate::seed::demo::MAX_DEMO_USERS).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "users must be between 1 and {}",
                                crate::seed::demo::MAX_DEMO_USERS
                            )
                        })?
                }
                other => {
                    return Err(format!(
                        "unknown table `{other}` (use tasks and users, and skew)"
                    ))
                }
            }
        }
        Ok(sizes)
    }

    /// Users who own tasks.
    fn owners(self) -> u32 {
        self.owners
            .unwrap_or(self.users)
            .clamp(1, self.users.max(1))
    }

    /// Refuses sizes the demo generator cannot make.
    pub fn check(self) -> Result<()> {
        let most = crate::seed::demo::MAX_DEMO_TASKS_PER_USER;
        if self.tasks > u64::from(self.owners()) * u64::from(most) {
            return Err(Error::InvalidInput(format!(
                "{self}: a user of the copy owns at most {most} tasks; give at least {} users",
                self.tasks.div_ceil(u64::from(most))
            )));
        }
        if self.tasks > crate::seed::demo::MAX_DEMO_TASKS {
            return Err(Error::InvalidInput(format!(
                "{self}: a copy holds at most {} tasks",
                crate::seed::demo::MAX_DEMO_TASKS
            )));
        }
        Ok(())
    }

    /// Mean tasks per owner, rounded up (at most the per-user maximum
    /// once [`Sizes::check`] passed).
    fn tasks_per_user(self) -> u32 {
        u32::try_from(self.tasks.div_ceil(u64::from(self.owners())))
            .unwrap_or(u32::MAX)
            .min(crate::seed::demo::MAX_DEMO_TASKS_PER_USER)
    }

    /// What the demo generator is asked for: exactly `tasks` tasks.
    fn shape(self) -> TaskShape {
        TaskShape {
            tasks: Some(self.tasks),
            owners: self.owners,
            skew: self.skew,
            completed: self.completed,
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Estimate {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Double)]
    rows: f64,
}

/// One row of `pg_stats` for a column of `tasks`.
#[derive(diesel::QueryableByName)]
struct ColumnStats {
    #[diesel(sql_type = diesel::sql_types::Text)]
    column: String,
    #[diesel(sql_type = diesel::sql_types::Double)]
    n_distinct: f64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    values: Option<String>,
    /// `most_common_freqs` as text, `{0.1,0.05}`.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    freqs: Option<String>,
}

impl ColumnStats {
    fn freqs(&self) -> Option<Vec<f64>> {
        let text = self.freqs.as_deref()?;
        text.trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .map(|f| f.trim().parse::<f64>().ok())
            .collect()
    }
}

impl Sizes {
    /// The sizes and shape of the live database at `url` as its catalog
    /// estimates them: no row of it is read. See [`Sizes::from_catalog`].
    pub fn like(url: &DatabaseUrl) -> Result<Sizes> {
        let mut conn = db::connect(url)?;
        Self::from_catalog(&mut conn)
    }

    /// Sizes from `pg_class.reltuples`; from `pg_stats` for
    /// `tasks.user_id` how many users own tasks (`n_distinct`) and how
    /// skewed their counts are (the share of the heaviest 1 % of owners in
    /// `most_common_freqs`, as a Pareto shape; no common values: even),
    /// and for `tasks.completed` the completed share. A column without
    /// statistics leaves the generator's default.
    pub fn from_catalog(conn: &mut DbConnection) -> Result<Sizes> {
        let estimates: Vec<Estimate> = diesel::sql_query(
            "SELECT c.relname::text AS name, CAST(c.reltuples AS float8) AS rows
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname IN ('tasks', 'users')",
        )
        .load(conn)?;
        let rows = |table: &str| -> Result<f64> {
            let estimate = estimates.iter().find(|e| e.name == table).ok_or_else(|| {
                Error::InvalidInput(format!("--like: the database has no {table} table"))
            })?;
            if estimate.rows < 0.0 {
                return Err(Error::InvalidInput(format!(
                    "--like: {table} has never been analysed, so its size is unknown (run ANALYZE {table} there, or give --rows)"
                )));
            }
            Ok(estimate.rows)
        };
        let tasks = rows("tasks")?.round() as u64;
        let users = (rows("users")?.round() as u64)
            .clamp(1, u64::from(crate::seed::demo::MAX_DEMO_USERS)) as u32;
        let stats: Vec<ColumnStats> = diesel::sql_query(
            "SELECT attname::text AS column, CAST(n_distinct AS float8) AS n_distinct,
                    most_common_vals::text AS values,
                    most_common_freqs::text AS freqs
               FROM pg_stats
              WHERE schemaname = 'public' AND tablename = 'tasks'
                AND attname IN ('user_id', 'completed')",
        )
        .load(conn)?;
        let mut sizes = Sizes {
            tasks,
            users,
            owners: None,
            skew: None,
            completed: None,
        };
        if let Some(owner) = stats.iter().find(|s| s.column == "user_id") {
            let distinct = if owner.n_distinct < 0.0 {
                -owner.n_distinct * tasks as f64
            } else {
                owner.n_distinct
            };
            let distinct = distinct.round().max(1.0);
            if tasks > 0 && distinct < f64::from(users) {
                sizes.owners = Some(distinct as u32);
            }
            sizes.skew =
                skew_from_common_freqs(&owner.freqs().unwrap_or_default(), distinct, tasks as f64);
        }
        if let Some(done) = stats.iter().find(|s| s.column == "completed") {
            sizes.completed = completed_share(done.values.as_deref(), done.freqs().as_deref());
        }
        Ok(sizes)
    }
}

/// The completed share from `completed`'s common values (`{f,t}` and
/// their frequencies): `t`'s frequency, 0 when only `f` is common.
fn completed_share(values: Option<&str>, freqs: Option<&[f64]>) -> Option<f64> {
    let values: Vec<&str> = values?
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .collect();
    let freqs = freqs?;
    match values.iter().position(|v| *v == "t") {
        Some(at) => freqs.get(at).copied(),
        None => values.contains(&"f").then_some(0.0),
    }
}

/// The share of the heaviest `top` (at most 10 000) of `owners` owners
/// holding `tasks` tasks that the demo generator's skewed counts give at
/// shape `alpha` (before rounding): owner k from the top weighs
/// `((k - ½) / owners)^(-1/α)`, the weights scaled to add up to `tasks`
/// with none over [`MAX_DEMO_TASKS_PER_USER`](crate::seed::demo::MAX_DEMO_TASKS_PER_USER).
/// Past the first 10 000 owners, one owner in each run of 1 % stands for
/// the run.
fn generated_top_share(alpha: f64, top: f64, owners: f64, tasks: f64) -> f64 {
    let cap = f64::from(crate::seed::demo::MAX_DEMO_TASKS_PER_USER);
    let exact = 10_000.0f64.min(owners);
    let mut points: Vec<(f64, f64)> = (1..=exact as u64).map(|k| (k as f64, 1.0)).collect();
    let mut start = exact + 1.0;
    while start <= owners {
        let size = (start * 0.01).floor().max(1.0).min(owners - start + 1.0);
        points.push((start + (size - 1.0) / 2.0, size));
        start += size;
    }
    let weights: Vec<(f64, f64, f64)> = points
        .iter()
        .map(|&(k, m)| (k, ((k - 0.5) / owners).powf(-1.0 / alpha), m))
        .collect();
    let sum_at = |scale: f64, upto: f64| -> f64 {
        weights
            .iter()
            .take_while(|(k, _, _)| *k <= upto)
            .map(|(_, w, m)| m * (scale * w).min(cap))
            .sum()
    };
    let total = tasks.min(owners * cap);
    let (mut lo, mut hi) = (0.0f64, cap + 1.0);
    for _ in 0..50 {
        let mid = (lo + hi) / 2.0;
        if sum_at(mid, owners) <= total {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    sum_at(lo, top) / total.max(1.0)
}

/// The Pareto shape that makes the generator's heaviest 1 % of `owners`
/// owners of `tasks` tasks (at least one owner, at most the common values
/// there are) hold the share `freqs` gives them, `freqs` being
/// `most_common_freqs` of `tasks.user_id` (heaviest first). `None` (even)
/// when there are no common values, or the heaviest hold less than 1.5
/// times their even share, or no shape up to [`MAX_SKEW`] is that even.
///
/// [`MAX_SKEW`]: crate::seed::demo::MAX_SKEW
fn skew_from_common_freqs(freqs: &[f64], owners: f64, tasks: f64) -> Option<f64> {
    use crate::seed::demo::{MAX_SKEW, MIN_SKEW};
    if freqs.is_empty() || owners < 2.0 || tasks < 1.0 {
        return None;
    }
    let top = (owners * 0.01)
        .ceil()
        .clamp(1.0, freqs.len().min(10_000) as f64);
    let share: f64 = freqs[..top as usize].iter().sum();
    if share < 1.5 * top / owners {
        return None;
    }
    // The share falls as α grows.
    let at = |alpha: f64| generated_top_share(alpha, top, owners, tasks);
    if at(MAX_SKEW) >= share {
        return None;
    }
    let (mut lo, mut hi) = (MIN_SKEW, MAX_SKEW);
    for _ in 0..30 {
        let mid = (lo + hi) / 2.0;
        if at(mid) > share {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some((((lo + hi) / 2.0) * 100.0).round() / 100.0)
}

impl std::fmt::Display for Sizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tasks={},users={}", self.tasks, self.users)?;
        if let Some(owners) = self.owners {
            write!(f, ",owners={owners}")?;
        }
        match self.skew {
            Some(alpha) => write!(f, ",skew={alpha}")?,
            None => write!(f, ",skew=even")?,
        }
        if let Some(done) = self.completed {
            write!(f, ",completed={done:.2}")?;
        }
        Ok(())
    }
}

/// A scratch database that exists until [`Scratch::drop_now`].
pub struct Scratch {
    pub name: String,
    pub url: DatabaseUrl,
    admin: DbConnection,
    /// Cloned from a filled template: already migrated and filled.
    pub cloned: bool,
}

fn scratch_lock(name: &str) -> String {
    format!("{SCRATCH_LOCK_CLASS}, hashtext('{name}')")
}

#[derive(diesel::QueryableByName)]
struct May {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    create_database: bool,
    #[diesel(sql_type = diesel::sql_types::Text)]
    role: String,
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

impl Scratch {
    /// Creates a scratch database on `url`'s server: a clone of
    /// `template` when that exists, else empty. `cancel` watches the
    /// connection that creates (and later drops) it.
    pub fn create(
        url: &DatabaseUrl,
        cancel: &CancelGuard,
        template: Option<&str>,
    ) -> Result<Scratch> {
        let mut admin = db::connect(url)?;
        cancel.watch(&mut admin)?;
        let may: May = diesel::sql_query(
            "SELECT coalesce((SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user), false) AS create_database,
                    current_user::text AS role",
        )
        .get_result(&mut admin)?;
        if !may.create_database {
            return Err(Error::MigrationState(format!(
                "rehearse builds its copy in a scratch database, and role {} may not create databases (it needs CREATEDB)",
                may.role
            )));
        }
        sweep_abandoned(&mut admin);
        let name = format!(
            "{SCRATCH_PREFIX}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        admin.batch_execute(&format!("SELECT pg_advisory_lock({})", scratch_lock(&name)))?;
        // A filled copy kept from an earlier rehearsal, if there is one
        // (it may vanish meanwhile: then the copy is built).
        let cloned = template.is_some_and(|template| {
            let cloned = admin
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .is_ok();
            if cloned {
                mark_used(&mut admin, template);
            }
            cloned
        });
        if !cloned {
            admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))?;
        }
        Ok(Scratch {
            url: url.with_database(&name)?,
            name,
            admin,
            cloned,
        })
    }

    /// Keeps this (filled, unused) copy as `template` for the next
    /// rehearsal, and drops older templates. Best effort: a rehearsal
    /// without a template builds its copy.
    pub fn keep_as_template(&mut self, template: &str) {
        let building = format!("{template}{BUILD_SUFFIX}");
        // Held until the build is renamed or dropped: another rehearsal's
        // sweep leaves it alone meanwhile, and drops it once this process
        // is gone without doing either (killed in between).
        let lock = scratch_lock(&building);
        let kept = self
            .admin
            .batch_execute(&format!("SELECT pg_advisory_lock({lock})"))
            .and_then(|()| {
                self.admin.batch_execute(&format!(
                    "CREATE DATABASE {building} TEMPLATE {}",
                    self.name
                ))
            })
            .and_then(|()| {
                self.admin
                    .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            });
        if kept.is_err() {
            let _ = self
                .admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {building}"));
        }
        let _ = self
            .admin
            .batch_execute(&format!("SELECT pg_advisory_unlock({lock})"));
        if kept.is_err() {
            return;
        }
        mark_used(&mut self.admin, template);
        // The most recently used first; a template nobody marked counts as
        // oldest.
        let older = diesel::sql_query(format!(
            "SELECT datname::text AS name FROM pg_database
              WHERE datname LIKE '{}%' AND datname <> '{template}' AND datname NOT LIKE '%\\_build'
              ORDER BY coalesce(substring(shobj_description(oid, 'pg_database')
                                          FROM 'last used ([0-9]+)$')::bigint, 0) DESC, datname",
            TEMPLATE_PREFIX.replace('_', "\\_")
        ))
        .load::<Name>(&mut self.admin);
        for old in older.unwrap_or_default().iter().skip(KEEP_TEMPLATES - 1) {
            let ours = old.name.strip_prefix(TEMPLATE_PREFIX).is_some_and(|rest| {
                !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric())
            });
            if ours {
                // Fails while another rehearsal clones it: kept for now.
                let _ = self
                    .admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {}", old.name));
            }
        }
    }

    /// Migrates the copy up to and including `base` (nothing when `None`).
    pub fn migrate_to(&self, source: &MigrationSource, base: Option<&str>) -> Result<()> {
        let Some(base) = base else { return Ok(()) };
        migrate::Migrator::new(self.url.clone())
            .with_source(source.clone())
            .with_options(migrate::MigrateOptions {
                max_replica_lag: migrate::replicas::LagBound::OFF,
                unsafe_threshold: u64::MAX,
                ..migrate::MigrateOptions::default()
            })
            .migrate(Some(base))
            .map(drop)
    }

    /// Fills the copy with demo users and tasks, then `VACUUM (ANALYZE)`:
    /// vacuumed, as a long-lived table is, so autovacuum does not start on
    /// the fresh rows during a step (a step's lock would then wait behind
    /// it, time out and retry: a stall production would not see).
    pub fn fill(&self, sizes: Sizes, cancel: &CancelGuard) -> Result<()> {
        let mut conn = db::connect(&self.url)?;
        cancel.watch(&mut conn)?;
        if sizes.tasks > 0 || sizes.users > 0 {
            seed_demo(
                &mut conn,
                &DemoOptions {
                    users: sizes.users,
                    tasks_per_user: sizes.tasks_per_user(),
                    password: DEMO_PASSWORD.to_string(),
                    shape: sizes.shape(),
                },
                &mut |_, _| {},
            )?;
        }
        conn.batch_execute("VACUUM (ANALYZE)")?;
        Ok(())
    }

    /// Drops the copy (its connections too), retrying a few times if a
    /// cancel meant for the work before lands on the drop.
    pub fn drop_now(mut self, cancel: &CancelGuard) -> Result<()> {
        cancel.unwatch_all();
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let mut dropped = self.admin.batch_execute(&drop);
        for _ in 0..5 {
            if dropped.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            dropped = self.admin.batch_execute(&drop);
        }
        let _ = self.admin.batch_execute(&format!(
            "SELECT pg_advisory_unlock({})",
            scratch_lock(&self.name)
        ));
        Ok(dropped?)
    }
}

/// Drops the scratch databases of rehearsals killed outright: no session
/// holds their lock and none is connected. Best effort.
/// Also the `<template>_build` of a rehearsal killed while it kept its
/// copy as a template (its lock is taken the same way).
fn sweep_abandoned(conn: &mut DbConnection) {
    use crate::verify::expected::sweep_abandoned_scratch;
    sweep_abandoned_scratch(conn, SCRATCH_PREFIX, "", SCRATCH_LOCK_CLASS);
    sweep_abandoned_scratch(conn, TEMPLATE_PREFIX, BUILD_SUFFIX, SCRATCH_LOCK_CLASS);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::demo::{Generator, DEFAULT_SKEW};

    fn sized(tasks: u64, users: u32) -> Sizes {
        Sizes {
            tasks,
            users,
            ..Sizes::default()
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(
            Sizes::parse("tasks=1000000,users=10000"),
            Ok(sized(1_000_000, 10_000))
        );
        assert_eq!(Sizes::parse("tasks=2000").unwrap().users, 1_000);
        assert_eq!(Sizes::parse("tasks=2000").unwrap().skew, Some(DEFAULT_SKEW));
        assert_eq!(Sizes::parse("tasks=2000,skew=even").unwrap().skew, None);
        assert_eq!(Sizes::parse("skew=1.5").unwrap().skew, Some(1.5));
        assert!(Sizes::parse("skew=0.5").is_err());
        assert!(Sizes::parse("orders=5").is_err());
        assert!(Sizes::parse("users=0").is_err());
        assert!(Sizes::parse("tasks").is_err());
        assert_eq!(sized(1001, 10).tasks_per_user(), 101);
        let lopsided = sized(1_000_000, 10);
        assert!(lopsided
            .check()
            .unwrap_err()
            .to_string()
            .contains("give at least 100 users"));
        assert!(Sizes::default().check().is_ok());
        assert_eq!(
            Sizes {
                owners: Some(40),
                completed: Some(0.7),
                ..sized(3000, 100)
            }
            .to_string(),
            "tasks=3000,users=100,owners=40,skew=1.161,completed=0.70"
        );
    }

    /// `most_common_freqs` as ANALYZE would give it for the generator's
    /// counts: the heaviest 100 owners' shares.
    fn common_freqs(gen: &Generator, users: u32) -> Vec<f64> {
        let mut counts: Vec<u32> = (0..users).map(|i| gen.tasks_of(i)).collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let total = gen.total_tasks() as f64;
        counts[..100]
            .iter()
            .map(|&c| f64::from(c) / total)
            .collect()
    }

    fn skewed(alpha: f64) -> Generator {
        Generator::with_shape(
            20_000,
            200,
            &TaskShape {
                skew: Some(alpha),
                ..TaskShape::default()
            },
        )
    }

    #[test]
    fn the_skew_read_from_common_freqs_remakes_the_same_tail() {
        for alpha in [1.1, DEFAULT_SKEW, 1.5, 2.0] {
            let freqs = common_freqs(&skewed(alpha), 20_000);
            let read = skew_from_common_freqs(&freqs, 20_000.0, 4_000_000.0)
                .unwrap_or_else(|| panic!("{alpha} read as even"));
            // Where no owner reaches the cap, the very shape.
            if alpha > 1.3 {
                assert!((read - alpha).abs() < 0.05, "{alpha} read as {read}");
            }
            // Always: the copy's heaviest 1 % hold what the original's do.
            let share = |freqs: &[f64]| freqs[..200.min(freqs.len())].iter().sum::<f64>();
            let copied = share(&common_freqs(&skewed(read), 20_000));
            let original = share(&freqs);
            assert!(
                (copied / original - 1.0).abs() < 0.1,
                "{alpha} (top 1% {original}) read as {read} (top 1% {copied})"
            );
        }
        // Even counts have no common values, or all equally common.
        assert_eq!(skew_from_common_freqs(&[], 500.0, 5_000.0), None);
        assert_eq!(skew_from_common_freqs(&[0.025; 40], 40.0, 1_200.0), None);
        let even = Generator::new(20_000, 200);
        assert_eq!(
            skew_from_common_freqs(&common_freqs(&even, 20_000), 20_000.0, 4_000_000.0),
            None
        );
    }

    #[test]
    fn the_completed_share_from_common_values() {
        assert_eq!(completed_share(Some("{f,t}"), Some(&[0.7, 0.3])), Some(0.3));
        assert_eq!(completed_share(Some("{t,f}"), Some(&[0.6, 0.4])), Some(0.6));
        assert_eq!(completed_share(Some("{f}"), Some(&[1.0])), Some(0.0));
        assert_eq!(completed_share(None, None), None);
    }
}
