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

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use tokio_util::sync::CancellationToken;

mod demux;

use crate::graph::{POLL_INTERVAL, PipelineGuard};
use crate::inspect::GopMeter;
use crate::pipelines::Fragments;
use crate::plan::{AudioTarget, Plan, Scaler, VideoTarget};
use demux::{Entry, connect_decoder, connect_metered};

/// Raw frames a video branch may buffer before it holds the decoder back.
/// Two is enough to keep the decoder, the scalers and the encoders running
/// side by side once the encoder gives pictures back on input
/// (`reeldx264enc`): on the bench ladder 2 took 68.9 s against 70.5 s at 8,
/// and 483 MiB peak RSS against 546 (README, "Benchmark").
const VIDEO_QUEUE_FRAMES: u32 = 2;
/// Encoded media waiting at a muxer's input, at most.
const MUXER_QUEUE_TIME: gst::ClockTime = gst::ClockTime::from_seconds(20);
/// Packets each copied stream of a remux may hold (more while another
/// stream runs empty).
const COPY_QUEUE_PACKETS: u32 = 512;
/// VBV buffer of capped encodes, in ms of the maximum rate (2 s, as ffmpeg's
/// `-bufsize 2×maxrate`).
const VBV_BUFFER_MS: u32 = 2000;

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

fn make(factory: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| PipelineError::Build {
            what: format!("element {factory} is not installed"),
        })
}

fn link_chain(elements: &[&gst::Element]) -> Result<(), PipelineError> {
    gst::Element::link_many(elements.iter().copied()).map_err(|e| PipelineError::Build {
        what: format!(
            "cannot link {}: {e}",
            elements
                .iter()
                .map(|e| e
                    .factory()
                    .map(|f| f.name().to_string())
                    .unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" ! ")
        ),
    })
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

fn add_and_link(pipeline: &gst::Pipeline, chain: &[gst::Element]) -> Result<(), PipelineError> {
    for e in chain {
        pipeline.add(e).map_err(|err| PipelineError::Build {
            what: err.to_string(),
        })?;
    }
    link_chain(&chain.iter().collect::<Vec<_>>())
}

fn queue(max_buffers: u32) -> Result<gst::Element, PipelineError> {
    let q = make("queue")?;
    q.set_property("max-size-buffers", max_buffers);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    Ok(q)
}

/// The visible mark on every picture of a test asset (before scaling, so
/// that every rendition shows it).
fn watermark() -> Result<gst::Element, PipelineError> {
    let overlay = make("textoverlay")?;
    overlay.set_property("text", "reeld test asset");
    overlay.set_property_from_str("valignment", "center");
    overlay.set_property_from_str("halignment", "center");
    overlay.set_property("font-desc", "Sans Bold 48");
    overlay.set_property("shaded-background", true);
    Ok(overlay)
}

/// Ends a decoded stream at `limit` (test assets): the first buffer at or
/// past it is replaced by EOS, and later ones meet the ended queue, whose
/// `EOS` flow return stops the decoder and demuxer upstream.
fn limit_stream(entry: &gst::Pad, limit: gst::ClockTime) {
    let ended = std::sync::atomic::AtomicBool::new(false);
    entry.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        // Running time: a source whose timestamps start late (MPEG-TS)
        // still keeps its first `limit` of pictures.
        let running = buffer.pts().map(|pts| {
            pad.sticky_event::<gst::event::Segment>(0)
                .and_then(|event| {
                    event
                        .segment()
                        .downcast_ref::<gst::ClockTime>()
                        .and_then(|segment| segment.to_running_time(pts))
                })
                .unwrap_or(pts)
        });
        if running.is_some_and(|t| t >= limit) && !ended.swap(true, Ordering::SeqCst) {
            pad.send_event(gst::event::Eos::new());
            return gst::PadProbeReturn::Drop;
        }
        gst::PadProbeReturn::Ok
    });
}

