//! GStreamer plumbing that every graph shares: initialisation, the guard
//! that stops a pipeline however a run ends, the measuring pass (a file
//! into `parsebin` or `decodebin`, played to EOS with a stall check), and
//! the pad helpers. A leaf: the transcoder (`pipeline`), the measuring
//! passes (`inspect`, `loudness`), the probe and the fragment loader all
//! build on it, and it depends on none of them.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gst::prelude::*;

/// How often a bus is polled for progress, cancellation and stalls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Initialises GStreamer once per process and registers reeld's own
/// elements (`reeldx264enc`); later calls are cheap no-ops.
pub fn init() -> Result<(), gst::glib::Error> {
    gst::init()?;
    crate::x264::register().map_err(|e| {
        gst::glib::Error::new(
            gst::CoreError::Failed,
            &format!("cannot register {}: {e}", crate::x264::FACTORY_NAME),
        )
    })
}

/// Sets the pipeline to `Null` however the run ends.
pub struct PipelineGuard(pub gst::Pipeline);

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// Why a measuring pass (a pipeline that ends in fakesinks) did not reach EOS.
#[derive(Debug)]
pub enum PassError {
    /// An element failed, or the pipeline would not start: GStreamer's message.
    Failed(String),
    /// `last_activity` grew older than the stall limit.
    Stalled,
}

/// A measuring pass's start: `filesrc location=PATH ! FACTORY` (`parsebin`
/// or `decodebin`) in a new pipeline. Returns the pipeline and the element
/// whose pads the caller links as they appear.
pub fn file_pass(
    name: &str,
    path: &Path,
    factory: &str,
) -> Result<(gst::Pipeline, gst::Element), PassError> {
    let fail = |e: &dyn std::fmt::Display| PassError::Failed(e.to_string());
    init().map_err(|e| fail(&e))?;
    let pipeline = gst::Pipeline::with_name(name);
    let filesrc = gst::ElementFactory::make("filesrc")
        .property("location", path.to_string_lossy().as_ref())
        .build()
        .map_err(|e| fail(&e))?;
    let demux = gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| fail(&e))?;
    pipeline
        .add_many([&filesrc, &demux])
        .map_err(|e| fail(&e))?;
    filesrc.link(&demux).map_err(|e| fail(&e))?;
    Ok((pipeline, demux))
}

/// Plays a measuring pass to EOS and sets it to `Null` however it ends. Its
/// probes stamp `last_activity` as data flows; a pass whose stamp grows older
/// than `stall_limit` is stopped.
pub fn run_pass(
    pipeline: &gst::Pipeline,
    last_activity: &Mutex<Instant>,
    stall_limit: Duration,
) -> Result<(), PassError> {
    let _guard = PipelineGuard(pipeline.clone());
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| PassError::Failed(e.to_string()))?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    loop {
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(POLL_INTERVAL.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            match msg.view() {
                gst::MessageView::Eos(_) => return Ok(()),
                gst::MessageView::Error(err) => {
                    return Err(PassError::Failed(err.error().to_string()));
                }
                _ => {}
            }
        }
        if last_activity.lock().expect("activity lock").elapsed() > stall_limit {
            return Err(PassError::Stalled);
        }
    }
}

/// The media type of a demuxer's or decoder's new pad (`video/x-h264`,
/// `audio/x-raw`, …), from its caps or, before they are set, its query.
pub fn pad_caps_name(pad: &gst::Pad) -> String {
    pad.current_caps()
        .unwrap_or_else(|| pad.query_caps(None))
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default()
}

/// `video`, `audio` or `other`, from a media type.
pub fn media_kind(caps_name: &str) -> &'static str {
    if caps_name.starts_with("video/") {
        "video"
    } else if caps_name.starts_with("audio/") {
        "audio"
    } else {
        "other"
    }
}

/// A sink that swallows a stream nothing uses. It does not preroll: one
/// demuxer thread feeds every stream, and a sink waiting in PAUSED for its
/// first buffer would hold that thread, and so every other stream, forever.
pub fn drain_sink() -> Result<gst::Element, gst::glib::BoolError> {
    gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
}
