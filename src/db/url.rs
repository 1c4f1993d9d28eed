//! Database URLs: parsing, the form the driver gets, the form people see.
//!
//! A PostgreSQL URL is read the way libpq reads it, so that what reaches the
//! server is exactly what the user wrote:
//! `postgres[ql]://[user[:password]@][host][:port][,host[:port]…][/dbname][?key=value&…]`.
//! The userinfo ends at the last `@` before the first `/` (libpq does not
//! treat `#` or `?` there as special, so a password may hold them as they
//! are); a host ends at `:`, `/`, `?` or `,`; an IPv6 host is bracketed.
//! User, password, host, database name and every query key and value are
//! percent-decoded, and `+` stays a plus (libpq is no HTML form). The driver
//! URL is then built again from the decoded parts, each percent-encoded, so
//! nothing is lost or re-interpreted on the way.
//!
//! Secrets: the password, and the values of the query parameters libpq
//! treats as secret ([`SECRET_PARAMETERS`]). The shown form drops the
//! password and masks those values; [`DatabaseUrl::scrub`] removes every
//! written, decoded and encoded form of them from driver messages.
//!
//! Like libpq, a `%` not followed by two hex digits and `%00` are refused.
//! Where libpq would do something other than what was meant, taskdb departs
//! from it: the userinfo ends at the *last* `@` (libpq takes the first and
//! leaves the rest of such a password as a host name that cannot resolve);
//! a raw `@` after the host is refused (a password whose `/` was not
//! encoded as `%2F` would otherwise be split into a host and a database
//! name); and a second `=` in a query value is part of the value (libpq
//! refuses it).

use std::fmt;
use std::path::PathBuf;

use super::{Backend, DEFAULT_CONNECT_TIMEOUT, DEFAULT_SQLITE_FILE};
use crate::error::{Error, Result};

/// Query parameters whose values libpq treats as secret (PostgreSQL 18
/// adds `oauth_client_secret`).
pub const SECRET_PARAMETERS: &[&str] = &["password", "sslpassword", "oauth_client_secret"];

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
        let mut out = text.to_string();
        for secret in &self.secrets {
            out = if secret.len() >= 8 {
                out.replace(secret.as_str(), MASK)
            } else {
                // A short password (`p`) is also a piece of ordinary words
                // (`postgres`); replacing it there would garble the message,
                // and a driver never quotes a password inside a word.
                replace_standalone(&out, secret)
            };
        }
        out
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

/// Secrets without duplicates, longest first: a form that contains another
/// (`pa%23ss` holds `pa`) is replaced whole before the shorter one.
fn tidy(mut secrets: Vec<String>) -> Vec<String> {
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
    secrets
}

