//! Where command output goes: stdout. Output is informational: when the
//! reader goes away (`taskdb migrate | head -1`), the rest is dropped and
//! the command carries on, so it finishes its work and exits by the work's
//! result, never "success" for a migration that was never run.

use std::io::{self, BufRead, IsTerminal, Write};

pub(crate) use crate::error::human_duration;

/// Command output; lines go to stdout until its reader has gone, then
/// nowhere.
pub struct Output<'a> {
    inner: Box<dyn Write + 'a>,
    /// Set by the first write that found the pipe closed.
    closed: bool,
}

impl<'a> Output<'a> {
    pub fn new(inner: impl Write + 'a) -> Self {
        Output {
            inner: Box::new(inner),
            closed: false,
        }
    }

    /// True once a write found nobody reading.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// A broken pipe means the reader is done, not that the work failed:
    /// remember it and accept every later write as a no-op.
    fn absorb<T>(&mut self, result: io::Result<T>, done: T) -> io::Result<T> {
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(done)
            }
            other => other,
        }
    }
}

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let result = self.inner.write(buf);
        self.absorb(result, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.inner.flush();
        self.absorb(result, ())
    }
}

/// Asks before a change that loses or moves data: needs `--yes`, or `yes`
/// typed at a terminal; without a terminal and without `--yes` it refuses
/// rather than asks (a script never hangs on a prompt).
pub fn confirm(change: &str, yes: bool, out: &mut Output<'_>) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !io::stdin().is_terminal() {
        anyhow::bail!("refusing to {change} without confirmation: rerun with --yes");
    }
    let question = format!("Type `yes` to {change}: ");
    write!(out, "{question}")?;
    out.flush()?;
    if out.is_closed() {
        // Nobody sees stdout (`… | head -1` at a terminal): ask where the
        // person at the keyboard can read it, rather than wait in silence.
        let mut err = io::stderr();
        write!(err, "{question}")?;
        err.flush()?;
    }
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        anyhow::bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

/// `Applied` from `applied`: a state name at the start of a summary line.
pub fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader has gone.
    struct ClosedPipe {
        attempts: usize,
    }

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.attempts += 1;
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    /// A writer that fails for another reason.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_remembered_and_later_writes_are_no_ops() {
        let mut pipe = ClosedPipe { attempts: 0 };
        {
            let mut out = Output::new(&mut pipe);
            assert!(!out.is_closed());
            writeln!(out, "database: somewhere").unwrap();
            assert!(out.is_closed());
            writeln!(out, "Applied 3 migration(s)").unwrap();
            out.flush().unwrap();
        }
        assert_eq!(pipe.attempts, 1, "stdout is not retried once gone");
    }

    #[test]
    fn other_write_errors_still_fail() {
        let mut out = Output::new(Full);
        assert!(writeln!(out, "x").is_err());
        assert!(!out.is_closed());
    }
}
