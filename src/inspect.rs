//! Inspection: what the compressed source really is, measured from its
//! packets rather than taken from container headers.
//!
//! For the first video stream: every frame's timestamp, size and key-frame
//! flag, and whether each key frame starts a closed GOP (an IDR picture).
//! An MP4/MOV file's index holds all of that but the IDR check, which reads
//! a few bytes per key frame ([`sample_table`]); any other file gets one pass
//! with `parsebin` (demux and parse, no decode) over the whole of it. [`GopMeter`] turns that into key-frame spacing, average and peak
//! per-GOP bitrate and the real frame rate. MP4 edit lists are read from the
//! `moov` box by [`mp4`]. `standard` judges the result against Mux's rules.
//! Synchronous: call it from a blocking thread.

pub mod mp4;
mod sample_table;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// No packet for this long ends the pass as failed.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// Bitrate is measured over runs of whole GOPs at least this long, so that a
/// last GOP of one frame does not count as a burst.
const MIN_BITRATE_WINDOW_NS: u64 = 1_000_000_000;

/// What the pass measured of the first video stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoMeasurements {
    /// Frames seen.
    pub frames: u64,
    /// Seconds from the first frame's start to the last frame's end.
    pub duration: f64,
    /// Frames per second over the whole stream; `None` without timestamps.
    pub average_frame_rate: Option<f64>,
    /// Whether frame durations vary (variable frame rate).
    pub variable_frame_rate: bool,
    /// Frames per second of the most common frame step (the rate a variable
    /// stream is made steady at).
    pub typical_frame_rate: Option<f64>,
    /// Longest distance between key frames, in seconds (a stream with one key
    /// frame counts its whole length).
    pub max_keyframe_interval: f64,
    /// Bits per second over the whole stream.
    pub average_bitrate: f64,
    /// Highest bits per second of any GOP (runs of GOPs of at least 1 s).
    pub max_gop_bitrate: f64,
    /// Some key frame is not an IDR picture (open GOP); H.264/HEVC only.
    pub open_gop: bool,
}

/// The result of inspecting a source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inspection {
    /// Measurements of the first video stream, if it has one the pass could read.
    pub video: Option<VideoMeasurements>,
    /// Edit lists of an MP4/MOV source (empty for other containers).
    pub edits: mp4::EditLists,
}

/// Why the pass could not measure the stream.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// GStreamer could not build or run the parse pass.
    #[error("the parse pass failed: {0}")]
    Pipeline(String),
    /// The pass stopped making progress.
    #[error("the parse pass made no progress for {} s", STALL_LIMIT.as_secs())]
    Stalled,
}

/// One video packet as the parser delivered it, in decode order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packet {
    /// Presentation time in ns, if the packet has one.
    pub pts: Option<u64>,
    /// Duration in ns, if known.
    pub duration: Option<u64>,
    /// Bytes.
    pub size: u64,
    /// A random-access point.
    pub keyframe: bool,
    /// For key frames of H.264/HEVC: whether the picture is IDR (closes the GOP).
    pub closed: bool,
}

/// Accumulates packets into GOP, bitrate and frame-rate figures.
#[derive(Debug, Default)]
pub struct GopMeter {
    pts: Vec<u64>,
    keyframe_pts: Vec<u64>,
    frames: u64,
    bytes: u64,
    last_duration: Option<u64>,
    open_gop: bool,
    /// The GOP being filled: its first key frame's pts and its bytes.
    gop: Option<(u64, u64)>,
    /// GOPs closed but not yet counted, too short on their own.
    window: Option<(u64, u64, u64)>,
    max_gop_bitrate: f64,
}

