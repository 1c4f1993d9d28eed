//! Database URLs: parsing, the form the driver gets, the form people see.
//!
//! [`DatabaseUrl`] keeps the two apart: the driver URL, password included,
//! is only handed to the driver; everything taskdb prints is the shown
//! form. [`parse`] reads a PostgreSQL URL the way libpq does, and
//! [`redact`] keeps secrets out of what people see.
//!
//! Secrets: the password, and the values of the query parameters libpq
//! treats as secret ([`SECRET_PARAMETERS`]). The shown form drops the
//! password and masks those values; [`DatabaseUrl::scrub`] removes every
//! written, decoded and encoded form of them from driver messages.

mod parse;
mod redact;

use std::fmt;
use std::path::PathBuf;

use self::parse::{encode, Part, PgParts, Render};
use self::redact::{raw_secrets, tidy};
use super::{Backend, DEFAULT_SQLITE_FILE};
use crate::error::{Error, Result};

pub use self::redact::{mask_url_passwords, redact_url};

/// Query parameters whose values libpq treats as secret (PostgreSQL 18
/// adds `oauth_client_secret`).
pub const SECRET_PARAMETERS: &[&str] = &["password", "sslpassword", "oauth_client_secret"];

fn is_secret_parameter(key: &str) -> bool {
    SECRET_PARAMETERS
        .iter()
        .any(|secret| key.eq_ignore_ascii_case(secret))
}

/// What replaces a secret in anything shown.
const MASK: &str = "********";

/// A parsed database URL: what the driver gets, what the user sees.
#[derive(Clone)]
pub struct DatabaseUrl {
    backend: Backend,
    /// Passed to the driver; may hold a password. Never printed.
    driver_url: String,
    redacted: String,
    /// Every form of every secret, to scrub from driver messages.
    secrets: Vec<String>,
    /// A transaction pooler (PgBouncer, hosted "-pooler" endpoints) sits in
    /// front of the server: server-side prepared statements cannot be kept.
    pooled: bool,
    /// PostgreSQL: the decoded parts, to derive another URL from this one.
    parts: Option<PgParts>,
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
    /// Parses a PostgreSQL or SQLite URL (see [`crate::db`] for the forms).
    ///
    /// A PostgreSQL URL is read as libpq reads it:
    /// `postgres[ql]://[user[:password]@][host][:port][,…][/dbname][?key=value&…]`,
    /// the userinfo ending at the last `@` before the first `/`, every part
    /// percent-decoded and `+` a plus; each part reaches the server exactly
    /// as written. A raw `@` after the host is refused (write a password's
    /// `/` as `%2F`). The password and the values of [`SECRET_PARAMETERS`]
    /// never show.
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
            let parts = PgParts::parse(input).map_err(|reason| invalid(&reason))?;
            return Ok(Self::postgres(parts, input));
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
            parts: None,
        }
    }

    /// `written` is the URL as the user gave it, so the secrets' forms as
    /// written are scrubbed too (empty when derived from another URL).
    fn postgres(parts: PgParts, written: &str) -> Self {
        let mut secrets = Vec::new();
        for secret in parts.secrets() {
            secrets.push(encode(secret, Part::Password));
            secrets.push(encode(secret, Part::QueryValue));
            secrets.push(secret.to_string());
        }
        secrets.extend(raw_secrets(written));
        DatabaseUrl {
            backend: Backend::Postgres,
            driver_url: parts.render(Render::Driver),
            redacted: parts.render(Render::Shown),
            secrets: tidy(secrets),
            pooled: parts.is_pooled(),
            parts: Some(parts),
        }
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password removed and secret parameters masked: the
    /// only form taskdb prints.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Removes this URL's secrets from any text (driver messages quote
    /// connection strings in places taskdb does not control).
    pub fn scrub(&self, text: &str) -> String {
        redact::scrub(text, &self.secrets)
    }

    /// The SQLite file this URL names (None for PostgreSQL and `:memory:`).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match self.backend {
            Backend::Sqlite if !self.is_in_memory() => {
                Some(PathBuf::from(self.redacted.trim_start_matches("sqlite://")))
            }
            _ => None,
        }
    }

    /// An in-memory SQLite database: it lives and dies with one connection,
    /// so a pool of them, or migrations run on one, would hand out empty
    /// databases.
    pub fn is_in_memory(&self) -> bool {
        self.backend == Backend::Sqlite
            && (self.driver_url == ":memory:"
                || self.redacted == "sqlite://:memory:"
                || self.driver_url.contains("mode=memory"))
    }

    /// A SQLite file that does not exist yet: opening it would create it,
    /// which a read-only command must not do.
    pub fn is_missing_sqlite_file(&self) -> bool {
        self.sqlite_path().is_some_and(|p| !p.exists())
    }

    /// The same database, with connections that report `name` as their
    /// `application_name` (PostgreSQL; so another connection can find and
    /// cancel them). A startup parameter: no extra query, and PgBouncer
    /// passes it on. The shown form stays the one the user gave.
    pub fn with_application_name(&self, name: &str) -> DatabaseUrl {
        let mut tagged = self.clone();
        if let Some(parts) = &self.parts {
            let mut parts = parts.clone();
            parts.params.retain(|(k, _)| k != "application_name");
            parts
                .params
                .push(("application_name".to_string(), name.to_string()));
            tagged.driver_url = parts.render(Render::Driver);
            tagged.parts = Some(parts);
        }
        tagged
    }

    /// The same server, credentials and parameters, another database
    /// (PostgreSQL only).
    pub fn with_database(&self, name: &str) -> Result<DatabaseUrl> {
        let Some(parts) = &self.parts else {
            return Err(Error::InvalidUrl {
                url: self.redacted.clone(),
                reason: "only a PostgreSQL URL names a database on a server".to_string(),
            });
        };
        let mut parts = parts.clone();
        parts.dbname = Some(name.to_string());
        let mut derived = Self::postgres(parts, "");
        // Whatever the user wrote stays scrubbed in messages about this one.
        derived.secrets.extend(self.secrets.iter().cloned());
        derived.secrets = tidy(derived.secrets);
        Ok(derived)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(input: &str) -> PgParts {
        PgParts::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

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
    fn derived_urls_keep_credentials_and_parameters() {
        let url = DatabaseUrl::parse("postgres://app:p%23w@h:5433/tasks?sslmode=require").unwrap();
        let other = url.with_database("other db").unwrap();
        assert_eq!(
            other.redacted(),
            "postgres://app@h:5433/other%20db?sslmode=require"
        );
        assert_eq!(
            parts(other.expose_secret()).password.as_deref(),
            Some("p#w")
        );
        let tagged = url.with_application_name("taskdb migrate 1");
        assert_eq!(tagged.redacted(), url.redacted());
        assert!(tagged
            .expose_secret()
            .ends_with("&application_name=taskdb%20migrate%201&connect_timeout=10"));
        assert!(DatabaseUrl::parse("app.db")
            .unwrap()
            .with_database("x")
            .is_err());
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
            "postgres://u:pa/ss@h/db",
            "postgres://u:p%zz@h/db",
            "postgres://u:p%00@h/db",
            "postgres://u@h/db?novalue",
            "postgres://u@[::1/db",
        ] {
            let err = DatabaseUrl::parse(input).unwrap_err().to_string();
            assert!(err.starts_with("invalid database URL"), "{input}: {err}");
            assert!(!err.contains(":p@") && !err.contains("pa/ss"), "{err}");
            assert!(!err.contains("p%zz") && !err.contains("p%00"), "{err}");
        }
    }
}
