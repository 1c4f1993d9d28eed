//! Which database a command talks to, and why.
//!
//! Precedence: `--database-url`, then `DATABASE_URL` from the environment,
//! then `DATABASE_URL` from `./.env`, then the SQLite file `./taskdb.db`.
//! Schema-changing commands use `DIRECT_DATABASE_URL` instead when it is set
//! and no `--database-url` was given.

use std::fmt;

use super::GlobalOpts;
use crate::db::DatabaseUrl;
use crate::error::{Error, Result};

/// Where the URL came from, shown on the first output line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSource {
    Flag,
    Environment,
    DotEnv,
    DirectUrl,
    Default,
}

impl fmt::Display for UrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlSource::Flag => "from --database-url",
            UrlSource::Environment => "from DATABASE_URL",
            UrlSource::DotEnv => "from DATABASE_URL in .env",
            UrlSource::DirectUrl => "from DIRECT_DATABASE_URL",
            UrlSource::Default => {
                "the embedded default: no --database-url, DATABASE_URL or .env entry"
            }
        })
    }
}

/// The database a command uses.
#[derive(Debug, Clone)]
pub struct DatabaseChoice {
    pub url: DatabaseUrl,
    pub source: UrlSource,
}

/// Set by [`load_dotenv`]: was DATABASE_URL already in the environment
/// before `.env` was read?
static DATABASE_URL_FROM_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Loads `./.env` into the environment without overriding variables that
/// are already set. A missing file is fine; one that does not parse is an
/// error (its text is not echoed: it may hold a password).
pub fn load_dotenv() -> std::result::Result<(), String> {
    let _ = DATABASE_URL_FROM_ENV.set(std::env::var_os("DATABASE_URL").is_some());
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(dotenvy::Error::LineParse(_, index)) => Err(format!(
            "cannot parse .env at byte {index}: expected KEY=value lines; fix or remove the file"
        )),
        Err(e) => Err(format!("cannot read .env: {e}")),
    }
}

impl DatabaseChoice {
    /// Picks the URL by the precedence above.
    pub fn resolve(global: &GlobalOpts, prefer_direct: bool) -> Result<Self> {
        let from_env = *DATABASE_URL_FROM_ENV.get().unwrap_or(&true);
        let flag_given = std::env::args_os().any(|a| {
            let a = a.to_string_lossy();
            a == "-D" || a.starts_with("--database-url") || (a.starts_with("-D") && a.len() > 2)
        });
        if prefer_direct && !flag_given {
            if let Ok(direct) = std::env::var("DIRECT_DATABASE_URL") {
                if !direct.trim().is_empty() {
                    return Ok(DatabaseChoice {
                        url: parse_from(&direct, UrlSource::DirectUrl)?,
                        source: UrlSource::DirectUrl,
                    });
                }
            }
        }
        match &global.database_url {
            Some(url) => {
                let source = if flag_given {
                    UrlSource::Flag
                } else if from_env {
                    UrlSource::Environment
                } else {
                    UrlSource::DotEnv
                };
                Ok(DatabaseChoice {
                    url: parse_from(url, source)?,
                    source,
                })
            }
            None => Ok(DatabaseChoice {
                url: DatabaseUrl::default_sqlite(),
                source: UrlSource::Default,
            }),
        }
    }

    /// `postgres://app@db/tasks (from DATABASE_URL)`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.url.redacted(), self.source)
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
