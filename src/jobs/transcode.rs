//! The transcode job: probe → plan → pipeline → verify → store → record.
//!
//! Each step is idempotent: the spool folder of an asset is cleared before a
//! run, the store key is deterministic, and the database records the result in
//! one transaction, so a job interrupted anywhere is simply run again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Context, Finished, ProgressFn, backoff, now_ms};
use crate::asset::{
    AssetErrors, AssetSettings, MediaSummary, ProgressState, ResolutionTier, Track, TrackKind,
    aspect_ratio,
};
use crate::db::Job;
use crate::pipeline::{self, OutputSpec, PipelineError, RunOptions};
use crate::plan::{self, Plan};
use crate::probe::{self, MediaInfo, ProbeError};
use crate::store::{self, StoreError};

/// The Mux error type for inputs reeld cannot use.
pub const INVALID_INPUT: &str = "invalid_input";
/// The error type for failures that persisted through every retry.
pub const PROCESSING_FAILED: &str = "processing_failed";
/// Minimum gap between progress writes to the database, in ms.
const PROGRESS_WRITE_INTERVAL_MS: i64 = 1_000;

/// Why a job did not produce a ready asset.
#[derive(Debug)]
pub enum JobOutcome {
    /// Stored and verified.
    Ready(MediaSummary),
    /// The input is at fault: never retried.
    InvalidInput(String),
    /// The environment is at fault: retry with backoff.
    Transient(String),
    /// Shutdown: back to the queue without using an attempt.
    Cancelled,
}

/// Runs the job's steps; records nothing final (see `record_outcome`).
pub async fn run(
    ctx: &Arc<Context>,
    job: &Job,
    cancel: &CancellationToken,
    progress: Option<ProgressFn>,
) -> JobOutcome {
    if job.attempts > job.max_attempts {
        return JobOutcome::InvalidInput(format!(
            "Processing was attempted {} times without success; last error: {}",
            job.max_attempts,
            job.last_error
                .as_deref()
                .unwrap_or("the worker stopped while processing")
        ));
    }
    match run_steps(ctx, job, cancel, progress).await {
        Ok(summary) => JobOutcome::Ready(summary),
        Err(outcome) => outcome,
    }
}

async fn run_steps(
    ctx: &Arc<Context>,
    job: &Job,
    cancel: &CancellationToken,
    progress: Option<ProgressFn>,
) -> Result<MediaSummary, JobOutcome> {
    let asset_id = job.asset_id.clone();
    let (settings, source) = load_job_inputs(ctx, &asset_id).await?;
    set_progress(ctx, &asset_id, ProgressState::Ingesting, 0.0).await;

    let info = probe_blocking(source.clone()).await.map_err(|e| match e {
        e if e.is_transient() => JobOutcome::Transient(e.to_string()),
        e => JobOutcome::InvalidInput(sentence(&e.to_string())),
    })?;
    info!(
        video = info.video.len(),
        audio = info.audio.len(),
        duration = info.duration.unwrap_or(-1.0),
        "Source probed."
    );
    let plan = plan::plan_master(&info, &settings)
        .map_err(|e| JobOutcome::InvalidInput(sentence(&e.to_string())))?;

    let spool = ctx.config.spool_dir.join(&asset_id);
    let _ = std::fs::remove_dir_all(&spool);
    std::fs::create_dir_all(&spool).map_err(|e| {
        JobOutcome::Transient(format!(
            "Cannot create spool folder {}: {e}",
            spool.display()
        ))
    })?;
    let master_path = spool.join("master.mp4");

    set_progress(ctx, &asset_id, ProgressState::Transcoding, 0.0).await;
    let run = transcode_blocking(
        ctx,
        &asset_id,
        &source,
        &plan,
        &master_path,
        cancel,
        progress,
    )
    .await;
    if let Err(e) = run {
        if !matches!(e, JobOutcome::Cancelled) {
            let _ = std::fs::remove_dir_all(&spool);
        }
        return Err(e);
    }

    let stored_info = verify_output(&master_path, &plan).await?;
    set_progress(ctx, &asset_id, ProgressState::Ingesting, 100.0).await;
    let key = store::master_key(&asset_id);
    let bytes = ctx
        .store
        .put_file(&key, &master_path)
        .await
        .map_err(|e: StoreError| JobOutcome::Transient(e.to_string()))?;
    info!(key = %key, bytes, store = ctx.store.description(), "Master stored.");
    let _ = std::fs::remove_dir_all(&spool);
    Ok(summarize(&stored_info, &plan))
}