impl GopMeter {
    /// Adds the next packet in decode order.
    pub fn push(&mut self, packet: Packet) {
        self.frames += 1;
        self.bytes += packet.size;
        if let Some(d) = packet.duration {
            self.last_duration = Some(d);
        }
        if let Some(pts) = packet.pts {
            self.pts.push(pts);
            if packet.keyframe {
                self.keyframe_pts.push(pts);
                if !packet.closed {
                    self.open_gop = true;
                }
                if let Some((start, bytes)) = self.gop.take() {
                    self.close_gop(start, pts, bytes);
                }
                self.gop = Some((pts, 0));
            }
        }
        if let Some((_, bytes)) = self.gop.as_mut() {
            *bytes += packet.size;
        }
    }

    fn close_gop(&mut self, start: u64, end: u64, bytes: u64) {
        let (w_start, _, w_bytes) = self.window.take().unwrap_or((start, start, 0));
        let w_bytes = w_bytes + bytes;
        if end.saturating_sub(w_start) >= MIN_BITRATE_WINDOW_NS {
            let rate = w_bytes as f64 * 8.0 / ((end - w_start) as f64 / 1e9);
            self.max_gop_bitrate = self.max_gop_bitrate.max(rate);
        } else {
            self.window = Some((w_start, end, w_bytes));
        }
    }

    /// The figures; `None` when no packet had a timestamp.
    pub fn finish(mut self) -> Option<VideoMeasurements> {
        if self.pts.is_empty() {
            return None;
        }
        self.pts.sort_unstable();
        let first = self.pts[0];
        let last = *self.pts.last().expect("not empty");
        let deltas: Vec<u64> = self
            .pts
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 0)
            .collect();
        let typical = median(&deltas);
        let frame = self.last_duration.or(typical).unwrap_or(0);
        let end = last + frame;
        let duration_ns = end.saturating_sub(first);
        let duration = duration_ns as f64 / 1e9;

        if let Some((start, bytes)) = self.gop.take() {
            // The last GOP ends with the stream. A tail shorter than the
            // window is left out (one lone key frame is no burst) unless it
            // is the whole stream.
            self.close_gop(start, end.max(start + 1), bytes);
        }
        if let Some((w_start, w_end, w_bytes)) = self.window.take()
            && self.max_gop_bitrate == 0.0
        {
            // The whole stream is shorter than one window.
            let span = (w_end - w_start).max(1) as f64 / 1e9;
            self.max_gop_bitrate = w_bytes as f64 * 8.0 / span;
        }

        let mut max_interval = match self.keyframe_pts.first() {
            Some(&k) => (k - first) as f64 / 1e9,
            None => duration,
        };
        let mut keys = self.keyframe_pts.clone();
        keys.sort_unstable();
        for w in keys.windows(2) {
            max_interval = max_interval.max((w[1] - w[0]) as f64 / 1e9);
        }
        if let Some(&k) = keys.last() {
            max_interval = max_interval.max(end.saturating_sub(k) as f64 / 1e9);
        }

        let average_frame_rate = (self.pts.len() > 1 && last > first)
            .then(|| (self.pts.len() - 1) as f64 / ((last - first) as f64 / 1e9));
        // Variable: more than 5 % of frame steps differ from the typical step
        // by more than a fifth of it.
        let variable_frame_rate = typical.is_some_and(|t| {
            let off = deltas
                .iter()
                .filter(|d| (**d as f64 - t as f64).abs() > t as f64 * 0.2)
                .count();
            off * 20 > deltas.len()
        });
        Some(VideoMeasurements {
            frames: self.frames,
            duration,
            average_frame_rate,
            variable_frame_rate,
            typical_frame_rate: typical.map(|t| 1e9 / t as f64),
            max_keyframe_interval: max_interval,
            average_bitrate: if duration > 0.0 {
                self.bytes as f64 * 8.0 / duration
            } else {
                0.0
            },
            max_gop_bitrate: self.max_gop_bitrate,
            open_gop: self.open_gop,
        })
    }
}

fn median(values: &[u64]) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    Some(sorted[sorted.len() / 2])
}

