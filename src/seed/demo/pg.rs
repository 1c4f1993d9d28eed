//! PostgreSQL: the rows as `COPY … FROM STDIN` text.

use std::cell::RefCell;
use std::io::Write as _;

use diesel::pg::CopyFormat;
use diesel::PgConnection;

use super::*;
use crate::schema::{tasks, users};

fn ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// How often progress is reported (rows).
const REPORT_EVERY: u64 = 10_000;

pub(super) fn copy_postgres(
    conn: &mut PgConnection,
    gen: &Generator,
    hash: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let total = gen.total_rows();
    let progress = RefCell::new(progress);
    let done = RefCell::new(0u64);
    let tick = |rows: u64| {
        let mut d = done.borrow_mut();
        *d += rows;
        if *d % REPORT_EVERY < rows || *d == total {
            (progress.borrow_mut())(*d, total);
        }
    };
    // Text format: the generated values hold no tab, newline or
    // backslash, so they need no escaping.
    diesel::copy_from(users::table)
        .from_raw_data(
            (
                users::id,
                users::email,
                users::password_hash,
                users::name,
                users::created_at,
                users::updated_at,
            ),
            |out| {
                // One write per row would be one protocol message per row.
                let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
                for i in 0..gen.users {
                    let u = gen.user(i);
                    let at = ts(u.created_at);
                    writeln!(out, "{}\t{}\t{hash}\t{}\t{at}\t{at}", u.id, u.email, u.name)
                        .map_err(io_error)?;
                    tick(1);
                }
                out.flush().map_err(io_error)?;
                diesel::QueryResult::Ok(())
            },
        )
        .with_format(CopyFormat::Text)
        .execute(conn)?;
    diesel::copy_from(tasks::table)
        .from_raw_data(
            (
                tasks::user_id,
                tasks::title,
                tasks::description,
                tasks::completed,
                tasks::created_at,
                tasks::updated_at,
            ),
            |out| {
                let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
                let mut line = String::with_capacity(160);
                for i in 0..gen.users {
                    let owner = format!("demo-{}-{i}", gen.run_id);
                    for n in 0..gen.tasks_of(i) {
                        let t = gen.task(i, n);
                        line.clear();
                        use std::fmt::Write as _;
                        let _ = writeln!(
                            line,
                            "{owner}\t{}\t{}\t{}\t{}\t{}",
                            t.title,
                            t.description.unwrap_or("\\N"),
                            if t.completed { 't' } else { 'f' },
                            ts(t.created_at),
                            ts(t.updated_at)
                        );
                        out.write_all(line.as_bytes()).map_err(io_error)?;
                    }
                    tick(u64::from(gen.tasks_of(i)));
                }
                out.flush().map_err(io_error)?;
                diesel::QueryResult::Ok(())
            },
        )
        .with_format(CopyFormat::Text)
        .execute(conn)?;
    Ok(())
}

fn io_error(e: std::io::Error) -> diesel::result::Error {
    diesel::result::Error::SerializationError(Box::new(e))
}
