//! Database URLs, the two backends, connections and the connection pool.
//!
//! A URL decides the backend: `postgres://` / `postgresql://` is PostgreSQL;
//! `sqlite://path`, `sqlite:path`, `file:path`, a path ending in `.db`,
//! `.sqlite` or `.sqlite3`, or `:memory:` is SQLite. Anything else is an
//! error, never a guess. Every URL taskdb shows goes through
//! [`DatabaseUrl::redacted`], and every driver message through
//! [`DatabaseUrl::scrub`], so a password never reaches the output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::connection::{CacheSize, SimpleConnection};
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::error::{Error, Result};

/// File used when no database URL is configured anywhere.
pub const DEFAULT_SQLITE_FILE: &str = "taskdb.db";

/// How long a PostgreSQL connection attempt may take before it fails.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a SQLite writer waits on another writer's lock before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to either backend. Queries that both backends share are
/// written once against this type; backend-specific code matches on it
/// (see [`with_backend!`](crate::with_backend)).
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs the same code on whichever concrete connection `$conn` holds, so a
/// query the shared DSL cannot express is still written once.
#[macro_export]
macro_rules! with_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::AnyConnection::Postgres($c) => $body,
            $crate::db::AnyConnection::Sqlite($c) => $body,
        }
    };
}

/// The two supported database engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        })
    }
}

