//! The jobs that make outputs: `transcode` (source → master and every
//! requested rendition, one decode) and `renditions` (stored master → renditions
//! added later). Both run probe → plan → pipeline → verify → store, and return
//! a `JobOutcome` that `outcome::record_outcome` writes.
//!
//! Each step is idempotent: each attempt has its own spool folder, cleared
//! before it runs, the store key is deterministic, and the database records the result in
//! one transaction, so a job interrupted anywhere is simply run again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::assess::{self, Measuring};
use super::outcome::{
    JobOutcome, OUT_OF_MEMORY, Stored, input_error_sentence, out_of_memory_reason, sentence,
};
use super::source::HeldSource;
use super::spool::{attempt_spool, clear_earlier_attempts};
use super::storing::{store_failure, store_outputs, store_wait_notes};
use super::{Context, ProgressFn, now_ms};
use crate::asset::{
    MediaSummary, ProgressState, RenditionStatus, ResolutionTier, Track, TrackKind, aspect_ratio,
};
use crate::db::{Job, JobKind, MAX_CRASHES, RenditionRow, SourceIdentity, SourceInput};
use crate::inspect::{self, GopMeter};
use crate::pipeline::{self, PipelineError, RunOptions};
use crate::plan::{self, MASTER_NAME, OutputPlan, Plan, RenditionPlan, Scope};
use crate::probe::{self, MediaInfo, ProbeError};
use crate::store;

/// Minimum gap between progress writes to the database, in ms.
const PROGRESS_WRITE_INTERVAL_MS: i64 = 1_000;

/// Runs the job's steps; records nothing final (see `record_outcome`).
pub async fn run(
    ctx: &Arc<Context>,
    job: &Job,
    cancel: &CancellationToken,
    progress: Option<ProgressFn>,
) -> JobOutcome {
    if let Some(given_up) = given_up(job) {
        // What the attempts that died left in the spool goes with the job.
        let spool = attempt_spool(&ctx.config.spool_dir, job);
        clear_earlier_attempts(&spool, job.lease.generation);
        if let Some(asset_folder) = spool.parent() {
            let _ = std::fs::remove_dir(asset_folder);
        }
        return given_up;
    }
    let spool = attempt_spool(&ctx.config.spool_dir, job);
    // A stop (lost lease, deleted asset, shutdown after its grace) ends every
    // step, not only the pipeline: the probe, the measuring passes and the
    // uploads are dropped at their next await. Work already on a blocking
    // thread runs out there, bounded by its own limits, and its result is
    // thrown away; the pipeline sees the same token and stops itself.
    let result = tokio::select! {
        result = run_steps(ctx, job, &spool, cancel, progress) => result,
        _ = cancel.cancelled() => Err(JobOutcome::Cancelled),
    };
    if !matches!(result, Err(JobOutcome::Cancelled)) {
        // Nothing in the spool outlives its job, success or failure; after a
        // cancel the next attempt clears it anyway.
        let _ = std::fs::remove_dir_all(&spool);
        if let Some(asset_folder) = spool.parent() {
            // Only when empty: a later attempt may be working beside it.
            let _ = std::fs::remove_dir(asset_folder);
        }
    }
    match result {
        Ok(stored) => JobOutcome::Ready(stored),
        Err(outcome) => outcome,
    }
}

/// The outcome of a job that is not run again: out of attempts, or it
/// crashed its workers too often.
fn given_up(job: &Job) -> Option<JobOutcome> {
    if job.attempts > job.max_attempts {
        return Some(JobOutcome::InvalidInput(format!(
            "Processing was attempted {} times without success; last error: {}",
            job.max_attempts,
            job.last_error
                .as_deref()
                .unwrap_or("the worker stopped while processing")
        )));
    }
    if job.crashes >= MAX_CRASHES {
        // The supervisor writes why a worker died for lack of memory.
        if let Some(reason) = job
            .last_error
            .as_deref()
            .filter(|e| e.starts_with(OUT_OF_MEMORY))
        {
            return Some(JobOutcome::InvalidInput(reason.to_owned()));
        }
        return Some(JobOutcome::InvalidInput(format!(
            "The file crashed the media engine {} times; it may be malformed or hostile.",
            job.crashes
        )));
    }
    None
}

