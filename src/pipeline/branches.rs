//! The graph's branches, each built from the plan's targets: the video front
//! (decoded pictures turned upright and steady) and one encode per distinct
//! size, the audio front and one encode per distinct bitrate, the copied
//! streams of a remux, and each output's muxer feed. `run` in the parent
//! module decides which branches a plan needs and links them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gst::prelude::*;

use super::PipelineError;
use super::demux::Entry;
use crate::pipelines::Fragments;
use crate::plan::{AudioTarget, Scaler, VideoTarget};

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

pub(super) fn make(factory: &str) -> Result<gst::Element, PipelineError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| PipelineError::Build {
            what: format!("element {factory} is not installed"),
        })
}

pub(super) fn link_chain(elements: &[&gst::Element]) -> Result<(), PipelineError> {
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
pub(super) fn limit_stream(entry: &gst::Pad, limit: gst::ClockTime) {
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
pub(super) fn build_copy(
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
pub(super) fn copy_queue() -> Result<gst::Element, PipelineError> {
    let q = make("multiqueue")?;
    q.set_property("max-size-buffers", COPY_QUEUE_PACKETS);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    Ok(q)
}

/// Decoded video → upright, deinterlaced, frame-rate capped → a tee that
/// feeds every video encode.
pub(super) fn build_video_front(
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
pub(super) fn build_video_encode(
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
pub(super) fn build_audio_front(
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
pub(super) fn build_audio_encode(
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
pub(super) fn feed_muxer(
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
