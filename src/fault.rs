//! Crash points for tests. A debug build stops forever at the named point when
//! `AUTHLEDGER_FAULT` names it, after saying so on stderr, so a test can `kill -9` the process
//! in the middle of a transaction and check that nothing was half-written. Release builds
//! compile this to nothing.

/// The environment variable naming the point to stop at.
pub const FAULT_VAR: &str = "AUTHLEDGER_FAULT";

/// Stops here forever if `AUTHLEDGER_FAULT` names this point (debug builds only).
#[inline]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var(FAULT_VAR).is_ok_and(|v| v == name) {
        eprintln!("authledger: fault point {name} reached");
        loop {
            std::thread::park();
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Panics here if `AUTHLEDGER_FAULT` names this point (debug builds only), so a test can check
/// what a bug in a long-lived thread leaves behind.
#[inline]
pub fn panic_point(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var(FAULT_VAR).is_ok_and(|v| v == name) {
        panic!("authledger: fault point {name} reached");
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// `n` when `AUTHLEDGER_FAULT` is `<name>=<n>` (debug builds only): a point that holds
/// until something has happened `n` times, so a test can line up events that real load only
/// lines up sometimes.
#[inline]
pub fn count(name: &str) -> Option<u64> {
    #[cfg(debug_assertions)]
    if let Ok(v) = std::env::var(FAULT_VAR)
        && let Some(n) = v.strip_prefix(name).and_then(|rest| rest.strip_prefix('='))
    {
        return n.parse().ok();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
    None
}

/// Whether `AUTHLEDGER_FAULT` names this point (debug builds only): a failure a test cannot
/// cause for real from outside the process, such as storage that stops taking writes while the
/// process holds it open.
#[inline]
pub fn fails(name: &str) -> bool {
    #[cfg(debug_assertions)]
    if std::env::var(FAULT_VAR).is_ok_and(|v| v == name) {
        return true;
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
    false
}
