//! Pipelines: a `Plan` turned into a GStreamer graph, run to EOS with progress,
//! a watchdog and cancellation.
//!
//! The graph is one decode of the source feeding every output of the plan:
//!
//! ```text
//! filesrc ! decodebin ─ video ─ queue ! [deinterlace] ! videoconvert ! videoflip(auto) ! [videorate] ! tee
//!                   │     tee ─ per distinct size: queue ! videoscale ! videoconvert ! caps ! tee ─ (smaller sizes scale from here)
//!                   │                                     tee ─ queue ! <h264 fragment> ! h264parse ! tee
//!                   │                                     tee ─ per output of that size: queue ! mp4mux(output)
//!                   └ audio ─ queue ! audioconvert ! audioresample ! caps ! tee
//!                         tee ─ per distinct bitrate: queue ! <aac fragment> ! aacparse ! tee ─ per output: queue ! mp4mux
//! ```
//!
//! Outputs of the same size share one encode; each output file has its own
//! `mp4mux ! filesink`. When the plan copies the source's streams (the remux
//! fast path, `plan::Assessment::copyable`), `parsebin` takes `decodebin`'s place and
//! each copied stream goes `queue ! capsfilter ! tee` to its muxers, with no
//! decoder at all.
//! Extra source streams (second audio track, data) go to a `fakesink`. A
//! pipeline is owned by a guard that sets it to `Null` on drop; only the bus's
//! EOS counts as success. Everything here blocks: run it on a blocking thread.
//!
//! This module owns the run (the muxers, the bus, progress, the watchdog and
//! the errors); `branches` builds the video, audio and copy branches, and
//! `demux` links the source's streams to them.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use tokio_util::sync::CancellationToken;

mod branches;
mod demux;

use crate::graph::{POLL_INTERVAL, PipelineGuard};
use crate::inspect::GopMeter;
use crate::pipelines::Fragments;
use crate::plan::{Plan, VideoTarget};
use branches::{
    build_audio_encode, build_audio_front, build_copy, build_video_encode, build_video_front,
    copy_queue, feed_muxer, limit_stream, link_chain, make,
};
use demux::{connect_decoder, connect_metered};

/// Why a pipeline did not produce its outputs.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An element could not be created or linked: an installation problem.
    #[error("cannot build the pipeline: {what}")]
    Build {
        /// Which element or link failed.
        what: String,
    },
    /// A pipeline fragment from `pipelines/` failed to instantiate.
    #[error("pipeline fragment {origin} failed: {message}")]
    Fragment {
        /// The fragment's file.
        origin: String,
        /// GStreamer's message.
        message: String,
    },
    /// An element reported an error while running.
    #[error("{element}: {message}")]
    Stream {
        /// The element's path in the pipeline.
        element: String,
        /// GStreamer's message.
        message: String,
        /// GStreamer's debug string.
        debug: String,
        /// Whether the failure is in the environment (disk, permissions) rather than the input.
        transient: bool,
    },
    /// The source lacks a stream the plan needs (probe and decoder disagree).
    #[error("the source has no decodable {kind} stream")]
    MissingStream {
        /// `video` or `audio`.
        kind: &'static str,
    },
    /// The watchdog stopped a pipeline that made no progress.
    #[error("the pipeline made no progress for {} s and was stopped", .seconds)]
    Stalled {
        /// The stall limit that was reached.
        seconds: u64,
    },
    /// An element could not allocate memory: the worker's limit is too low
    /// for this input. (Most of GStreamer aborts the worker instead, and the
    /// supervisor reads that from its last words.)
    #[error("{element} ran out of memory")]
    OutOfMemory {
        /// The element's path in the pipeline.
        element: String,
    },
    /// The job was cancelled (shutdown).
    #[error("the pipeline was stopped because the daemon is shutting down")]
    Cancelled,
}

