//! Standard output for the subcommands, and how `xfed` ends when nobody reads it any more.
//!
//! `xfed connections | head` closes the pipe after ten lines. Rust ignores SIGPIPE, so the
//! next write fails with `BrokenPipe` instead of ending the process, and `println!` panics
//! on that. So every subcommand writes to [`Out`] with `write!`, errors come back as
//! `io::Result`, and [`finish`] ends a broken pipe quietly with status 141 — what a shell
//! reports for `cat` or `grep` killed by SIGPIPE (128 + 13). Not 0: the output was cut
//! short, so under `set -o pipefail` a check's verdict is not mistaken for success.
//!
//! Messages to standard error go through [`stderr!`], which ignores a closed standard error
//! (`xfed status 2>&1 | head`) for the same reason.

use std::io::{self, StdoutLock, Write};
use std::process::ExitCode;

/// Exit status when standard output was closed before `xfed` was done.
pub const BROKEN_PIPE: u8 = 141;

/// `eprintln!` that does not panic when standard error is closed.
macro_rules! stderr {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use stderr;

/// Standard output, locked on first use (so a running node, which prints nothing there,
/// never holds it).
#[derive(Default)]
pub struct Out {
    lock: Option<StdoutLock<'static>>,
}

impl Out {
    fn stdout(&mut self) -> &mut StdoutLock<'static> {
        self.lock.get_or_insert_with(|| io::stdout().lock())
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stdout().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.lock {
            Some(lock) => lock.flush(),
            None => Ok(()),
        }
    }
}

/// The exit status of a subcommand that wrote to `out`: its own, once what it wrote is
/// flushed; [`BROKEN_PIPE`] when nobody read it to the end.
pub fn finish(done: io::Result<ExitCode>, out: &mut Out) -> ExitCode {
    match done.and_then(|code| out.flush().map(|()| code)) {
        Ok(code) => code,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(BROKEN_PIPE),
        Err(e) => {
            stderr!("xfed: standard output: {e}");
            ExitCode::FAILURE
        }
    }
}
