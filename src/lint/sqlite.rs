//! The SQLite rules. SQLite has no lock levels worth a rule (a migration
//! holds the whole file's write lock either way); what goes wrong is what
//! its `ALTER TABLE` cannot do. Statements are split and read as tokens:
//! only `ALTER TABLE` and `CREATE TABLE` need reading.

use std::collections::HashSet;

use super::rules::RawFinding;
use super::Rule;

/// One statement: byte offset of its first token, and its tokens.
pub struct SqliteStmt {
    pub offset: usize,
    pub tokens: Vec<String>,
}

/// Splits a file into statements, honouring quotes, comments and the
/// `BEGIN … END` body of `CREATE TRIGGER`.
pub fn split(sql: &str) -> Result<Vec<SqliteStmt>, (String, usize)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut tokens: Vec<String> = Vec::new();
    let mut start: Option<usize> = None;
    let mut depth_begin = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            match sql[i + 2..].find("*/") {
                Some(end) => i = i + 2 + end + 2,
                None => return Err(("unterminated /* comment".into(), i)),
            }
            continue;
        }
        let token_start = i;
        start.get_or_insert(token_start);
        if c == b'\'' || c == b'"' || c == b'`' || c == b'[' {
            let close = if c == b'[' { b']' } else { c };
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(("unterminated quoted string or name".into(), token_start)),
                    Some(&b) if b == close => {
                        if bytes.get(i + 1) == Some(&close) && close != b']' {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            tokens.push(sql[token_start..i].to_string());
            continue;
        }
        if c == b';' {
            i += 1;
            if depth_begin == 0 {
                if let Some(s) = start.take() {
                    out.push(SqliteStmt {
                        offset: s,
                        tokens: std::mem::take(&mut tokens),
                    });
                }
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = sql[token_start..i].to_ascii_uppercase();
            let is_trigger = tokens.first().map(String::as_str) == Some("CREATE")
                && tokens.iter().any(|t| t == "TRIGGER");
            if is_trigger && word == "BEGIN" {
                depth_begin += 1;
            } else if is_trigger && word == "END" && depth_begin > 0 {
                depth_begin -= 1;
            }
            tokens.push(word);
            continue;
        }
        i += 1;
        tokens.push((c as char).to_string());
    }
    if let Some(s) = start {
        out.push(SqliteStmt { offset: s, tokens });
    }
    Ok(out)
}

fn unquote(name: &str) -> String {
    name.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']')
        .to_ascii_lowercase()
}

/// The table named after `TABLE [IF NOT EXISTS] [schema.]`.
fn table_after(tokens: &[String], at: usize) -> (String, usize) {
    let mut i = at;
    if tokens.get(i).map(String::as_str) == Some("IF") {
        i += 3;
    }
    let mut name = tokens.get(i).cloned().unwrap_or_default();
    if tokens.get(i + 1).map(String::as_str) == Some(".") {
        name = tokens.get(i + 2).cloned().unwrap_or_default();
        i += 2;
    }
    (unquote(&name), i + 1)
}

/// Checks one statement; tables created earlier in the file are new.
pub fn check(stmt: &SqliteStmt, created: &mut HashSet<String>) -> Vec<RawFinding> {
    let t = &stmt.tokens;
    let word = |i: usize| t.get(i).map(String::as_str).unwrap_or_default();
    let mut out = Vec::new();
    if word(0) == "CREATE" {
        let at = (1..4).find(|&i| word(i) == "TABLE");
        if let Some(at) = at {
            created.insert(table_after(t, at + 1).0);
        }
        return out;
    }
    if word(0) != "ALTER" || word(1) != "TABLE" {
        return out;
    }
    let (table, next) = table_after(t, 2);
    let new = created.contains(&table);
    let unsupported = |what: &str, recipe: String| RawFinding {
        rule: Rule::SqliteUnsupportedAlter,
        table: Some(table.clone()),
        lock: None,
        blocks: None,
        holds: None,
        message: format!("SQLite's ALTER TABLE cannot {what}: the migration fails"),
        recipe: Some(recipe),
    };
    let rebuild = format!("-- rebuild the table (SQLite's 12-step way, in the migration's transaction):\nCREATE TABLE {table}_new (…);\nINSERT INTO {table}_new (…) SELECT … FROM {table};\nDROP TABLE {table};\nALTER TABLE {table}_new RENAME TO {table};");
    match word(next) {
        "RENAME" | "DROP" => {}
        "ADD" => {
            let first = if word(next + 1) == "COLUMN" {
                next + 2
            } else {
                next + 1
            };
            if matches!(
                word(next + 1),
                "CONSTRAINT" | "PRIMARY" | "UNIQUE" | "FOREIGN" | "CHECK"
            ) {
                out.push(unsupported(
                    "add a constraint to an existing table",
                    rebuild,
                ));
                return out;
            }
            let col = unquote(word(first));
            let rest: Vec<&str> = t[first.min(t.len())..].iter().map(String::as_str).collect();
            let has = |w: &str| rest.contains(&w);
            if has("PRIMARY") || has("UNIQUE") {
                out.push(unsupported("add a PRIMARY KEY or UNIQUE column", rebuild));
            } else if has("STORED") {
                out.push(unsupported("add a STORED generated column", rebuild));
            } else if let Some(d) = rest.iter().position(|w| *w == "DEFAULT") {
                let value = rest.get(d + 1).copied().unwrap_or_default();
                let non_constant = value == "("
                    || matches!(value, "CURRENT_TIMESTAMP" | "CURRENT_TIME" | "CURRENT_DATE");
                if non_constant && !new {
                    out.push(RawFinding {
                        rule: Rule::SqliteNonConstantDefault,
                        table: Some(table.clone()),
                        lock: None,
                        blocks: None,
                        holds: None,
                        message: format!("adding `{table}.{col}` with a non-constant default ({value}…) fails with \"Cannot add a column with non-constant default\" once the table has rows"),
                        recipe: Some(format!("ALTER TABLE {table} ADD COLUMN {col} … DEFAULT <constant>;\n-- or add it without a default and set it: UPDATE {table} SET {col} = … ;\n-- or {}", rebuild.replace('\n', "\n-- "))),
                    });
                }
            } else if has("NOT") && has("NULL") && !new {
                out.push(unsupported(
                    "add a NOT NULL column without a default",
                    format!("ALTER TABLE {table} ADD COLUMN {col} … NOT NULL DEFAULT <constant>;"),
                ));
            }
        }
        "ALTER" => out.push(unsupported(
            "alter a column (type, default, NOT NULL)",
            rebuild,
        )),
        other => out.push(unsupported(&format!("do `{other}`"), rebuild)),
    }
    out
}
