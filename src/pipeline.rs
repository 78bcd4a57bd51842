//! Pipelines: a `Plan` turned into a GStreamer graph, run to EOS with progress,
//! a watchdog and cancellation.
//!
//! The graph is one decode of the source feeding one branch per output stream:
//!
//! ```text
//! filesrc ! decodebin ─ video ─ queue ! [deinterlace] ! videoconvert ! videoflip(auto)
//!                   │           ! videoscale ! [videorate] ! capsfilter ! <h264 fragment> ! h264parse ─┐
//!                   └ audio ─ queue ! audioconvert ! audioresample ! capsfilter ! <aac fragment>      ├ mp4mux ! filesink
//!                                                                                    ! aacparse ─────┘
//! ```
//!
//! Extra source streams (second audio track, data) go to a `fakesink`. A
//! pipeline is owned by a guard that sets it to `Null` on drop; only the bus's
//! EOS counts as success. Everything here blocks: run it on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use tokio_util::sync::CancellationToken;

use crate::pipelines::Fragments;
use crate::plan::{AudioTarget, Plan, VideoTarget};

/// How often the bus is polled for progress, cancellation and stalls.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Raw frames a video branch may buffer before it holds the decoder back.
const VIDEO_QUEUE_FRAMES: u32 = 30;

/// Initialises GStreamer once per process (later calls are cheap no-ops).
pub fn init_gstreamer() -> Result<(), gst::glib::Error> {
    gst::init()
}

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
            PipelineError::MissingStream { .. } | PipelineError::Stalled { .. } => false,
        }
    }
}

/// Where one MP4 output goes and what it contains.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// The file to write.
    pub path: PathBuf,
    /// Video to encode into it.
    pub video: Option<VideoTarget>,
    /// Audio to encode into it.
    pub audio: Option<AudioTarget>,
}