/// Replaces `secret` in `text` where no letter or digit adjoins it.
fn replace_standalone(text: &str, secret: &str) -> String {
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (i, _) in text.match_indices(secret) {
        if i < copied {
            continue;
        }
        let end = i + secret.len();
        if is_word(text[..i].chars().next_back()) || is_word(text[end..].chars().next()) {
            continue;
        }
        out.push_str(&text[copied..i]);
        out.push_str(MASK);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// The parts of a PostgreSQL URL, percent-decoded.
// No Debug: it holds the password.
#[derive(Clone)]
struct PgParts {
    /// `postgres` or `postgresql`, as written (lowercased).
    scheme: String,
    user: Option<String>,
    password: Option<String>,
    /// (host, port) pairs; either may be empty (libpq's defaults).
    hosts: Vec<(String, String)>,
    dbname: Option<String>,
    /// Query parameters in order, `pgbouncer` taken out.
    params: Vec<(String, String)>,
    /// `?pgbouncer=true`: the convention other tools use for a pooled
    /// endpoint. libpq does not know the parameter, so it never reaches it.
    pgbouncer: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Render {
    /// Everything, plus the default connect timeout.
    Driver,
    /// No password, secret parameters masked.
    Shown,
}

impl PgParts {
    /// Splits `input` (which starts with a PostgreSQL scheme) the way libpq
    /// does. The error is a reason that quotes nothing from the input.
    fn parse(input: &str) -> std::result::Result<PgParts, String> {
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| "no `://` after the scheme".to_string())?;
        let scheme = scheme.to_ascii_lowercase();
        // libpq looks for the userinfo up to the first `/`; the last `@`
        // there ends it (see the module docs), so a password may contain
        // `@`, `#`, `?` and `:`.
        let first_slash = rest.find('/').unwrap_or(rest.len());
        let (userinfo, mut rest) = match rest[..first_slash].rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        if rest.contains('@') {
            return Err(
                "an `@` after the host: write `/` in a password as %2F, and `@` anywhere else as %40"
                    .to_string(),
            );
        }
        let (mut user, mut password) = (None, None);
        if let Some(userinfo) = userinfo {
            let (u, p) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            user = Some(decode(u, "the user name")?).filter(|u| !u.is_empty());
            if let Some(p) = p {
                password = Some(decode(p, "the password")?).filter(|p| !p.is_empty());
            }
        }
        let mut hosts = Vec::new();
        loop {
            let host;
            if let Some(bracketed) = rest.strip_prefix('[') {
                let end = bracketed
                    .find(']')
                    .ok_or_else(|| "an IPv6 host without its closing `]`".to_string())?;
                if end == 0 {
                    return Err("an empty IPv6 host `[]`".to_string());
                }
                host = &bracketed[..end];
                rest = &bracketed[end + 1..];
                if !(rest.is_empty() || rest.starts_with([':', '/', '?', ','])) {
                    return Err("`:`, `/`, `?` or `,` must follow an IPv6 host's `]`".to_string());
                }
            } else {
                let end = rest.find([':', '/', '?', ',']).unwrap_or(rest.len());
                host = &rest[..end];
                rest = &rest[end..];
            }
            let host = decode(host, "a host name")?;
            let mut port = String::new();
            if let Some(after) = rest.strip_prefix(':') {
                let end = after.find(['/', '?', ',']).unwrap_or(after.len());
                port = decode(&after[..end], "a port")?;
                rest = &after[end..];
                if !port.is_empty() && port.parse::<u16>().is_err() {
                    return Err("invalid port number".to_string());
                }
            }
            hosts.push((host, port));
            match rest.strip_prefix(',') {
                Some(next) => rest = next,
                None => break,
            }
        }
        let mut dbname = None;
        if let Some(after) = rest.strip_prefix('/') {
            let end = after.find('?').unwrap_or(after.len());
            dbname = Some(decode(&after[..end], "the database name")?).filter(|d| !d.is_empty());
            rest = &after[end..];
        }
        let mut params = Vec::new();
        let mut pgbouncer = false;
        if let Some(query) = rest.strip_prefix('?') {
            for pair in query.split('&') {
                if pair.is_empty() {
                    continue;
                }
                // libpq refuses a second `=` in a value; it can only be
                // part of the value, so it is kept as such.
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| "a query parameter without `=value`".to_string())?;
                let key = decode(key, "a query parameter name")?;
                let value = decode(value, "a query parameter value")?;
                if key == "pgbouncer" {
                    pgbouncer = value == "true" || value == "1";
                    continue;
                }
                params.push((key, value));
            }
        }
        Ok(PgParts {
            scheme,
            user,
            password,
            hosts,
            dbname,
            params,
            pgbouncer,
        })
    }

    /// The password and every secret parameter's value, decoded.
    fn secrets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.password.as_deref().into_iter().collect();
        out.extend(
            self.params
                .iter()
                .filter(|(k, _)| is_secret_parameter(k))
                .map(|(_, v)| v.as_str()),
        );
        out
    }

    fn is_pooled(&self) -> bool {
        self.pgbouncer
            || self
                .hosts
                .iter()
                .any(|(host, port)| host.to_ascii_lowercase().contains("-pooler") || port == "6432")
    }

    fn render(&self, how: Render) -> String {
        let mut out = format!("{}://", self.scheme);
        let password = self.password.as_deref().filter(|_| how == Render::Driver);
        if self.user.is_some() || password.is_some() {
            if let Some(user) = &self.user {
                out.push_str(&encode(user, Part::Userinfo));
            }
            if let Some(password) = password {
                out.push(':');
                out.push_str(&encode(password, Part::Password));
            }
            out.push('@');
        }
        for (i, (host, port)) in self.hosts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if host.contains(':') {
                out.push('[');
                out.push_str(&encode(host, Part::Ipv6));
                out.push(']');
            } else {
                out.push_str(&encode(host, Part::Host));
            }
            if !port.is_empty() {
                out.push(':');
                out.push_str(port);
            }
        }
        if let Some(dbname) = &self.dbname {
            out.push('/');
            out.push_str(&encode(dbname, Part::Database));
        }
        let timeout = DEFAULT_CONNECT_TIMEOUT.as_secs().to_string();
        let default_timeout = (how == Render::Driver
            && !self.params.iter().any(|(k, _)| k == "connect_timeout"))
        .then_some(("connect_timeout".to_string(), timeout));
        for (i, (key, value)) in self.params.iter().chain(&default_timeout).enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(&encode(key, Part::QueryKey));
            out.push('=');
            if how == Render::Shown && is_secret_parameter(key) {
                out.push_str(MASK);
            } else {
                out.push_str(&encode(value, Part::QueryValue));
            }
        }
        out
    }
}

