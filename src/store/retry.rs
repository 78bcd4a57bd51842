//! Retrying store operations in place while the store is unavailable:
//! capped exponential backoff with jitter, for as long as it takes. Only
//! `Problem::Unavailable` is retried here; everything else returns at once.

use std::future::Future;
use std::time::Duration;

use tracing::{info, warn};

use super::{Problem, StoreError};

/// First wait after the store stops answering.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// Longest wait between two tries.
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// Told while an operation waits for the store: `Some(why)` before each
/// wait, `None` once the store answers again.
pub type Waiting<'a> = &'a (dyn Fn(Option<String>) + Send + Sync);

/// Waits nobody is told about (the CLI, tests).
pub fn quietly(_: Option<String>) {}

/// Capped doubling delays with "equal jitter": each wait is between half
/// and all of the current step, so many workers that lost the store at
/// the same moment do not come back at the same moment.
#[derive(Debug)]
pub struct Backoff {
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { step: FIRST_WAIT }
    }
}

impl Backoff {
    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(LONGEST_WAIT);
        let mut byte = [0u8; 1];
        let _ = getrandom::fill(&mut byte);
        step / 2 + step.mul_f64(f64::from(byte[0]) / 255.0 / 2.0)
    }
}

/// Runs `op` until it succeeds or fails for a reason other than the store
/// being unavailable. `what` names the operation in the log.
pub async fn persist<T, F, Fut>(
    what: &str,
    waiting: Waiting<'_>,
    mut op: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Backoff::default();
    let mut waited = false;
    loop {
        match op().await {
            Ok(value) => {
                if waited {
                    info!(operation = what, "The store answers again.");
                    waiting(None);
                }
                return Ok(value);
            }
            Err(e) if e.problem() == Problem::Unavailable => {
                let wait = backoff.next_wait();
                warn!(
                    operation = what,
                    error = %e.chain(),
                    retry_in_s = wait.as_secs_f64().round(),
                    "The store is unavailable; retrying (no attempt is used)."
                );
                waiting(Some(format!(
                    "Waiting for the store: {what} failed ({}); retrying in {} s.",
                    short(&e),
                    wait.as_secs_f64().round()
                )));
                waited = true;
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The innermost cause, which says what happened ("Connection refused").
fn short(e: &StoreError) -> String {
    use std::error::Error as _;
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        last = inner.to_string();
        source = inner.source();
    }
    last.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_a_cap_with_jitter() {
        let mut b = Backoff::default();
        let waits: Vec<Duration> = (0..8).map(|_| b.next_wait()).collect();
        assert!(waits[0] >= Duration::from_millis(500) && waits[0] <= FIRST_WAIT);
        assert!(waits[1] >= FIRST_WAIT && waits[1] <= FIRST_WAIT * 2);
        for w in &waits {
            assert!(*w <= LONGEST_WAIT);
        }
        assert!(waits[7] >= LONGEST_WAIT / 2);
    }

    #[tokio::test(start_paused = true)]
    async fn only_unavailable_is_retried() {
        let unavailable = || StoreError::Operation {
            key: "k".into(),
            source: object_store::Error::Generic {
                store: "S3",
                source: "Server returned non-2xx status code: 503 Service Unavailable".into(),
            },
        };
        let told = std::sync::Mutex::new(Vec::new());
        let waiting = |why: Option<String>| told.lock().unwrap().push(why.is_some());
        let mut tries = 0;
        let result = persist("put", &waiting, || {
            tries += 1;
            let fail = tries < 3;
            async move { if fail { Err(unavailable()) } else { Ok(7) } }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(*told.lock().unwrap(), vec![true, true, false]);

        let mut tries = 0;
        let result: Result<(), _> = persist("put", &quietly, || {
            tries += 1;
            async {
                Err(StoreError::Operation {
                    key: "k".into(),
                    source: object_store::Error::PermissionDenied {
                        path: "k".into(),
                        source: "403".into(),
                    },
                })
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(tries, 1, "a refusal is not retried");
    }
}