impl PipelineError {
    /// Whether running the job again could succeed without a different input.
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::Stream { transient, .. } => *transient,
            PipelineError::Build { .. } | PipelineError::Fragment { .. } => true,
            PipelineError::Cancelled => true,
            PipelineError::MissingStream { .. }
            | PipelineError::Stalled { .. }
            | PipelineError::OutOfMemory { .. } => false,
        }
    }
}

/// Knobs that are not part of the plan.
pub struct RunOptions<'a> {
    /// Encoder fragments.
    pub fragments: &'a Fragments,
    /// The watchdog limit.
    pub stall_timeout: Duration,
    /// Cancelled on shutdown.
    pub cancel: CancellationToken,
    /// Source duration for progress, in seconds.
    pub duration: Option<f64>,
    /// CPU cores this job may use: the machine's, shared among the jobs
    /// that run at the same time.
    pub cores: usize,
    /// For a remux, the size of the source's index (`moov`), from which the
    /// space reserved for the output's index at its start is sized.
    pub source_index_bytes: Option<u64>,
    /// Measures the source's first video stream as the transcode reads it
    /// (`demux`), in place of a parse pass beforehand. Ignored by a remux.
    pub meter: Option<Arc<Mutex<GopMeter>>>,
}

/// The space reserved for an output's index at the start of the file, in
/// mp4mux's terms: a duration (ns) and bytes per second per track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexSpace {
    max_duration_ns: u64,
    bytes_per_second: u32,
}

/// How much index space a remux reserves: twice the source's index plus
/// 64 KiB, spread over its duration with a margin. A copy has the same
/// samples as its source, so its index is about as large (the chunking may
/// differ). `None` (the fast-start copy instead) when the duration is
/// unknown or mp4mux's per-second limit would not hold it.
fn index_space(source_index_bytes: u64, duration_s: f64, tracks: u32) -> Option<IndexSpace> {
    if !(duration_s.is_finite() && duration_s > 0.0) || tracks == 0 {
        return None;
    }
    let max_duration_s = duration_s * 1.1 + 30.0;
    let wanted = 2 * source_index_bytes + 64 * 1024;
    let per_second = (wanted as f64 / (f64::from(tracks) * max_duration_s)).ceil();
    // mp4mux's own default, and the most its property takes.
    let bytes_per_second = per_second.max(550.0);
    if bytes_per_second > 10_000.0 {
        return None;
    }
    Some(IndexSpace {
        max_duration_ns: (max_duration_s * 1e9) as u64,
        bytes_per_second: bytes_per_second as u32,
    })
}

/// Transcodes `source` into every output of `plan`, each written to
/// `spool_dir/NAME`, from one decode. Reports progress (0–100) as it goes.
///
/// A remux of a standard MP4 is a copy of its media data behind its own
/// index, moved to the front (`remux.rs`), when that module vouches for the
/// file; otherwise, and for everything that decodes, GStreamer runs.
pub fn transcode(
    source: &Path,
    plan: &Plan,
    spool_dir: &Path,
    options: &RunOptions<'_>,
    mut on_progress: impl FnMut(f64),
) -> Result<(), PipelineError> {
    if plan.copies()
        && let [master] = plan.outputs.as_slice()
    {
        let keep = crate::remux::Keep {
            video: master.video.is_some(),
            audio: master.audio.is_some(),
        };
        match crate::remux::remux(source, &spool_dir.join(&master.name), keep) {
            Ok(()) => {
                on_progress(100.0);
                return Ok(());
            }
            Err(crate::remux::Refused(why)) => {
                tracing::info!(reason = %why, "Remuxing with GStreamer: the index cannot simply be moved.");
            }
        }
    }
    transcode_with_gstreamer(source, plan, spool_dir, options, on_progress)
}

/// `transcode` through GStreamer. A remux writes each file once, its index
/// first in space reserved at the start. Should the index outgrow that
/// space (mp4mux refuses then), the remux runs again the usual way: media
/// data to a scratch file, then copied behind the index.
fn transcode_with_gstreamer(
    source: &Path,
    plan: &Plan,
    spool_dir: &Path,
    options: &RunOptions<'_>,
    mut on_progress: impl FnMut(f64),
) -> Result<(), PipelineError> {
    let reserve = match (
        plan.copies(),
        options.source_index_bytes,
        plan.expected_duration,
    ) {
        (true, Some(bytes), Some(duration)) => {
            let tracks = plan.video_encodes.len().min(1) + plan.audio_encodes.len().min(1);
            index_space(bytes, duration, tracks as u32)
        }
        _ => None,
    };
    transcode_reserving(source, plan, spool_dir, options, reserve, &mut on_progress)
}