async fn run_steps(
    ctx: &Arc<Context>,
    job: &Job,
    spool: &Path,
    cancel: &CancellationToken,
    progress: Option<ProgressFn>,
) -> Result<Stored, JobOutcome> {
    let asset_id = job.asset_id.as_str();
    let settings = blocking_db(ctx, {
        let id = asset_id.to_owned();
        move |db| db.read(|r| r.asset_settings(&id))
    })
    .await?
    .ok_or_else(|| JobOutcome::InvalidInput("The asset is missing from the database.".into()))?;
    clear_earlier_attempts(spool, job.lease.generation);
    let _ = std::fs::remove_dir_all(spool);
    std::fs::create_dir_all(spool).map_err(|e| {
        JobOutcome::Transient(format!(
            "Cannot create spool folder {}: {e}",
            spool.display()
        ))
    })?;

    // `_held` keeps the recorded source open until the job ends: `source`
    // names that inode (see `jobs::source`), not whatever has its name now.
    let (source, pending, _held) = match job.kind {
        JobKind::Transcode => {
            let input = blocking_db(ctx, {
                let id = asset_id.to_owned();
                move |db| db.read(|r| r.source(&id))
            })
            .await?
            .ok_or_else(|| JobOutcome::InvalidInput("The asset has no source recorded.".into()))?;
            set_progress(ctx, job, ProgressState::Ingesting, 0.0).await;
            let (path, identity) = match input {
                SourceInput::File { path, identity } => (path, identity),
                SourceInput::Url(url) => fetch_input(ctx, job, &url, spool).await?,
            };
            let held = HeldSource::open(&path, &identity).map_err(JobOutcome::InvalidInput)?;
            (held.reading_path(), None, Some(held))
        }
        JobKind::Renditions => {
            // Renditions added later are made from the stored master.
            let pending: Vec<String> = blocking_db(ctx, {
                let id = asset_id.to_owned();
                move |db| db.read(|r| r.renditions(&id))
            })
            .await?
            .into_iter()
            .filter(|r| r.status == RenditionStatus::Preparing.as_str())
            .map(|r| r.name)
            .collect();
            let local = spool.join("source-master.mp4");
            let (waiting, notes) = store_wait_notes(ctx, job);
            let fetched = ctx
                .store
                .get_to_file(&store::master_key(asset_id), &local, &waiting)
                .await;
            drop(waiting);
            let _ = notes.await;
            if let Err(e) = fetched {
                return Err(store_failure(ctx, e).await);
            }
            (local, Some(pending), None)
        }
    };

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
    let scope = match &pending {
        None => Scope::Everything,
        Some(names) => Scope::RenditionsOnly(names),
    };
    // Renditions added later come from the stored master, already assessed.
    let measuring = match job.kind {
        JobKind::Transcode => assess::assess_source(&source, &info, &settings).await,
        JobKind::Renditions => Measuring::Done {
            reasons: None,
            assessment: plan::Assessment::default(),
        },
    };
    let mut reasons = measuring.reasons_before(&info, &settings);
    let mut assessment = measuring.assessment();
    if settings.normalize_audio
        && let Some(channels) = plan::audio_output_channels(&info)
    {
        assessment.audio_gain_db = Some(assess::normalizing_gain(&source, channels).await?);
    }
    let mut plan = plan::plan_asset(&info, &settings, scope, &assessment)
        .map_err(|e| JobOutcome::InvalidInput(sentence(&e.to_string())))?;
    if job.kind == JobKind::Transcode && reasons.is_none() {
        info!(remux = plan.copies(), deferred = ?plan.deferred, "The source is a standard input.");
    }
    let mut files: Vec<RenditionRow> = plan.renditions.iter().map(planned_row).collect();
    if !files.is_empty() {
        let planned = files.clone();
        blocking_db(ctx, {
            let id = asset_id.to_owned();
            let lease = job.lease.clone();
            move |db| {
                db.write(|tx| {
                    tx.ensure_held(&lease)?;
                    tx.record_planned_renditions(&id, &planned, now_ms())
                })
            }
        })
        .await?;
    }

    if !plan.outputs.is_empty() {
        // The outputs and mp4mux's fast-start copy of them: about twice the
        // source, at most, for the encodes reeld makes.
        let source_bytes = std::fs::metadata(&source).map(|m| m.len()).unwrap_or(0);
        crate::disk::ensure_room(spool, "spool folder", 2 * source_bytes)
            .map_err(JobOutcome::Transient)?;
        if let Some(root) = ctx.store.local_root() {
            crate::disk::ensure_room(&root, "store", source_bytes)
                .map_err(JobOutcome::Transient)?;
        }
        set_progress(ctx, job, ProgressState::Transcoding, 0.0).await;
        let reading = Reading {
            path: &source,
            meter: measuring.meter(),
        };
        transcode_blocking(ctx, job, reading, &plan, spool, cancel, progress.clone()).await?;
        if let Some((found, judged)) = measuring.judge_metered(&info, &settings) {
            reasons = found;
            if judged.steady_fps != assessment.steady_fps {
                // The declared rate was not the packets' rate: the encodes
                // must run at the steady one, as a measured source's would.
                info!(
                    "The source's declared frame rate is not steady; encoding again at a steady rate."
                );
                assessment.steady_fps = judged.steady_fps;
                plan = plan::plan_asset(&info, &settings, scope, &assessment)
                    .map_err(|e| JobOutcome::InvalidInput(sentence(&e.to_string())))?;
                let reading = Reading {
                    path: &source,
                    meter: None,
                };
                transcode_blocking(ctx, job, reading, &plan, spool, cancel, progress).await?;
            }
        }
    }

    let mut summary = None;
    for output in &plan.outputs {
        let path = spool.join(&output.name);
        let stored = verify_output(&path, output, &plan).await?;
        if output.name == MASTER_NAME {
            summary = Some(MediaSummary {
                non_standard_input_reasons: reasons.clone(),
                master_filesize: std::fs::metadata(&path).ok().map(|m| m.len()),
                ..summarize(&stored, &plan)
            });
        } else if let Some(row) = files.iter_mut().find(|f| f.name == output.name) {
            measure(row, &stored, &path);
        }
    }
    set_progress(ctx, job, ProgressState::Ingesting, 100.0).await;
    let (waiting, notes) = store_wait_notes(ctx, job);
    let stored = store_outputs(ctx, asset_id, &plan, spool, cancel, &waiting).await;
    drop(waiting);
    let _ = notes.await;
    stored?;
    Ok(Stored { summary, files })
}

