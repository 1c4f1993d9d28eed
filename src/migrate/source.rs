//! The migrations compiled into taskdb: one list per backend, embedded by
//! `build.rs` from `migrations/<backend>/`, with the SQL text taskdb needs
//! for checksums, plans and dry runs.

use sha2::{Digest, Sha256};

use crate::db::Backend;
use crate::error::{Error, Result};

/// The files of one migration directory, as embedded at build time.
#[derive(Debug)]
pub(crate) struct MigrationSql {
    pub dir_name: &'static str,
    pub up: &'static str,
    pub down: Option<&'static str>,
    pub metadata: Option<&'static str>,
    pub run_in_transaction: bool,
}

include!(concat!(env!("OUT_DIR"), "/migration_sql.rs"));

/// One migration directory compiled into taskdb.
#[derive(Debug, Clone, Copy)]
pub struct LocalMigration {
    sql: &'static MigrationSql,
}

impl LocalMigration {
    /// A test's own migration (apply's tests, which need a server).
    #[cfg(all(test, feature = "postgres", feature = "testing"))]
    pub(crate) const fn from_sql(sql: &'static MigrationSql) -> Self {
        LocalMigration { sql }
    }

    /// The version as Diesel stores it: the directory prefix without dashes
    /// (`2026-02-08-000001_create_tasks` → `20260208000001`).
    pub fn version(&self) -> String {
        version_of(self.sql.dir_name)
    }

    /// The directory name, e.g. `2026-02-08-000001_create_tasks`.
    pub fn dir_name(&self) -> &'static str {
        self.sql.dir_name
    }

    /// The part after the version, e.g. `create_tasks`.
    pub fn name(&self) -> &'static str {
        self.sql
            .dir_name
            .split_once('_')
            .map(|(_, name)| name)
            .unwrap_or(self.sql.dir_name)
    }

    pub fn up_sql(&self) -> &'static str {
        self.sql.up
    }

    pub fn down_sql(&self) -> Option<&'static str> {
        self.sql.down
    }

    /// Its `metadata.toml`, when it has one.
    pub fn metadata(&self) -> Option<&'static str> {
        self.sql.metadata
    }

    /// True when this migration checks the existing tasks against users
    /// (a `VALIDATE` of the tasks → users foreign key on PostgreSQL, a
    /// rebuild of `tasks` with it on SQLite), so it fails on tasks that
    /// belong to no user. `migrate` looks for those right before it.
    pub fn checks_task_owners(&self) -> bool {
        checks_task_owners(self.sql.up)
    }

    /// False when `metadata.toml` says `run_in_transaction = false`.
    pub fn run_in_transaction(&self) -> bool {
        self.sql.run_in_transaction
    }

    /// SHA-256 of `up.sql` with CRLF line endings read as LF, so a checkout
    /// on Windows does not count as an edit.
    pub fn checksum(&self) -> String {
        checksum(self.sql.up)
    }
}

#[cfg(test)]
impl LocalMigration {
    /// A migration that is not compiled in, for tests of what uses them.
    pub(crate) fn leaked(dir_name: &str, up: &str) -> Self {
        Self::leaked_with_metadata(dir_name, up, None)
    }

    /// [`Self::leaked`] with a `metadata.toml`.
    pub(crate) fn leaked_with_metadata(dir_name: &str, up: &str, metadata: Option<&str>) -> Self {
        LocalMigration {
            sql: Box::leak(Box::new(MigrationSql {
                dir_name: Box::leak(dir_name.to_string().into_boxed_str()),
                up: Box::leak(up.to_string().into_boxed_str()),
                down: None,
                metadata: metadata.map(|m| &*Box::leak(m.to_string().into_boxed_str())),
                run_in_transaction: true,
            })),
        }
    }
}

