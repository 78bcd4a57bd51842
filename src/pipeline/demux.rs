//! Where the source's streams enter the graph: the demuxing element's pads
//! linked to the entries the plan built (the first stream of each kind), and
//! every other stream drained.
//!
//! Two shapes. Usually one `decodebin` demuxes and decodes ([`connect_decoder`]).
//! A transcode that measures the source's video as it reads it (a source
//! the probe already proved non-standard, `RunOptions::meter`) splits it with
//! `parsebin` instead, meters the first video stream with the parse pass's
//! own tap (`inspect::tap_video`, so both see the same packets), and gives
//! each stream an entry takes its own `decodebin` ([`connect_metered`]).
//! Streams no entry takes drain there still compressed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;

use crate::graph::{drain_sink, media_kind, pad_caps_name};
use crate::inspect::GopMeter;

/// Where a decoded stream of one kind enters the graph.
pub(super) struct Entry {
    pub(super) kind: &'static str,
    pub(super) sink: gst::Pad,
    pub(super) linked: bool,
}

impl Entry {
    /// Streams of `kind` enter at the sink pad of `queue`.
    pub(super) fn at(kind: &'static str, queue: &gst::Element) -> Entry {
        Entry {
            kind,
            sink: queue.static_pad("sink").expect("queue has a sink pad"),
            linked: false,
        }
    }
}

/// Links decoded pads to the entries: the first stream of each kind is used,
/// any other stream (second audio track, data) drains into a `fakesink`.
pub(super) fn connect_decoder(
    pipeline: &gst::Pipeline,
    decodebin: &gst::Element,
    entries: &Arc<Mutex<Vec<Entry>>>,
    missing_stream: &Arc<Mutex<Option<&'static str>>>,
) {
    {
        let entries = entries.clone();
        let pipeline_weak = pipeline.downgrade();
        decodebin.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            let kind = media_kind(&pad_caps_name(pad));
            let mut entries = entries.lock().expect("entry lock");
            if let Some(entry) = entries.iter_mut().find(|b| b.kind == kind && !b.linked)
                && pad.link(&entry.sink).is_ok()
            {
                entry.linked = true;
                return;
            }
            drop(entries);
            drain(&pipeline, pad);
        });
    }
    report_missing_streams(pipeline, decodebin, entries, missing_stream);
}

/// When `demux` has shown all its streams: an entry no stream took ends the
/// run as `MissingStream` (the muxers would wait for it forever).
fn report_missing_streams(
    pipeline: &gst::Pipeline,
    demux: &gst::Element,
    entries: &Arc<Mutex<Vec<Entry>>>,
    missing_stream: &Arc<Mutex<Option<&'static str>>>,
) {
    let entries = entries.clone();
    let missing = missing_stream.clone();
    let pipeline_weak = pipeline.downgrade();
    demux.connect_no_more_pads(move |_| {
        let entries = entries.lock().expect("entry lock");
        if let Some(b) = entries.iter().find(|b| !b.linked) {
            *missing.lock().expect("missing lock") = Some(b.kind);
            // The muxers would wait for this stream forever: end the run now.
            if let Some(p) = pipeline_weak.upgrade() {
                let _ = p.post_message(gst::message::Application::new(gst::Structure::new_empty(
                    "reeld-missing-stream",
                )));
            }
        }
    });
}

/// Links the pads of `parsebin` (parsed, compressed streams) to the entries
/// through one `decodebin` per stream taken, metering the first video
/// stream into `meter` on the way. A stream whose decoder cannot be set up
/// frees its entry, which `no-more-pads` then reports missing.
pub(super) fn connect_metered(
    pipeline: &gst::Pipeline,
    parsebin: &gst::Element,
    meter: Arc<Mutex<GopMeter>>,
    entries: &Arc<Mutex<Vec<Entry>>>,
    missing_stream: &Arc<Mutex<Option<&'static str>>>,
) {
    {
        let entries = entries.clone();
        let pipeline_weak = pipeline.downgrade();
        let video_seen = AtomicBool::new(false);
        parsebin.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            let caps_name = pad_caps_name(pad);
            let kind = media_kind(&caps_name);
            // The parse pass meters the first video stream, whatever the
            // plan takes; so does this.
            let pad = if kind == "video" && !video_seen.swap(true, Ordering::SeqCst) {
                crate::inspect::tap_video(&pipeline, pad, meter.clone(), || {})
            } else {
                pad.clone()
            };
            // What the stream decodes to: a picture stream (MJPEG's
            // `image/jpeg`) is video.
            let decoded_kind = if caps_name.starts_with("image/") {
                "video"
            } else {
                kind
            };
            let taken = {
                let mut entries = entries.lock().expect("entry lock");
                entries
                    .iter_mut()
                    .find(|e| e.kind == decoded_kind && !e.linked)
                    .map(|e| {
                        e.linked = true;
                        e.sink.clone()
                    })
            };
            let Some(sink) = taken else {
                drain(&pipeline, &pad);
                return;
            };
            if decode_into(&pipeline, &pad, sink.clone()).is_err() {
                if let Some(e) = entries
                    .lock()
                    .expect("entry lock")
                    .iter_mut()
                    .find(|e| e.sink == sink)
                {
                    e.linked = false;
                }
                drain(&pipeline, &pad);
            }
        });
    }
    report_missing_streams(pipeline, parsebin, entries, missing_stream);
}