/// The row of a planned rendition file before it is made.
/// Fetches a URL input into the attempt's spool folder, with its progress
/// shown as `ingesting`; the job then reads that file like any source.
async fn fetch_input(
    ctx: &Arc<Context>,
    job: &Job,
    url: &str,
    spool: &Path,
) -> Result<(PathBuf, SourceIdentity), JobOutcome> {
    let dest = spool.join("input");
    // Progress goes through one writer task, joined before the job moves
    // on, so a late "ingesting" write never lands after the next state.
    let (progress, writer) = super::latest_writer(0.0, {
        let (ctx, job) = (ctx.clone(), job.clone());
        move |pct| {
            let (ctx, job) = (ctx.clone(), job.clone());
            async move { set_progress(&ctx, &job, ProgressState::Ingesting, pct).await }
        }
    });
    let fetched = super::fetch::fetch(&ctx.config.api.url_inputs, url, &dest, &progress).await;
    drop(progress);
    let _ = writer.await;
    let bytes = fetched.map_err(|e| match e {
        super::fetch::FetchError::Permanent(why) => JobOutcome::InvalidInput(why),
        super::fetch::FetchError::Transient(why) => JobOutcome::Transient(why),
    })?;
    tracing::info!(url = %super::fetch::redacted(url), bytes, "Input fetched.");
    let identity = SourceIdentity::of(&dest).map_err(|e| {
        JobOutcome::Transient(format!(
            "Cannot read the fetched input {}: {e}",
            dest.display()
        ))
    })?;
    Ok((dest, identity))
}

fn planned_row(r: &RenditionPlan) -> RenditionRow {
    RenditionRow::new(
        &r.name,
        r.resolution.map(|x| x.as_str()),
        r.kind.as_str(),
        r.passthrough.clone(),
        r.status.as_str(),
    )
}

/// Fills a rendition row with what its file really is.
fn measure(row: &mut RenditionRow, stored: &MediaInfo, path: &Path) {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    row.status = RenditionStatus::Ready.as_str().to_owned();
    row.filesize = Some(size);
    row.bitrate = stored
        .duration
        .filter(|d| *d > 0.0)
        .map(|d| (size as f64 * 8.0 / d).round() as u64);
    match stored.video.first() {
        Some(v) => {
            row.width = Some(v.width);
            row.height = Some(v.height);
            row.resolution_tier = Some(tier_name(ResolutionTier::of_video(v.width, v.height)));
        }
        None => row.resolution_tier = Some(tier_name(ResolutionTier::AudioOnly)),
    }
}

fn tier_name(tier: ResolutionTier) -> String {
    serde_json::to_value(tier)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Runs a database call on a blocking thread; failures are transient.
async fn blocking_db<T: Send + 'static>(
    ctx: &Arc<Context>,
    f: impl FnOnce(&crate::db::Db) -> Result<T, crate::db::DbError> + Send + 'static,
) -> Result<T, JobOutcome> {
    let db = ctx.db.clone();
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .expect("db task does not panic")
        .map_err(|e| JobOutcome::Transient(e.to_string()))
}

async fn probe_blocking(path: PathBuf) -> Result<MediaInfo, ProbeError> {
    tokio::task::spawn_blocking(move || probe::probe_file(&path))
        .await
        .expect("probe task does not panic")
}

