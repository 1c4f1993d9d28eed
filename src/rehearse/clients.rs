//! The app's traffic during a rehearsal: threads that each log in by
//! email, read a page of tasks, create a task, complete one of the page's
//! tasks (rows the app already had) and count them,
//! through [`crate::models`] (the queries the app runs), at a steady rate,
//! recording every request's start, latency and error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;

use crate::db::{self, DatabaseUrl, DbConnection};
use crate::models::{task, user, NewTask, TaskFilter};

/// `application_name` of the clients' connections, which the sampler
/// tells apart from the migration's.
pub const CLIENT_APPLICATION: &str = "taskdb-rehearse-client";

/// One request of a client.
#[derive(Debug, Clone)]
pub struct Request {
    /// When it started, since the rehearsal's clock started.
    pub at: Duration,
    pub latency: Duration,
    /// `login`, `page`, `create`, `complete` or `count`.
    pub op: &'static str,
    /// The error, one line, if it failed.
    pub error: Option<String>,
}

/// Running client threads.
pub struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Request>>>,
}

#[derive(diesel::QueryableByName)]
struct Account {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    email: String,
}

impl Clients {
    /// Starts `n` clients on `url`, each sending a request every
    /// `interval`. Fails when a client cannot connect or finds no user.
    pub fn start(
        url: &DatabaseUrl,
        n: u32,
        interval: Duration,
        clock: Instant,
    ) -> crate::Result<Self> {
        let url = url.with_application_name(CLIENT_APPLICATION);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for client in 0..n {
            let mut conn = db::connect(&url)?;
            let accounts: Vec<Account> = diesel::sql_query(format!(
                "SELECT id::text AS id, email::text AS email FROM users ORDER BY id LIMIT 50 OFFSET {}",
                client * 50
            ))
            .load(&mut conn)?;
            let accounts = if accounts.is_empty() {
                diesel::sql_query("SELECT id::text AS id, email::text AS email FROM users LIMIT 50")
                    .load(&mut conn)?
            } else {
                accounts
            };
            if accounts.is_empty() {
                return Err(crate::Error::InvalidInput(
                    "the rehearsal's copy holds no users for its clients to log in as".into(),
                ));
            }
            let stop = stop.clone();
            let url = url.clone();
            threads.push(std::thread::spawn(move || {
                run_client(conn, &url, &accounts, interval, clock, &stop)
            }));
        }
        Ok(Clients { stop, threads })
    }

    /// Stops the clients and returns every request, in start order.
    pub fn stop(self) -> Vec<Request> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all: Vec<Request> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_default())
            .collect();
        all.sort_by_key(|r| r.at);
        all
    }
}

fn run_client(
    mut conn: DbConnection,
    url: &DatabaseUrl,
    accounts: &[Account],
    interval: Duration,
    clock: Instant,
    stop: &AtomicBool,
) -> Vec<Request> {
    let mut requests = Vec::new();
    // Tasks this client created, and those of the page it read last.
    let mut mine: Vec<(String, i32)> = Vec::new();
    let mut shown: Vec<(String, i32)> = Vec::new();
    let mut next = Instant::now();
    let mut k: usize = 0;
    while !stop.load(Ordering::SeqCst) && crate::interrupt::received().is_none() {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(20)));
            continue;
        }
        // A steady rate: late requests start at once, but never in a burst
        // to catch up.
        next = next.max(now - interval) + interval;
        let account = &accounts[(k / 5) % accounts.len()];
        let op = ["login", "page", "create", "complete", "count"][k % 5];
        k += 1;
        let started = Instant::now();
        let result: crate::Result<()> = match op {
            "login" => user::find_by_email(&mut conn, &account.email).map(drop),
            "page" => task::page(&mut conn, &account.id, TaskFilter::default()).map(|page| {
                shown = page.tasks.into_iter().map(|t| (t.user_id, t.id)).collect();
            }),
            "create" => task::create(
                &mut conn,
                &account.id,
                NewTask {
                    title: "Rehearse the deploy",
                    description: Some("Created during a taskdb rehearsal."),
                    completed: false,
                },
            )
            .map(|t| mine.push((t.user_id, t.id))),
            // An existing task, as users complete what they see (rows a
            // migration may hold locked), else the one just created.
            "complete" => match shown.pop().or_else(|| mine.pop()) {
                Some((owner, id)) => task::complete(&mut conn, &owner, id).map(drop),
                None => Ok(()),
            },
            _ => task::count(&mut conn, &account.id).map(drop),
        };
        let latency = started.elapsed();
        let error = result.err().map(|e| db::one_line(&e.to_string()));
        if error.is_some() && conn.batch_execute("SELECT 1").is_err() {
            // The connection is gone: the next request gets a new one.
            if let Ok(fresh) = db::connect(url) {
                conn = fresh;
            }
        }
        requests.push(Request {
            at: started - clock,
            latency,
            op,
            error,
        });
    }
    requests
}
