//! The rehearsal's copy: a scratch database `taskdb_rehearse_<random>` on
//! the server of the database rehearsed, migrated to the schema before the
//! rehearsed migrations by taskdb's own runner, filled with demo data
//! (the demo seeder's generator, through COPY) and analysed. Dropped at the
//! end, whatever happens; one left by a rehearsal killed outright is
//! dropped by the next (each running rehearsal holds an advisory lock on
//! its scratch database's name, as `verify` does).
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
use crate::seed::demo::{seed_demo, DemoOptions, DEMO_PASSWORD};

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

/// How big the copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sizes {
    pub tasks: u64,
    pub users: u32,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            tasks: 100_000,
            users: 1_000,
        }
    }
}

impl Sizes {
    /// `tasks=N,users=M` (either may be left out).
    pub fn parse(text: &str) -> std::result::Result<Sizes, String> {
        let mut sizes = Sizes::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                format!("`{part}` is not NAME=COUNT (e.g. tasks=1000000,users=10000)")
            })?;
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
                other => return Err(format!("unknown table `{other}` (use tasks and users)")),
            }
        }
        Ok(sizes)
    }

    /// Refuses sizes the demo generator cannot make.
    pub fn check(self) -> Result<()> {
        let most = crate::seed::demo::MAX_DEMO_TASKS_PER_USER;
        if self.tasks_per_user() > most {
            return Err(Error::InvalidInput(format!(
                "{self}: the copy gives every user the same number of tasks, at most {most}; give at least {} users",
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

    /// Tasks per user for the demo generator (every user the same number).
    fn tasks_per_user(self) -> u32 {
        u32::try_from(self.tasks.div_ceil(u64::from(self.users.max(1)))).unwrap_or(u32::MAX)
    }
}

#[derive(diesel::QueryableByName)]
struct Estimate {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Double)]
    rows: f64,
}

impl Sizes {
    /// The sizes of the live database at `url` as its catalog estimates
    /// them (`pg_class.reltuples`): no row of it is read.
    pub fn like(url: &DatabaseUrl) -> Result<Sizes> {
        let mut conn = db::connect(url)?;
        let estimates: Vec<Estimate> = diesel::sql_query(
            "SELECT c.relname::text AS name, CAST(c.reltuples AS float8) AS rows
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname IN ('tasks', 'users')",
        )
        .load(&mut conn)?;
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
        Ok(Sizes {
            tasks: rows("tasks")?.round() as u64,
            users: (rows("users")?.round() as u64)
                .clamp(1, u64::from(crate::seed::demo::MAX_DEMO_USERS)) as u32,
        })
    }
}

impl std::fmt::Display for Sizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tasks={},users={}", self.tasks, self.users)
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
        let building = format!("{template}_build");
        let kept = self
            .admin
            .batch_execute(&format!(
                "CREATE DATABASE {building} TEMPLATE {}",
                self.name
            ))
            .and_then(|()| {
                self.admin
                    .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            });
        if kept.is_err() {
            let _ = self
                .admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {building}"));
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

    /// Fills the copy with demo users and tasks, then `ANALYZE`.
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
                    shape: Default::default(),
                },
                &mut |_, _| {},
            )?;
        }
        conn.batch_execute("ANALYZE")?;
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
fn sweep_abandoned(conn: &mut DbConnection) {
    let abandoned = diesel::sql_query(format!(
        "SELECT d.datname::text AS name FROM pg_database d
          WHERE d.datname LIKE '{}%'
            AND NOT EXISTS (SELECT 1 FROM pg_locks l
                             WHERE l.locktype = 'advisory' AND l.objsubid = 2
                               AND l.classid = CAST({SCRATCH_LOCK_CLASS} AS oid)
                               AND l.objid = CAST(hashtext(d.datname) AS oid))
            AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        SCRATCH_PREFIX.replace('_', "\\_")
    ))
    .load::<Name>(conn);
    for db in abandoned.unwrap_or_default() {
        let ours = db.name.strip_prefix(SCRATCH_PREFIX).is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric())
        });
        if ours {
            let _ =
                conn.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(
            Sizes::parse("tasks=1000000,users=10000"),
            Ok(Sizes {
                tasks: 1_000_000,
                users: 10_000
            })
        );
        assert_eq!(Sizes::parse("tasks=2000").unwrap().users, 1_000);
        assert!(Sizes::parse("orders=5").is_err());
        assert!(Sizes::parse("users=0").is_err());
        assert!(Sizes::parse("tasks").is_err());
        assert_eq!(
            Sizes {
                tasks: 1001,
                users: 10
            }
            .tasks_per_user(),
            101
        );
        let lopsided = Sizes {
            tasks: 1_000_000,
            users: 10,
        };
        assert!(lopsided
            .check()
            .unwrap_err()
            .to_string()
            .contains("give at least 100 users"));
        assert!(Sizes::default().check().is_ok());
    }
}
