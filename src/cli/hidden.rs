//! Reading a secret typed at the terminal: echo off before the prompt is shown (so nothing
//! typed after it is ever echoed), one line ended by Enter, echo restored afterwards.

use std::io::{BufRead, Read, Write};

use nix::sys::termios::{self, LocalFlags, SetArg};

use crate::error::Error;

/// The longest line read (credentials are a few KB at most).
const MAX_LINE: u64 = 1 << 20;

/// Puts the terminal's settings back when dropped, also on an early return.
struct Restore {
    saved: termios::Termios,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// Shows `prompt` on stderr and reads one line from stdin, a terminal, without echoing it.
/// The newline is still echoed (`ECHONL`) so the next output starts on its own line.
pub fn read_line(prompt: &str) -> Result<zeroize::Zeroizing<String>, Error> {
    let io = |what: &str| {
        let what = what.to_string();
        move |source: std::io::Error| Error::Io { what, source }
    };
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(&stdin)
        .map_err(|e| io("cannot read the terminal's settings")(e.into()))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet)
        .map_err(|e| io("cannot turn the terminal's echo off")(e.into()))?;
    let _restore = Restore { saved };
    let mut err = std::io::stderr();
    err.write_all(prompt.as_bytes())
        .and_then(|_| err.flush())
        .map_err(io("cannot show the prompt"))?;
    let mut line = zeroize::Zeroizing::new(String::new());
    stdin
        .lock()
        .take(MAX_LINE)
        .read_line(&mut line)
        .map_err(io("cannot read from the terminal"))?;
    Ok(line)
}
