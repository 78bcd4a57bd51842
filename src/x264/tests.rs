//! `reeldx264enc` against GStreamer's `x264enc`: the same access units, byte
//! for byte, and each picture given back as soon as it is pushed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gst::prelude::*;

const WIDTH: usize = 320;
const HEIGHT: usize = 240;
const FRAMES: usize = 45;
const SETTINGS: &str = "speed-preset=veryfast pass=qual quantizer=23 key-int-max=15 bitrate=800 vbv-buf-capacity=2000 threads=2";

/// A picture's bytes that count their own drop.
struct Tracked {
    bytes: Vec<u8>,
    released: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for Tracked {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

/// Frame `n` of a moving pattern, I420 with tight strides.
fn picture(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; WIDTH * HEIGHT * 3 / 2];
    let (luma, chroma) = bytes.split_at_mut(WIDTH * HEIGHT);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let dx = x as i64 - (40 + 5 * n as i64);
            let dy = y as i64 - 120;
            let disc = dx * dx + dy * dy < 900;
            luma[y * WIDTH + x] = if disc {
                235
            } else {
                ((x + y + 3 * n) % 200) as u8 + 16
            };
        }
    }
    for (i, c) in chroma.iter_mut().enumerate() {
        *c = (128 + (i + n) % 32) as u8;
    }
    bytes
}

/// One access unit out: pts, dts, keyframe, bytes.
type Unit = (
    Option<gst::ClockTime>,
    Option<gst::ClockTime>,
    bool,
    Vec<u8>,
);

/// What came out of one encoder run.
#[derive(Debug, PartialEq)]
struct Encoded {
    caps: String,
    segment_start: Option<gst::ClockTime>,
    /// (pts, dts, keyframe, bytes) of every access unit.
    units: Vec<Unit>,
}

/// Pushes FRAMES pictures through `factory` by hand (a test pad on each
/// side), checking after every push how many pictures the element still
/// holds; returns the output and the most it held.
fn run(factory: &str) -> (Encoded, usize) {
    crate::graph::init().unwrap();
    let encoder = gst::parse::bin_from_description(
        &format!("{factory} {SETTINGS} ! capsfilter caps=video/x-h264,profile=high"),
        true,
    )
    .unwrap();
    let units = Arc::new(Mutex::new(Vec::new()));
    let src = gst::Pad::builder(gst::PadDirection::Src)
        .name("testsrc")
        .build();
    let u = units.clone();
    let sink = gst::Pad::builder(gst::PadDirection::Sink)
        .name("testsink")
        .chain_function(move |_, _, buffer| {
            u.lock().unwrap().push((
                buffer.pts(),
                buffer.dts(),
                !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                buffer.map_readable().unwrap().to_vec(),
            ));
            Ok(gst::FlowSuccess::Ok)
        })
        .build();
    src.link(&encoder.static_pad("sink").unwrap()).unwrap();
    encoder.static_pad("src").unwrap().link(&sink).unwrap();
    src.set_active(true).unwrap();
    sink.set_active(true).unwrap();
    encoder.set_state(gst::State::Playing).unwrap();

    assert!(src.push_event(gst::event::StreamStart::new("pictures")));
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", WIDTH as i32)
        .field("height", HEIGHT as i32)
        .field("framerate", gst::Fraction::new(30, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .field("interlace-mode", "progressive")
        .field("colorimetry", "bt709")
        .field("chroma-site", "mpeg2")
        .build();
    assert!(src.push_event(gst::event::Caps::new(&caps)));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(src.push_event(gst::event::Segment::new(&segment)));

    let released = Arc::new(AtomicUsize::new(0));
    let mut most_held = 0;
    let frame = gst::ClockTime::from_nseconds(1_000_000_000 / 30);
    for n in 0..FRAMES {
        let mut buffer = gst::Buffer::from_slice(Tracked {
            bytes: picture(n),
            released: released.clone(),
        });
        {
            let b = buffer.get_mut().unwrap();
            b.set_pts(frame * n as u64);
            b.set_duration(frame);
        }
        src.push(buffer).unwrap();
        most_held = most_held.max(n + 1 - released.load(Ordering::SeqCst));
    }
    assert!(src.push_event(gst::event::Eos::new()));
    let segment_start = sink.sticky_event::<gst::event::Segment>(0).and_then(|e| {
        e.segment()
            .downcast_ref::<gst::ClockTime>()
            .and_then(|s| s.start())
    });
    let caps = sink.current_caps().unwrap();
    let caps = caps.structure(0).unwrap();
    let caps = [
        "codec_data",
        "stream-format",
        "alignment",
        "level",
        "profile",
        "width",
        "height",
        "pixel-aspect-ratio",
        "framerate",
        "interlace-mode",
        "colorimetry",
        "chroma-site",
    ]
    .map(|field| {
        format!(
            "{field}={:?}",
            caps.value(field).ok().map(|v| v.serialize())
        )
    })
    .join(", ");
    encoder.set_state(gst::State::Null).unwrap();
    let units = std::mem::take(&mut *units.lock().unwrap());
    (
        Encoded {
            caps,
            segment_start,
            units,
        },
        most_held,
    )
}

#[test]
fn it_encodes_what_x264enc_encodes_and_holds_no_picture() {
    let (ours, ours_held) = run(super::FACTORY_NAME);
    let (theirs, theirs_held) = run("x264enc");
    assert_eq!(ours.units.len(), FRAMES, "every picture comes out");
    assert!(
        ours.units.iter().filter(|u| u.2).count() >= 3,
        "an IDR picture every 15 frames"
    );
    assert!(
        ours.units.iter().any(|u| u.0 != u.1),
        "B-frames: some decoding times differ from presentation times"
    );
    assert_eq!(ours.caps, theirs.caps);
    assert_eq!(ours.segment_start, theirs.segment_start);
    assert_eq!(ours.units.len(), theirs.units.len());
    for (i, (a, b)) in ours.units.iter().zip(&theirs.units).enumerate() {
        assert_eq!(
            (a.0, a.1, a.2),
            (b.0, b.1, b.2),
            "access unit {i}: pts, dts, key"
        );
        let first_difference = a.3.iter().zip(&b.3).position(|(x, y)| x != y);
        assert!(
            a.3 == b.3,
            "access unit {i}: {} bytes against {}, first difference at {first_difference:?}",
            a.3.len(),
            b.3.len()
        );
    }
    // x264enc keeps a picture for each one x264 delays; reeldx264enc none.
    assert!(theirs_held > 5, "x264enc held at most {theirs_held}");
    assert_eq!(ours_held, 0);
}

#[test]
fn a_setting_x264_refuses_is_named() {
    crate::graph::init().unwrap();
    for (properties, expected) in [
        ("pass=twopass", "no pass"),
        ("speed-preset=warp", "speed-preset warp"),
        ("option-string=nosuch=1", "no option nosuch"),
    ] {
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc num-buffers=2 ! video/x-raw,format=I420,width=64,height=64 ! \
             {} {properties} ! fakesink",
            super::FACTORY_NAME
        ))
        .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let message = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(20),
                &[gst::MessageType::Error, gst::MessageType::Eos],
            )
            .expect("the pipeline ends");
        pipeline.set_state(gst::State::Null).unwrap();
        match message.view() {
            gst::MessageView::Error(e) => {
                let text = format!("{} {:?}", e.error(), e.debug());
                assert!(text.contains(expected), "{properties}: {text}");
            }
            _ => panic!("{properties}: encoded without complaint"),
        }
    }
}
