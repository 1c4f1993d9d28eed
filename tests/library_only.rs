//! taskdb as a backend uses it: the library alone, in whatever build the
//! features make (one backend or both, no `cli`, no `testing`). Run by the
//! full suite and by each feature combination CI checks.

use taskdb::db::{self, DatabaseUrl, DbConnection, HasBackend};
use taskdb::models::{task, user, NewTask, NewUser, TaskFilter};
use taskdb::{migrate, Backend};

/// Migrates with the library's runner, then the typed queries and
/// `with_backend!` (expanded here, in the caller's crate) on a pooled
/// connection.
fn migrate_and_query(url: &str, backend: Backend) {
    let url = DatabaseUrl::parse(url).unwrap();
    let applied = migrate::run_pending(&url).unwrap();
    assert_eq!(applied.len(), migrate::migrations(backend).len());
    assert!(migrate::run_pending(&url).unwrap().is_empty());

    let pool = db::pool(&url, 2).unwrap();
    let mut conn = pool.get().unwrap();
    let conn: &mut DbConnection = &mut conn;
    assert_eq!(conn.backend(), backend);

    let alice = user::create(
        conn,
        NewUser {
            id: None,
            email: "alice@example.com",
            password: "correct horse battery",
            name: None,
        },
    )
    .unwrap();
    for title in ["write docs", "ship it"] {
        task::create(
            conn,
            &alice.id,
            NewTask {
                title,
                ..Default::default()
            },
        )
        .unwrap();
    }
    let open = task::list(
        conn,
        &alice.id,
        TaskFilter {
            completed: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let mut titles: Vec<&str> = open.iter().map(|t| t.title.as_str()).collect();
    titles.sort();
    assert_eq!(titles, ["ship it", "write docs"]);

    use taskdb::diesel::{QueryDsl, RunQueryDsl};
    let tasks: i64 = taskdb::with_backend!(conn, |c| {
        taskdb::schema::tasks::table.count().get_result(c).unwrap()
    });
    assert_eq!(tasks, 2);
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::time::{SystemTime, UNIX_EPOCH};

    use taskdb::diesel::{Connection, PgConnection, RunQueryDsl};

    use super::*;

    /// A database of its own on the test server, dropped at the end.
    struct Scratch {
        admin: String,
        name: String,
    }

    impl Scratch {
        fn new() -> Scratch {
            let admin = std::env::var("TASKDB_TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let name = format!("taskdb_library_only_{}_{nanos}", std::process::id());
            let mut conn = PgConnection::establish(&admin).unwrap();
            taskdb::diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .unwrap();
            Scratch { admin, name }
        }

        fn url(&self) -> String {
            let base = self.admin.rsplit_once('/').map_or(&*self.admin, |(b, _)| b);
            format!("{base}/{}", self.name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            if let Ok(mut conn) = PgConnection::establish(&self.admin) {
                let _ = taskdb::diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut conn);
            }
        }
    }

    #[test]
    fn postgres_migrates_and_queries() {
        let db = Scratch::new();
        migrate_and_query(&db.url(), Backend::Postgres);
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_migrates_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks.db");
    migrate_and_query(path.to_str().unwrap(), Backend::Sqlite);
}

/// A URL of a backend the build leaves out: one line naming the feature.
#[cfg(not(all(feature = "postgres", feature = "sqlite")))]
#[test]
fn a_backend_left_out_is_refused_in_one_line() {
    let (url, want) = if cfg!(feature = "postgres") {
        (
            "sqlite://tasks.db",
            "this build of taskdb has no SQLite support; enable the `sqlite` feature",
        )
    } else {
        (
            "postgres://app@127.0.0.1/tasks",
            "this build of taskdb has no PostgreSQL support; enable the `postgres` feature",
        )
    };
    let url = DatabaseUrl::parse(url).unwrap();
    let connect = match db::connect(&url) {
        Ok(_) => panic!("connected to a backend this build leaves out"),
        Err(e) => e.to_string(),
    };
    assert_eq!(connect, want);
    let migrate = migrate::run_pending(&url).unwrap_err().to_string();
    assert_eq!(migrate, want);
    assert!(migrate::migrations(url.backend()).is_empty());
    assert!(!std::path::Path::new("tasks.db").exists());
}