/// `transcode` with the index space given.
fn transcode_reserving(
    source: &Path,
    plan: &Plan,
    spool_dir: &Path,
    options: &RunOptions<'_>,
    reserve: Option<IndexSpace>,
    mut on_progress: &mut dyn FnMut(f64),
) -> Result<(), PipelineError> {
    match run(source, plan, spool_dir, options, reserve, &mut on_progress) {
        Err(PipelineError::Stream { debug: detail, .. })
            if reserve.is_some() && detail.contains("reserved") =>
        {
            tracing::warn!(%detail, "The index outgrew the space reserved for it; remuxing again with a fast-start copy.");
            run(source, plan, spool_dir, options, None, on_progress)
        }
        result => result,
    }
}

/// x264 frame threads for one video encode of a job: its share of the job's
/// pixels times the threads x264 gives a lone encode (1.5 per core, rounded
/// down, as x264 does), rounded up, at least one.
///
/// x264 sizes its thread pool as if each encoder had the machine to itself,
/// so a ladder of three encodes on 2 cores runs nine frame threads plus their
/// lookahead threads. Every extra frame thread costs synchronisation and
/// waits on rows of its reference, and the encodes of a job already run side
/// by side. Giving each encode the threads its share of the work needs kept
/// the cores as busy and cut the CPU of a 1080p/720p/480p ladder on 2 cores
/// by 5–11 % (README, "Benchmark"); a job of one encode keeps x264's own
/// count.
pub fn x264_threads(cores: usize, pixels: u64, job_pixels: u64) -> u32 {
    let lone = (3 * cores as u64 / 2).max(1);
    if job_pixels == 0 {
        return lone as u32;
    }
    (3 * cores as u64 * pixels)
        .div_ceil(2 * job_pixels)
        .clamp(1, lone) as u32
}

