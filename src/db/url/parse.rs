//! PostgreSQL URLs read the way libpq reads them, so that what reaches the
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
//! Like libpq, a `%` not followed by two hex digits and `%00` are refused.
//! Where libpq would do something other than what was meant, taskdb departs
//! from it: the userinfo ends at the *last* `@` (libpq takes the first and
//! leaves the rest of such a password as a host name that cannot resolve);
//! a raw `@` after the host is refused (a password whose `/` was not
//! encoded as `%2F` would otherwise be split into a host and a database
//! name); and a second `=` in a query value is part of the value (libpq
//! refuses it).

use super::{is_secret_parameter, MASK};
use crate::db::DEFAULT_CONNECT_TIMEOUT;

/// The parts of a PostgreSQL URL, percent-decoded.
// No Debug: it holds the password.
#[derive(Clone)]
pub(super) struct PgParts {
    /// `postgres` or `postgresql`, as written (lowercased).
    pub(super) scheme: String,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
    /// (host, port) pairs; either may be empty (libpq's defaults).
    pub(super) hosts: Vec<(String, String)>,
    pub(super) dbname: Option<String>,
    /// Query parameters in order, `pgbouncer` taken out.
    pub(super) params: Vec<(String, String)>,
    /// `?pgbouncer=true`: the convention other tools use for a pooled
    /// endpoint. libpq does not know the parameter, so it never reaches it.
    pub(super) pgbouncer: bool,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Render {
    /// Everything, plus the default connect timeout.
    Driver,
    /// No password, secret parameters masked.
    Shown,
}

impl PgParts {
    /// Splits `input` (which starts with a PostgreSQL scheme) the way libpq
    /// does. The error is a reason that quotes nothing from the input.
    pub(super) fn parse(input: &str) -> std::result::Result<PgParts, String> {
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
    pub(super) fn secrets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.password.as_deref().into_iter().collect();
        out.extend(
            self.params
                .iter()
                .filter(|(k, _)| is_secret_parameter(k))
                .map(|(_, v)| v.as_str()),
        );
        out
    }

    pub(super) fn is_pooled(&self) -> bool {
        self.pgbouncer
            || self
                .hosts
                .iter()
                .any(|(host, port)| host.to_ascii_lowercase().contains("-pooler") || port == "6432")
    }

    pub(super) fn render(&self, how: Render) -> String {
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

/// Which part of a URL a string is encoded for. Every part keeps the
/// unreserved characters as they are and encodes the rest; a few more stay
/// readable where libpq gives them no meaning.
#[derive(Clone, Copy)]
pub(super) enum Part {
    Userinfo,
    Password,
    Host,
    Ipv6,
    Database,
    QueryKey,
    QueryValue,
}

pub(super) fn encode(s: &str, part: Part) -> String {
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
pub(super) fn decode(s: &str, what: &str) -> std::result::Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DatabaseUrl;

    fn parts(input: &str) -> PgParts {
        PgParts::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"))
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
}
