//! Wall-clock time for things that expire: download URLs and temporary
//! master access. Job leases do not use it: they use the database's clock.
//!
//! When `REELD_CLOCK_OFFSET_FILE` names a file, the number of seconds in it
//! is added to every reading, read afresh each time. Tests use it to move
//! the daemon's clock forward past an expiry without waiting a day; it has
//! no use in production.

use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable naming the offset file.
pub const OFFSET_FILE_VAR: &str = "REELD_CLOCK_OFFSET_FILE";

/// Seconds since the Unix epoch, plus the test offset if one is set.
pub fn now_s() -> i64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    real + offset_s()
}

fn offset_s() -> i64 {
    let Some(path) = std::env::var_os(OFFSET_FILE_VAR) else {
        return 0;
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .unwrap_or(0)
}
