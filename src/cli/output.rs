//! Where command output goes: stdout, with a closed pipe (`taskdb status |
//! head -1`) treated as the reader being done, not as a failure.

use std::io::{self, Write};

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