/// A stream copied as it is (the remux fast path): parsed packets → caps the
/// muxer takes (the parser converts to them) → a tee for every output.
fn build_copy(
    pipeline: &gst::Pipeline,
    copies: &gst::Element,
    kind: &'static str,
    caps: gst::Caps,
) -> Result<(Entry, gst::Element, Arc<AtomicU64>), PipelineError> {
    let sink = copies
        .request_pad_simple("sink_%u")
        .ok_or_else(|| PipelineError::Build {
            what: "multiqueue gave no sink pad".into(),
        })?;
    let src_name = sink.name().replace("sink_", "src_");
    let src = copies
        .static_pad(&src_name)
        .ok_or_else(|| PipelineError::Build {
            what: format!("multiqueue has no {src_name}"),
        })?;
    let filter = make("capsfilter")?;
    filter.set_property("caps", caps);
    let tee = make("tee")?;
    add_and_link(pipeline, &[filter.clone(), tee.clone()])?;
    src.link(
        &filter
            .static_pad("sink")
            .expect("capsfilter has a sink pad"),
    )
    .map_err(|e| PipelineError::Build {
        what: format!("cannot link the copy queue: {e:?}"),
    })?;
    let position = track_position(&filter.static_pad("src").expect("capsfilter has a src pad"));
    Ok((
        Entry {
            kind,
            sink,
            linked: false,
        },
        tee,
        position,
    ))
}

/// The one queue every copied stream passes: bounded (each stream holds
/// at most `COPY_QUEUE_PACKETS` packets, so a remux of any size holds a few
/// MiB), and a multiqueue, which raises a full stream's packet limit while
/// another stream runs empty (it does so for a packet limit, never for a
/// byte or time limit, so those are off): a source whose streams are badly
/// interleaved cannot block the demuxer.
fn copy_queue() -> Result<gst::Element, PipelineError> {
    let q = make("multiqueue")?;
    q.set_property("max-size-buffers", COPY_QUEUE_PACKETS);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    Ok(q)
}

/// Decoded video → upright, deinterlaced, frame-rate capped → a tee that
/// feeds every video encode.
fn build_video_front(
    pipeline: &gst::Pipeline,
    target: &VideoTarget,
) -> Result<(Entry, gst::Element), PipelineError> {
    let entry = queue(VIDEO_QUEUE_FRAMES)?;
    let mut chain = vec![entry.clone()];
    if target.deinterlace {
        chain.push(make("videoconvert")?);
        chain.push(make("deinterlace")?);
    }
    chain.push(make("videoconvert")?);
    // Only when needed: videoflip copies every frame even when it has nothing
    // to turn (measured: +8 % of the CPU of decoding 1080p H.264).
    if target.reorient {
        let flip = make("videoflip")?;
        flip.set_property_from_str("video-direction", "auto");
        strip_orientation_tags(&flip);
        chain.push(flip);
    }
    if let Some((numer, denom)) = target.steady_frame_rate {
        chain.push(make("videorate")?);
        let caps = make("capsfilter")?;
        caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("framerate", gst::Fraction::new(numer as i32, denom as i32))
                .build(),
        );
        chain.push(caps);
    } else if let Some(max) = target.max_frame_rate {
        let rate = make("videorate")?;
        rate.set_property("max-rate", max as i32);
        rate.set_property("drop-only", true);
        chain.push(rate);
    }
    if target.watermark {
        chain.push(watermark()?);
    }
    let tee = make("tee")?;
    chain.push(tee.clone());
    add_and_link(pipeline, &chain)?;
    Ok((Entry::at("video", &entry), tee))
}

/// One scale + encode from a raw video tee (the decoded picture, or a larger
/// scaled one) into a tee of the scaled picture (for smaller steps) and a tee
/// of encoded video. `x264_threads` goes to an x264 encoder whose fragment
/// leaves `threads` at 0 (automatic).
fn build_video_encode(
    pipeline: &gst::Pipeline,
    raw_tee: &gst::Element,
    target: &VideoTarget,
    fragments: &Fragments,
    x264_threads: u32,
) -> Result<(gst::Element, gst::Element, Arc<AtomicU64>), PipelineError> {
    // Bounded: a slow encoder holds the decoder back instead of letting raw
    // frames pile up in memory.
    let q = queue(VIDEO_QUEUE_FRAMES)?;
    let scale = make("videoscale")?;
    scale.set_property_from_str(
        "method",
        match target.scaler {
            Scaler::Linear => "bilinear",
            Scaler::Lanczos => "lanczos",
        },
    );
    let convert = make("videoconvert")?;
    let caps = make("capsfilter")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .field("width", target.width as i32)
            .field("height", target.height as i32)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .field("interlace-mode", "progressive")
            // Pinned: left open, GStreamer picks BT.601 for SD sizes and pays
            // for a matrix conversion that costs quality.
            .field("colorimetry", "bt709")
            .field("chroma-site", "mpeg2")
            .build(),
    );
    let encoder = instantiate(fragments.video(target.quality))?;
    set_on_encoder(&encoder, "key-int-max", target.keyframe_interval);
    set_on_encoder(&encoder, "bitrate", target.max_bitrate_kbps);
    set_on_encoder(&encoder, "vbv-buf-capacity", VBV_BUFFER_MS);
    set_automatic_x264_threads(&encoder, x264_threads);
    let parse = make("h264parse")?;
    let scaled_tee = make("tee")?;
    let encode_queue = queue(VIDEO_QUEUE_FRAMES)?;
    let tee = make("tee")?;
    let chain = vec![
        q.clone(),
        scale,
        convert,
        caps,
        scaled_tee.clone(),
        encode_queue,
        encoder.upcast(),
        parse.clone(),
        tee.clone(),
    ];
    add_and_link(pipeline, &chain)?;
    link_chain(&[raw_tee, &q])?;
    let position = track_position(&parse.static_pad("src").expect("h264parse has a src pad"));
    Ok((scaled_tee, tee, position))
}