fn is_secret_parameter(key: &str) -> bool {
    SECRET_PARAMETERS
        .iter()
        .any(|secret| key.eq_ignore_ascii_case(secret))
}

/// The secrets of `written` as the user wrote them (before decoding), so a
/// driver message quoting the input verbatim is scrubbed too.
fn raw_secrets(written: &str) -> Vec<String> {
    let Some((_, rest)) = written.split_once("://") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut after_userinfo = rest;
    if let Some(at) = userinfo_end(rest) {
        if let Some((_, password)) = rest[..at].split_once(':') {
            out.push(password.to_string());
        }
        after_userinfo = &rest[at + 1..];
    }
    if let Some((_, query)) = after_userinfo.split_once('?') {
        for (key, value) in query.split('&').filter_map(|p| p.split_once('=')) {
            if decode(key, "").is_ok_and(|k| is_secret_parameter(&k)) {
                out.push(value.to_string());
            }
        }
    }
    out
}

/// Where the userinfo of `rest` (a URL after its `://`) ends, for text that
/// may not parse: the last `@` before the first `/` as libpq has it, else
/// the last `@` at all (a password whose `/` was not encoded), so a
/// password is never taken for a host.
fn userinfo_end(rest: &str) -> Option<usize> {
    let first_slash = rest.find('/').unwrap_or(rest.len());
    rest[..first_slash].rfind('@').or_else(|| rest.rfind('@'))
}

/// Which part of a URL a string is encoded for. Every part keeps the
/// unreserved characters as they are and encodes the rest; a few more stay
/// readable where libpq gives them no meaning.
#[derive(Clone, Copy)]
enum Part {
    Userinfo,
    Password,
    Host,
    Ipv6,
    Database,
    QueryKey,
    QueryValue,
}

fn encode(s: &str, part: Part) -> String {
    let extra: &[u8] = match part {
        Part::Userinfo | Part::Password | Part::Host | Part::Database | Part::QueryKey => b"",
        Part::Ipv6 => b":",
        Part::QueryValue => b"/:,",
    };
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || extra.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes like libpq: `%` must be followed by two hex digits,
/// `%00` is refused, `+` is a plus. `what` names the part in the error
/// (never its text: it may be a password).
fn decode(s: &str, what: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(0) => return Err(format!("{what} contains %00")),
            Some(b) => out.push(b),
            None => {
                return Err(format!(
                    "a `%` in {what} is not followed by two hex digits (write `%` itself as %25)"
                ))
            }
        }
        i += 3;
    }
    String::from_utf8(out).map_err(|_| format!("{what} is not UTF-8 once percent-decoded"))
}

