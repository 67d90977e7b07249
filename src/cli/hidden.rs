//! Reading a secret typed at the terminal: echo off before the prompt is shown (so nothing
//! typed after it is ever echoed), one line ended by Enter, echo restored afterwards, and
//! restored too when a signal ends the process while it reads (Ctrl-C still ends it).

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
    // Ctrl-C (or a hang-up, a kill) while echo is off must not leave the terminal silent.
    exit_restoring_on_signals(saved.clone());
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

/// From now on, SIGINT, SIGTERM, SIGHUP and SIGQUIT put the terminal's settings `saved` back
/// and end the process by the signal's default action (the shell says 130 for Ctrl-C).
/// The handlers are in place before this returns (a Ctrl-C at once is caught too) and stay
/// for the rest of the process: restoring the settings the terminal had is harmless later.
fn exit_restoring_on_signals(saved: termios::Termios) {
    use nix::sys::signal::Signal;
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    let streams = {
        let _in = runtime.enter();
        [
            (SignalKind::interrupt(), Signal::SIGINT as i32),
            (SignalKind::terminate(), Signal::SIGTERM as i32),
            (SignalKind::hangup(), Signal::SIGHUP as i32),
            (SignalKind::quit(), Signal::SIGQUIT as i32),
        ]
        .map(|(kind, number)| signal(kind).ok().map(|s| (s, number)))
    };
    let [Some(mut int), Some(mut term), Some(mut hup), Some(mut quit)] = streams else {
        return;
    };
    std::thread::spawn(move || {
        let number = runtime.block_on(async {
            tokio::select! {
                _ = int.0.recv() => int.1,
                _ = term.0.recv() => term.1,
                _ = hup.0.recv() => hup.1,
                _ = quit.0.recv() => quit.1,
            }
        });
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &saved);
        // The echoed newline the interrupted line never got (a hung-up terminal may refuse
        // it: the process ends all the same).
        let _ = writeln!(std::io::stderr());
        // Ended by the signal itself, as without this handler: a shell running the command
        // from a script stops at Ctrl-C too (a child that exits 130 would let it go on).
        let _ = signal_hook::low_level::emulate_default_handler(number);
        std::process::exit(128 + number);
    });
}
