//! Orphaned tasks: rows of `tasks` whose `user_id` matches no user. They
//! make the `tasks → users` foreign key fail (VALIDATE on PostgreSQL, the
//! table rebuild on SQLite), so the migrator looks for them right before
//! that step, and `taskdb orphans` lists and fixes them.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::db::{Backend, DbConnection, HasBackend as _};
use crate::error::{Error, Result};
use crate::seed::DEV_USER_ID;

/// How many orphan user ids an error message shows.
pub const SAMPLE_SIZE: usize = 5;

/// The tasks of one user id that has no `users` row.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName, serde::Serialize)]
pub struct OrphanOwner {
    #[diesel(sql_type = Text)]
    pub user_id: String,
    #[diesel(sql_type = BigInt)]
    pub tasks: i64,
}

/// Every orphan owner, most tasks first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Orphans {
    pub owners: Vec<OrphanOwner>,
}

impl Orphans {
    /// Orphaned tasks in all.
    pub fn total(&self) -> i64 {
        self.owners.iter().map(|o| o.tasks).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Up to [`SAMPLE_SIZE`] orphan user ids.
    pub fn sample(&self) -> Vec<String> {
        self.owners
            .iter()
            .take(SAMPLE_SIZE)
            .map(|o| o.user_id.clone())
            .collect()
    }
}

/// Finds the orphaned tasks, grouped by user id.
///
/// On PostgreSQL with an index leading on `tasks.user_id` (the migration
/// before the VALIDATE builds one), the distinct owners are walked through
/// the index (a skip scan: one probe per owner, not one per task), so the
/// check costs little next to the VALIDATE's own scan. Otherwise it is one
/// anti-join over `tasks`.
pub fn find(conn: &mut DbConnection) -> Result<Orphans> {
    require_users_table(conn)?;
    let sql = if conn.backend() == Backend::Postgres && has_user_id_index(conn)? {
        SKIP_SCAN
    } else {
        ANTI_JOIN
    };
    let owners = diesel::sql_query(sql).load::<OrphanOwner>(conn)?;
    Ok(Orphans { owners })
}

const ANTI_JOIN: &str = "SELECT t.user_id AS user_id, COUNT(*) AS tasks FROM tasks t
  WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = t.user_id)
  GROUP BY t.user_id ORDER BY 2 DESC, 1";

const SKIP_SCAN: &str = "WITH RECURSIVE owners(user_id) AS (
    (SELECT user_id FROM tasks ORDER BY user_id LIMIT 1)
  UNION ALL
    SELECT (SELECT t.user_id FROM tasks t WHERE t.user_id > o.user_id ORDER BY t.user_id LIMIT 1)
      FROM owners o WHERE o.user_id IS NOT NULL
)
SELECT o.user_id::text AS user_id,
       (SELECT COUNT(*) FROM tasks t WHERE t.user_id = o.user_id) AS tasks
  FROM owners o
 WHERE o.user_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = o.user_id)
 ORDER BY 2 DESC, 1";

/// A valid index on `tasks` whose first column is `user_id`.
fn has_user_id_index(conn: &mut DbConnection) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
          WHERE i.indrelid = 'tasks'::regclass AND i.indisvalid AND a.attname = 'user_id'",
    )
    .get_result(conn)?;
    Ok(row.n > 0)
}

fn require_users_table(conn: &mut DbConnection) -> Result<()> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let sql = match conn.backend() {
        Backend::Postgres => {
            "SELECT (CASE WHEN to_regclass('users') IS NULL OR to_regclass('tasks') IS NULL THEN 0 ELSE 2 END)::bigint AS n"
        }
        Backend::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('users', 'tasks')"
        }
    };
    let row: Count = diesel::sql_query(sql).get_result(conn)?;
    if row.n < 2 {
        return Err(Error::InvalidInput(
            "the database has no users or no tasks table yet: run `taskdb migrate` first".into(),
        ));
    }
    Ok(())
}

/// Fails with [`Error::OrphanedTasks`] when any task belongs to no user.
pub fn ensure_none(conn: &mut DbConnection) -> Result<()> {
    let found = find(conn)?;
    if found.is_empty() {
        return Ok(());
    }
    let owners = found.owners.len();
    let dev_user_tasks = found
        .owners
        .iter()
        .find(|o| o.user_id == DEV_USER_ID)
        .map_or(0, |o| o.tasks);
    Err(Error::OrphanedTasks {
        tasks: found.total(),
        owners,
        sample: found.sample().join(", "),
        dev_user_tasks,
        remedy: remedy(owners, dev_user_tasks),
    })
}

