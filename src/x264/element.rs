//! The GStreamer side of `reeldx264enc`: pads, properties, caps, timestamps.
//! A plain `gst::Element` rather than a `GstVideoEncoder`, because that base
//! class keeps each input buffer until its frame is finished, which is the
//! memory this element exists to give back.

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;

use super::ffi::{AccessUnit, Encoder, Picture, Settings};
use super::properties::Properties;

/// Output timestamps and the segment are shifted by this much, as x264enc
/// does (GstVideoEncoder's min-pts), so that the decoding times of a stream
/// with B-frames, which start before its first presentation time, stay positive.
const SHIFT: gst::ClockTime = gst::ClockTime::from_seconds(1000 * 3600);

/// One negotiated stream.
struct Stream {
    encoder: Encoder,
    settings: Settings,
    /// The input's layout, from its caps.
    info: gst_video::VideoInfo,
    /// Durations of the pictures x264 still holds, by input PTS.
    durations: VecDeque<(i64, Option<gst::ClockTime>)>,
    /// The PTS of the last picture in, for pictures that come without one.
    last_pts: Option<(gst::ClockTime, Option<gst::ClockTime>)>,
    /// The next buffer out starts the stream or follows a flush.
    discont: bool,
    /// A downstream force-key-unit event asked for an IDR picture.
    force_keyframe: bool,
}

pub struct X264EncImp {
    pub(super) sinkpad: gst::Pad,
    pub(super) srcpad: gst::Pad,
    pub(super) properties: Mutex<Properties>,
    stream: Mutex<Option<Stream>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl X264EncImp {
    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let out = {
            let mut guard = lock(&self.stream);
            let Some(stream) = guard.as_mut() else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ["a picture arrived before its caps"]
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            self.encode(stream, &buffer)
        };
        // The picture is x264's copy now; this was the last reference here.
        drop(buffer);
        match out {
            Ok(Some(buffer)) => self.srcpad.push(buffer),
            Ok(None) => Ok(gst::FlowSuccess::Ok),
            Err(message) => {
                gst::element_imp_error!(self, gst::StreamError::Encode, ("{}", message));
                Err(gst::FlowError::Error)
            }
        }
    }