/// Decoded audio → converted and resampled → a tee that feeds every audio encode.
fn build_audio_front(
    pipeline: &gst::Pipeline,
    target: &AudioTarget,
    gain_db: Option<f64>,
) -> Result<(Entry, gst::Element), PipelineError> {
    // Unbounded: audio is small, and a full audio queue would stall the
    // demuxer while the muxers wait for video (the classic tee/mux deadlock).
    let entry = queue(0)?;
    let caps = make("capsfilter")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("rate", target.sample_rate as i32)
            .field("channels", target.channels as i32)
            .build(),
    );
    let tee = make("tee")?;
    let mut chain = vec![
        entry.clone(),
        make("audioconvert")?,
        make("audioresample")?,
        caps,
    ];
    if let Some(db) = gain_db {
        // After the downmix and resampling: the signal that was measured.
        let volume = make("volume")?;
        volume.set_property("volume", 10f64.powf(db / 20.0));
        chain.extend([volume, make("audioconvert")?]);
    }
    chain.push(tee.clone());
    add_and_link(pipeline, &chain)?;
    Ok((Entry::at("audio", &entry), tee))
}

/// One AAC encode from the raw audio tee into a tee of encoded audio.
fn build_audio_encode(
    pipeline: &gst::Pipeline,
    raw_tee: &gst::Element,
    target: &AudioTarget,
    fragments: &Fragments,
) -> Result<(gst::Element, Arc<AtomicU64>), PipelineError> {
    let q = queue(0)?;
    let encoder = instantiate(fragments.audio())?;
    set_on_encoder(&encoder, "bitrate", target.bitrate);
    let parse = make("aacparse")?;
    let tee = make("tee")?;
    let chain = vec![q.clone(), encoder.upcast(), parse.clone(), tee.clone()];
    add_and_link(pipeline, &chain)?;
    link_chain(&[raw_tee, &q])?;
    let position = track_position(&parse.static_pad("src").expect("aacparse has a src pad"));
    Ok((tee, position))
}

/// A fresh encoder bin of a `pipelines/` fragment.
fn instantiate(fragment: &crate::pipelines::Fragment) -> Result<gst::Bin, PipelineError> {
    fragment.instantiate().map_err(|e| PipelineError::Fragment {
        origin: fragment.origin.clone(),
        message: e.to_string(),
    })
}

/// Encoded stream tee → queue → a new `template` pad of the muxer.
fn feed_muxer(
    pipeline: &gst::Pipeline,
    encoded_tee: &gst::Element,
    mux: &gst::Element,
    template: &str,
    copied: bool,
) -> Result<(), PipelineError> {
    let q = make("queue")?;
    q.set_property("max-size-buffers", 0u32);
    q.set_property("max-size-bytes", 0u32);
    if copied {
        // A remux feeds whole packets at disk speed: unbounded, this queue
        // held half of a 2 GB source in memory. The bound is far above
        // what a muxer waits for its other stream; a longer wait (an audio
        // track that starts late) backs up into the copy multiqueue, which
        // grows while the other stream runs empty.
        q.set_property("max-size-time", MUXER_QUEUE_TIME.nseconds());
    } else {
        // Encoded data arrives at encoding speed and is small: unbounded,
        // so one muxer waiting for its other stream never blocks the others.
        q.set_property("max-size-time", 0u64);
    }
    add_and_link(pipeline, std::slice::from_ref(&q))?;
    link_chain(&[encoded_tee, &q])?;
    let mux_pad = mux
        .request_pad_simple(template)
        .ok_or_else(|| PipelineError::Build {
            what: format!("mp4mux gave no {template} pad"),
        })?;
    q.static_pad("src")
        .expect("queue has a src pad")
        .link(&mux_pad)
        .map_err(|e| PipelineError::Build {
            what: format!("cannot link to mp4mux: {e:?}"),
        })?;
    Ok(())
}

