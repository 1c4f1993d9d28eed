//! Task lists page by keyset and read in index order: the plans PostgreSQL
//! makes for the SQL `task::list` and `task::count_matching` really send
//! (captured on the wire), and pages that neither skip nor repeat a task.

use crate::common;

use common::wire_proxy::WireProxy;
use common::TestDb;
use diesel::connection::SimpleConnection;
use taskdb::db::{self, DatabaseUrl};
use taskdb::models::{task, NewTask, TaskCursor, TaskFilter, TaskOrder};
use taskdb::Backend;

/// Many owners with many tasks each, and fresh statistics.
fn busy_tasks_table(db: &TestDb) {
    db.execute(
        "INSERT INTO users (id, email, password_hash) \
           SELECT 'u' || g, 'u' || g || '@example.com', 'x' FROM generate_series(1, 200) g;
         INSERT INTO tasks (user_id, title, completed, created_at, updated_at) \
           SELECT 'u' || (g % 200 + 1), 't' || g, g % 3 = 0, \
                  timestamp '2026-01-01' + g * interval '1 second', timestamp '2026-01-01' \
             FROM generate_series(1, 100000) g;
         ANALYZE tasks; ANALYZE users;",
    );
}

/// The SELECTs `run` sends, captured by a wire proxy in front of `db`.
fn statements_of(db: &TestDb, run: impl FnOnce(&mut taskdb::AnyConnection)) -> Vec<String> {
    let proxy = WireProxy::start("127.0.0.1:5432");
    let url = DatabaseUrl::parse(&proxy.url("postgres", db.pg_name().unwrap())).unwrap();
    let mut conn = db::connect(&url).unwrap();
    run(&mut conn);
    drop(conn);
    proxy
        .take()
        .into_iter()
        .map(|s| s.sql)
        .filter(|sql| sql.contains("FROM \"tasks\""))
        .collect()
}

/// PostgreSQL's generic plan for `sql` (its `$n` parameters left open).
fn generic_plan(db: &TestDb, sql: &str) -> String {
    let params = (1..=20).filter(|n| sql.contains(&format!("${n}"))).count();
    let nulls = vec!["NULL"; params].join(", ");
    let mut conn = db.conn();
    conn.batch_execute(&format!(
        "SET plan_cache_mode = force_generic_plan; PREPARE listing AS {sql}"
    ))
    .unwrap();
    // EXPLAIN is not a SELECT: read its rows through a function.
    conn.batch_execute(&format!(
        "CREATE OR REPLACE FUNCTION pg_temp.plan_of() RETURNS SETOF text LANGUAGE plpgsql AS $$
         DECLARE line text;
         BEGIN
           FOR line IN EXECUTE 'EXPLAIN EXECUTE listing({nulls})' LOOP RETURN NEXT line; END LOOP;
         END $$;"
    ))
    .unwrap();
    common::query_lines(&mut conn, "SELECT plan_of AS line FROM pg_temp.plan_of()").join("\n")
}

fn assert_index_order(plan: &str) {
    assert!(plan.contains("Index Scan"), "{plan}");
    assert!(plan.contains("idx_tasks_user_created"), "{plan}");
    assert!(!plan.contains("Sort"), "a sort: {plan}");
}

#[test]
fn task_lists_read_in_index_order_without_a_sort() {
    let db = TestDb::migrated(Backend::Postgres);
    busy_tasks_table(&db);
    let cursor = TaskCursor {
        created_at: chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap(),
        id: 500,
    };
    let filters = [
        TaskFilter::default(),
        TaskFilter {
            completed: Some(false),
            ..Default::default()
        },
        TaskFilter {
            order: TaskOrder::OldestFirst,
            ..Default::default()
        },
        TaskFilter {
            after: Some(cursor),
            ..Default::default()
        },
        TaskFilter {
            after: Some(cursor),
            order: TaskOrder::OldestFirst,
            completed: Some(true),
            ..Default::default()
        },
    ];
    for filter in filters {
        let sent = statements_of(&db, |conn| {
            task::list(conn, "u7", filter).unwrap();
        });
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_index_order(&generic_plan(&db, &sent[0]));
    }
    let sent = statements_of(&db, |conn| {
        task::count_matching(
            conn,
            "u7",
            TaskFilter {
                completed: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    });
    let plan = generic_plan(&db, &sent[0]);
    assert!(plan.contains("Index"), "{plan}");
}

both_backends!(pages_neither_skip_nor_repeat, migrated, |db| {
    let mut conn = db.conn();
    db.execute(
        "INSERT INTO users (id, email, password_hash) VALUES ('alice', 'a@example.com', 'x')",
    );
    for i in 0..25 {
        task::create(
            &mut conn,
            "alice",
            NewTask {
                title: &format!("t{i}"),
                completed: i % 2 == 0,
                ..Default::default()
            },
        )
        .unwrap();
    }
    // Same created_at for several rows: the id breaks the tie.
    db.execute("UPDATE tasks SET created_at = '2026-01-01 00:00:00' WHERE id % 3 = 0");
    for order in [TaskOrder::NewestFirst, TaskOrder::OldestFirst] {
        for completed in [None, Some(true)] {
            let all = task::list(
                &mut conn,
                "alice",
                TaskFilter {
                    completed,
                    order,
                    limit: 100,
                    ..Default::default()
                },
            )
            .unwrap();
            let mut paged = Vec::new();
            let mut after = None;
            loop {
                let page = task::list(
                    &mut conn,
                    "alice",
                    TaskFilter {
                        completed,
                        order,
                        limit: 4,
                        after,
                    },
                )
                .unwrap();
                if page.is_empty() {
                    break;
                }
                // The cursor survives its text form, as a client hands it back.
                let text = TaskCursor::after(page.last().unwrap()).to_string();
                after = Some(text.parse().unwrap());
                paged.extend(page);
            }
            assert_eq!(paged, all, "{order:?} {completed:?}");
            assert_eq!(
                all.len() as i64,
                task::count_matching(
                    &mut conn,
                    "alice",
                    TaskFilter {
                        completed,
                        ..Default::default()
                    }
                )
                .unwrap()
            );
        }
    }
    assert!("nonsense".parse::<TaskCursor>().is_err());
});