/// The video codecs whose key frames are checked for IDR pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NalCodec {
    H264,
    Hevc,
}

/// Whether an access unit contains an IDR picture. `length_size` is the NAL
/// length prefix of `avc`/`hvc1` streams; `None` means Annex B start codes.
fn has_idr(codec: NalCodec, data: &[u8], length_size: Option<usize>) -> bool {
    let is_idr = |header: u8| match codec {
        NalCodec::H264 => header & 0x1f == 5,
        // IDR_W_RADL, IDR_N_LP; BLA_* also start a closed GOP.
        NalCodec::Hevc => (16..=20).contains(&((header >> 1) & 0x3f)),
    };
    match length_size {
        Some(n) if (1..=4).contains(&n) => {
            let mut at = 0usize;
            while at + n < data.len() {
                let len = data[at..at + n]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                if is_idr(data[at + n]) {
                    return true;
                }
                at += n + len;
            }
            false
        }
        _ => {
            let mut i = 0usize;
            while i + 3 < data.len() {
                if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
                    if is_idr(data[i + 3]) {
                        return true;
                    }
                    i += 3;
                } else {
                    i += 1;
                }
            }
            false
        }
    }
}

/// NAL length prefix size from `codec_data` (avcC byte 4, hvcC byte 21).
fn length_size(codec: NalCodec, caps: &gst::CapsRef) -> Option<usize> {
    let s = caps.structure(0)?;
    let format = s.get::<&str>("stream-format").ok()?;
    if format == "byte-stream" {
        return None;
    }
    let data = s.get::<gst::Buffer>("codec_data").ok()?;
    let map = data.map_readable().ok()?;
    let byte = match codec {
        NalCodec::H264 => *map.get(4)?,
        NalCodec::Hevc => *map.get(21)?,
    };
    Some(usize::from(byte & 0x3) + 1)
}

/// Inspects `path`: the MP4 edit lists, and the video's packets from the
/// MP4/MOV index where it has a usable one, from one parse pass otherwise.
pub fn inspect(path: &Path) -> Result<Inspection, InspectError> {
    let from_index = inspect_index(path);
    let video = match from_index.video {
        Some(video) => video,
        None => measure_video(path)?,
    };
    Ok(Inspection {
        video,
        edits: from_index.edits,
    })
}

/// What the MP4/MOV index (`moov`) alone tells of a source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexInspection {
    /// Edit lists (empty for other containers).
    pub edits: mp4::EditLists,
    /// The video's measurements when the index can give them (the inner
    /// `None`: it has no video track). `None` when only a parse pass over
    /// the packets can measure the video.
    pub video: Option<Option<VideoMeasurements>>,
}

/// Reads `path`'s index alone, without a pass over its media data.
pub fn inspect_index(path: &Path) -> IndexInspection {
    // One read of the index serves both the edit lists and the packets.
    let moov = mp4::read_moov(path);
    let edits = moov
        .as_ref()
        .map(|(_, body)| mp4::edit_lists_in_moov(body))
        .unwrap_or_default();
    let video = moov
        .as_ref()
        .and_then(|(file, body)| sample_table::measure_video_in(file, body));
    IndexInspection { edits, video }
}

/// The parse pass alone, for comparing it with the index reader.
#[cfg(test)]
pub(crate) fn inspect_by_parse_pass(
    path: &Path,
) -> Result<Option<VideoMeasurements>, InspectError> {
    measure_video(path)
}