async fn load_job_inputs(
    ctx: &Arc<Context>,
    asset_id: &str,
) -> Result<(AssetSettings, PathBuf), JobOutcome> {
    let db = ctx.db.clone();
    let id = asset_id.to_owned();
    let loaded = tokio::task::spawn_blocking(move || {
        let asset = db.get_asset(&id)?;
        let source = db.source_path(&id)?;
        Ok::<_, crate::db::DbError>((asset, source))
    })
    .await
    .expect("db task does not panic")
    .map_err(|e| JobOutcome::Transient(e.to_string()))?;
    let (Some(asset), Some(source)) = loaded else {
        return Err(JobOutcome::InvalidInput(
            "The asset or its source record is missing from the database.".into(),
        ));
    };
    let settings = AssetSettings {
        max_resolution_tier: asset.max_resolution_tier,
        video_quality: asset.video_quality,
        master_access: asset.master_access,
        normalize_audio: asset.normalize_audio,
        passthrough: asset.passthrough,
        meta: asset.meta,
        test: asset.test,
    };
    if !source.exists() {
        return Err(JobOutcome::InvalidInput(format!(
            "The source file {} no longer exists.",
            source.display()
        )));
    }
    Ok((settings, source))
}

async fn probe_blocking(path: PathBuf) -> Result<MediaInfo, ProbeError> {
    tokio::task::spawn_blocking(move || probe::probe_file(&path))
        .await
        .expect("probe task does not panic")
}

async fn transcode_blocking(
    ctx: &Arc<Context>,
    asset_id: &str,
    source: &Path,
    plan: &Plan,
    master_path: &Path,
    cancel: &CancellationToken,
    progress: Option<ProgressFn>,
) -> Result<(), JobOutcome> {
    let ctx2 = ctx.clone();
    let asset_id = asset_id.to_owned();
    let source = source.to_owned();
    let plan = plan.clone();
    let output = OutputSpec::master(&plan, master_path.to_owned());
    let cancel = cancel.clone();
    let result = tokio::task::spawn_blocking(move || {
        let last_write = AtomicI64::new(0);
        let options = RunOptions {
            fragments: &ctx2.fragments,
            stall_timeout: ctx2.config.stall_timeout,
            cancel,
            duration: plan.expected_duration,
        };
        pipeline::transcode(&source, &output, &options, |pct| {
            if let Some(cb) = &progress {
                cb(pct);
            }
            let now = now_ms();
            if now - last_write.load(Ordering::Relaxed) >= PROGRESS_WRITE_INTERVAL_MS {
                last_write.store(now, Ordering::Relaxed);
                let _ = ctx2.db.set_progress(
                    &asset_id,
                    ProgressState::Transcoding,
                    (pct * 10.0).round() / 10.0,
                    now,
                );
            }
        })
    })
    .await
    .expect("pipeline task does not panic");
    result.map_err(|e| match e {
        PipelineError::Cancelled => JobOutcome::Cancelled,
        e if e.is_transient() => JobOutcome::Transient(e.to_string()),
        e => JobOutcome::InvalidInput(input_error_sentence(&e)),
    })
}

/// Probes a finished output and checks it before it may be stored: the planned
/// streams are present and it is as long as the source (a decoder that gave up
/// half-way through a damaged file produces a short output, not an error).
async fn verify_output(path: &Path, plan: &Plan) -> Result<MediaInfo, JobOutcome> {
    let info = probe_blocking(path.to_owned())
        .await
        .map_err(|e| JobOutcome::Transient(format!("The transcoded master does not probe: {e}")))?;
    if plan.video.is_some() && info.video.is_empty() {
        return Err(JobOutcome::Transient(
            "The transcoded master has no video stream.".into(),
        ));
    }
    if plan.audio.is_some() && info.audio.is_empty() {
        return Err(JobOutcome::Transient(
            "The transcoded master has no audio stream.".into(),
        ));
    }
    if let (Some(expected), Some(actual)) = (plan.expected_duration, info.duration) {
        let tolerance = (expected * 0.02).max(0.5);
        if actual + tolerance < expected {
            return Err(JobOutcome::InvalidInput(format!(
                "The source is truncated or damaged: only {actual:.2} s of its {expected:.2} s could be decoded."
            )));
        }
    }
    Ok(info)
}