/// Removes the secrets from a URL-looking string, even one that does not
/// parse (used for error messages about the URL itself).
pub fn redact_url(input: &str) -> String {
    let lower = input.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        if let Ok(parts) = PgParts::parse(input) {
            return parts.render(Render::Shown);
        }
    }
    // Unparseable: the same masking as in free text, the password dropped.
    let out = match input.find("://") {
        Some(i) => format!(
            "{}{}",
            &input[..i + 3],
            mask_url_token(&input[i + 3..], false)
        ),
        None => input.to_string(),
    };
    mask_secret_values(&out)
}

/// Masks the secrets of every `scheme://user:password@host…` in free text
/// (clap's usage errors echo arguments, a database URL among them), and the
/// value of every secret parameter (`password=…`, `sslpassword=…`, …).
pub fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        // A URL in quotes (as clap quotes arguments) ends at the closing
        // quote, so a space in its password does not end it early; a quote
        // inside it is one that a space or the end of the line does not
        // follow.
        let scheme_start = head[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map(|j| j + 1)
            .unwrap_or(0);
        let quote = head[..scheme_start]
            .chars()
            .next_back()
            .filter(|c| "'\"`".contains(*c));
        let end = match quote {
            Some(q) => closing_quote(tail, q),
            None => tail.find(|c: char| c.is_whitespace() || "'\"`".contains(c)),
        }
        .unwrap_or(tail.len());
        out.push_str(head);
        out.push_str(&mask_url_token(&tail[..end], true));
        rest = &tail[end..];
    }
    out.push_str(rest);
    mask_secret_values(&out)
}

/// The index of the quote `q` that closes a quoted URL in `tail`, or of the
/// end of the line.
fn closing_quote(tail: &str, q: char) -> Option<usize> {
    let line = tail.find('\n').unwrap_or(tail.len());
    tail[..line]
        .match_indices(q)
        .map(|(i, _)| i)
        .find(|&i| {
            tail[i + 1..line]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || ",.;:)]".contains(c))
        })
        .or(Some(line))
}

/// One URL after its `://`: the password is masked (`user:********@`) or
/// dropped (`user@`) (see [`userinfo_end`]), and secret query values
/// whatever the spelling of their key (one that does not decode may be a
/// secret one).
fn mask_url_token(token: &str, mark_password: bool) -> String {
    let (userinfo, rest) = match userinfo_end(token) {
        Some(at) => (Some(&token[..at]), &token[at..]),
        None => (None, token),
    };
    let mut out = String::new();
    match userinfo {
        Some(userinfo) if userinfo.contains(':') => {
            out.push_str(userinfo.split(':').next().unwrap_or_default());
            if mark_password {
                out.push(':');
                out.push_str(MASK);
            }
        }
        Some(userinfo) => out.push_str(userinfo),
        None => {}
    }
    let Some((before, query)) = rest.split_once('?') else {
        out.push_str(rest);
        return out;
    };
    out.push_str(before);
    out.push('?');
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if decode(key, "").map_or(true, |k| is_secret_parameter(&k)) => {
                format!("{key}={MASK}")
            }
            _ => pair.to_string(),
        })
        .collect();
    out.push_str(&pairs.join("&"));
    out
}