impl OutputSpec {
    /// The master of `plan`, written to `path`.
    pub fn master(plan: &Plan, path: PathBuf) -> OutputSpec {
        OutputSpec {
            path,
            video: plan.video.clone(),
            audio: plan.audio.clone(),
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
}

/// Sets the pipeline to `Null` however the run ends.
struct PipelineGuard(gst::Pipeline);

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
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

/// A branch entry point waiting for the decoder's pad, and how far it has got.
struct Branch {
    kind: &'static str,
    sink: gst::Pad,
    linked: bool,
    position_ns: Arc<AtomicU64>,
}

/// Transcodes `source` into `output`, reporting progress (0–100) as it goes.
pub fn transcode(
    source: &Path,
    output: &OutputSpec,
    options: &RunOptions<'_>,
    mut on_progress: impl FnMut(f64),
) -> Result<(), PipelineError> {
    init_gstreamer().map_err(|e| PipelineError::Build {
        what: e.to_string(),
    })?;
    let pipeline = gst::Pipeline::with_name("reeld-transcode");
    let guard = PipelineGuard(pipeline.clone());

    let filesrc = make("filesrc")?;
    filesrc.set_property("location", source.to_string_lossy().as_ref());
    let decodebin = make("decodebin")?;
    pipeline
        .add_many([&filesrc, &decodebin])
        .map_err(|e| PipelineError::Build {
            what: e.to_string(),
        })?;
    link_chain(&[&filesrc, &decodebin])?;

    let mux = make("mp4mux")?;
    mux.set_property("faststart", true);
    let scratch = output.path.with_extension("moov-scratch");
    mux.set_property("faststart-file", scratch.to_string_lossy().as_ref());
    let filesink = make("filesink")?;
    filesink.set_property("location", output.path.to_string_lossy().as_ref());
    pipeline
        .add_many([&mux, &filesink])
        .map_err(|e| PipelineError::Build {
            what: e.to_string(),
        })?;
    link_chain(&[&mux, &filesink])?;

    let mut branches = Vec::new();
    if let Some(video) = &output.video {
        branches.push(build_video_branch(
            &pipeline,
            video,
            options.fragments,
            &mux,
        )?);
    }
    if let Some(audio) = &output.audio {
        branches.push(build_audio_branch(
            &pipeline,
            audio,
            options.fragments,
            &mux,
        )?);
    }
    let branches = Arc::new(Mutex::new(branches));
    let missing_stream: Arc<Mutex<Option<&'static str>>> = Arc::new(Mutex::new(None));

    {
        let branches = branches.clone();
        let pipeline_weak = pipeline.downgrade();
        decodebin.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            let kind = pad
                .current_caps()
                .or_else(|| Some(pad.query_caps(None)))
                .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
                .map(|name| {
                    if name.starts_with("video/") {
                        "video"
                    } else if name.starts_with("audio/") {
                        "audio"
                    } else {
                        "other"
                    }
                })
                .unwrap_or("other");
            let mut branches = branches.lock().expect("branch lock");
            if let Some(branch) = branches.iter_mut().find(|b| b.kind == kind && !b.linked)
                && pad.link(&branch.sink).is_ok()
            {
                branch.linked = true;
                return;
            }
            // A stream the plan does not use (second audio track, data, or a
            // kind this output does not carry): drain it so it cannot block.
            if let Ok(sink) = gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .property("async", false)
                .build()
                && pipeline.add(&sink).is_ok()
            {
                let _ = sink.sync_state_with_parent();
                if let Some(sinkpad) = sink.static_pad("sink") {
                    let _ = pad.link(&sinkpad);
                }
            }
        });
    }
    {
        let branches = branches.clone();
        let missing = missing_stream.clone();
        let pipeline_weak = pipeline.downgrade();
        decodebin.connect_no_more_pads(move |_| {
            let branches = branches.lock().expect("branch lock");
            if let Some(b) = branches.iter().find(|b| !b.linked) {
                *missing.lock().expect("missing lock") = Some(b.kind);
                // The aggregator would wait for this pad forever: end the run now.
                if let Some(p) = pipeline_weak.upgrade() {
                    let _ = p.post_message(gst::message::Application::new(
                        gst::Structure::new_empty("reeld-missing-stream"),
                    ));
                }
            }
        });
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
        let position = branches
            .lock()
            .expect("branch lock")
            .iter()
            .map(|b| b.position_ns.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0);
        if position > last_position {
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
    let _ = std::fs::remove_file(&scratch);
    Ok(())
}

fn build_video_branch(
    pipeline: &gst::Pipeline,
    target: &VideoTarget,
    fragments: &Fragments,
    mux: &gst::Element,
) -> Result<Branch, PipelineError> {
    let queue = make("queue")?;
    queue.set_property("max-size-buffers", VIDEO_QUEUE_FRAMES);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    let mut chain = vec![queue.clone()];
    if target.deinterlace {
        chain.push(make("videoconvert")?);
        chain.push(make("deinterlace")?);
    }
    chain.push(make("videoconvert")?);
    let flip = make("videoflip")?;
    flip.set_property_from_str("video-direction", "auto");
    strip_orientation_tags(&flip);
    chain.push(flip);
    let scale = make("videoscale")?;
    // Catmull-Rom is the closest match to ffmpeg's default bicubic scaler.
    scale.set_property_from_str("method", "catrom");
    chain.push(scale);
    if let Some(max) = target.max_frame_rate {
        let rate = make("videorate")?;
        rate.set_property("max-rate", max as i32);
        rate.set_property("drop-only", true);
        chain.push(rate);
    }
    chain.push(make("videoconvert")?);
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
    chain.push(caps);
    let fragment = fragments.video(target.quality);
    let encoder = fragment
        .instantiate()
        .map_err(|e| PipelineError::Fragment {
            origin: fragment.origin.clone(),
            message: e.to_string(),
        })?;
    set_on_encoder(&encoder, "key-int-max", target.keyframe_interval);
    let parse = make("h264parse")?;
    let encoder_el: gst::Element = encoder.upcast();
    chain.push(encoder_el);
    chain.push(parse.clone());
    for e in &chain {
        pipeline.add(e).map_err(|err| PipelineError::Build {
            what: err.to_string(),
        })?;
    }
    link_chain(&chain.iter().collect::<Vec<_>>())?;
    let mux_pad = mux
        .request_pad_simple("video_%u")
        .ok_or_else(|| PipelineError::Build {
            what: "mp4mux gave no video pad".into(),
        })?;
    let src = parse.static_pad("src").expect("h264parse has a src pad");
    src.link(&mux_pad).map_err(|e| PipelineError::Build {
        what: format!("cannot link h264parse to mp4mux: {e:?}"),
    })?;
    let position_ns = track_position(&src);
    Ok(Branch {
        kind: "video",
        sink: queue.static_pad("sink").expect("queue has a sink pad"),
        linked: false,
        position_ns,
    })
}

fn build_audio_branch(
    pipeline: &gst::Pipeline,
    target: &AudioTarget,
    fragments: &Fragments,
    mux: &gst::Element,
) -> Result<Branch, PipelineError> {
    let queue = make("queue")?;
    // Unbounded: audio is small, and a full audio queue would stall the
    // demuxer while the muxer waits for video (a classic tee/mux deadlock).
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    let convert = make("audioconvert")?;
    let resample = make("audioresample")?;
    let caps = make("capsfilter")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("rate", target.sample_rate as i32)
            .field("channels", target.channels as i32)
            .build(),
    );
    let fragment = fragments.audio();
    let encoder = fragment
        .instantiate()
        .map_err(|e| PipelineError::Fragment {
            origin: fragment.origin.clone(),
            message: e.to_string(),
        })?;
    set_on_encoder(&encoder, "bitrate", target.bitrate);
    let parse = make("aacparse")?;
    let encoder_el: gst::Element = encoder.upcast();
    let chain = [&queue, &convert, &resample, &caps, &encoder_el, &parse];
    for e in chain {
        pipeline.add(e).map_err(|err| PipelineError::Build {
            what: err.to_string(),
        })?;
    }
    link_chain(&chain)?;
    let mux_pad = mux
        .request_pad_simple("audio_%u")
        .ok_or_else(|| PipelineError::Build {
            what: "mp4mux gave no audio pad".into(),
        })?;
    let src = parse.static_pad("src").expect("aacparse has a src pad");
    src.link(&mux_pad).map_err(|e| PipelineError::Build {
        what: format!("cannot link aacparse to mp4mux: {e:?}"),
    })?;
    let position_ns = track_position(&src);
    Ok(Branch {
        kind: "audio",
        sink: queue.static_pad("sink").expect("queue has a sink pad"),
        linked: false,
        position_ns,
    })
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

/// Keeps the latest buffer end time seen on `pad`, for progress and the watchdog.
fn track_position(pad: &gst::Pad) -> Arc<AtomicU64> {
    let position = Arc::new(AtomicU64::new(0));
    let p = position.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data
            && let Some(pts) = buffer.dts_or_pts()
        {
            let end = pts.nseconds() + buffer.duration().map(|d| d.nseconds()).unwrap_or(0);
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
    PipelineError::Stream {
        element,
        message: error.message().to_string(),
        debug: err.debug().map(|d| d.to_string()).unwrap_or_default(),
        transient,
    }
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
