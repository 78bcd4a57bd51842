//! Loudness for `normalize_audio`: the EBU R128 integrated loudness and true
//! peak of a source's primary audio, as reeld will encode it, and the one
//! gain that brings it to the target. Only the audio is decoded: the other
//! streams are split off encoded and dropped.
//!
//! Normalisation is linear, in two passes (as ffmpeg's `loudnorm` does when it
//! is given measured values): this module decodes the audio once through the
//! same conversion the outputs get (stereo or mono, 48 kHz) and meters it with
//! the `ebur128` crate, the EBU R128 implementation GStreamer's own
//! `ebur128level` and `audioloudnorm` are built on; the transcode then applies
//! the gain with GStreamer's `volume`. A linear gain keeps the dynamics as
//! they are and lands exactly on the target. When the target gain would push
//! true peaks above the ceiling, the gain is lowered to keep the ceiling: such
//! a (rare, very peaky) source ends quieter than the target.
//!
//! (`audioloudnorm` itself is not used: its true-peak limiter in
//! gst-plugin-audiofx 0.15.4 indexes past its buffer on the first 3 s of loud
//! input.) Synchronous: call it from a blocking thread.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// Integrated loudness every normalised output lands on (EBU R128, LUFS).
pub const TARGET_LUFS: f64 = -24.0;
/// The true peak a normalised output must stay under (dBTP)…
pub const MAX_TRUE_PEAK_DBTP: f64 = -1.0;
/// …with this much room left for the AAC encoder's overshoot.
const AAC_PEAK_MARGIN_DB: f64 = 0.5;
/// The largest gain applied (GStreamer's `volume` goes up to ×10).
const MAX_GAIN_DB: f64 = 20.0;
/// Quieter than this is silence: it is not amplified.
const SILENCE_LUFS: f64 = -70.0;
/// No decoded audio for this long ends the measurement as failed.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// The sample rate outputs are encoded at (and measured at).
const RATE: i32 = 48_000;

/// What the meter read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loudness {
    /// EBU R128 integrated loudness, LUFS (`-inf` for silence).
    pub integrated_lufs: f64,
    /// Highest true peak of any channel, dBTP.
    pub true_peak_dbtp: f64,
}

impl Loudness {
    /// The gain in dB that brings this audio to [`TARGET_LUFS`] with true
    /// peaks under [`MAX_TRUE_PEAK_DBTP`]; 0 for silence.
    pub fn normalizing_gain_db(&self) -> f64 {
        if !self.integrated_lufs.is_finite() || self.integrated_lufs < SILENCE_LUFS {
            return 0.0;
        }
        let to_target = TARGET_LUFS - self.integrated_lufs;
        let peak_room = MAX_TRUE_PEAK_DBTP - AAC_PEAK_MARGIN_DB - self.true_peak_dbtp;
        to_target.min(peak_room).min(MAX_GAIN_DB)
    }
}

/// Why the audio could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum LoudnessError {
    /// GStreamer could not decode the audio.
    #[error("cannot measure the audio's loudness: {0}")]
    Pipeline(String),
    /// The meter rejected the audio.
    #[error("cannot measure the audio's loudness: {0}")]
    Meter(String),
    /// Decoding stopped making progress.
    #[error("measuring the audio's loudness made no progress for {} s", STALL_LIMIT.as_secs())]
    Stalled,
}

/// Meters the first audio stream of `path`, converted to `channels` (1 or 2)
/// at 48 kHz as the outputs will be.
pub fn measure(path: &Path, channels: u32) -> Result<Loudness, LoudnessError> {
    let meter = ebur128::EbuR128::new(
        channels,
        RATE as u32,
        ebur128::Mode::I | ebur128::Mode::TRUE_PEAK,
    )
    .map_err(|e| LoudnessError::Meter(e.to_string()))?;
    let meter = Arc::new(Mutex::new(meter));
    let meter_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let last_buffer = Arc::new(Mutex::new(Instant::now()));

    // parsebin splits the file into its encoded streams; only the first
    // audio stream is decoded; the others (video above all) are drained
    // as they are, never decoded.
    let (pipeline, parsebin) =
        crate::graph::file_pass("reeld-loudness", path, "parsebin").map_err(pass_error)?;

    let taken = Arc::new(Mutex::new(false));
    {
        let meter = Meter {
            meter: meter.clone(),
            error: meter_error.clone(),
            last_buffer: last_buffer.clone(),
            channels,
        };
        let pipeline_weak = pipeline.downgrade();
        parsebin.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            let is_audio = crate::graph::media_kind(&crate::graph::pad_caps_name(pad)) == "audio";
            let first_audio =
                is_audio && !std::mem::replace(&mut *taken.lock().expect("lock"), true);
            let head = if first_audio {
                decode_into_meter(&pipeline, meter.clone())
            } else {
                crate::graph::drain_sink().ok().and_then(|sink| {
                    pipeline.add(&sink).ok()?;
                    sink.sync_state_with_parent().ok()?;
                    Some(sink)
                })
            };
            if let Some(head) = head {
                let _ = pad.link(&head.static_pad("sink").expect("a sink pad"));
            }
        });
    }

    crate::graph::run_pass(&pipeline, &last_buffer, STALL_LIMIT).map_err(pass_error)?;
    if let Some(e) = meter_error.lock().expect("lock").take() {
        return Err(LoudnessError::Meter(e));
    }
    let meter = meter.lock().expect("meter lock");
    let integrated_lufs = meter
        .loudness_global()
        .map_err(|e| LoudnessError::Meter(e.to_string()))?;
    let mut peak = 0.0f64;
    for channel in 0..channels {
        peak = peak.max(
            meter
                .true_peak(channel)
                .map_err(|e| LoudnessError::Meter(e.to_string()))?,
        );
    }
    Ok(Loudness {
        integrated_lufs,
        true_peak_dbtp: 20.0 * peak.log10(),
    })
}