    fn encode(
        &self,
        stream: &mut Stream,
        buffer: &gst::Buffer,
    ) -> Result<Option<gst::Buffer>, String> {
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &stream.info)
                .map_err(|e| format!("cannot read the picture: {e}"))?;
        let pts = match (buffer.pts(), stream.last_pts) {
            (Some(pts), _) => pts,
            (None, Some((last, Some(duration)))) => last + duration,
            _ => return Err("a picture came without a timestamp".into()),
        };
        stream.last_pts = Some((pts, buffer.duration()));
        let plane = |i: u32| {
            frame
                .plane_data(i)
                .map_err(|e| format!("cannot read plane {i}: {e}"))
        };
        let strides = frame.plane_stride();
        let picture = Picture {
            planes: [plane(0)?, plane(1)?, plane(2)?],
            strides: [strides[0], strides[1], strides[2]],
        };
        let pts_ns = pts.nseconds() as i64;
        stream.durations.push_back((pts_ns, buffer.duration()));
        let force = std::mem::take(&mut stream.force_keyframe);
        let unit = stream.encoder.encode(&picture, pts_ns, force)?;
        Ok(unit.map(|unit| output_buffer(stream, unit)))
    }

    /// Everything x264 still holds, at the end of the stream.
    fn drain(&self, stream: &mut Stream) -> Result<Vec<gst::Buffer>, String> {
        let mut out = Vec::new();
        // x264 may take more than one call per delayed picture; the bound
        // only guards against a library that never empties.
        let limit = 4 * stream.encoder.maximum_delayed_frames() + 16;
        for _ in 0..limit {
            if stream.encoder.delayed_frames() == 0 {
                break;
            }
            if let Some(unit) = stream.encoder.drain()? {
                out.push(output_buffer(stream, unit));
            }
        }
        Ok(out)
    }

    fn push_all(&self, buffers: Vec<gst::Buffer>) -> Result<gst::FlowSuccess, gst::FlowError> {
        for buffer in buffers {
            self.srcpad.push(buffer)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn drain_and_push(&self) -> bool {
        let drained = match lock(&self.stream).as_mut() {
            Some(stream) => self.drain(stream),
            None => return true,
        };
        match drained {
            Ok(buffers) => {
                // A flushing or unlinked downstream is not an encoder error.
                let _ = self.push_all(buffers);
                true
            }
            Err(message) => {
                gst::element_imp_error!(self, gst::StreamError::Encode, ("{}", message));
                false
            }
        }
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(caps) => {
                let caps = caps.caps_owned();
                self.set_caps(&caps)
            }
            gst::EventView::Segment(segment) => {
                let Some(time) = segment.segment().downcast_ref::<gst::ClockTime>() else {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ["{} takes time segments only", super::FACTORY_NAME]
                    );
                    return false;
                };
                let mut shifted = time.clone();
                shifted.set_start(time.start().map(|t| t + SHIFT));
                shifted.set_stop(time.stop().map(|t| t + SHIFT));
                shifted.set_position(time.position().map(|t| t + SHIFT));
                self.srcpad.push_event(
                    gst::event::Segment::builder(&shifted)
                        .seqnum(event.seqnum())
                        .build(),
                )
            }
            gst::EventView::Gap(gap) => {
                let (ts, duration) = gap.get();
                self.srcpad.push_event(
                    gst::event::Gap::builder(ts + SHIFT)
                        .duration(duration)
                        .seqnum(event.seqnum())
                        .build(),
                )
            }
            gst::EventView::Eos(_) => {
                let drained = self.drain_and_push();
                self.srcpad.push_event(event) && drained
            }
            gst::EventView::FlushStop(_) => {
                if let Err(message) = self.reopen() {
                    gst::element_imp_error!(self, gst::StreamError::Encode, ("{}", message));
                }
                self.srcpad.push_event(event)
            }
            gst::EventView::CustomDownstream(custom)
                if custom
                    .structure()
                    .is_some_and(|s| s.name() == "GstForceKeyUnit") =>
            {
                if let Some(stream) = lock(&self.stream).as_mut() {
                    stream.force_keyframe = true;
                }
                gst::Pad::event_default(pad, Some(&*self.obj()), event)
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    /// A new input format: encodes what the old one left, opens x264 for the
    /// new one, and announces the output caps.
    fn set_caps(&self, caps: &gst::Caps) -> bool {
        match self.try_set_caps(caps) {
            Ok(()) => true,
            Err(message) => {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("{}", message));
                false
            }
        }
    }

    fn try_set_caps(&self, caps: &gst::Caps) -> Result<(), String> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| format!("cannot read the input caps {caps}"))?;
        if info.format() != gst_video::VideoFormat::I420 {
            return Err(format!(
                "{} takes I420 pictures, not {}",
                super::FACTORY_NAME,
                info.format().to_str()
            ));
        }
        let profile = self.downstream_profile()?;
        let settings = lock(&self.properties).settings(&info, profile)?;
        if lock(&self.stream)
            .as_ref()
            .is_some_and(|s| same_picture(&s.settings, &settings))
        {
            return Ok(());
        }
        if !self.drain_and_push() {
            return Err("cannot finish the previous format's pictures".into());
        }
        let mut encoder = Encoder::open(&settings)?;
        let avcc = encoder.avcc()?;
        let out_caps = output_caps(&info, &avcc)?;
        *lock(&self.stream) = Some(Stream {
            encoder,
            settings,
            info,
            durations: VecDeque::new(),
            last_pts: None,
            discont: true,
            force_keyframe: false,
        });
        if !self.srcpad.push_event(gst::event::Caps::new(&out_caps)) {
            return Err(format!("downstream refused {out_caps}"));
        }
        let mut tags = gst::TagList::new();
        tags.make_mut()
            .add::<gst::tags::Encoder>(&"x264", gst::TagMergeMode::Replace);
        self.srcpad.push_event(gst::event::Tag::new(tags));
        Ok(())
    }

    /// After a flush: a fresh encoder with the same settings, so that no
    /// picture from before the flush comes out after it.
    fn reopen(&self) -> Result<(), String> {
        let mut guard = lock(&self.stream);
        if let Some(stream) = guard.as_mut() {
            stream.encoder = Encoder::open(&stream.settings)?;
            stream.durations.clear();
            stream.last_pts = None;
            stream.discont = true;
        }
        Ok(())
    }

    /// The profile the caps downstream ask for, the way x264enc reads it.
    fn downstream_profile(&self) -> Result<Option<&'static str>, String> {
        let template = self.srcpad.pad_template_caps();
        let allowed = self.srcpad.peer_query_caps(Some(&template));
        if allowed.is_any() {
            return Ok(None);
        }
        if allowed.is_empty() {
            return Err(format!("downstream takes none of {template}"));
        }
        let mut fixed = allowed;
        fixed.fixate();
        match fixed
            .structure(0)
            .and_then(|s| s.get::<&str>("profile").ok())
        {
            Some(profile) => super::x264_profile(profile).map(Some),
            None => Ok(None),
        }
    }
}