/// Sets `threads` on every x264 encoder (`reeldx264enc`, `x264enc`) of a
/// fragment bin that leaves it at 0 (automatic): a count the fragment names
/// is the user's and stands. Other encoders are left alone.
fn set_automatic_x264_threads(bin: &gst::Bin, threads: u32) {
    for element in bin.iterate_recurse().into_iter().flatten() {
        if element
            .factory()
            .is_some_and(|f| f.name() == crate::x264::FACTORY_NAME || f.name() == "x264enc")
            && element.property::<u32>("threads") == 0
        {
            element.set_property("threads", threads);
        }
    }
}

/// Sets an integer property on every element of a fragment bin that has it
/// (so a user's encoder choice keeps working when it lacks the property).
fn set_on_encoder(bin: &gst::Bin, property: &str, value: u32) {
    for element in bin.iterate_recurse().into_iter().flatten() {
        let Some(spec) = element.find_property(property) else {
            continue;
        };
        let value_type = spec.value_type();
        if value_type == u32::static_type() {
            element.set_property(property, value);
        } else if value_type == i32::static_type() {
            element.set_property(property, value as i32);
        } else if value_type == u64::static_type() {
            element.set_property(property, u64::from(value));
        } else if value_type == i64::static_type() {
            element.set_property(property, i64::from(value));
        }
    }
}