impl AnyConnection {
    /// Which engine this connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            AnyConnection::Postgres(_) => Backend::Postgres,
            AnyConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// A parsed database URL: what the driver gets, what the user sees.
#[derive(Clone)]
pub struct DatabaseUrl {
    backend: Backend,
    /// Passed to the driver; may hold a password. Never printed.
    driver_url: String,
    redacted: String,
    /// The password, raw and percent-decoded, to scrub from driver messages.
    secrets: Vec<String>,
    /// A transaction pooler (PgBouncer, hosted "-pooler" endpoints) sits in
    /// front of the server: server-side prepared statements cannot be kept.
    pooled: bool,
}

// Debug must not leak the password either.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("backend", &self.backend)
            .field("url", &self.redacted)
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl DatabaseUrl {
    /// Parses a PostgreSQL or SQLite URL (see the module docs for the forms).
    pub fn parse(input: &str) -> Result<Self> {
        let input = input.trim();
        let invalid = |reason: &str| Error::InvalidUrl {
            url: redact_url(input),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(invalid("it is empty"));
        }
        let lower = input.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Self::parse_postgres(input);
        }
        if let Some(path) = lower
            .strip_prefix("sqlite://")
            .map(|_| &input["sqlite://".len()..])
            .or_else(|| {
                lower
                    .strip_prefix("sqlite:")
                    .map(|_| &input["sqlite:".len()..])
            })
        {
            if path.is_empty() {
                return Err(invalid("no SQLite file path after the scheme"));
            }
            return Ok(Self::sqlite(path.to_string(), path.to_string()));
        }
        if lower.starts_with("file:") {
            let path = input["file:".len()..].split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(invalid("no SQLite file path after `file:`"));
            }
            return Ok(Self::sqlite(input.to_string(), path.to_string()));
        }
        if input == ":memory:" {
            return Ok(Self::sqlite(input.to_string(), input.to_string()));
        }
        if !input.contains("://")
            && [".db", ".sqlite", ".sqlite3"]
                .iter()
                .any(|ext| lower.ends_with(ext))
        {
            return Ok(Self::sqlite(input.to_string(), input.to_string()));
        }
        Err(invalid(
            "expected postgres://user@host/db, sqlite://path, file:path, or a path ending in .db, .sqlite or .sqlite3",
        ))
    }

    /// The embedded default: `taskdb.db` in the working directory.
    pub fn default_sqlite() -> Self {
        Self::sqlite(
            DEFAULT_SQLITE_FILE.to_string(),
            DEFAULT_SQLITE_FILE.to_string(),
        )
    }

    fn sqlite(driver_url: String, path: String) -> Self {
        DatabaseUrl {
            backend: Backend::Sqlite,
            driver_url,
            redacted: format!("sqlite://{path}"),
            secrets: Vec::new(),
            pooled: false,
        }
    }

    fn parse_postgres(input: &str) -> Result<Self> {
        let mut url = url::Url::parse(input).map_err(|e| Error::InvalidUrl {
            url: redact_url(input),
            reason: e.to_string(),
        })?;
        let mut secrets = Vec::new();
        if let Some(password) = url.password() {
            secrets.push(password.to_string());
            if let Ok(decoded) = percent_decode(password) {
                secrets.push(decoded);
            }
        }
        // `pgbouncer=true` (the convention other tools use) marks a pooled
        // endpoint; libpq does not know the parameter, so it is taken out.
        let mut pooled_flag = false;
        let mut has_timeout = false;
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, v)| {
                if k == "pgbouncer" {
                    pooled_flag = v == "true" || v == "1";
                    return false;
                }
                if k == "password" {
                    secrets.push(v.to_string());
                }
                has_timeout |= k == "connect_timeout";
                true
            })
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        if !pairs.is_empty() || !has_timeout {
            let mut query = url.query_pairs_mut();
            for (k, v) in &pairs {
                query.append_pair(k, v);
            }
            if !has_timeout {
                query.append_pair(
                    "connect_timeout",
                    &DEFAULT_CONNECT_TIMEOUT.as_secs().to_string(),
                );
            }
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let pooled = pooled_flag || host.contains("-pooler") || url.port() == Some(6432);
        let driver_url = url.to_string();
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        let visible: Vec<(String, String)> =
            pairs.into_iter().filter(|(k, _)| k != "password").collect();
        shown.set_query(None);
        if !visible.is_empty() {
            let mut query = shown.query_pairs_mut();
            for (k, v) in &visible {
                query.append_pair(k, v);
            }
        }
        secrets.retain(|s| !s.is_empty());
        Ok(DatabaseUrl {
            backend: Backend::Postgres,
            driver_url,
            redacted: shown.to_string(),
            secrets,
            pooled,
        })
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password removed: the only form taskdb prints.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Removes this URL's password from any text (driver messages quote
    /// connection strings in places taskdb does not control).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "********");
        }
        out
    }

    /// The SQLite file this URL names (None for PostgreSQL and `:memory:`).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match self.backend {
            Backend::Sqlite if self.driver_url != ":memory:" => {
                Some(PathBuf::from(self.redacted.trim_start_matches("sqlite://")))
            }
            _ => None,
        }
    }

    /// A SQLite file that does not exist yet: opening it would create it,
    /// which a read-only command must not do.
    pub fn is_missing_sqlite_file(&self) -> bool {
        self.sqlite_path().is_some_and(|p| !p.exists())
    }

    /// The same database, with connections that report `name` as their
    /// `application_name` (PostgreSQL; so another connection can find and
    /// cancel them). A startup parameter: no extra query, and PgBouncer
    /// passes it on.
    pub fn with_application_name(&self, name: &str) -> DatabaseUrl {
        let mut tagged = self.clone();
        if self.backend != Backend::Postgres {
            return tagged;
        }
        if let Ok(mut url) = url::Url::parse(&self.driver_url) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "application_name")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(pairs)
                .append_pair("application_name", name);
            tagged.driver_url = url.to_string();
        }
        tagged
    }

    /// True when a transaction pooler is in front of the server.
    pub fn is_pooled(&self) -> bool {
        self.pooled
    }

    /// The URL as the driver needs it, password included. Only for handing
    /// to another program that connects (e.g. the diesel CLI in tests).
    pub fn expose_secret(&self) -> &str {
        &self.driver_url
    }
}

/// Removes the password from a URL-looking string, even one that does not
/// parse (used for error messages about the URL itself).
pub fn redact_url(input: &str) -> String {
    if let Ok(mut url) = url::Url::parse(input) {
        if url.password().is_some() {
            let _ = url.set_password(None);
            return url.to_string();
        }
        return input.to_string();
    }
    // Unparseable: drop anything between "://user:" and the last '@'.
    if let Some(scheme_end) = input.find("://") {
        let rest = &input[scheme_end + 3..];
        if let Some(at) = rest.rfind('@') {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            return format!("{}{}@{}", &input[..scheme_end + 3], user, &rest[at + 1..]);
        }
    }
    input.to_string()
}

