//! Which database a command talks to, and why.
//!
//! Precedence, decided as a whole (the first URL that is set wins):
//!
//! 1. `--database-url` (`-D`);
//! 2. the environment: `DIRECT_DATABASE_URL` (schema-changing commands
//!    only: a transaction pooler breaks the session state migrations need),
//!    then `DATABASE_URL`;
//! 3. `./.env` (or the nearest `.env` above it), in the same order;
//! 4. the SQLite file `./taskdb.db`.
//!
//! So a URL in `.env` never beats one from the real environment, whichever
//! variable each is: a `DIRECT_DATABASE_URL` left in `.env` cannot redirect
//! `migrate` away from the `DATABASE_URL` an operator exported, while
//! `status` looks elsewhere. The first output line names where the URL came
//! from and every other URL that was set but lost (passwords removed).
//!
//! Environment variables read here: `DATABASE_URL`, `DIRECT_DATABASE_URL`.
//! Other `.env` entries (e.g. `TASKDB_LOCK_TIMEOUT`) are loaded into the
//! environment where it does not set them already.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::db::{self, DatabaseUrl, DbConnection};
use crate::error::{Error, Result};
use crate::source::MigrationSource;

/// The two variables that name a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlVariable {
    DatabaseUrl,
    DirectDatabaseUrl,
}

impl UrlVariable {
    pub fn name(self) -> &'static str {
        match self {
            UrlVariable::DatabaseUrl => "DATABASE_URL",
            UrlVariable::DirectDatabaseUrl => "DIRECT_DATABASE_URL",
        }
    }
}

/// Where the URL came from, shown on the first output line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSource {
    Flag,
    /// Exported in the process environment.
    Environment(UrlVariable),
    /// A line in `.env`.
    DotEnv(UrlVariable),
    Default,
}

impl UrlSource {
    /// A URL that lost: `DATABASE_URL`, `DIRECT_DATABASE_URL in .env`.
    fn setting(self) -> String {
        match self {
            UrlSource::Flag => "--database-url".to_string(),
            UrlSource::Environment(var) => var.name().to_string(),
            UrlSource::DotEnv(var) => format!("{} in .env", var.name()),
            UrlSource::Default => "the default".to_string(),
        }
    }

    /// The URL that won, as the reason the others lost.
    fn winner(self) -> String {
        match self {
            UrlSource::Environment(var) => format!("the environment's {}", var.name()),
            other => other.setting(),
        }
    }

    fn variable(self) -> Option<UrlVariable> {
        match self {
            UrlSource::Environment(var) | UrlSource::DotEnv(var) => Some(var),
            UrlSource::Flag | UrlSource::Default => None,
        }
    }
}

impl fmt::Display for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlSource::Flag => f.write_str("from --database-url"),
            UrlSource::Environment(var) => write!(f, "from {}", var.name()),
            UrlSource::DotEnv(var) => write!(f, "from {} in .env", var.name()),
            UrlSource::Default => {
                f.write_str("the embedded default: no --database-url, DATABASE_URL or .env entry")
            }
        }
    }
}

/// The database a command uses, and how to reach it: what every
/// subcommand gets (like sqlx-cli's `ConnectOpts`).
#[derive(Debug, Clone)]
pub struct Database {
    pub url: DatabaseUrl,
    pub source: UrlSource,
    /// URLs that were set, differ from the one used, and lost by precedence.
    pub ignored: Vec<UrlSource>,
    /// `--wait`: keep retrying the first connection this long while the
    /// server is unreachable (`None`: fail at once).
    pub wait: Option<Duration>,
    /// The migrations the command reads: compiled in, or `--migrations-dir`.
    pub migrations: MigrationSource,
}

/// The database URLs written in `.env`, kept apart from the environment so
/// that precedence can rank them below it (loading them into the
/// environment would make them indistinguishable from exported ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DotEnvUrls {
    pub database_url: Option<String>,
    pub direct_database_url: Option<String>,
}