/// SHA-256 (hex) of migration SQL, line endings normalised.
pub fn checksum(sql: &str) -> String {
    let normalised = sql.replace("\r\n", "\n");
    let digest = Sha256::digest(normalised.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// See [`LocalMigration::checks_task_owners`].
fn checks_task_owners(up_sql: &str) -> bool {
    let sql = up_sql.to_ascii_lowercase();
    let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    sql.contains("validate constraint fk_tasks_user_id")
        || (sql.contains("references users") && !sql.contains("not valid"))
}

/// Diesel's version for a directory name.
pub(crate) fn version_of(dir_name: &str) -> String {
    super::versions::version_of(dir_name)
}

/// The migrations for `backend`, oldest first; none for a backend this
/// build leaves out (its SQL is not embedded).
pub fn migrations(backend: Backend) -> Vec<LocalMigration> {
    let table: &[MigrationSql] = match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => POSTGRES,
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => SQLITE,
        #[allow(unreachable_patterns)]
        _ => &[],
    };
    table.iter().map(|sql| LocalMigration { sql }).collect()
}

/// Finds the migration a user means: the stored version (`20260208000001`),
/// the directory prefix (`2026-02-08-000001`) or the full directory name.
pub fn resolve(backend: Backend, input: &str) -> Result<LocalMigration> {
    let wanted = input.trim();
    migrations(backend)
        .into_iter()
        .find(|m| {
            m.dir_name() == wanted
                || m.version() == wanted
                || m.dir_name().split('_').next() == Some(wanted)
        })
        .ok_or_else(|| Error::UnknownVersion(wanted.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_that_check_existing_task_owners() {
        assert!(checks_task_owners(
            "ALTER TABLE tasks\n  VALIDATE CONSTRAINT fk_tasks_user_id;"
        ));
        assert!(checks_task_owners(
            "CREATE TABLE tasks_new (user_id VARCHAR(255) NOT NULL REFERENCES users (id));"
        ));
        assert!(!checks_task_owners(
            "ALTER TABLE tasks ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;"
        ));
        assert!(!checks_task_owners("CREATE INDEX ON tasks (user_id);"));
    }

    #[test]
    fn versions_follow_diesel() {
        assert_eq!(
            version_of("2026-02-08-000001_create_tasks"),
            "20260208000001"
        );
        assert_eq!(
            version_of("00000000000000_diesel_initial_setup"),
            "00000000000000"
        );
    }

    #[test]
    fn resolve_accepts_every_spelling() {
        // Both backends name their migrations alike; either one built in.
        let backend = if cfg!(feature = "postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        for input in [
            "20260208000002",
            "2026-02-08-000002",
            "2026-02-08-000002_create_users",
        ] {
            assert_eq!(resolve(backend, input).unwrap().name(), "create_users");
        }
        assert!(matches!(
            resolve(backend, "1999"),
            Err(Error::UnknownVersion(_))
        ));
    }

    #[test]
    fn checksum_ignores_line_endings_only() {
        assert_eq!(checksum("a;\r\nb;\r\n"), checksum("a;\nb;\n"));
        assert_ne!(checksum("a;\nb;\n"), checksum("a;\nc;\n"));
    }

    #[test]
    fn non_transactional_migrations_hold_exactly_one_statement() {
        // Diesel sends a file as one simple query; with several statements
        // PostgreSQL wraps them in an implicit transaction, which CREATE
        // INDEX CONCURRENTLY refuses.
        for backend in [Backend::Postgres, Backend::Sqlite] {
            for m in migrations(backend)
                .iter()
                .filter(|m| !m.run_in_transaction())
            {
                for sql in [Some(m.up_sql()), m.down_sql()].into_iter().flatten() {
                    let statements = strip_comments(sql)
                        .split(';')
                        .filter(|s| !s.trim().is_empty())
                        .count();
                    assert_eq!(statements, 1, "{}", m.dir_name());
                }
            }
        }
    }

    fn strip_comments(sql: &str) -> String {
        sql.lines()
            .map(|l| l.split("--").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