/// Masks the password of every `scheme://user:password@host` in free text
/// (clap's usage errors echo arguments, a database URL among them).
pub fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || "/'\"`?#".contains(c))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@').map(|at| (at, &authority[..at])) {
            Some((at, userinfo)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or_default();
                out.push_str(user);
                out.push_str(":********");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn percent_decode(s: &str) -> std::result::Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// Opens one connection, set up the way taskdb needs it:
/// PostgreSQL without a statement cache behind a transaction pooler;
/// SQLite with foreign keys enforced, a busy timeout and WAL.
pub fn connect(url: &DatabaseUrl) -> Result<AnyConnection> {
    let connect_error = |e: &dyn fmt::Display| Error::Connect {
        url: url.redacted().to_string(),
        reason: one_line(&url.scrub(&e.to_string())),
    };
    match url.backend {
        Backend::Postgres => {
            let mut conn =
                PgConnection::establish(&url.driver_url).map_err(|e| connect_error(&e))?;
            if url.pooled {
                conn.set_prepared_statement_cache_size(CacheSize::Disabled);
            }
            Ok(AnyConnection::Postgres(conn))
        }
        Backend::Sqlite => {
            if let Some(parent) = url.sqlite_path().as_deref().and_then(Path::parent) {
                if !parent.as_os_str().is_empty() && !parent.is_dir() {
                    return Err(connect_error(&format!(
                        "directory `{}` does not exist",
                        parent.display()
                    )));
                }
            }
            let mut conn =
                SqliteConnection::establish(&url.driver_url).map_err(|e| connect_error(&e))?;
            configure_sqlite(&mut conn).map_err(|e| connect_error(&e))?;
            Ok(AnyConnection::Sqlite(conn))
        }
    }
}

/// Like [`connect`], retrying with backoff for up to `wait` while the server
/// is unreachable (a database starting next to the app). Errors that waiting
/// cannot fix (bad password, missing database) fail at once.
pub fn connect_with_wait(url: &DatabaseUrl, wait: Option<Duration>) -> Result<AnyConnection> {
    let Some(wait) = wait else {
        return connect(url);
    };
    let deadline = Instant::now() + wait;
    let mut delay = Duration::from_millis(100);
    loop {
        match connect(url) {
            Ok(conn) => return Ok(conn),
            Err(Error::Connect { url: shown, reason })
                if is_transient(&reason) && Instant::now() + delay < deadline =>
            {
                let _ = (shown, reason);
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(Error::Connect { url: shown, reason }) if is_transient(&reason) => {
                return Err(Error::Connect {
                    url: shown,
                    reason: format!("{reason} (still failing after waiting {wait:?})"),
                })
            }
            Err(e) => return Err(e),
        }
    }
}

/// Server not up (yet): worth retrying. Authentication and missing databases
/// are not.
fn is_transient(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "connection refused",
        "could not connect",
        "timeout expired",
        "the database system is starting up",
        "the database system is shutting down",
        "no such file or directory",
        "could not translate host name",
        "server closed the connection",
    ]
    .iter()
    .any(|needle| r.contains(needle))
        && !r.contains("password authentication failed")
}

/// The busy timeout of SQLite connections, in milliseconds.
static SQLITE_BUSY_TIMEOUT_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(SQLITE_BUSY_TIMEOUT.as_millis() as u64);

/// Sets how long SQLite connections opened from now on wait for another
/// connection's write lock before failing with
/// [`Error::SqliteBusy`](crate::Error::SqliteBusy) (default
/// [`SQLITE_BUSY_TIMEOUT`]; the `taskdb` binary takes it from
/// `TASKDB_SQLITE_BUSY_TIMEOUT` / `--sqlite-busy-timeout`). Process-wide,
/// like the file lock it is about.
pub fn set_sqlite_busy_timeout(wait: Duration) {
    // SQLite takes an int of milliseconds.
    let ms = u64::try_from(wait.as_millis())
        .unwrap_or(u64::MAX)
        .min(i32::MAX as u64);
    SQLITE_BUSY_TIMEOUT_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// How long SQLite connections wait on another writer's lock (see
/// [`set_sqlite_busy_timeout`]).
pub fn sqlite_busy_timeout() -> Duration {
    Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Applies the settings every SQLite connection needs. Without
/// `foreign_keys = ON` SQLite ignores ON DELETE CASCADE silently.
pub fn configure_sqlite(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON;",
        sqlite_busy_timeout().as_millis()
    ))?;
    // Switching to WAL needs a moment of exclusive access; a concurrent
    // opener can make it fail with SQLITE_BUSY despite the busy timeout.
    let mut attempts = 0;
    loop {
        match conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;") {
            Ok(()) => return Ok(()),
            Err(e) if attempts < 50 && e.to_string().contains("locked") => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20 * attempts));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Collapses a multi-line driver message into one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The r2d2 pool backend code shares.
pub type Pool = r2d2::Pool<ConnectionManager>;
/// A connection checked out of [`Pool`].
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Opens connections for the pool through [`connect`], so pooled
/// connections get the same settings as every other.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        ConnectionManager { url }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = AnyConnection;
    type Error = Error;

    fn connect(&self) -> Result<AnyConnection> {
        connect(&self.url)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<()> {
        conn.batch_execute("SELECT 1").map_err(Error::from)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || with_backend!(conn, |c| c.is_broken())
    }
}

/// A pool builder with taskdb's defaults. `test_on_check_out` is off: the
/// health-check query on every checkout costs a round trip per request
/// (about half the throughput of a short query on loopback), and a broken
/// connection is still detected by `has_broken` and replaced.
pub fn pool_builder() -> r2d2::Builder<ConnectionManager> {
    r2d2::Pool::builder()
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(10))
}