/// `pad` → a new `decodebin` → `sink`.
fn decode_into(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    sink: gst::Pad,
) -> Result<(), gst::glib::BoolError> {
    let decodebin = gst::ElementFactory::make("decodebin").build()?;
    pipeline.add(&decodebin)?;
    let sink = Mutex::new(Some(sink));
    let pipeline_weak = pipeline.downgrade();
    decodebin.connect_pad_added(move |_, decoded| {
        if let Some(sink) = sink.lock().expect("sink lock").take()
            && decoded.link(&sink).is_ok()
        {
            return;
        }
        if let Some(pipeline) = pipeline_weak.upgrade() {
            drain(&pipeline, decoded);
        }
    });
    pad.link(
        &decodebin
            .static_pad("sink")
            .expect("decodebin has a sink pad"),
    )
    .map_err(|e| gst::glib::bool_error!("cannot link to decodebin: {e:?}"))?;
    decodebin.sync_state_with_parent()?;
    Ok(())
}

/// `pad` → a new `fakesink`.
fn drain(pipeline: &gst::Pipeline, pad: &gst::Pad) {
    if let Ok(sink) = drain_sink()
        && pipeline.add(&sink).is_ok()
    {
        let _ = sink.sync_state_with_parent();
        if let Some(sinkpad) = sink.static_pad("sink") {
            let _ = pad.link(&sinkpad);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::super::{RunOptions, transcode};
    use crate::inspect::{self, GopMeter};
    use crate::pipelines::Fragments;

    /// A transcode that meters the video finds what the parse pass finds, to
    /// the packet: the same figures for every kind of source the parse pass
    /// serves (Matroska/WebM, MPEG-TS, AVI; length-prefixed and Annex B
    /// H.264, open GOPs, HEVC, VP9, a variable rate).
    #[test]
    fn a_metered_transcode_measures_what_the_parse_pass_measures() {
        let dir = tempfile::tempdir().unwrap();
        let picture =
            "-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=440 -t 3";
        let open_gop = "-c:v libx264 -preset veryfast -x264-params open-gop=1:keyint=30:min-keyint=30 -bf 3 -pix_fmt yuv420p";
        let sources = [
            (
                "vp9.webm",
                format!(
                    "{picture} -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 45 -c:a libopus"
                ),
            ),
            ("open-gop.mkv", format!("{picture} {open_gop} -c:a aac")),
            (
                "open-gop.ts",
                format!("{picture} {open_gop} -c:a aac -f mpegts"),
            ),
            (
                "hevc.mkv",
                format!(
                    "{picture} -c:v libx265 -preset ultrafast -x265-params log-level=error -pix_fmt yuv420p -c:a aac"
                ),
            ),
            (
                "mpeg2.ts",
                format!("{picture} -c:v mpeg2video -b:v 2M -c:a mp2 -f mpegts"),
            ),
            (
                "mjpeg.avi",
                format!("{picture} -c:v mjpeg -q:v 5 -pix_fmt yuvj420p -c:a pcm_s16le"),
            ),
            (
                "vfr.webm",
                format!(
                    "{picture} -vf select='not(between(mod(n,10),3,5))' -fps_mode vfr -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -c:a libopus"
                ),
            ),
        ];
        let fragments =
            Fragments::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines")).unwrap();
        let settings = crate::asset::AssetSettings::defaults(
            crate::asset::MaxResolutionTier::P1080,
            crate::asset::VideoQuality::Basic,
        );
        for (name, args) in &sources {
            let source = dir.path().join(name);
            crate::test_media::ffmpeg(&source, args);
            let info = crate::probe::probe_file(&source).unwrap();
            let plan = crate::plan::plan_asset(
                &info,
                &settings,
                crate::plan::Scope::Everything,
                &crate::plan::Assessment::default(),
            )
            .unwrap();
            let meter = Arc::new(Mutex::new(GopMeter::default()));
            let options = RunOptions {
                fragments: &fragments,
                stall_timeout: Duration::from_secs(60),
                cancel: CancellationToken::new(),
                duration: plan.expected_duration,
                cores: 2,
                source_index_bytes: None,
                meter: Some(meter.clone()),
            };
            let spool = dir.path().join(format!("{name}.out"));
            std::fs::create_dir_all(&spool).unwrap();
            transcode(&source, &plan, &spool, &options, |_| {}).unwrap();
            assert!(spool.join(crate::plan::MASTER_NAME).exists(), "{name}");
            let metered = std::mem::take(&mut *meter.lock().unwrap()).finish();
            let parsed = inspect::measure_video(&source).unwrap();
            assert_eq!(metered, parsed, "{name}");
            // MJPEG is `image/jpeg`: neither measures it (it is not
            // H.264/HEVC either way).
            if *name == "mjpeg.avi" {
                assert_eq!(parsed, None);
                continue;
            }
            // The sources show what they were made to show.
            let measured = parsed.expect("measured");
            assert_eq!(measured.variable_frame_rate, *name == "vfr.webm", "{name}");
            assert_eq!(measured.open_gop, name.starts_with("open-gop"), "{name}");
        }
    }
}
