//! Secrets kept out of everything taskdb shows: a URL's password dropped
//! and its secret parameters masked (a URL that does not parse included),
//! the same in free text such as clap's usage errors, and every form of a
//! URL's secrets scrubbed from driver messages.

use super::parse::{decode, PgParts, Render};
use super::{is_secret_parameter, MASK};

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

/// Removes `secrets` (see [`tidy`]) from `text`.
pub(super) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
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

/// Secrets without duplicates, longest first: a form that contains another
/// (`pa%23ss` holds `pa`) is replaced whole before the shorter one.
pub(super) fn tidy(mut secrets: Vec<String>) -> Vec<String> {
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

/// The secrets of `written` as the user wrote them (before decoding), so a
/// driver message quoting the input verbatim is scrubbed too.
pub(super) fn raw_secrets(written: &str) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DatabaseUrl;

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
}