/// Reads `./.env` (or the nearest one above the working directory, as
/// dotenvy finds it): returns its database URLs and loads its other entries
/// into the environment without overriding variables already set. A missing
/// file is fine; one that does not parse is an error, and nothing of it is
/// used (its text is not echoed: it may hold a password).
pub fn load_dotenv() -> std::result::Result<DotEnvUrls, String> {
    let path = match std::env::current_dir()
        .ok()
        .and_then(|dir| find_dotenv(&dir).transpose())
    {
        None => return Ok(DotEnvUrls::default()),
        Some(Ok(path)) => path,
        Some(Err(e)) => return Err(format!("cannot read .env: {e}")),
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read .env: {e}"))?;
    // dotenvy's own loader skips a UTF-8 byte order mark; its iterator does not.
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut urls = DotEnvUrls::default();
    let mut others = Vec::new();
    for item in dotenvy::from_read_iter(text) {
        let (key, value) = item.map_err(|e| match e {
            dotenvy::Error::LineParse(_, index) => format!(
                "cannot parse .env at byte {index}: expected KEY=value lines; fix or remove the file"
            ),
            e => format!("cannot read .env: {e}"),
        })?;
        // The first occurrence of a key counts, as with dotenvy's loader.
        match key.as_str() {
            "DATABASE_URL" => {
                urls.database_url.get_or_insert(value);
            }
            "DIRECT_DATABASE_URL" => {
                urls.direct_database_url.get_or_insert(value);
            }
            _ => others.push((key, value)),
        }
    }
    // Only once the whole file parsed: a broken file changes nothing. This
    // runs before any thread is started.
    for (key, value) in others {
        if std::env::var_os(&key).is_none() {
            std::env::set_var(key, value);
        }
    }
    Ok(urls)
}

/// The `.env` file in `dir` or the nearest parent, like dotenvy's finder.
fn find_dotenv(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    for dir in dir.ancestors() {
        let candidate = dir.join(".env");
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() => return Ok(Some(candidate)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

impl Database {
    /// Picks the URL by the precedence above. `flag` is `--database-url`
    /// when given on the command line (not clap's fallback to
    /// `DATABASE_URL`); `prefer_direct` is true for schema-changing commands.
    pub fn resolve(flag: Option<&str>, dotenv: &DotEnvUrls, prefer_direct: bool) -> Result<Self> {
        let mut candidates = Vec::new();
        if let Some(url) = flag {
            candidates.push((UrlSource::Flag, url.to_string()));
        }
        let order: &[UrlVariable] = if prefer_direct {
            &[UrlVariable::DirectDatabaseUrl, UrlVariable::DatabaseUrl]
        } else {
            &[UrlVariable::DatabaseUrl]
        };
        for &var in order {
            if let Some(url) = env_url(var)? {
                candidates.push((UrlSource::Environment(var), url));
            }
        }
        for &var in order {
            let url = match var {
                UrlVariable::DatabaseUrl => &dotenv.database_url,
                UrlVariable::DirectDatabaseUrl => &dotenv.direct_database_url,
            };
            if let Some(url) = url.as_ref().filter(|u| !u.trim().is_empty()) {
                candidates.push((UrlSource::DotEnv(var), url.clone()));
            }
        }
        Self::choose(candidates)
    }

    /// The first of `candidates` (URLs that are set, in precedence order).
    /// A blank variable counts as unset before this; a blank flag does not,
    /// and fails to parse rather than silently fall through.
    fn choose(candidates: Vec<(UrlSource, String)>) -> Result<Self> {
        let mut set = candidates.into_iter();
        let Some((source, chosen)) = set.next() else {
            return Ok(Database {
                url: DatabaseUrl::default_sqlite(),
                source: UrlSource::Default,
                ignored: Vec::new(),
                wait: None,
                migrations: MigrationSource::Embedded,
            });
        };
        let chose_direct = source.variable() == Some(UrlVariable::DirectDatabaseUrl);
        let ignored = set
            // The same URL set twice (a shell that sourced .env) lost nothing.
            .filter(|(_, url)| url.trim() != chosen.trim())
            // Beside a DIRECT_DATABASE_URL, DATABASE_URL is the app's
            // (pooled) URL: not using it for a migration is the design.
            .filter(|(lost, _)| {
                !(chose_direct && lost.variable() == Some(UrlVariable::DatabaseUrl))
            })
            .map(|(lost, _)| lost)
            .collect();
        Ok(Database {
            url: parse_from(&chosen, source)?,
            source,
            ignored,
            wait: None,
            migrations: MigrationSource::Embedded,
        })
    }

    /// The same database, reached with `--wait`'s patience.
    pub fn with_wait(mut self, wait: Option<Duration>) -> Self {
        self.wait = wait;
        self
    }

    /// Reads the migrations from `dir` instead of the compiled-in ones.
    pub fn with_migrations_dir(mut self, dir: Option<&Path>) -> Self {
        self.migrations = match dir {
            Some(dir) => MigrationSource::Dir(dir.to_path_buf()),
            None => MigrationSource::Embedded,
        };
        self
    }

    /// Opens a connection, retrying for [`wait`](Self::wait) while the
    /// server is unreachable.
    pub fn connect(&self) -> Result<DbConnection> {
        db::connect_with_wait(&self.url, self.wait)
    }

    /// `postgres://app@db/tasks (from DATABASE_URL)`, plus the URLs that
    /// lost: `(from DATABASE_URL; DIRECT_DATABASE_URL in .env ignored: the
    /// environment's DATABASE_URL wins)`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} ({}", self.url.redacted(), self.source);
        if !self.ignored.is_empty() {
            let lost: Vec<String> = self.ignored.iter().map(|s| s.setting()).collect();
            text.push_str(&format!(
                "; {} ignored: {} wins",
                lost.join(", "),
                self.source.winner()
            ));
        }
        text.push(')');
        text
    }
}

/// A URL variable from the real environment; unset and blank are the same.
fn env_url(var: UrlVariable) -> Result<Option<String>> {
    let Some(value) = std::env::var_os(var.name()) else {
        return Ok(None);
    };
    match value.to_str() {
        Some(url) if url.trim().is_empty() => Ok(None),
        Some(url) => Ok(Some(url.to_string())),
        // The bytes are not shown: they may hold a password.
        None => Err(Error::InvalidUrl {
            url: "(not UTF-8)".to_string(),
            reason: format!("it is not valid UTF-8 (from {})", var.name()),
        }),
    }
}

/// Parses a URL; a bad one says where it came from (a stale variable or
/// `.env` line is easy to overlook).
fn parse_from(url: &str, source: UrlSource) -> Result<DatabaseUrl> {
    DatabaseUrl::parse(url).map_err(|e| match e {
        Error::InvalidUrl { url, reason } => Error::InvalidUrl {
            url,
            reason: format!("{reason} ({source})"),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use UrlSource::{DotEnv, Environment, Flag};
    use UrlVariable::{DatabaseUrl as Db, DirectDatabaseUrl as Direct};

    const PROD: &str = "postgres://app:prodpass@prod/tasks";
    const STAGING: &str = "postgres://app@staging/tasks";
    const OTHER: &str = "postgres://app@other/tasks";

    fn choose(candidates: &[(UrlSource, &str)]) -> Database {
        Database::choose(
            candidates
                .iter()
                .map(|(s, u)| (*s, u.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn environment_database_url_beats_direct_url_in_dotenv() {
        let choice = choose(&[(Environment(Db), STAGING), (DotEnv(Direct), PROD)]);
        assert_eq!(choice.source, Environment(Db));
        assert_eq!(
            choice.describe(),
            "postgres://app@staging/tasks (from DATABASE_URL; DIRECT_DATABASE_URL in .env \
             ignored: the environment's DATABASE_URL wins)"
        );
    }

    #[test]
    fn the_first_set_url_wins() {
        let choice = choose(&[(DotEnv(Db), STAGING)]);
        assert_eq!(choice.source, DotEnv(Db));
        assert_eq!(
            choice.describe(),
            "postgres://app@staging/tasks (from DATABASE_URL in .env)"
        );
        let choice = choose(&[]);
        assert_eq!(choice.source, UrlSource::Default);
        assert!(choice.describe().contains("embedded default"));
    }

    #[test]
    fn a_direct_url_does_not_report_the_pooled_url_as_ignored() {
        let choice = choose(&[
            (Environment(Direct), PROD),
            (Environment(Db), STAGING),
            (DotEnv(Direct), OTHER),
            (DotEnv(Db), OTHER),
        ]);
        assert_eq!(
            choice.describe(),
            "postgres://app@prod/tasks (from DIRECT_DATABASE_URL; DIRECT_DATABASE_URL in .env \
             ignored: the environment's DIRECT_DATABASE_URL wins)"
        );
        assert!(!choice.describe().contains("prodpass"));
    }

    #[test]
    fn the_flag_names_everything_it_overrode_that_differs() {
        let choice = choose(&[
            (Flag, OTHER),
            (Environment(Db), STAGING),
            (DotEnv(Direct), PROD),
            (DotEnv(Db), OTHER),
        ]);
        assert_eq!(
            choice.describe(),
            "postgres://app@other/tasks (from --database-url; DATABASE_URL, \
             DIRECT_DATABASE_URL in .env ignored: --database-url wins)"
        );
    }

    #[test]
    fn a_bad_url_names_where_it_came_from() {
        let err = Database::choose(vec![(DotEnv(Direct), "mysql://x/y".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("from DIRECT_DATABASE_URL in .env"), "{err}");
    }
}