/// What to do about orphaned tasks, for [`Error::OrphanedTasks`]. The app's
/// tasks from before user accounts belong to the development user, and
/// `taskdb seed` exists to create exactly that user: when it is among the
/// unknown owners, that is the first remedy named.
fn remedy(owners: usize, dev_user_tasks: i64) -> String {
    const AGAIN: &str = "and run `taskdb migrate` again";
    const GENERIC: &str = "give them to an existing user with `taskdb orphans --assign-to USER_ID --yes` or delete them with `taskdb orphans --delete --yes`";
    if dev_user_tasks == 0 {
        return format!("List them with `taskdb orphans`, then {GENERIC}, {AGAIN}");
    }
    let seed = format!(
        "create the development user `{DEV_USER_ID}` with `taskdb seed` (choose its login with --email and --password)"
    );
    if owners <= 1 {
        return format!("They belong to `{DEV_USER_ID}`: {seed}, {AGAIN}");
    }
    format!(
        "{dev_user_tasks} of them belong to `{DEV_USER_ID}`: {seed}; list the others with `taskdb orphans`, then {GENERIC}, {AGAIN}"
    )
}

/// What a fix changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg(feature = "cli")]
pub struct Fixed {
    /// Tasks changed (reassigned or deleted).
    pub tasks: u64,
    /// Orphan user ids they had.
    pub owners: usize,
}

/// Gives every orphaned task to `user_id`, which must exist. Only orphaned
/// tasks change; one transaction.
#[cfg(feature = "cli")]
pub fn assign_to(conn: &mut DbConnection, user_id: &str) -> Result<Fixed> {
    let found = find(conn)?;
    conn.transaction(|conn| {
        let exists: i64 = crate::schema::users::table
            .find(user_id)
            .count()
            .get_result(conn)?;
        if exists == 0 {
            return Err(Error::InvalidInput(format!(
                "no user with id `{user_id}`: orphaned tasks can only be given to an existing user; nothing changed"
            )));
        }
        let placeholder = match conn.backend() {
            Backend::Postgres => "$1",
            Backend::Sqlite => "?",
        };
        let tasks = diesel::sql_query(format!(
            "UPDATE tasks SET user_id = {placeholder}
              WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = tasks.user_id)"
        ))
        .bind::<Text, _>(user_id)
        .execute(conn)?;
        Ok(Fixed {
            tasks: tasks as u64,
            owners: found.owners.len(),
        })
    })
}

/// Deletes every orphaned task. Only orphaned tasks go; one transaction.
#[cfg(feature = "cli")]
pub fn delete(conn: &mut DbConnection) -> Result<Fixed> {
    let found = find(conn)?;
    conn.transaction(|conn| {
        let tasks = diesel::sql_query(
            "DELETE FROM tasks WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = tasks.user_id)",
        )
        .execute(conn)?;
        Ok(Fixed {
            tasks: tasks as u64,
            owners: found.owners.len(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_and_total() {
        let found = Orphans {
            owners: (0..7)
                .map(|i| OrphanOwner {
                    user_id: format!("u{i}"),
                    tasks: i + 1,
                })
                .collect(),
        };
        assert_eq!(found.total(), 28);
        assert_eq!(found.sample(), vec!["u0", "u1", "u2", "u3", "u4"]);
    }

    #[test]
    fn the_seed_is_named_when_the_dev_user_owns_some() {
        let generic = remedy(2, 0);
        assert!(!generic.contains("taskdb seed"), "{generic}");
        assert!(generic.contains("--assign-to") && generic.contains("--delete"));
        let only_dev = remedy(1, 3);
        assert!(only_dev.contains("`taskdb seed`"), "{only_dev}");
        assert!(!only_dev.contains("--assign-to"), "{only_dev}");
        let mixed = remedy(3, 2);
        assert!(
            mixed.starts_with("2 of them belong to `user123`")
                && mixed.contains("`taskdb seed`")
                && mixed.contains("the others")
                && mixed.contains("--assign-to"),
            "{mixed}"
        );
        assert!(mixed.ends_with("run `taskdb migrate` again"), "{mixed}");
    }
}