fn same_picture(a: &Settings, b: &Settings) -> bool {
    (a.width, a.height, a.fps, a.par, &a.profile, a.colour)
        == (b.width, b.height, b.fps, b.par, &b.profile, b.colour)
}

/// The "avc" caps of the stream, with the input's picture fields, in the
/// order x264enc (through GstVideoEncoder) gives them.
fn output_caps(info: &gst_video::VideoInfo, avcc: &[u8]) -> Result<gst::Caps, String> {
    let mut caps = gst::Caps::builder("video/x-h264")
        .field("codec_data", gst::Buffer::from_slice(avcc.to_vec()))
        .field("stream-format", "avc")
        .field("alignment", "au")
        .build();
    let caps_mut = caps.make_mut();
    // avcC bytes 1..4 are the SPS's profile, constraint flags and level.
    gst_pbutils::codec_utils_h264_caps_set_level_and_profile(caps_mut, &avcc[1..4])
        .map_err(|e| format!("cannot read the SPS's profile and level: {e}"))?;
    let out = caps_mut.structure_mut(0).expect("one structure");
    out.set("width", info.width() as i32);
    out.set("height", info.height() as i32);
    out.set("pixel-aspect-ratio", info.par());
    out.set("framerate", info.fps());
    // The picture fields as GStreamer writes them for this input, defaults
    // filled in.
    let raw = info
        .to_caps()
        .map_err(|e| format!("cannot describe the input: {e}"))?;
    if let Some(raw) = raw.structure(0) {
        for field in [
            "interlace-mode",
            "colorimetry",
            "chroma-site",
            "multiview-mode",
            "multiview-flags",
        ] {
            if let Ok(value) = raw.value(field) {
                out.set_value(field, value.clone());
            }
        }
    }
    Ok(caps)
}

fn output_buffer(stream: &mut Stream, unit: AccessUnit) -> gst::Buffer {
    let duration = stream
        .durations
        .iter()
        .position(|(pts, _)| *pts == unit.pts)
        .and_then(|i| stream.durations.remove(i))
        .and_then(|(_, d)| d);
    let shift = SHIFT.nseconds() as i64;
    let mut buffer = gst::Buffer::from_mut_slice(unit.data);
    {
        let b = buffer.get_mut().expect("a new buffer is writable");
        b.set_pts(gst::ClockTime::from_nseconds(
            (unit.pts + shift).max(0) as u64
        ));
        if unit.dts + shift >= 0 {
            b.set_dts(gst::ClockTime::from_nseconds((unit.dts + shift) as u64));
        }
        b.set_duration(duration);
        let mut flags = gst::BufferFlags::MARKER;
        if !unit.keyframe {
            flags |= gst::BufferFlags::DELTA_UNIT;
        }
        if std::mem::take(&mut stream.discont) {
            flags |= gst::BufferFlags::DISCONT;
        }
        b.set_flags(flags);
    }
    buffer
}

#[glib::object_subclass]
impl ObjectSubclass for X264EncImp {
    const NAME: &'static str = "ReeldX264Enc";
    type Type = X264Enc;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sink = klass.pad_template("sink").expect("sink template");
        let sinkpad = gst::Pad::builder_from_template(&sink)
            .chain_function(|_pad, parent, buffer| {
                X264EncImp::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                X264EncImp::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .build();
        let src = klass.pad_template("src").expect("src template");
        let srcpad = gst::Pad::builder_from_template(&src).build();
        X264EncImp {
            sinkpad,
            srcpad,
            properties: Mutex::new(Properties::default()),
            stream: Mutex::new(None),
        }
    }
}

impl GstObjectImpl for X264EncImp {}

impl ElementImpl for X264EncImp {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "reeld x264 H.264 encoder",
                "Codec/Encoder/Video",
                "H.264 encoder on libx264 that gives each picture back once x264 has copied it",
                "reeld",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink = gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", gst::IntRange::new(16, 16384))
                .field("height", gst::IntRange::new(16, 16384))
                .field(
                    "framerate",
                    gst::FractionRange::new(
                        gst::Fraction::new(0, 1),
                        gst::Fraction::new(i32::MAX, 1),
                    ),
                )
                .build();
            let src = gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .field(
                    "profile",
                    gst::List::new(["high", "main", "constrained-baseline", "baseline"]),
                )
                .build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink,
                )
                .expect("sink template"),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src,
                )
                .expect("src template"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        let result = self.parent_change_state(transition)?;
        if transition == gst::StateChange::PausedToReady {
            *lock(&self.stream) = None;
        }
        Ok(result)
    }
}

glib::wrapper! {
    /// The `reeldx264enc` element.
    pub struct X264Enc(ObjectSubclass<X264EncImp>) @extends gst::Element, gst::Object;
}
