//! Whether the queue may use the store: open, or paused because the store
//! is misconfigured. Workers claim no job while it is paused; a job that
//! met the problem went back to the queue without using an attempt. The
//! pause ends when a probe of the store succeeds (the operator fixed the
//! server side) or after a SIGHUP brought a new `[storage]`.

use std::sync::Mutex;

use tokio::sync::Notify;

/// The queue's view of the store.
#[derive(Debug, Default)]
pub struct Health {
    paused: Mutex<Option<String>>,
    changed: Notify,
    probe: Notify,
}

impl Health {
    /// Pauses the queue for `reason`. True when it was not paused before,
    /// so the caller says so once, not on every probe.
    pub fn pause(&self, reason: &str) -> bool {
        let mut paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        let newly = paused.is_none();
        *paused = Some(reason.to_owned());
        drop(paused);
        self.changed.notify_waiters();
        newly
    }

    /// Opens the queue again. True when it was paused.
    pub fn resume(&self) -> bool {
        let was = self
            .paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some();
        self.changed.notify_waiters();
        was
    }

    /// Why the queue is paused, if it is.
    pub fn paused(&self) -> Option<String> {
        self.paused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks for a probe of the store soon (a new `[storage]` was loaded).
    pub fn probe_soon(&self) {
        self.probe.notify_one();
    }

    /// Returns when a probe was asked for.
    pub async fn probe_requested(&self) {
        self.probe.notified().await;
    }

    /// Returns when the pause state changes. A change between a caller's
    /// look and this wait is not seen: callers also wake on a timer.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_are_told_once() {
        let h = Health::default();
        assert!(h.paused().is_none());
        assert!(h.pause("403"));
        assert!(!h.pause("403 again"));
        assert_eq!(h.paused().as_deref(), Some("403 again"));
        assert!(h.resume());
        assert!(!h.resume());
    }
}