/// One run of the graph; `reserve` is the index space of a remux.
fn run(
    source: &Path,
    plan: &Plan,
    spool_dir: &Path,
    options: &RunOptions<'_>,
    reserve: Option<IndexSpace>,
    on_progress: &mut dyn FnMut(f64),
) -> Result<(), PipelineError> {
    crate::graph::init().map_err(|e| PipelineError::Build {
        what: e.to_string(),
    })?;
    let pipeline = gst::Pipeline::with_name("reeld-transcode");
    let guard = PipelineGuard(pipeline.clone());
    let add = |elements: &[&gst::Element]| -> Result<(), PipelineError> {
        pipeline
            .add_many(elements.iter().copied())
            .map_err(|e| PipelineError::Build {
                what: e.to_string(),
            })
    };

    let filesrc = make("filesrc")?;
    filesrc.set_property("location", source.to_string_lossy().as_ref());
    // A remux parses the source's streams; everything else decodes them,
    // after a parse that meters the video when the run measures it.
    let remux = plan.copies();
    let meter = options.meter.as_ref().filter(|_| !remux);
    let demux = make(if remux || meter.is_some() {
        "parsebin"
    } else {
        "decodebin"
    })?;
    add(&[&filesrc, &demux])?;
    link_chain(&[&filesrc, &demux])?;

    // One muxer per output file.
    let mut muxers = Vec::new();
    let mut scratch_files = Vec::new();
    for output in &plan.outputs {
        let mux = make("mp4mux")?;
        let scratch = spool_dir.join(format!("{}.moov-scratch", output.name));
        match reserve {
            Some(space) => {
                mux.set_property("reserved-max-duration", space.max_duration_ns);
                mux.set_property("reserved-bytes-per-sec", space.bytes_per_second);
            }
            None => {
                mux.set_property("faststart", true);
                mux.set_property("faststart-file", scratch.to_string_lossy().as_ref());
            }
        }
        let filesink = make("filesink")?;
        filesink.set_property(
            "location",
            spool_dir.join(&output.name).to_string_lossy().as_ref(),
        );
        add(&[&mux, &filesink])?;
        link_chain(&[&mux, &filesink])?;
        muxers.push(mux);
        scratch_files.push(scratch);
    }

    let mut entries = Vec::new();
    let mut positions = Vec::new();
    let uses_video = plan.outputs.iter().any(|o| o.video.is_some());
    let uses_audio = plan.outputs.iter().any(|o| o.audio.is_some());
    if remux {
        let copies = copy_queue()?;
        add(&[&copies])?;
        for (index, _) in plan
            .video_encodes
            .iter()
            .enumerate()
            .filter(|(_, v)| v.copy)
        {
            let caps = gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .build();
            let (entry, tee, position) = build_copy(&pipeline, &copies, "video", caps)?;
            entries.push(entry);
            positions.push(position);
            for (output, mux) in plan.outputs.iter().zip(&muxers) {
                if output.video == Some(index) {
                    feed_muxer(&pipeline, &tee, mux, "video_%u", true)?;
                }
            }
        }
        for (index, _) in plan
            .audio_encodes
            .iter()
            .enumerate()
            .filter(|(_, a)| a.copy)
        {
            let caps = gst::Caps::builder("audio/mpeg")
                .field("mpegversion", 4i32)
                .field("stream-format", "raw")
                .build();
            let (entry, tee, position) = build_copy(&pipeline, &copies, "audio", caps)?;
            entries.push(entry);
            positions.push(position);
            for (output, mux) in plan.outputs.iter().zip(&muxers) {
                if output.audio == Some(index) {
                    feed_muxer(&pipeline, &tee, mux, "audio_%u", true)?;
                }
            }
        }
    } else if uses_video {
        let (entry, raw_tee) = build_video_front(&pipeline, &plan.video_encodes[0])?;
        entries.push(entry);
        let pixels = |target: &VideoTarget| u64::from(target.width) * u64::from(target.height);
        let job_pixels: u64 = plan.video_encodes.iter().map(pixels).sum();
        // Parents come before children: build in order of size, largest first.
        let mut order: Vec<usize> = (0..plan.video_encodes.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(pixels(&plan.video_encodes[i])));
        let mut scaled_tees: Vec<Option<gst::Element>> = vec![None; plan.video_encodes.len()];
        for index in order {
            let target = &plan.video_encodes[index];
            let input = match target.scale_from {
                Some(parent) => {
                    scaled_tees[parent]
                        .clone()
                        .ok_or_else(|| PipelineError::Build {
                            what: "a scaling step's parent was not built first".into(),
                        })?
                }
                None => raw_tee.clone(),
            };
            let threads = x264_threads(options.cores, pixels(target), job_pixels);
            let (scaled_tee, encoded_tee, position) =
                build_video_encode(&pipeline, &input, target, options.fragments, threads)?;
            scaled_tees[index] = Some(scaled_tee);
            positions.push(position);
            for (output, mux) in plan.outputs.iter().zip(&muxers) {
                if output.video == Some(index) {
                    feed_muxer(&pipeline, &encoded_tee, mux, "video_%u", false)?;
                }
            }
        }
    }
    if uses_audio && !remux {
        let (entry, raw_tee) =
            build_audio_front(&pipeline, &plan.audio_encodes[0], plan.audio_gain_db)?;
        entries.push(entry);
        for (index, target) in plan.audio_encodes.iter().enumerate() {
            let (encoded_tee, position) =
                build_audio_encode(&pipeline, &raw_tee, target, options.fragments)?;
            positions.push(position);
            for (output, mux) in plan.outputs.iter().zip(&muxers) {
                if output.audio == Some(index) {
                    feed_muxer(&pipeline, &encoded_tee, mux, "audio_%u", false)?;
                }
            }
        }
    }
    if let Some(limit) = plan.duration_limit {
        let limit = gst::ClockTime::from_nseconds((limit * 1e9) as u64);
        for entry in &entries {
            limit_stream(&entry.sink, limit);
        }
    }
    let entries = Arc::new(Mutex::new(entries));
    let missing_stream: Arc<Mutex<Option<&'static str>>> = Arc::new(Mutex::new(None));
    match meter {
        Some(meter) => connect_metered(&pipeline, &demux, meter.clone(), &entries, &missing_stream),
        None => connect_decoder(&pipeline, &demux, &entries, &missing_stream),
    }

    pipeline.set_state(gst::State::Playing).map_err(|_| {
        first_bus_error(&pipeline).unwrap_or(PipelineError::Build {
            what: "the pipeline refused to start".into(),
        })
    })?;

    let bus = pipeline.bus().expect("a pipeline has a bus");
    let mut last_position = 0u64;
    let mut last_progress_at = Instant::now();
    let duration_ns = options.duration.filter(|d| *d > 0.0).map(|d| d * 1e9);
    loop {
        if options.cancel.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(POLL_INTERVAL.as_nanos() as u64),
            &[
                gst::MessageType::Eos,
                gst::MessageType::Error,
                gst::MessageType::Application,
            ],
        ) {
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(err) => return Err(stream_error(err)),
                gst::MessageView::Application(_) => {
                    if let Some(kind) = *missing_stream.lock().expect("missing lock") {
                        return Err(PipelineError::MissingStream { kind });
                    }
                }
                _ => {}
            }
        }
        // The slowest encode decides how far the whole job is.
        let position = positions
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        if position > last_position {
            if last_position == 0 {
                // Every dynamic pad is linked now: the graph is complete. A
                // no-op unless GST_DEBUG_DUMP_DOT_DIR is set.
                pipeline
                    .debug_to_dot_file_with_ts(gst::DebugGraphDetails::all(), "reeld-transcode");
            }
            last_position = position;
            last_progress_at = Instant::now();
            if let Some(total) = duration_ns {
                on_progress((position as f64 / total * 100.0).clamp(0.0, 99.0));
            }
        } else if last_progress_at.elapsed() > options.stall_timeout {
            return Err(PipelineError::Stalled {
                seconds: options.stall_timeout.as_secs(),
            });
        }
    }
    drop(guard);
    for scratch in scratch_files {
        let _ = std::fs::remove_file(scratch);
    }
    Ok(())
}

