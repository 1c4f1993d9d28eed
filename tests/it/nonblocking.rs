//! `taskdb::nonblocking`: the handler calls as async functions on tokio's
//! blocking pool, on both backends, with the runtime's worker threads free
//! while they run, and warnings returned rather than printed.

use std::time::{Duration, Instant};

use taskdb::models::TaskFilter;
use taskdb::nonblocking as nb;

fn runtime() -> tokio::runtime::Runtime {
    // One worker thread: a call that blocked it would stall the ticker.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

both_backends!(handler_calls_run_off_the_worker_thread, empty, |db| {
    runtime().block_on(async {
        let url = taskdb::DatabaseUrl::parse(db.url()).unwrap();
        let migrated = nb::run_pending(url.clone()).await.unwrap();
        assert!(!migrated.steps.is_empty());
        assert!(migrated.warnings.is_empty());
        let pool = nb::pool(url, 2).await.unwrap();
        nb::create_user(
            &pool,
            Some("u1".into()),
            "u1@example.com".into(),
            "pw-for-tests".into(),
            None,
        )
        .await
        .unwrap();
        // While bcrypt (cost 12) runs on the blocking pool, the one worker
        // thread keeps ticking.
        let ticker = tokio::spawn(async {
            let mut longest = Duration::ZERO;
            for _ in 0..40 {
                let before = Instant::now();
                tokio::time::sleep(Duration::from_millis(5)).await;
                longest = longest.max(before.elapsed());
            }
            longest
        });
        let found = nb::authenticate(&pool, "U1@example.com".into(), "pw-for-tests".into())
            .await
            .unwrap();
        assert_eq!(found.map(|u| u.id), Some("u1".to_string()));
        let longest = ticker.await.unwrap();
        assert!(
            longest < Duration::from_millis(150),
            "the worker stalled {longest:?}"
        );

        let t = nb::create_task(&pool, "u1".into(), "write".into(), None)
            .await
            .unwrap();
        assert_eq!(nb::count_tasks(&pool, "u1".into()).await.unwrap(), 1);
        assert!(
            nb::complete_task(&pool, "u1".into(), t.id)
                .await
                .unwrap()
                .unwrap()
                .completed
        );
        let page = nb::task_page(&pool, "u1".into(), TaskFilter::default())
            .await
            .unwrap();
        assert_eq!((page.tasks.len(), page.next), (1, None));
        assert!(nb::get_task(&pool, "u2".into(), t.id)
            .await
            .unwrap()
            .is_none());
        assert!(nb::delete_task(&pool, "u1".into(), t.id).await.unwrap());
    });
});

#[test]
fn errors_come_back_as_taskdbs_own() {
    // A pool of size 0 is refused on the blocking pool: the error travels
    // back through the runtime as taskdb's own.
    let err = runtime()
        .block_on(nb::pool(
            taskdb::DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(),
            0,
        ))
        .unwrap_err();
    assert!(matches!(err, taskdb::Error::InvalidInput(_)), "{err}");
}
