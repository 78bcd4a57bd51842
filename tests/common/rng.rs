//! Replayable randomness for the fault and fuzz runs: a seed from an
//! environment variable (or the clock, printed by the caller so that a
//! failing run can be replayed) and a small xorshift generator.

#![allow(dead_code)]

use std::time::Duration;

/// A small deterministic generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A duration from `from` to `to` ms.
    pub fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from))
    }
}

/// The number in the environment variable `name`, else `default`.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The seed in the environment variable `name`, else one from the clock
/// (never 0, where xorshift would stay).
pub fn seed_from(name: &str) -> u64 {
    match setting(name, 0u64) {
        0 => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        }
        seed => seed,
    }
}
