//! The exit codes the CLI contract promises (README, "CLI"). A leaf: it imports nothing, so
//! any layer may name a code without depending on the layers above it. Which error gets which
//! code is decided in one place: `Error::exit_code`, in `error.rs`.

/// Success.
pub const OK: i32 = 0;
/// Any other failure.
pub const OTHER: i32 = 1;
/// Bad usage or input.
pub const USAGE: i32 = 2;
/// Refused by a quota, concurrency or rate limit, or a lease that was lost.
pub const DENIED: i32 = 3;
/// No, invalid or expired credential.
pub const AUTH: i32 = 4;
/// The ledger cannot be opened or trusted: corrupt, read-only, wrong key, newer schema.
pub const STORAGE: i32 = 5;
/// `run`'s agent command was not found (as a shell says it).
pub const COMMAND_NOT_FOUND: i32 = 127;
/// Interrupted by Ctrl-C while waiting (128 + SIGINT, as a shell says it).
pub const INTERRUPTED: i32 = 130;
