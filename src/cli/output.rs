//! Where command output goes: stdout, with a closed pipe (`taskdb status |
//! head -1`) treated as the reader being done, not as a failure.

use std::io::{self, BufRead, IsTerminal, Write};

/// Command output; lines go to stdout.
pub struct Output<'a> {
    inner: Box<dyn Write + 'a>,
}

impl<'a> Output<'a> {
    pub fn new(inner: impl Write + 'a) -> Self {
        Output {
            inner: Box::new(inner),
        }
    }
}

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// True when `err` comes from writing to a pipe whose reader has gone.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
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
    write!(out, "Type `yes` to {change}: ")?;
    out.flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        anyhow::bail!("not confirmed; nothing was changed");
    }
    Ok(())
}
