//! Processes that hold secrets for a long time (`daemon`, `run`) cannot be dumped: no core
//! file (RLIMIT_CORE 0, inherited by the agent `run` starts), and not dumpable
//! (PR_SET_DUMPABLE 0), so another process of the same user cannot attach with ptrace or read
//! its memory through `/proc/<pid>/mem` without CAP_SYS_PTRACE.

use crate::error::Error;

/// Turns core dumps off and makes this process undumpable. Called first thing, before any
/// secret is loaded.
pub fn forbid_dumps() -> Result<(), Error> {
    use nix::sys::resource::{Resource, setrlimit};
    let io = |what: &str| {
        let what = what.to_string();
        move |e: nix::Error| Error::Io {
            what,
            source: std::io::Error::from(e),
        }
    };
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(io("cannot turn core dumps off"))?;
    nix::sys::prctl::set_dumpable(false).map_err(io("cannot make the process undumpable"))
}