/// Keeps the latest buffer end time seen on `pad`, in stream time (seconds
/// into the media), for progress and the watchdog.
///
/// Buffer timestamps are read through the pad's segment: encoders may shift
/// them (x264 encoders start their segment at 1000 h so that no DTS is negative),
/// and a raw timestamp would then read as the end of any file.
fn track_position(pad: &gst::Pad) -> Arc<AtomicU64> {
    let position = Arc::new(AtomicU64::new(0));
    let p = position.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data
            && let Some(ts) = buffer.pts().or(buffer.dts())
        {
            let in_stream = pad
                .sticky_event::<gst::event::Segment>(0)
                .and_then(|event| {
                    event
                        .segment()
                        .downcast_ref::<gst::ClockTime>()
                        .and_then(|segment| segment.to_stream_time(ts))
                })
                .unwrap_or(ts);
            let end = in_stream.nseconds() + buffer.duration().map(|d| d.nseconds()).unwrap_or(0);
            p.fetch_max(end, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
    position
}

/// The rotation is applied to the pixels by `videoflip`; the orientation tag
/// must not reach the muxer too, or players would rotate the picture twice.
fn strip_orientation_tags(flip: &gst::Element) {
    let src = flip.static_pad("src").expect("videoflip has a src pad");
    src.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
        let replacement = match &info.data {
            Some(gst::PadProbeData::Event(event)) => match event.view() {
                gst::EventView::Tag(tag_event) => {
                    let tags = tag_event.tag();
                    if tags.get::<gst::tags::ImageOrientation>().is_some() {
                        let mut tags = tags.to_owned();
                        tags.make_mut().remove::<gst::tags::ImageOrientation>();
                        Some(gst::event::Tag::new(tags))
                    } else {
                        None
                    }
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(event) = replacement {
            info.data = Some(gst::PadProbeData::Event(event));
        }
        gst::PadProbeReturn::Ok
    });
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
mod tests {
    use super::*;

    #[test]
    fn index_space_holds_twice_the_source_index() {
        // A 20-minute film with a 1 MB index, video and audio.
        let space = index_space(1_000_000, 1200.0, 2).unwrap();
        assert_eq!(space.max_duration_ns, 1_350_000_000_000);
        let reserved = u64::from(space.bytes_per_second) * 2 * 1350;
        assert!(reserved >= 2 * 1_000_000 + 65_536, "{space:?}");
        // Short clips get mp4mux's default rate; nothing without a duration.
        assert_eq!(
            index_space(10_000, 10.0, 2).unwrap().bytes_per_second,
            1_044
        );
        assert_eq!(index_space(100, 600.0, 2).unwrap().bytes_per_second, 550);
        assert_eq!(index_space(1_000, f64::NAN, 2), None);
        assert_eq!(index_space(1_000, 10.0, 0), None);
        // More than mp4mux's per-second limit: the fast-start copy instead.
        assert_eq!(index_space(10_000_000, 10.0, 1), None);
    }

    /// The top-level boxes of an MP4 file, in order.
    fn top_level_boxes(path: &Path) -> Vec<String> {
        let data = std::fs::read(path).unwrap();
        let mut at = 0usize;
        let mut kinds = Vec::new();
        while at + 8 <= data.len() {
            let mut size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            if size == 1 {
                size = u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap()) as usize;
            }
            kinds.push(String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned());
            if size < 8 {
                break;
            }
            at += size;
        }
        kinds
    }

    #[test]
    fn a_remux_writes_its_index_first_and_falls_back_when_it_outgrows_the_space() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("clip.mp4");
        crate::test_media::ffmpeg(
            &clip,
            "-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=440 -t 4 \
             -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest",
        );
        let info = crate::probe::probe_file(&clip).unwrap();
        let settings = crate::asset::AssetSettings::defaults(
            crate::asset::MaxResolutionTier::P1080,
            crate::asset::VideoQuality::Plus,
        );
        let copyable = crate::plan::Assessment {
            copyable: true,
            ..Default::default()
        };
        let plan =
            crate::plan::plan_asset(&info, &settings, crate::plan::Scope::Everything, &copyable)
                .unwrap();
        assert!(plan.copies());
        let fragments =
            Fragments::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines")).unwrap();
        let options = RunOptions {
            fragments: &fragments,
            stall_timeout: Duration::from_secs(60),
            cancel: CancellationToken::new(),
            duration: plan.expected_duration,
            cores: 2,
            source_index_bytes: crate::inspect::mp4::moov_size(&clip),
            meter: None,
        };
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        let master = spool.join(crate::plan::MASTER_NAME);
        let index_first = |path: &Path| {
            let kinds = top_level_boxes(path);
            let moov = kinds.iter().position(|k| k == "moov");
            let mdat = kinds.iter().position(|k| k == "mdat");
            assert!(moov.is_some() && moov < mdat, "{kinds:?}");
        };

        // Sized from the source's index: one write, no scratch file.
        transcode_with_gstreamer(&clip, &plan, &spool, &options, |_| {}).unwrap();
        index_first(&master);
        assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1);

        // Space far too small: mp4mux refuses, and the remux runs again.
        let tiny = IndexSpace {
            max_duration_ns: 5_000_000_000,
            bytes_per_second: 20,
        };
        let refused = run(&clip, &plan, &spool, &options, Some(tiny), &mut |_| {});
        assert!(
            matches!(&refused, Err(PipelineError::Stream { debug, .. }) if debug.contains("reserved")),
            "{refused:?}"
        );
        std::fs::remove_file(&master).unwrap();
        transcode_reserving(&clip, &plan, &spool, &options, Some(tiny), &mut |_| {}).unwrap();
        index_first(&master);
        let copy = crate::probe::probe_file(&master).unwrap();
        assert!((copy.duration.unwrap() - info.duration.unwrap()).abs() < 0.1);
    }

    #[test]
    fn x264_threads_follow_each_encodes_share_of_the_job() {
        const P1080: u64 = 1920 * 1080;
        const P720: u64 = 1280 * 720;
        const P480: u64 = 854 * 480;
        const P270: u64 = 480 * 270;
        const LADDER: u64 = P1080 + P720 + P480;
        // (cores, pixels of the encode, pixels of the job's encodes, threads)
        let cases = [
            // One encode: x264's own count, 1.5 per core rounded down.
            (1, P1080, P1080, 1),
            (2, P1080, P1080, 3),
            (3, P1080, P1080, 4),
            (4, P1080, P1080, 6),
            (16, P1080, P1080, 24),
            // 1080p + 720p + 480p on 2 cores: 2, 1, 1 (not 3 + 3 + 3).
            (2, P1080, LADDER, 2),
            (2, P720, LADDER, 1),
            (2, P480, LADDER, 1),
            // The same ladder on 16 cores.
            (16, P1080, LADDER, 15),
            (16, P720, LADDER, 7),
            (16, P480, LADDER, 3),
            // 1080p + 720p + 270p on 2 cores.
            (2, P1080, P1080 + P720 + P270, 2),
            (2, P270, P1080 + P720 + P270, 1),
            // Never fewer than one, never more than a lone encode.
            (1, 2, 1_000_000, 1),
            (2, P1080, 1, 3),
            (2, P1080, 0, 3),
            (0, P1080, P1080, 1),
        ];
        for (cores, pixels, job_pixels, threads) in cases {
            assert_eq!(
                x264_threads(cores, pixels, job_pixels),
                threads,
                "{cores} cores, {pixels} of {job_pixels} pixels"
            );
        }
    }
}
