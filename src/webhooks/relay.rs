//! The relay: claims due deliveries from the outbox, POSTs them signed, and
//! records each attempt. At most `max_in_flight_per_endpoint` requests per
//! endpoint run at once, each on its own task, so a slow or dead receiver
//! holds up neither transcoding nor other endpoints. Failures are retried
//! with capped exponential backoff and jitter until `retry_for` after the
//! event, then marked failed; the schedule lives in the database, so it goes
//! on across restarts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::delivery::{Answer, Sender};
use super::{rfc3339, signature, uuid_v4};
use crate::db::{AttemptOutcome, Delivery};
use crate::jobs::{Context, now_ms};

/// Longest wait between two attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// How often the relay looks for due deliveries when nothing wakes it.
const POLL: Duration = Duration::from_millis(500);

/// The wait after the `failures`th failed attempt: `base` doubling per
/// failure up to an hour, times a jitter factor in 0.8–1.2 (`jitter` in 0–1).
pub fn retry_delay(base: Duration, failures: u32, jitter: f64) -> Duration {
    let factor = 2f64.powi(failures.saturating_sub(1).min(30) as i32);
    let delay = (base.as_secs_f64() * factor).min(BACKOFF_MAX.as_secs_f64());
    Duration::from_secs_f64(delay * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
}

fn jitter() -> f64 {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).expect("the OS random source is available");
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
}

/// Delivers until `stop`. `wake` is notified when new events commit.
pub async fn run(ctx: Arc<Context>, wake: Arc<tokio::sync::Notify>, stop: CancellationToken) {
    let config = ctx.config.webhooks.clone();
    if config.endpoints.is_empty() {
        return;
    }
    let sender = Sender::new(config.timeout, config.allow_private_addresses);
    let in_flight: HashMap<String, Arc<AtomicUsize>> = config
        .endpoints
        .iter()
        .map(|e| (e.url.clone(), Arc::new(AtomicUsize::new(0))))
        .collect();
    let done = Arc::new(tokio::sync::Notify::new());
    let lease_ms = (config.timeout + Duration::from_secs(30)).as_millis() as i64;
    info!(endpoints = config.endpoints.len(), "Webhook relay started.");
    while !stop.is_cancelled() {
        // A read first: claims take the write lock, and most turns find
        // nothing due.
        let db = ctx.db.clone();
        let due = tokio::task::spawn_blocking(move || db.read(|r| r.due_deliveries(now_ms())))
            .await
            .expect("read task does not panic")
            .unwrap_or(1);
        for endpoint in config.endpoints.iter().filter(|_| due > 0) {
            let busy = in_flight[&endpoint.url].clone();
            let free = config
                .max_in_flight_per_endpoint
                .saturating_sub(busy.load(Ordering::SeqCst));
            if free == 0 {
                continue;
            }
            let db = ctx.db.clone();
            let (url, worker) = (endpoint.url.clone(), ctx.worker_id.clone());
            let claimed = tokio::task::spawn_blocking(move || {
                db.write(|tx| tx.claim_deliveries(&url, &worker, now_ms(), lease_ms, free))
            })
            .await
            .expect("claim task does not panic");
            let claimed = match claimed {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "Cannot read the webhook outbox; retrying shortly.");
                    continue;
                }
            };
            for delivery in claimed {
                busy.fetch_add(1, Ordering::SeqCst);
                let (ctx, sender, busy, done) =
                    (ctx.clone(), sender.clone(), busy.clone(), done.clone());
                let secret = endpoint.secret.0.clone();
                tokio::spawn(async move {
                    deliver(&ctx, &sender, &secret, delivery).await;
                    busy.fetch_sub(1, Ordering::SeqCst);
                    done.notify_one();
                });
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = wake.notified() => {}
            _ = done.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    info!("Webhook relay stopped.");
}

/// One attempt of one delivery, recorded.
async fn deliver(ctx: &Context, sender: &Sender, secret: &str, delivery: Delivery) {
    let mut attempts: Vec<Value> = serde_json::from_str(&delivery.attempts).unwrap_or_default();
    let mut body: Value = serde_json::from_str(&delivery.body).unwrap_or(Value::Null);
    body["attempts"] = Value::Array(attempts.clone());
    let text = body.to_string();
    let t = now_ms() / 1000;
    let answer: Answer = sender
        .post(
            &delivery.endpoint,
            text.clone(),
            signature::mux_signature(secret, t, &text),
        )
        .await;
    let now = now_ms();
    attempts.push(json!({
        "id": uuid_v4(),
        "created_at": rfc3339(now),
        "address": delivery.endpoint,
        "response_status_code": answer.status,
        "response_body": answer.body,
        "error": answer.error,
    }));
    let config = &ctx.config.webhooks;
    let outcome = if answer.delivered() {
        AttemptOutcome::Delivered
    } else {
        let delay = retry_delay(config.retry_base, attempts.len() as u32, jitter());
        let next = now + delay.as_millis() as i64;
        if next > delivery.created_at_ms + config.retry_for.as_millis() as i64 {
            AttemptOutcome::Failed
        } else {
            AttemptOutcome::RetryAt(next)
        }
    };
    match outcome {
        AttemptOutcome::Delivered => {
            debug!(event.id = %delivery.event_id, event.type = %delivery.kind,
            endpoint = %delivery.endpoint, "Webhook delivered.")
        }
        AttemptOutcome::RetryAt(_) => {
            info!(event.id = %delivery.event_id, event.type = %delivery.kind,
            endpoint = %delivery.endpoint, status = ?answer.status, error = ?answer.error,
            attempts = attempts.len(), "Webhook not delivered; will retry.")
        }
        AttemptOutcome::Failed => warn!(event.id = %delivery.event_id, event.type = %delivery.kind,
            endpoint = %delivery.endpoint, attempts = attempts.len(),
            "Webhook given up on after its retry period; `reeld webhooks retry ID` sends it again."),
    }
    let db = ctx.db.clone();
    let worker = ctx.worker_id.clone();
    let list = Value::Array(attempts).to_string();
    let recorded = tokio::task::spawn_blocking(move || {
        db.write(|tx| tx.record_attempt(&delivery, &worker, &list, outcome))
    })
    .await
    .expect("record task does not panic");
    if let Err(e) = recorded {
        warn!(error = %e, "Cannot record a webhook attempt; it will be sent again.");
    }
}

/// Waits until nothing due is left to send, or `deadline` passes.
pub async fn flush(ctx: &Context, deadline: Duration) {
    if ctx.config.webhooks.endpoints.is_empty() {
        return;
    }
    let until = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < until {
        let db = ctx.db.clone();
        let due = tokio::task::spawn_blocking(move || db.read(|r| r.due_deliveries(now_ms())))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        if due == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    info!("Shutting down with webhooks still to send; they go out after the next start.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_an_hour() {
        let base = Duration::from_secs(5);
        assert_eq!(retry_delay(base, 1, 0.5), Duration::from_secs(5));
        assert_eq!(retry_delay(base, 3, 0.5), Duration::from_secs(20));
        assert_eq!(retry_delay(base, 3, 0.0), Duration::from_secs(16));
        assert_eq!(retry_delay(base, 3, 1.0), Duration::from_secs(24));
        assert_eq!(retry_delay(base, 40, 0.5), Duration::from_secs(3600));
    }
}