fn stream_error(err: &gst::message::Error) -> PipelineError {
    let element = err
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_else(|| "pipeline".into());
    let error = err.error();
    let transient = matches!(
        error.kind::<gst::ResourceError>(),
        Some(
            gst::ResourceError::NoSpaceLeft
                | gst::ResourceError::Write
                | gst::ResourceError::OpenWrite
                | gst::ResourceError::OpenReadWrite
                | gst::ResourceError::Close
        )
    );
    let debug = err.debug().map(|d| d.to_string()).unwrap_or_default();
    let mut message = error.message().to_string();
    if ran_out_of_memory(&message) || ran_out_of_memory(&debug) {
        return PipelineError::OutOfMemory { element };
    }
    // Resource errors carry the operating system's reason only in the debug
    // text ("system error: No space left on device"): it is the useful part.
    if let Some(reason) = debug.rsplit("system error: ").next().filter(|_| transient)
        && debug.contains("system error: ")
    {
        message = format!("{message}: {}", reason.trim());
    }
    PipelineError::Stream {
        element,
        message,
        debug,
        transient,
    }
}

/// Whether an element's error says an allocation failed.
fn ran_out_of_memory(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("out of memory") || text.contains("cannot allocate memory")
}

fn first_bus_error(pipeline: &gst::Pipeline) -> Option<PipelineError> {
    let bus = pipeline.bus()?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_mseconds(100),
        &[gst::MessageType::Error],
    )?;
    match msg.view() {
        gst::MessageView::Error(err) => Some(stream_error(err)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