/// The parse pass: the first video stream's packets, measured.
pub fn measure_video(path: &Path) -> Result<Option<VideoMeasurements>, InspectError> {
    let (pipeline, parsebin) =
        crate::graph::file_pass("reeld-inspect", path, "parsebin").map_err(pass_error)?;

    let meter = Arc::new(Mutex::new(GopMeter::default()));
    let video_taken = Arc::new(Mutex::new(false));
    let last_packet = Arc::new(Mutex::new(Instant::now()));
    {
        let meter = meter.clone();
        let last_packet = last_packet.clone();
        let pipeline_weak = pipeline.downgrade();
        parsebin.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            let name = crate::graph::pad_caps_name(pad);
            let Ok(sink) = crate::graph::drain_sink() else {
                return;
            };
            if pipeline.add(&sink).is_err() {
                return;
            }
            let _ = sink.sync_state_with_parent();
            let sinkpad = sink.static_pad("sink").expect("fakesink has a sink pad");
            let mut first_video = false;
            if crate::graph::media_kind(&name) == "video" {
                let mut taken = video_taken.lock().expect("video lock");
                first_video = !*taken;
                *taken = true;
            }
            let downstream = if first_video {
                let last_packet = last_packet.clone();
                tap_video(&pipeline, pad, meter.clone(), move || {
                    *last_packet.lock().expect("progress lock") = Instant::now();
                })
            } else {
                pad.clone()
            };
            let _ = downstream.link(&sinkpad);
        });
    }

    crate::graph::run_pass(&pipeline, &last_packet, STALL_LIMIT).map_err(pass_error)?;
    let meter = std::mem::take(&mut *meter.lock().expect("meter lock"));
    Ok(meter.finish())
}

/// Meters the video stream of `pad` (a parsed, compressed stream) as it
/// flows: every buffer goes into `meter`, and `on_packet` runs after each.
/// H.264/HEVC pass a capsfilter first that asks the parser for whole access
/// units, so that one buffer is one frame. Returns the pad to link the rest
/// of the graph to. The parse pass and a transcode that measures as it goes
/// (`pipeline::RunOptions::meter`) both use it, so both see the same packets.
pub(crate) fn tap_video(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    meter: Arc<Mutex<GopMeter>>,
    on_packet: impl Fn() + Send + Sync + 'static,
) -> gst::Pad {
    let name = crate::graph::pad_caps_name(pad);
    let codec = match name.as_str() {
        "video/x-h264" => Some(NalCodec::H264),
        "video/x-h265" => Some(NalCodec::Hevc),
        _ => None,
    };
    let metered = codec
        .and_then(|_| {
            let filter = gst::ElementFactory::make("capsfilter")
                .property(
                    "caps",
                    gst::Caps::builder(name.as_str())
                        .field("alignment", "au")
                        .build(),
                )
                .build()
                .ok()?;
            pipeline.add(&filter).ok()?;
            let _ = filter.sync_state_with_parent();
            pad.link(
                &filter
                    .static_pad("sink")
                    .expect("capsfilter has a sink pad"),
            )
            .ok()?;
            filter.static_pad("src")
        })
        .unwrap_or_else(|| pad.clone());
    metered.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let closed = match (keyframe, codec) {
            (true, Some(codec)) => {
                let length = pad
                    .current_caps()
                    .and_then(|c| length_size(codec, c.as_ref()));
                buffer
                    .map_readable()
                    .map(|m| has_idr(codec, &m, length))
                    .unwrap_or(true)
            }
            _ => true,
        };
        meter.lock().expect("meter lock").push(Packet {
            pts: buffer.pts().or(buffer.dts()).map(|t| t.nseconds()),
            duration: buffer.duration().map(|d| d.nseconds()),
            size: buffer.size() as u64,
            keyframe,
            closed,
        });
        on_packet();
        gst::PadProbeReturn::Ok
    });
    metered
}