/// Builds a pool of up to `max_size` connections to `url`.
pub fn pool(url: &DatabaseUrl, max_size: u32) -> Result<Pool> {
    pool_builder()
        .max_size(max_size)
        .build(ConnectionManager::new(url.clone()))
        .map_err(|e| Error::Pool(url.scrub(&e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_keep_passwords_out_of_display() {
        let url = DatabaseUrl::parse("postgres://app:s3cr%40t@db.example.com:5432/tasks").unwrap();
        assert_eq!(url.backend(), Backend::Postgres);
        assert_eq!(url.redacted(), "postgres://app@db.example.com:5432/tasks");
        assert!(!format!("{url:?}").contains("s3cr"));
        assert_eq!(
            url.scrub("bad s3cr@t and s3cr%40t"),
            "bad ******** and ********"
        );
        assert!(url.expose_secret().contains("connect_timeout=10"));
    }

    #[test]
    fn passwords_in_free_text_are_masked() {
        assert_eq!(
            mask_url_passwords("unexpected 'postgres://app:p@ss@h:5432/db' and x://u@h/"),
            "unexpected 'postgres://app:********@h:5432/db' and x://u@h/"
        );
        assert_eq!(mask_url_passwords("no url here"), "no url here");
    }

    #[test]
    fn password_query_parameter_is_redacted() {
        let url =
            DatabaseUrl::parse("postgresql://app@h/db?password=hunter2&sslmode=require").unwrap();
        assert!(!url.redacted().contains("hunter2"));
        assert!(url.redacted().contains("sslmode=require"));
    }

    #[test]
    fn sqlite_forms() {
        for (input, path) in [
            ("sqlite://data/app.db", "data/app.db"),
            ("sqlite:app.db", "app.db"),
            ("file:app.sqlite?mode=rwc", "app.sqlite"),
            ("app.sqlite3", "app.sqlite3"),
        ] {
            let url = DatabaseUrl::parse(input).unwrap();
            assert_eq!(url.backend(), Backend::Sqlite, "{input}");
            assert_eq!(url.sqlite_path().unwrap(), PathBuf::from(path), "{input}");
        }
    }

    #[test]
    fn pooled_endpoints_are_recognised() {
        assert!(
            DatabaseUrl::parse("postgres://u@ep-1-pooler.example.com/db")
                .unwrap()
                .is_pooled()
        );
        assert!(DatabaseUrl::parse("postgres://u@h:6432/db")
            .unwrap()
            .is_pooled());
        let flagged = DatabaseUrl::parse("postgres://u@h/db?pgbouncer=true").unwrap();
        assert!(flagged.is_pooled());
        assert!(!flagged.expose_secret().contains("pgbouncer"));
        assert!(!DatabaseUrl::parse("postgres://u@h/db").unwrap().is_pooled());
    }

    #[test]
    fn unknown_forms_are_errors() {
        for input in [
            "",
            "mysql://u@h/db",
            "tasks",
            "http://x/y.db",
            "postgres://u:p@h:notaport/db",
        ] {
            let err = DatabaseUrl::parse(input).unwrap_err().to_string();
            assert!(err.starts_with("invalid database URL"), "{input}: {err}");
            assert!(!err.contains(":p@"), "{err}");
        }
    }
}
