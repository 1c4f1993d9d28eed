//! A TCP proxy in front of PostgreSQL that records every statement clients
//! send, by reading the wire protocol: simple `Query` messages, and for the
//! extended protocol each `Execute` (with the SQL of its `Parse`, also when
//! a cached prepared statement is executed again). Connect through it with
//! `sslmode=disable` (TLS would hide the messages).
//!
//! Shared by the fast-path test and `examples/noop_migrate.rs`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One statement a client sent.
#[derive(Debug, Clone)]
pub struct Statement {
    /// Which client connection (in accept order).
    pub connection: usize,
    pub sql: String,
    /// The server parsed the SQL for this execution: a simple `Query`, or
    /// an `Execute` after a `Parse` (not a cached prepared statement).
    pub parsed: bool,
}

impl Statement {
    /// Changes the schema (CREATE, ALTER, DROP, …).
    pub fn is_ddl(&self) -> bool {
        let first = first_word(&self.sql);
        [
            "CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE", "TRUNCATE", "REINDEX",
        ]
        .contains(&first.as_str())
    }

    /// Diesel's own connection set-up (`SET TIME ZONE`, `SET CLIENT_ENCODING`).
    pub fn is_connection_setup(&self) -> bool {
        let sql = self.sql.trim().to_ascii_uppercase();
        sql.starts_with("SET TIME ZONE") || sql.starts_with("SET CLIENT_ENCODING")
    }

    /// Writes rows or takes locks (anything but a read or a SET).
    pub fn is_write(&self) -> bool {
        !matches!(
            first_word(&self.sql).as_str(),
            "SELECT" | "SET" | "SHOW" | "WITH"
        )
    }
}

fn first_word(sql: &str) -> String {
    let code: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ");
    code.split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_start_matches('(')
        .to_ascii_uppercase()
}

pub struct WireProxy {
    pub port: u16,
    log: Arc<Mutex<Vec<Statement>>>,
    /// Client connections not yet closed.
    open: Arc<AtomicUsize>,
}

impl WireProxy {
    /// Listens on a free loopback port and forwards to `upstream`
    /// (`host:port`).
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_string();
        let shared = Arc::clone(&log);
        let counter = Arc::clone(&open);
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let done = Arc::clone(&counter);
                let Ok(server) = TcpStream::connect(&upstream) else {
                    counter.fetch_sub(1, Ordering::SeqCst);
                    continue;
                };
                // Forward each message at once (Nagle would add delays).
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let log = Arc::clone(&shared);
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                std::thread::spawn(move || copy(s2, c2));
                std::thread::spawn(move || {
                    record(client, server, n, log);
                    done.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        WireProxy { port, log, open }
    }

    /// `postgres://user@127.0.0.1:<port>/<db>?sslmode=disable`.
    pub fn url(&self, user: &str, db: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// Everything recorded once every client has closed its connection
    /// (so all it sent has been read); clears the log.
    pub fn take(&self) -> Vec<Statement> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::mem::take(&mut *self.log.lock().expect("proxy log"))
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// Forwards client → server, logging statements as messages pass.
fn record(
    mut client: TcpStream,
    mut server: TcpStream,
    connection: usize,
    log: Arc<Mutex<Vec<Statement>>>,
) {
    let mut prepared: HashMap<String, String> = HashMap::new();
    let mut unnamed = String::new();
    let mut last_bound = String::new();
    let mut parsed_since_execute = false;
    // Start-up packets (and an SSL or GSS request) have no type byte.
    let mut started = false;
    loop {
        let mut head = [0u8; 5];
        let header_len = if started { 5 } else { 4 };
        if client.read_exact(&mut head[..header_len]).is_err() {
            break;
        }
        let (kind, len_bytes) = if started {
            (head[0], [head[1], head[2], head[3], head[4]])
        } else {
            (0, [head[0], head[1], head[2], head[3]])
        };
        let len = u32::from_be_bytes(len_bytes) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        if client.read_exact(&mut body).is_err() {
            break;
        }
        if !started {
            // The start-up message carries protocol 3.0 (196608); requests
            // for TLS or GSS are followed by another start-up packet.
            if body.len() >= 4 && u32::from_be_bytes([body[0], body[1], body[2], body[3]]) == 196608
            {
                started = true;
            }
        } else {
            let strings = cstrings(&body);
            let push = |sql: String, parsed: bool| {
                if let Ok(mut log) = log.lock() {
                    log.push(Statement {
                        connection,
                        sql,
                        parsed,
                    });
                }
            };
            match kind {
                b'Q' => push(strings.first().cloned().unwrap_or_default(), true),
                b'P' => {
                    parsed_since_execute = true;
                    let name = strings.first().cloned().unwrap_or_default();
                    let sql = strings.get(1).cloned().unwrap_or_default();
                    if name.is_empty() {
                        unnamed = sql;
                    } else {
                        prepared.insert(name, sql);
                    }
                }
                b'B' => {
                    // Portal name, then statement name.
                    let statement = strings.get(1).cloned().unwrap_or_default();
                    last_bound = if statement.is_empty() {
                        unnamed.clone()
                    } else {
                        prepared.get(&statement).cloned().unwrap_or_default()
                    };
                }
                b'E' => {
                    push(last_bound.clone(), parsed_since_execute);
                    parsed_since_execute = false;
                }
                _ => {}
            }
        }
        let mut whole = Vec::with_capacity(header_len + body.len());
        whole.extend_from_slice(&head[..header_len]);
        whole.extend_from_slice(&body);
        if server.write_all(&whole).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// The leading NUL-terminated strings of a message body.
fn cstrings(body: &[u8]) -> Vec<String> {
    body.split(|b| *b == 0)
        .take(2)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}
