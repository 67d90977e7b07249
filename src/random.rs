//! Random bytes from the operating system, for ids, idempotency keys and (later) nonces.

use ring::rand::{SecureRandom, SystemRandom};

/// The operating system's random source failed: nothing random can be made safely.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// `N` bytes from the OS's CSPRNG.
pub fn bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| RandomError)?;
    Ok(buf)
}
