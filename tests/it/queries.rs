//! The typed queries, run against both backends from one set of tests.

use crate::common;

use diesel::connection::SimpleConnection;
use taskdb::models::{task, user, NewTask, NewUser, TaskChanges, TaskFilter};
use taskdb::Error;

fn new_user<'a>(id: &'a str, email: &'a str) -> NewUser<'a> {
    NewUser {
        id: Some(id),
        email,
        password: "pw-for-tests",
        name: Some("Someone"),
    }
}

both_backends!(create_and_find_user_ignoring_case, migrated, |db| {
    let mut conn = db.conn();
    let created = user::create(&mut conn, new_user("u1", "Alice@Example.com")).unwrap();
    assert_eq!(created.email, "Alice@Example.com");
    assert!(created.password_hash.starts_with("$2b$12$"));
    let found = user::find_by_email(&mut conn, "alice@EXAMPLE.com")
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "u1");
    assert!(user::find_by_email(&mut conn, "bob@example.com")
        .unwrap()
        .is_none());
});

both_backends!(email_unique_ignoring_case_in_the_database, migrated, |db| {
    let mut conn = db.conn();
    user::create(&mut conn, new_user("u1", "test@example.com")).unwrap();
    let err = user::create(&mut conn, new_user("u2", "TEST@example.com")).unwrap_err();
    assert!(matches!(err, Error::EmailTaken(_)), "{err}");
    // Enforced by the database itself, not by the library.
    let raw = conn.batch_execute(
        "INSERT INTO users (id, email, password_hash) VALUES ('u3', 'Test@Example.COM', 'x')",
    );
    assert!(raw.is_err());
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 1);
});

both_backends!(generated_ids_and_duplicate_ids, migrated, |db| {
    let mut conn = db.conn();
    let a = user::create(
        &mut conn,
        NewUser {
            id: None,
            email: "a@example.com",
            password: "pw",
            name: None,
        },
    )
    .unwrap();
    assert_eq!(a.id.len(), 36);
    let err = user::create(&mut conn, new_user(&a.id, "other@example.com")).unwrap_err();
    assert!(matches!(err, Error::UserIdTaken(_)), "{err}");
});

both_backends!(authenticate_right_wrong_unknown, migrated, |db| {
    let mut conn = db.conn();
    user::create(&mut conn, new_user("u1", "a@example.com")).unwrap();
    let ok = user::authenticate(&mut conn, "A@example.com", "pw-for-tests").unwrap();
    assert_eq!(ok.map(|u| u.id).as_deref(), Some("u1"));
    assert!(user::authenticate(&mut conn, "a@example.com", "wrong")
        .unwrap()
        .is_none());
    assert!(
        user::authenticate(&mut conn, "nobody@example.com", "pw-for-tests")
            .unwrap()
            .is_none()
    );
    let long = "x".repeat(100);
    assert!(user::authenticate(&mut conn, "a@example.com", &long)
        .unwrap()
        .is_none());
});

