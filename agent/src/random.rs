//! The one source of randomness: the OS CSPRNG through ring. Ids, tokens,
//! secrets and nonces all come from here, never from a userspace PRNG.

use ring::rand::{SecureRandom, SystemRandom};

/// The OS refused to give us randomness; nothing secret can be made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct Error;

/// `N` random bytes.
pub fn bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut buf = [0u8; N];
    SystemRandom::new().fill(&mut buf).map_err(|_| Error)?;
    Ok(buf)
}

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) -> Result<(), Error> {
    SystemRandom::new().fill(buf).map_err(|_| Error)
}