/// Masks the value after every `password=`, `sslpassword=` and
/// `client_secret=` (any case, spaces allowed around `=` as in a libpq
/// keyword/value string; a value in single quotes up to its closing quote).
fn mask_secret_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some((start, needle)) = ["password", "client_secret"]
        .iter()
        .filter_map(|n| lower[search..].find(n).map(|i| (search + i, *n)))
        .min()
    {
        let after_key = start + needle.len();
        let eq = after_key + (lower[after_key..].len() - lower[after_key..].trim_start().len());
        search = after_key;
        if !lower[eq..].starts_with('=') {
            continue;
        }
        let value_start = eq + 1 + (lower[eq + 1..].len() - lower[eq + 1..].trim_start().len());
        let value = &text[value_start..];
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            quoted.find('\'').map(|i| i + 2).unwrap_or(value.len())
        } else {
            value
                .find(|c: char| c == '&' || c.is_whitespace() || "'\"`".contains(c))
                .unwrap_or(value.len())
        };
        if value_len == 0 || &value[..value_len] == MASK {
            continue;
        }
        out.push_str(&text[copied..value_start]);
        out.push_str(MASK);
        copied = value_start + value_len;
        search = copied;
    }
    out.push_str(&text[copied..]);
    out
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
    fn userinfo_ends_at_the_last_at_before_the_path() {
        for (input, password) in [
            ("postgres://u:pa#ss@h/db", "pa#ss"),
            ("postgres://u:pa?ss@h/db", "pa?ss"),
            ("postgres://u:p@ss@h/db", "p@ss"),
            ("postgres://u:a:b@h", "a:b"),
            ("postgres://u:pa ss@h/db", "pa ss"),
            ("postgres://u:p%23%40%3F%2F%25%20+@h/db", "p#@?/% +"),
        ] {
            let p = parts(input);
            assert_eq!(p.user.as_deref(), Some("u"), "{input}");
            assert_eq!(p.password.as_deref(), Some(password), "{input}");
            assert_eq!(p.hosts, [("h".to_string(), String::new())], "{input}");
            let url = DatabaseUrl::parse(input).unwrap();
            assert!(url.redacted().starts_with("postgres://u@h"), "{url}");
            // The driver gets it back exactly.
            assert_eq!(
                parts(url.expose_secret()).password.as_deref(),
                Some(password)
            );
        }
    }

    #[test]
    fn every_part_is_percent_decoded_and_plus_is_a_plus() {
        let p = parts(
            "postgresql://my%20user:pw@%2Fvar%2Frun%2Fpostgresql:5433/my%2Fdb?options=-c%20statement_timeout%3D5000&application_name=a+b&pass%77ord=x",
        );
        assert_eq!(p.user.as_deref(), Some("my user"));
        assert_eq!(
            p.hosts,
            [("/var/run/postgresql".to_string(), "5433".to_string())]
        );
        assert_eq!(p.dbname.as_deref(), Some("my/db"));
        assert_eq!(
            p.params,
            [
                (
                    "options".to_string(),
                    "-c statement_timeout=5000".to_string()
                ),
                ("application_name".to_string(), "a+b".to_string()),
                ("password".to_string(), "x".to_string()),
            ]
        );
        let url = DatabaseUrl::parse(
            "postgres://u@h/db?options=-c%20statement_timeout%3D5000&application_name=a+b",
        )
        .unwrap();
        assert_eq!(
            url.expose_secret(),
            "postgres://u@h/db?options=-c%20statement_timeout%3D5000&application_name=a%2Bb&connect_timeout=10"
        );
    }

    #[test]
    fn hosts_ports_and_ipv6() {
        let p = parts("postgres://u@h1:5432,[::1]:6432,h3/db");
        assert_eq!(
            p.hosts,
            [
                ("h1".to_string(), "5432".to_string()),
                ("::1".to_string(), "6432".to_string()),
                ("h3".to_string(), String::new()),
            ]
        );
        assert!(p.is_pooled());
        let url = DatabaseUrl::parse("postgres://u@h1:5432,[::1]:6432,h3/db").unwrap();
        assert_eq!(url.redacted(), "postgres://u@h1:5432,[::1]:6432,h3/db");
        let empty = parts("postgres:///db");
        assert_eq!(empty.hosts, [(String::new(), String::new())]);
        assert_eq!(empty.dbname.as_deref(), Some("db"));
    }

    #[test]
    fn secret_parameters_are_masked_and_scrubbed() {
        let url = DatabaseUrl::parse(
            "postgres://app:pw%23x@h/db?sslmode=require&sslpassword=k%20ey&PASSWORD=p2&oauth_client_secret=c3&pass%77ord=p4",
        )
        .unwrap();
        assert_eq!(
            url.redacted(),
            "postgres://app@h/db?sslmode=require&sslpassword=********&PASSWORD=********&oauth_client_secret=********&password=********"
        );
        assert_eq!(
            url.scrub("pw#x pw%23x k ey k%20ey p2 c3 p4"),
            "******** ******** ******** ******** ******** ******** ********"
        );
        assert!(url.expose_secret().contains("sslpassword=k%20ey"));
        let short = DatabaseUrl::parse("postgres://u:p@h/db").unwrap();
        assert_eq!(
            short.scrub("postgres: password p failed (p)"),
            "postgres: password ******** failed (********)"
        );
    }

    #[test]
    fn password_query_parameter_is_redacted() {
        let url =
            DatabaseUrl::parse("postgresql://app@h/db?password=hunter2&sslmode=require").unwrap();
        assert!(!url.redacted().contains("hunter2"));
        assert!(url.redacted().contains("sslmode=require"));
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
    fn passwords_in_free_text_are_masked() {
        assert_eq!(
            mask_url_passwords("unexpected 'postgres://app:p@ss@h:5432/db' and x://u@h/"),
            "unexpected 'postgres://app:********@h:5432/db' and x://u@h/"
        );
        assert_eq!(mask_url_passwords("no url here"), "no url here");
        for (text, masked) in [
            (
                "argument 'postgres://u:pa#ss word@h/db' found",
                "argument 'postgres://u:********@h/db' found",
            ),
            (
                "argument 'postgres://u:it's@h/db' found",
                "argument 'postgres://u:********@h/db' found",
            ),
            (
                "'postgres://a@h/db' and 'postgres://u:pw@h2/db'.",
                "'postgres://a@h/db' and 'postgres://u:********@h2/db'.",
            ),
            (
                "argument 'postgres://u:pa/ss@h/db' found",
                "argument 'postgres://u:********@h/db' found",
            ),
            (
                "'postgres://u@h/db?sslmode=require&sslpassword=k&pass%77ord=x'",
                "'postgres://u@h/db?sslmode=require&sslpassword=********&pass%77ord=********'",
            ),
            (
                "host=h password = 'a b' user=u",
                "host=h password = ******** user=u",
            ),
            (
                "password authentication failed for user \"u\"",
                "password authentication failed for user \"u\"",
            ),
        ] {
            assert_eq!(mask_url_passwords(text), masked, "{text}");
        }
    }

    #[test]
    fn an_at_in_the_query_is_not_taken_for_the_userinfo() {
        assert_eq!(
            mask_url_passwords("'postgres://u@h:5432/db?application_name=a@b'"),
            "'postgres://u@h:5432/db?application_name=a@b'"
        );
        assert_eq!(
            mask_url_passwords("'postgres://u:pw@h:5432/db?application_name=a@b'"),
            "'postgres://u:********@h:5432/db?application_name=a@b'"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db?application_name=a@b"),
            "postgres://u@h:5432/db?application_name=a@b"
        );
    }

    #[test]
    fn unparseable_urls_are_redacted_too() {
        for (input, shown) in [
            ("postgres://u:pa/ss@h/db", "postgres://u@h/db"),
            ("postgres://u:p@h:notaport/db", "postgres://u@h:notaport/db"),
            (
                "mysql://u:p@h/db?password=x",
                "mysql://u@h/db?password=********",
            ),
            ("host=h password=secret", "host=h password=********"),
            (
                "postgres://u@h/db?password%zz=x&sslmode=require",
                "postgres://u@h/db?password%zz=********&sslmode=require",
            ),
        ] {
            assert_eq!(redact_url(input), shown, "{input}");
        }
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