both_backends!(passwords_bcrypt_refuses, migrated, |db| {
    let mut conn = db.conn();
    let long = "p".repeat(73);
    let err = user::create(
        &mut conn,
        NewUser {
            id: None,
            email: "a@example.com",
            password: &long,
            name: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::PasswordTooLong(73)), "{err}");
    let err = user::create(
        &mut conn,
        NewUser {
            id: None,
            email: "a@example.com",
            password: "",
            name: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    let err = user::create(
        &mut conn,
        NewUser {
            id: None,
            email: "not-an-email",
            password: "pw",
            name: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 0);
});

both_backends!(task_crud_scoped_by_owner, migrated, |db| {
    let mut conn = db.conn();
    user::create(&mut conn, new_user("alice", "alice@example.com")).unwrap();
    user::create(&mut conn, new_user("bob", "bob@example.com")).unwrap();
    let t = task::create(
        &mut conn,
        "alice",
        NewTask {
            title: "write",
            description: Some("docs"),
            completed: false,
        },
    )
    .unwrap();
    assert_eq!(t.user_id, "alice");
    assert!(!t.completed);

    // Bob can neither read, change nor delete Alice's task: it looks missing.
    assert!(task::get(&mut conn, "bob", t.id).unwrap().is_none());
    let bob_update = task::update(
        &mut conn,
        "bob",
        t.id,
        TaskChanges {
            title: Some("pwned"),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(bob_update.is_none());
    assert!(!task::delete(&mut conn, "bob", t.id).unwrap());
    assert!(task::list(&mut conn, "bob", TaskFilter::default())
        .unwrap()
        .is_empty());
    let still = task::get(&mut conn, "alice", t.id).unwrap().unwrap();
    assert_eq!(still.title, "write");

    // Alice can.
    let done = task::update(
        &mut conn,
        "alice",
        t.id,
        TaskChanges {
            completed: Some(true),
            description: Some(None),
            ..Default::default()
        },
    )
    .unwrap()
    .unwrap();
    assert!(done.completed);
    assert_eq!(done.description, None);
    assert!(done.updated_at >= t.updated_at);
    assert!(task::delete(&mut conn, "alice", t.id).unwrap());
    assert!(task::get(&mut conn, "alice", t.id).unwrap().is_none());
    // A missing task behaves exactly like another user's.
    assert!(
        task::update(&mut conn, "alice", t.id, TaskChanges::default())
            .unwrap()
            .is_none()
    );
});

both_backends!(list_filters_orders_and_limits, migrated, |db| {
    let mut conn = db.conn();
    user::create(&mut conn, new_user("alice", "alice@example.com")).unwrap();
    for i in 0..5 {
        task::create(
            &mut conn,
            "alice",
            NewTask {
                title: &format!("task {i}"),
                description: None,
                completed: i % 2 == 0,
            },
        )
        .unwrap();
    }
    let all = task::list(&mut conn, "alice", TaskFilter::default()).unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].title, "task 4", "newest first");
    let done = task::list(
        &mut conn,
        "alice",
        TaskFilter {
            completed: Some(true),
            limit: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        done.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(),
        ["task 4", "task 2", "task 0"]
    );
    let open = task::list(
        &mut conn,
        "alice",
        TaskFilter {
            completed: Some(false),
            limit: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].title, "task 3");
    assert_eq!(task::count(&mut conn, "alice").unwrap(), 5);
});

both_backends!(deleting_a_user_cascades_to_tasks, migrated, |db| {
    let mut conn = db.conn();
    user::create(&mut conn, new_user("alice", "alice@example.com")).unwrap();
    user::create(&mut conn, new_user("bob", "bob@example.com")).unwrap();
    task::create(
        &mut conn,
        "alice",
        NewTask {
            title: "a",
            ..Default::default()
        },
    )
    .unwrap();
    task::create(
        &mut conn,
        "bob",
        NewTask {
            title: "b",
            ..Default::default()
        },
    )
    .unwrap();
    assert!(user::delete(&mut conn, "alice").unwrap());
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tasks WHERE user_id = 'alice'"),
        0
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tasks WHERE user_id = 'bob'"),
        1
    );
});

both_backends!(tasks_need_an_existing_owner, migrated, |db| {
    let mut conn = db.conn();
    let err = task::create(
        &mut conn,
        "ghost",
        NewTask {
            title: "a",
            ..Default::default()
        },
    )
    .unwrap_err();
    // A typed error a backend can match, not the driver's text.
    assert!(
        matches!(&err, Error::UnknownOwner(owner) if owner == "ghost"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no user `ghost`: a task needs an existing owner"
    );
    let err = task::create(
        &mut conn,
        "ghost",
        NewTask {
            title: " ",
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
});

both_backends!(pool_errors_convert_with_the_question_mark, migrated, |db| {
    fn checkout(pool: &taskdb::Pool) -> taskdb::Result<taskdb::db::PooledConnection> {
        Ok(pool.get()?)
    }
    let pool = taskdb::db::pool_builder()
        .max_size(1)
        .connection_timeout(std::time::Duration::from_millis(200))
        .build(taskdb::db::ConnectionManager::new(db.database_url()))
        .unwrap();
    let held = checkout(&pool).unwrap();
    let err = checkout(&pool).err().expect("a second checkout times out");
    assert!(matches!(err, Error::Pool(_)), "{err:?}");
    drop(held);
});

both_backends!(updated_at_trigger_for_raw_sql, migrated, |db| {
    let mut conn = db.conn();
    user::create(&mut conn, new_user("alice", "alice@example.com")).unwrap();
    db.execute(
        "UPDATE users SET updated_at = '2000-01-01 00:00:00', created_at = '2000-01-01 00:00:00'",
    );
    db.execute("UPDATE users SET name = 'Renamed'");
    let u = user::find_by_id(&mut conn, "alice").unwrap().unwrap();
    assert_eq!(u.name.as_deref(), Some("Renamed"));
    assert!(
        u.updated_at > u.created_at,
        "trigger kept updated_at current"
    );
});

#[test]
fn both_backends_give_the_same_answers() {
    let answers: Vec<Vec<String>> = common::BOTH
        .iter()
        .map(|&backend| {
            let db = common::TestDb::migrated(backend);
            let mut conn = db.conn();
            user::create(&mut conn, new_user("alice", "Alice@example.com")).unwrap();
            for (i, title) in ["one", "two", "three"].iter().enumerate() {
                task::create(
                    &mut conn,
                    "alice",
                    NewTask {
                        title,
                        description: None,
                        completed: i == 1,
                    },
                )
                .unwrap();
            }
            let mut out = vec![
                user::find_by_email(&mut conn, "ALICE@example.com")
                    .unwrap()
                    .unwrap()
                    .email,
            ];
            for filter in [None, Some(true), Some(false)] {
                let titles: Vec<String> = task::list(
                    &mut conn,
                    "alice",
                    TaskFilter {
                        completed: filter,
                        limit: 10,
                        ..Default::default()
                    },
                )
                .unwrap()
                .into_iter()
                .map(|t| format!("{}:{}", t.title, t.completed))
                .collect();
                out.push(titles.join(","));
            }
            out
        })
        .collect();
    assert_eq!(answers[0], answers[1]);
}

/// The one-line message for a value longer than its VARCHAR(255) column:
/// names the field and the limit, on both backends (SQLite would store it).
fn assert_too_long(err: &Error, field: &str) {
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{field} is 300 characters long")),
        "{text}"
    );
    assert!(text.contains("at most 255 characters"), "{text}");
    assert!(!text.contains("character varying"), "{text}");
    assert!(!text.contains(&"x".repeat(300)), "{text}");
}

both_backends!(too_long_values_name_the_field_and_limit, migrated, |db| {
    let mut conn = db.conn();
    let long = "x".repeat(300);
    let email = format!("{}@example.com", "x".repeat(288));
    let cases = [
        (
            NewUser {
                name: Some(&long),
                ..new_user("u1", "u1@example.com")
            },
            "user name",
        ),
        (new_user(&long, "u1@example.com"), "user id"),
        (new_user("u1", &email), "email"),
    ];
    for (new, field) in cases {
        let err = user::create(&mut conn, new).unwrap_err();
        assert_too_long(&err, field);
    }
    assert_eq!(db.scalar("SELECT COUNT(*) FROM users"), 0);

    user::create(&mut conn, new_user("u1", "u1@example.com")).unwrap();
    let err = user::rename(&mut conn, "u1", Some(&long)).unwrap_err();
    assert_too_long(&err, "user name");
    let long_title = NewTask {
        title: &long,
        ..Default::default()
    };
    assert_too_long(
        &task::create(&mut conn, "u1", long_title).unwrap_err(),
        "task title",
    );
    let ok = NewTask {
        title: "short",
        ..Default::default()
    };
    assert_too_long(&task::create(&mut conn, &long, ok).unwrap_err(), "user id");
    let t = task::create(&mut conn, "u1", ok).unwrap();
    let err = task::update(
        &mut conn,
        "u1",
        t.id,
        TaskChanges {
            title: Some(&long),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_too_long(&err, "task title");
    assert_eq!(
        user::find_by_id(&mut conn, "u1")
            .unwrap()
            .unwrap()
            .name
            .as_deref(),
        Some("Someone")
    );
    assert_eq!(
        task::get(&mut conn, "u1", t.id).unwrap().unwrap().title,
        "short"
    );
});

// VARCHAR(255) counts characters: 255 of them fit even when they take more
// bytes.
both_backends!(the_length_limit_counts_characters, migrated, |db| {
    let mut conn = db.conn();
    let id = "é".repeat(255);
    let name = "名".repeat(255);
    let created = user::create(
        &mut conn,
        NewUser {
            name: Some(&name),
            ..new_user(&id, "e@example.com")
        },
    )
    .unwrap();
    let title = "ü".repeat(255);
    let t = task::create(
        &mut conn,
        &created.id,
        NewTask {
            title: &title,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(t.title, title);
    let err = user::create(
        &mut conn,
        NewUser {
            name: Some(&"名".repeat(256)),
            ..new_user("u2", "u2@example.com")
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLong {
                field: "user name",
                length: 256,
                max: 255
            }
        ),
        "{err:?}"
    );
});

both_backends!(a_page_says_whether_another_follows, migrated, |db| {
    let mut conn = db.conn();
    user::create(&mut conn, new_user("u1", "u1@example.com")).unwrap();
    for title in ["one", "two", "three"] {
        task::create(
            &mut conn,
            "u1",
            NewTask {
                title,
                ..Default::default()
            },
        )
        .unwrap();
    }
    let first = task::page(
        &mut conn,
        "u1",
        TaskFilter {
            limit: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(first.tasks.len(), 2);
    let next = first.next.expect("a third task follows");
    let last = task::page(
        &mut conn,
        "u1",
        TaskFilter {
            limit: 2,
            after: Some(next),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(last.tasks.len(), 1);
    assert_eq!(last.next, None, "nothing after the last page");
    // Exactly a page's worth: no next page either.
    let all = task::page(
        &mut conn,
        "u1",
        TaskFilter {
            limit: 3,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((all.tasks.len(), all.next), (3, None));
});

both_backends!(
    complete_marks_a_task_done_for_its_owner_only,
    migrated,
    |db| {
        let mut conn = db.conn();
        user::create(&mut conn, new_user("u1", "u1@example.com")).unwrap();
        user::create(&mut conn, new_user("u2", "u2@example.com")).unwrap();
        let t = task::create(
            &mut conn,
            "u1",
            NewTask {
                title: "t",
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(task::complete(&mut conn, "u2", t.id).unwrap(), None);
        assert!(!task::get(&mut conn, "u1", t.id).unwrap().unwrap().completed);
        assert!(
            task::complete(&mut conn, "u1", t.id)
                .unwrap()
                .unwrap()
                .completed
        );
    }
);

both_backends!(
    a_list_reads_at_most_the_cap_whatever_the_limit,
    migrated,
    |db| {
        let mut conn = db.conn();
        // NewUser has a Default, as NewTask does.
        user::create(
            &mut conn,
            NewUser {
                id: Some("u1"),
                email: "u1@example.com",
                password: "pw",
                ..Default::default()
            },
        )
        .unwrap();
        db.execute(&format!(
        "INSERT INTO tasks (user_id, title) SELECT 'u1', 'task' FROM ({}) g",
        match db.backend {
            taskdb::Backend::Postgres => "SELECT generate_series(1, 1005)".to_string(),
            taskdb::Backend::Sqlite => "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1005) SELECT i FROM n".to_string(),
        }
    ));
        let everything = TaskFilter {
            limit: i64::MAX,
            ..Default::default()
        };
        let listed = task::list(&mut conn, "u1", everything).unwrap();
        assert_eq!(listed.len() as i64, task::MAX_LIST_LIMIT);
        let page = task::page(&mut conn, "u1", everything).unwrap();
        assert_eq!(page.tasks.len() as i64, task::MAX_LIST_LIMIT);
        assert!(page.next.is_some());
    }
);

/// A PostgreSQL-only app's types keep their meaning in a build with both
/// backends: a `PgPool` hands out Diesel's `PgConnection`, on which the
/// app's own PostgreSQL-only DSL compiles, and the typed queries take it.
#[test]
fn postgres_types_take_postgres_only_queries_and_the_typed_ones() {
    use diesel::prelude::*;
    use diesel::PgConnection;
    use taskdb::models::Task;
    use taskdb::schema::tasks;

    fn search(conn: &mut PgConnection, owner: &str, text: &str) -> Vec<Task> {
        tasks::table
            .filter(tasks::user_id.eq(owner))
            .filter(tasks::title.ilike(format!("%{text}%")))
            .select(Task::as_select())
            .load(conn)
            .unwrap()
    }

    let db = common::TestDb::migrated(taskdb::Backend::Postgres);
    let pool: taskdb::db::PgPool = taskdb::db::pg_pool(&db.database_url(), 2).unwrap();
    let mut conn = pool.get().unwrap();
    let owner = user::create(&mut conn, new_user("u1", "a@example.com")).unwrap();
    let new = NewTask {
        title: "Buy MILK",
        ..Default::default()
    };
    task::create(&mut conn, &owner.id, new).unwrap();
    assert_eq!(search(&mut conn, &owner.id, "milk").len(), 1);

    // A bare connection, and `&mut` of one, too.
    let mut bare: PgConnection = taskdb::db::connect_postgres(&db.database_url()).unwrap();
    let by_ref = &mut bare;
    assert_eq!(task::count(by_ref, "u1").unwrap(), 1);
    assert_eq!(search(&mut bare, "u1", "MILK").len(), 1);
}

#[test]
fn sqlite_types_take_the_typed_queries() {
    let db = common::TestDb::migrated(taskdb::Backend::Sqlite);
    let pool: taskdb::db::SqlitePool = taskdb::db::sqlite_pool(&db.database_url(), 2).unwrap();
    let mut conn = pool.get().unwrap();
    user::create(&mut conn, new_user("u1", "a@example.com")).unwrap();
    let mut bare = taskdb::db::connect_sqlite(&db.database_url()).unwrap();
    assert!(user::find_by_email(&mut bare, "A@example.com")
        .unwrap()
        .is_some());
    // With foreign keys on, as every taskdb connection.
    assert!(matches!(
        task::create(
            &mut bare,
            "nobody",
            NewTask {
                title: "t",
                ..Default::default()
            }
        ),
        Err(Error::UnknownOwner(_))
    ));
}

#[test]
fn a_backend_typed_pool_refuses_the_other_backends_url() {
    let sqlite = common::TestDb::migrated(taskdb::Backend::Sqlite);
    let err = taskdb::db::pg_pool(&sqlite.database_url(), 1).unwrap_err();
    assert!(err.to_string().contains("PostgreSQL URL"), "{err}");
    let postgres =
        taskdb::DatabaseUrl::parse("postgres://postgres@127.0.0.1:5432/postgres").unwrap();
    let Err(err) = taskdb::db::connect_sqlite(&postgres) else {
        panic!("a SQLite connection opened to a PostgreSQL URL");
    };
    assert!(err.to_string().contains("SQLite URL"), "{err}");
}