/// The asset fields that describe what was stored, from the stored file itself.
fn summarize(stored: &MediaInfo, plan: &Plan) -> MediaSummary {
    let duration = stored.duration.map(|d| (d * 1000.0).round() / 1000.0);
    let mut tracks = Vec::new();
    let (mut tier, mut fps, mut ratio) = (ResolutionTier::AudioOnly, None, None);
    if let Some(v) = stored.video.first() {
        let rate = match (v.fps(), plan.video.as_ref()) {
            (Some(f), _) => f,
            (None, Some(target)) => target.stored_frame_rate,
            (None, None) => -1.0,
        };
        tier = ResolutionTier::of_video(v.width, v.height);
        fps = Some(rate);
        ratio = Some(aspect_ratio(v.width, v.height));
        tracks.push(Track {
            id: "video".into(),
            kind: TrackKind::Video,
            duration,
            max_width: Some(v.width),
            max_height: Some(v.height),
            max_frame_rate: Some(rate),
            max_channels: None,
            primary: None,
        });
    }
    if !stored.audio.is_empty() {
        tracks.push(Track {
            id: "audio".into(),
            kind: TrackKind::Audio,
            duration,
            max_width: None,
            max_height: None,
            max_frame_rate: None,
            // Mux reports the source's channel count, not the stored downmix.
            max_channels: Some(
                plan.source_audio_channels
                    .unwrap_or(stored.audio[0].channels),
            ),
            primary: Some(true),
        });
    }
    MediaSummary {
        duration,
        resolution_tier: Some(tier),
        max_stored_frame_rate: fps,
        aspect_ratio: ratio,
        tracks,
    }
}

async fn set_progress(ctx: &Arc<Context>, asset_id: &str, state: ProgressState, pct: f64) {
    let db = ctx.db.clone();
    let id = asset_id.to_owned();
    let result = tokio::task::spawn_blocking(move || db.set_progress(&id, state, pct, now_ms()))
        .await
        .expect("db task does not panic");
    if let Err(e) = result {
        warn!(error = %e, "Cannot record progress.");
    }
}

/// Writes the outcome to the database and disposes of the source.
pub async fn record_outcome(ctx: &Arc<Context>, job: &Job, outcome: JobOutcome) -> Finished {
    let db = ctx.db.clone();
    let asset_id = job.asset_id.clone();
    let job_id = job.id;
    let finished = match outcome {
        JobOutcome::Ready(summary) => {
            let r = tokio::task::spawn_blocking(move || {
                db.finish_ready(job_id, &asset_id, &summary, now_ms())
            })
            .await
            .expect("db task does not panic");
            match r {
                Ok(()) => Finished::Ready,
                Err(e) => requeue(ctx, job, format!("Cannot record the result: {e}"), false).await,
            }
        }
        JobOutcome::InvalidInput(message) => {
            let kind = if job.attempts > job.max_attempts {
                PROCESSING_FAILED
            } else {
                INVALID_INPUT
            };
            let errors = AssetErrors {
                kind: kind.into(),
                messages: vec![message.clone()],
            };
            let r = tokio::task::spawn_blocking(move || {
                db.finish_errored(job_id, &asset_id, &errors, now_ms())
            })
            .await
            .expect("db task does not panic");
            match r {
                Ok(()) => Finished::Errored(vec![message]),
                Err(e) => requeue(ctx, job, format!("Cannot record the result: {e}"), false).await,
            }
        }
        JobOutcome::Transient(message) => requeue(ctx, job, message, false).await,
        JobOutcome::Cancelled => requeue(ctx, job, "stopped by shutdown".into(), true).await,
    };
    if matches!(finished, Finished::Ready | Finished::Errored(_)) {
        super::dispose::dispose_pending(ctx).await;
    }
    finished
}

async fn requeue(ctx: &Arc<Context>, job: &Job, reason: String, refund: bool) -> Finished {
    let db = ctx.db.clone();
    let job_id = job.id;
    let delay = if refund {
        Default::default()
    } else {
        backoff(job.attempts)
    };
    let not_before = now_ms() + delay.as_millis() as i64;
    let why = reason.clone();
    let r =
        tokio::task::spawn_blocking(move || db.requeue_job(job_id, Some(&why), not_before, refund))
            .await
            .expect("db task does not panic");
    if let Err(e) = r {
        // The lease will expire and the job will be taken back anyway.
        warn!(error = %e, "Cannot put the job back in the queue; its lease will expire.");
    }
    ctx.queue_signal.notify_one();
    Finished::Requeued(reason)
}

/// Capitalises a message and ends it with a full stop, for `errors.messages`.
fn sentence(message: &str) -> String {
    let mut chars = message.trim().chars();
    let mut s = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
        None => return "Unknown error.".into(),
    };
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// A pipeline failure caused by the input, as a user-facing sentence.
fn input_error_sentence(e: &PipelineError) -> String {
    match e {
        PipelineError::Stream {
            message, element, ..
        } => sentence(&format!(
            "The source could not be decoded ({message}, in {})",
            element.rsplit('/').next().unwrap_or(element)
        )),
        other => sentence(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences() {
        assert_eq!(
            sentence("the file is empty (0 bytes)"),
            "The file is empty (0 bytes)."
        );
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "Unknown error.");
    }
}
