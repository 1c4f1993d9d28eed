//! `taskdb::db::Pool` on real databases: checkouts from more threads than
//! connections, timeouts, which connection a thread gets back, and what
//! happens to connections that must not be reused.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer};
use taskdb::db::{pool_builder, ConnectionManager, Pool};
use taskdb::{AnyConnection, Error};

fn small_pool(db: &common::TestDb, max_size: u32, timeout: Duration) -> Pool {
    pool_builder()
        .max_size(max_size)
        .connection_timeout(timeout)
        .build(ConnectionManager::new(db.database_url()))
        .unwrap()
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count_users(conn: &mut AnyConnection) -> i64 {
    diesel::sql_query("SELECT COUNT(*) AS n FROM users")
        .get_result::<Number>(conn)
        .unwrap()
        .n
}

/// The PostgreSQL server process behind a connection.
fn backend_pid(conn: &mut AnyConnection) -> i32 {
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = Integer)]
        pid: i32,
    }
    diesel::sql_query("SELECT pg_backend_pid() AS pid")
        .get_result::<Pid>(conn)
        .unwrap()
        .pid
}

both_backends!(
    more_threads_than_connections_all_get_through,
    migrated,
    |db| {
        const THREADS: usize = 6;
        const CHECKOUTS: usize = 200;
        let pool = small_pool(&db, 2, Duration::from_secs(10));
        let start = Barrier::new(THREADS);
        let done: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        for _ in 0..CHECKOUTS {
                            let mut conn = pool.get().expect("a checkout within the timeout");
                            assert_eq!(count_users(&mut conn), 0);
                        }
                        CHECKOUTS
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(done, THREADS * CHECKOUTS);
        let state = pool.state();
        assert_eq!(state.connections, 2, "{state:?}");
        assert_eq!(state.idle_connections, 2, "all returned: {state:?}");
    }
);

both_backends!(
    a_checkout_times_out_when_every_connection_is_busy,
    migrated,
    |db| {
        let timeout = Duration::from_millis(300);
        let pool = small_pool(&db, 2, timeout);
        let held = [pool.get().unwrap(), pool.get().unwrap()];

        // From another thread too: nothing is parked anywhere to take.
        let (result, waited) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let started = Instant::now();
                    (pool.get(), started.elapsed())
                })
                .join()
                .unwrap()
        });
        let err = Error::from(result.err().expect("no connection is free"));
        assert!(matches!(err, Error::Pool(_)), "{err:?}");
        assert!(waited >= timeout, "gave up early, after {waited:?}");
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
        assert!(pool.try_get().is_none());

        drop(held);
        let mut conn = pool.get().unwrap();
        assert_eq!(count_users(&mut conn), 0);
    }
);

both_backends!(
    a_connection_parked_for_one_thread_serves_another,
    migrated,
    |db| {
        let pool = small_pool(&db, 1, Duration::from_secs(10));
        // Parked in this thread's slot once returned.
        drop(pool.get().unwrap());
        let waited = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let started = Instant::now();
                    let mut conn = pool.get().unwrap();
                    count_users(&mut conn);
                    started.elapsed()
                })
                .join()
                .unwrap()
        });
        assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    }
);

both_backends!(
    a_returned_connection_goes_to_the_waiting_thread,
    migrated,
    |db| {
        let pool = small_pool(&db, 1, Duration::from_secs(10));
        let held = pool.get().unwrap();
        // Set just before the only connection is returned: the waiter must
        // see it set, or the pool handed out a second connection.
        let released = AtomicBool::new(false);
        let (waited, released_first) = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let started = Instant::now();
                let mut conn = pool.get().unwrap();
                let released_first = released.load(Ordering::SeqCst);
                count_users(&mut conn);
                (started.elapsed(), released_first)
            });
            std::thread::sleep(Duration::from_millis(200));
            // Returned while the other thread waits: it must not stay parked
            // here until the other thread's timeout.
            released.store(true, Ordering::SeqCst);
            drop(held);
            waiter.join().unwrap()
        });
        assert!(released_first, "got a connection before one was returned");
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    }
);

both_backends!(
    a_connection_left_in_a_transaction_by_a_panic_is_not_reused,
    migrated,
    |db| {
        let pool = small_pool(&db, 1, Duration::from_secs(10));
        let panicked = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let mut conn = pool.get().unwrap();
                    let _: diesel::QueryResult<()> = conn.transaction(|c| {
                        c.batch_execute("CREATE TEMPORARY TABLE left_open (x INTEGER)")?;
                        panic!("the request handler fails inside a transaction");
                    });
                })
                .join()
        });
        assert!(panicked.is_err());

        // The pool's only connection was closed and replaced: a new session,
        // outside any transaction, without the temporary table.
        let mut conn = pool.get().unwrap();
        let err = conn
            .batch_execute("SELECT x FROM left_open")
            .expect_err("the table lived in the old session only");
        assert!(err.to_string().contains("left_open"), "{err}");
        conn.transaction(|c| c.batch_execute("SELECT 1"))
            .expect("a fresh transaction, not a nested one");
    }
);