/// The source a transcode reads, and the meter it fills on the way when it
/// measures the video (`assess::Measuring::DuringTranscode`).
struct Reading<'a> {
    path: &'a Path,
    meter: Option<Arc<Mutex<GopMeter>>>,
}

async fn transcode_blocking(
    ctx: &Arc<Context>,
    job: &Job,
    reading: Reading<'_>,
    plan: &Plan,
    spool: &Path,
    cancel: &CancellationToken,
    progress: Option<ProgressFn>,
) -> Result<(), JobOutcome> {
    let ctx2 = ctx.clone();
    let asset_id = job.asset_id.clone();
    let lease = job.lease.clone();
    let source = reading.path.to_owned();
    let meter = reading.meter;
    let plan = plan.clone();
    let spool = spool.to_owned();
    let cancel = cancel.clone();
    let result = tokio::task::spawn_blocking(move || {
        let last_write = AtomicI64::new(0);
        let options = RunOptions {
            fragments: &ctx2.fragments,
            stall_timeout: ctx2.config.stall_timeout,
            cancel,
            duration: plan.expected_duration,
            cores: cores_per_job(ctx2.config.concurrency),
            source_index_bytes: plan
                .copies()
                .then(|| inspect::mp4::moov_size(&source))
                .flatten(),
            meter,
        };
        pipeline::transcode(&source, &plan, &spool, &options, |pct| {
            if let Some(cb) = &progress {
                cb(pct);
            }
            let now = now_ms();
            if now - last_write.load(Ordering::Relaxed) >= PROGRESS_WRITE_INTERVAL_MS {
                last_write.store(now, Ordering::Relaxed);
                let pct = (pct * 10.0).round() / 10.0;
                // The asset's progress (while it prepares) and that of each
                // file this job makes (Cloudflare's percentComplete).
                let _ = ctx2.db.write(|tx| {
                    tx.set_progress(&lease, &asset_id, ProgressState::Transcoding, pct, now)?;
                    tx.set_rendition_progress(&lease, &asset_id, pct)
                });
            }
        })
    })
    .await
    .expect("pipeline task does not panic");
    result.map_err(|e| match e {
        PipelineError::Cancelled => JobOutcome::Cancelled,
        PipelineError::OutOfMemory { element } => {
            warn!(element = %element, "An element could not allocate memory under the worker's limit.");
            JobOutcome::InvalidInput(out_of_memory_reason(&ctx.config))
        }
        e if e.is_transient() => JobOutcome::Transient(e.to_string()),
        e => JobOutcome::InvalidInput(input_error_sentence(&e)),
    })
}

/// Probes a finished output and checks it before it may be stored: the planned
/// streams are present and it is as long as the source (a decoder that gave up
/// half-way through a damaged file produces a short output, not an error).
async fn verify_output(
    path: &Path,
    output: &OutputPlan,
    plan: &Plan,
) -> Result<MediaInfo, JobOutcome> {
    let info = probe_blocking(path.to_owned()).await.map_err(|e| {
        JobOutcome::Transient(format!(
            "The transcoded {} does not probe: {e}",
            output.name
        ))
    })?;
    if output.video.is_some() && info.video.is_empty() {
        return Err(JobOutcome::Transient(format!(
            "The transcoded {} has no video stream.",
            output.name
        )));
    }
    if output.audio.is_some() && info.audio.is_empty() {
        return Err(JobOutcome::Transient(format!(
            "The transcoded {} has no audio stream.",
            output.name
        )));
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

/// The CPU cores one job may count on: the machine's, shared among the
/// `concurrency` jobs that may run at once (at least one).
fn cores_per_job(concurrency: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / concurrency.max(1)).max(1)
}

/// The asset fields that describe what was stored, from the stored file itself.
fn summarize(stored: &MediaInfo, plan: &Plan) -> MediaSummary {
    let duration = stored.duration.map(|d| (d * 1000.0).round() / 1000.0);
    let mut tracks = Vec::new();
    let (mut tier, mut fps, mut ratio) = (ResolutionTier::AudioOnly, None, None);
    if let Some(v) = stored.video.first() {
        let rate = match (v.fps(), plan.master_video()) {
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
        non_standard_input_reasons: None,
        master_filesize: None,
    }
}

async fn set_progress(ctx: &Arc<Context>, job: &Job, state: ProgressState, pct: f64) {
    let db = ctx.db.clone();
    let id = job.asset_id.clone();
    let lease = job.lease.clone();
    let result = tokio::task::spawn_blocking(move || {
        db.write(|tx| tx.set_progress(&lease, &id, state, pct, now_ms()))
    })
    .await
    .expect("db task does not panic");
    if let Err(e) = result {
        warn!(error = %e, "Cannot record progress.");
    }
}