fn pass_error(e: crate::graph::PassError) -> InspectError {
    match e {
        crate::graph::PassError::Failed(message) => InspectError::Pipeline(message),
        crate::graph::PassError::Stalled => InspectError::Stalled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = 33_333_333;

    fn packets(count: u64, gop: u64, size: u64) -> Vec<Packet> {
        (0..count)
            .map(|i| Packet {
                pts: Some(i * FRAME),
                duration: Some(FRAME),
                size,
                keyframe: i % gop == 0,
                closed: true,
            })
            .collect()
    }

    fn measure(packets: &[Packet]) -> VideoMeasurements {
        let mut meter = GopMeter::default();
        for p in packets {
            meter.push(*p);
        }
        meter.finish().expect("timestamps present")
    }

    #[test]
    fn steady_stream() {
        // 10 s at 30 fps, GOP 2 s, 10 kB a frame = 2.4 Mbit/s.
        let m = measure(&packets(300, 60, 10_000));
        assert_eq!(m.frames, 300);
        assert!((m.duration - 10.0).abs() < 0.01, "{m:?}");
        assert!((m.average_frame_rate.unwrap() - 30.0).abs() < 0.01);
        assert!(!m.variable_frame_rate);
        assert!((m.typical_frame_rate.unwrap() - 30.0).abs() < 0.01);
        assert!((m.max_keyframe_interval - 2.0).abs() < 0.01);
        assert!((m.average_bitrate - 2_400_000.0).abs() < 1_000.0);
        assert!((m.max_gop_bitrate - 2_400_000.0).abs() < 1_000.0);
        assert!(!m.open_gop);
    }

    #[test]
    fn one_key_frame_counts_the_whole_length() {
        let m = measure(&packets(300, 1000, 1_000));
        assert!((m.max_keyframe_interval - 10.0).abs() < 0.01, "{m:?}");
    }

    #[test]
    fn a_burst_gop_sets_the_peak() {
        let mut p = packets(300, 60, 10_000);
        for packet in &mut p[120..180] {
            packet.size = 100_000; // 24 Mbit/s for 2 s
        }
        let m = measure(&p);
        assert!((m.max_gop_bitrate - 24_000_000.0).abs() < 10_000.0, "{m:?}");
        assert!(m.average_bitrate < 7_000_000.0);
    }

    #[test]
    fn a_short_last_gop_is_not_a_burst() {
        // A last GOP of one big key frame is left out of the peak.
        let mut p = packets(301, 60, 10_000);
        p[300].size = 200_000;
        let m = measure(&p);
        assert!(m.max_gop_bitrate < 3_500_000.0, "{m:?}");
    }

    #[test]
    fn open_gop_and_variable_rate() {
        let mut p = packets(300, 60, 1_000);
        p[60].closed = false;
        for (i, packet) in p.iter_mut().enumerate() {
            // Every third frame step is twice as long.
            packet.pts = Some(i as u64 * FRAME + (i as u64 / 3) * FRAME);
        }
        let m = measure(&p);
        assert!(m.open_gop);
        assert!(m.variable_frame_rate);
    }

    #[test]
    fn no_timestamps_no_figures() {
        let mut meter = GopMeter::default();
        meter.push(Packet {
            pts: None,
            duration: None,
            size: 1,
            keyframe: true,
            closed: true,
        });
        assert!(meter.finish().is_none());
    }

    #[test]
    fn idr_detection() {
        // Annex B: SPS, PPS, IDR slice.
        let annex_b = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 1, 0x65, 9];
        assert!(has_idr(NalCodec::H264, &annex_b, None));
        // Annex B: a non-IDR I slice only (open GOP).
        assert!(!has_idr(NalCodec::H264, &[0, 0, 1, 0x41, 7, 7], None));
        // avc, 4-byte lengths: SEI (3 bytes) then IDR (2 bytes).
        let avc = [0, 0, 0, 3, 0x06, 1, 2, 0, 0, 0, 2, 0x65, 1];
        assert!(has_idr(NalCodec::H264, &avc, Some(4)));
        // HEVC: CRA (type 21) is open, IDR_W_RADL (19) closed.
        assert!(!has_idr(NalCodec::Hevc, &[0, 0, 1, 21 << 1, 1], None));
        assert!(has_idr(NalCodec::Hevc, &[0, 0, 1, 19 << 1, 1], None));
    }
}