#[test]
fn each_thread_gets_its_own_backend_back() {
    const THREADS: usize = 2;
    let db = common::TestDb::migrated(taskdb::Backend::Postgres);
    let pool = small_pool(&db, THREADS as u32, Duration::from_secs(10));
    let round = Barrier::new(THREADS);
    let pids: Vec<Vec<i32>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    (0..50)
                        .map(|_| {
                            let pid = backend_pid(&mut pool.get().unwrap());
                            // Both connections are back before either
                            // thread checks out again: a plain r2d2 stack
                            // hands out the one returned last to whoever
                            // comes first.
                            round.wait();
                            pid
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for (thread, seen) in pids.iter().enumerate() {
        assert!(
            seen.iter().all(|&pid| pid == seen[0]),
            "thread {thread} switched backends: {seen:?}"
        );
    }
    assert_ne!(pids[0][0], pids[1][0], "both threads shared one backend");
}

#[test]
fn a_connection_whose_backend_was_terminated_is_replaced() {
    let db = common::TestDb::migrated(taskdb::Backend::Postgres);
    let pool = small_pool(&db, 1, Duration::from_secs(10));
    let old_pid = backend_pid(&mut pool.get().unwrap());
    // Waits (up to 5 s) until the server process is gone.
    db.execute(&format!("SELECT pg_terminate_backend({old_pid}, 5000)"));

    // The parked connection comes back once, and its first query fails.
    let mut dead = pool.get().unwrap();
    let err = dead
        .batch_execute("SELECT 1")
        .expect_err("the server closed this session");
    drop(dead);
    assert!(!err.to_string().is_empty());

    let mut conn = pool.get().unwrap();
    let new_pid = backend_pid(&mut conn);
    assert_ne!(new_pid, old_pid);
    assert_eq!(count_users(&mut conn), 0);
    drop(conn);
    assert_eq!(pool.state().connections, 1);
}

#[test]
fn with_test_on_check_out_a_terminated_connection_is_never_handed_out() {
    let db = common::TestDb::migrated(taskdb::Backend::Postgres);
    let pool = pool_builder()
        .max_size(1)
        .test_on_check_out(true)
        .build(ConnectionManager::new(db.database_url()))
        .unwrap();
    let old_pid = backend_pid(&mut pool.get().unwrap());
    db.execute(&format!("SELECT pg_terminate_backend({old_pid}, 5000)"));

    // The parked connection fails its check and is replaced before the
    // checkout returns.
    let mut conn = pool.get().unwrap();
    assert_ne!(backend_pid(&mut conn), old_pid);
    assert_eq!(count_users(&mut conn), 0);
}

/// What a checkout per query costs on the wire, through taskdb's pool in
/// both its connection types: nothing but the query itself (no health
/// check, no per-checkout settings), and the query prepared once per
/// connection, then run from Diesel's statement cache. Counted by a proxy
/// that reads the PostgreSQL protocol.
#[test]
fn a_checkout_per_query_sends_only_the_query_prepared_once() {
    use common::wire_proxy::WireProxy;
    use taskdb::models::user;

    const LOGINS: usize = 20;
    let db = common::TestDb::migrated(taskdb::Backend::Postgres);
    let proxy = WireProxy::start("127.0.0.1:5432");
    let url = taskdb::DatabaseUrl::parse(&proxy.url("postgres", db.pg_name().unwrap())).unwrap();
    let check = |what: &str| {
        let log = proxy.take();
        let work: Vec<_> = log.iter().filter(|s| !s.is_connection_setup()).collect();
        assert_eq!(work.len(), LOGINS, "{what}: {work:#?}");
        assert!(
            work.iter().all(|s| s.sql.contains("lower(")),
            "{what}: only the login lookup: {work:#?}"
        );
        let parsed = work.iter().filter(|s| s.parsed).count();
        assert_eq!(parsed, 1, "{what}: prepared once: {work:#?}");
    };

    let pool = taskdb::db::pool(&url, 2).unwrap();
    for _ in 0..LOGINS {
        let mut conn = pool.get().unwrap();
        assert!(user::find_by_email(&mut conn, "nobody@example.com")
            .unwrap()
            .is_none());
    }
    drop(pool);
    check("db::pool (AnyConnection)");

    let pool = taskdb::db::pg_pool(&url, 2).unwrap();
    for _ in 0..LOGINS {
        let mut conn = pool.get().unwrap();
        assert!(user::find_by_email(&mut conn, "nobody@example.com")
            .unwrap()
            .is_none());
    }
    drop(pool);
    check("db::pg_pool (PgConnection)");
}
