//! What every recipe checks before it writes SQL: names that need no
//! quoting on either backend, tables and columns that exist, expressions
//! that cannot close the SQL around them, names PostgreSQL would not
//! truncate.

use super::{Result, ScaffoldError};
use crate::scaffold::sqlite_schema::{SqliteSchema, Table};

/// PostgreSQL's limit on identifier length.
const MAX_IDENTIFIER: usize = 63;

/// True for a plain lowercase identifier, which needs no quoting on either
/// backend (a reserved word aside, see [`is_reserved`]).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= MAX_IDENTIFIER
}

/// Words that are no plain table or column name: PostgreSQL's reserved key
/// words and those reserved except as function or type names
/// (`pg_get_keywords()`, categories R and T, PostgreSQL 15), and the SQLite
/// key words that fail unquoted as a table or column name in `CREATE
/// TABLE`, `ALTER TABLE`, `CREATE INDEX` or `CHECK` (SQLite 3.40). Sorted.
const RESERVED: &[&str] = &[
    "add",
    "all",
    "alter",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "autoincrement",
    "between",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "commit",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "delete",
    "desc",
    "distinct",
    "do",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "exists",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "if",
    "ilike",
    "in",
    "index",
    "initially",
    "inner",
    "insert",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "nothing",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "raise",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "set",
    "similar",
    "some",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "transaction",
    "true",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "values",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// True for a word one of the backends does not take as a plain name.
pub(super) fn is_reserved(word: &str) -> bool {
    RESERVED
        .binary_search(&word.to_ascii_lowercase().as_str())
        .is_ok()
}

pub(super) fn check_identifier(what: &str, s: &str) -> Result<()> {
    if !is_identifier(s) {
        return Err(ScaffoldError::Refused(format!(
            "{what} `{}` is not a plain lowercase identifier ([a-z_][a-z0-9_]*, at most {MAX_IDENTIFIER} characters)",
            shown(s)
        )));
    }
    if is_reserved(s) {
        return Err(ScaffoldError::Refused(format!(
            "{what} `{s}` is a reserved word in PostgreSQL or SQLite, which would need quoting everywhere: pick another name (e.g. `{s}_id`)"
        )));
    }
    Ok(())
}

/// `s` for an error message on one line: control characters (a line break
/// above all) written as escapes.
pub(super) fn shown(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// True when `s` holds a line break or another control character: text
/// that reaches a `--` comment must stay on its line.
pub(super) fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

pub(super) fn existing_table<'a>(schema: &'a SqliteSchema, table: &str) -> Result<&'a Table> {
    check_identifier("table", table)?;
    schema.table(table).ok_or_else(|| {
        ScaffoldError::Refused(format!(
            "no table `{table}` after the current migrations (tables: {})",
            schema.tables.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })
}

pub(super) fn existing_column(table_name: &str, table: &Table, column: &str) -> Result<()> {
    check_identifier("column", column)?;
    if table.column(column).is_some() {
        return Ok(());
    }
    Err(ScaffoldError::Refused(format!(
        "no column `{table_name}.{column}` after the current migrations (columns: {})",
        table
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// An expression or predicate pasted into the SQL (and echoed into a
/// comment): one expression on one line, its parentheses and quotes
/// balanced, so it cannot close the `CHECK (…)` around it or start a second
/// statement. Refused rather than repaired: no comment, no `;`, no escape
/// string or dollar quote (where a quote or parenthesis would mean
/// something else to the server than here).
pub(super) fn check_expression(what: &str, expr: &str) -> Result<()> {
    let refuse = |why: &str| {
        Err(ScaffoldError::Refused(format!(
            "the {what} `{}` {why}: give one SQL expression on one line",
            shown(expr)
        )))
    };
    if expr.trim().is_empty() {
        return Err(ScaffoldError::Refused(format!("the {what} is empty")));
    }
    if has_control(expr) {
        return refuse("holds a line break or another control character");
    }
    if ["--", "/*", "*/", ";"].iter().any(|s| expr.contains(s)) {
        return refuse("holds `;`, `--` or `/*`");
    }
    if expr.contains(['\\', '$']) {
        return refuse("holds `\\` or `$` (escape strings and dollar quotes are not taken)");
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            // Inside a quote, the quote itself only appears doubled.
            Some(q) if c == q => {
                if chars.peek() == Some(&q) {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' => depth += 1,
                ')' => match depth.checked_sub(1) {
                    Some(d) => depth = d,
                    None => return refuse("closes a parenthesis it did not open"),
                },
                _ => {}
            },
        }
    }
    if quote.is_some() {
        return refuse("leaves a quote open");
    }
    if depth > 0 {
        return refuse("leaves a parenthesis open");
    }
    Ok(())
}

/// A constraint or index name, refused when PostgreSQL would truncate it.
pub(super) fn object_name(name: String) -> Result<String> {
    if name.len() > MAX_IDENTIFIER {
        return Err(ScaffoldError::Refused(format!(
            "the generated name `{name}` is longer than PostgreSQL's {MAX_IDENTIFIER} characters; use shorter table, column or migration names"
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_words_are_sorted_for_the_binary_search() {
        assert!(RESERVED.windows(2).all(|w| w[0] < w[1]));
        assert!(is_reserved("user") && is_reserved("Order") && !is_reserved("user_id"));
    }
}