/// Where decoded samples go: the meter, its first error, and when the last
/// buffer came (for the stall check).
#[derive(Clone)]
struct Meter {
    meter: Arc<Mutex<ebur128::EbuR128>>,
    error: Arc<Mutex<Option<String>>>,
    last_buffer: Arc<Mutex<Instant>>,
    channels: u32,
}

/// Adds `decodebin ! audioconvert ! audioresample ! capsfilter ! fakesink`
/// to `pipeline`, the sink's buffers fed to the meter; returns the
/// decodebin, for the audio pad to link to.
fn decode_into_meter(pipeline: &gst::Pipeline, meter: Meter) -> Option<gst::Element> {
    let decodebin = gst::ElementFactory::make("decodebin").build().ok()?;
    pipeline.add(&decodebin).ok()?;
    let pipeline_weak = pipeline.downgrade();
    decodebin.connect_pad_added(move |_, pad| {
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        if let Some(chain) = meter_chain(&pipeline, meter.clone()) {
            let _ = pad.link(&chain.static_pad("sink").expect("a sink pad"));
        }
    });
    decodebin.sync_state_with_parent().ok()?;
    Some(decodebin)
}

/// The conversion to the outputs' format and the metering sink; returns
/// the chain's first element.
fn meter_chain(pipeline: &gst::Pipeline, meter: Meter) -> Option<gst::Element> {
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("layout", "interleaved")
        .field("rate", RATE)
        .field("channels", meter.channels as i32)
        .build();
    let chain = [
        gst::ElementFactory::make("audioconvert").build().ok()?,
        gst::ElementFactory::make("audioresample").build().ok()?,
        gst::ElementFactory::make("capsfilter")
            .property("caps", caps)
            .build()
            .ok()?,
        crate::graph::drain_sink().ok()?,
    ];
    chain[3]
        .static_pad("sink")
        .expect("fakesink has a sink pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data
                && let Ok(map) = buffer.map_readable()
            {
                let samples: Vec<f32> = map
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                if let Err(e) = meter
                    .meter
                    .lock()
                    .expect("meter lock")
                    .add_frames_f32(&samples)
                {
                    *meter.error.lock().expect("lock") = Some(e.to_string());
                }
                *meter.last_buffer.lock().expect("lock") = Instant::now();
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.add_many(&chain).ok()?;
    gst::Element::link_many(&chain).ok()?;
    for element in &chain {
        element.sync_state_with_parent().ok()?;
    }
    Some(chain[0].clone())
}

fn pass_error(e: crate::graph::PassError) -> LoudnessError {
    match e {
        crate::graph::PassError::Failed(message) => LoudnessError::Pipeline(message),
        crate::graph::PassError::Stalled => LoudnessError::Stalled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gain(integrated_lufs: f64, true_peak_dbtp: f64) -> f64 {
        Loudness {
            integrated_lufs,
            true_peak_dbtp,
        }
        .normalizing_gain_db()
    }

    #[test]
    fn gain_to_the_target_within_the_peak_ceiling() {
        // Loud music: down 12 dB, peaks well under the ceiling.
        assert!((gain(-12.0, -0.5) + 12.0).abs() < 1e-9);
        // Quiet speech: up 10 dB.
        assert!((gain(-34.0, -20.0) - 10.0).abs() < 1e-9);
        // Very peaky: +10 dB would put peaks at +2 dBTP; held at -1.5.
        assert!((gain(-34.0, -8.0) - 6.5).abs() < 1e-9);
        // Very quiet: at most +20 dB.
        assert!((gain(-60.0, -50.0) - 20.0).abs() < 1e-9);
        // Silence is left alone.
        assert_eq!(gain(f64::NEG_INFINITY, f64::NEG_INFINITY), 0.0);
        assert_eq!(gain(-80.0, -60.0), 0.0);
    }
}
