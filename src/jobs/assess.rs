//! What a transcode job learns of its source beyond the probe, for the plan
//! and for `non_standard_input_reasons`: whether it is a standard input,
//! whether its frame rate is steady, and `normalize_audio`'s gain.
//!
//! The video is measured from its packets (`inspect`). An MP4/MOV index
//! gives them without reading the media data. Any other source needs a
//! pass over the whole file, and when the probe alone already proves such a
//! source non-standard, that pass is left out: nothing it finds could make
//! the source copyable, so the transcode starts at once and meters the same
//! packets as it reads them ([`Measuring::DuringTranscode`]). What the
//! transcode cannot know in advance is a variable frame rate, which the
//! encodes must be made steady for; such a source is only taken this way
//! when its container declares a fixed rate, and should the packets prove
//! that rate false, the job encodes once more at the steady rate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use super::outcome::{JobOutcome, sentence};
use crate::asset::AssetSettings;
use crate::inspect::{self, GopMeter, InspectError, Inspection, mp4};
use crate::loudness;
use crate::plan::Assessment;
use crate::probe::MediaInfo;
use crate::standard::{self, Reasons};

/// How far the source's measuring got before the transcode.
pub(super) enum Measuring {
    /// Measured: the reasons (`None` for a standard input) and the
    /// assessment the plan takes.
    Done {
        reasons: Option<Reasons>,
        assessment: Assessment,
    },
    /// The probe proves the source non-standard; its video is metered by
    /// the transcode, and judged by [`Measuring::judge_metered`] after it.
    DuringTranscode {
        /// The index's edit lists (empty unless MP4/MOV).
        edits: mp4::EditLists,
        /// Filled by the transcode (`RunOptions::meter`).
        meter: Arc<Mutex<GopMeter>>,
    },
}

impl Measuring {
    /// The assessment the plan starts from: for a source measured during
    /// the transcode, not copyable (the probe proved that) and steady.
    pub(super) fn assessment(&self) -> Assessment {
        match self {
            Measuring::Done { assessment, .. } => assessment.clone(),
            Measuring::DuringTranscode { .. } => Assessment::default(),
        }
    }

    /// The reasons known before the transcode: all of them, or the probe's
    /// when the transcode measures (complete only after `judge_metered`).
    pub(super) fn reasons_before(
        &self,
        info: &MediaInfo,
        settings: &AssetSettings,
    ) -> Option<Reasons> {
        match self {
            Measuring::Done { reasons, .. } => reasons.clone(),
            Measuring::DuringTranscode { .. } => {
                Some(standard::reasons(info, None, settings.max_resolution_tier))
            }
        }
    }

    /// The meter the transcode fills, if it measures.
    pub(super) fn meter(&self) -> Option<Arc<Mutex<GopMeter>>> {
        match self {
            Measuring::Done { .. } => None,
            Measuring::DuringTranscode { meter, .. } => Some(meter.clone()),
        }
    }

    /// After a transcode that metered the video: the reasons and assessment
    /// the parse pass would have given. `None` for a source measured before.
    pub(super) fn judge_metered(
        self,
        info: &MediaInfo,
        settings: &AssetSettings,
    ) -> Option<(Option<Reasons>, Assessment)> {
        let Measuring::DuringTranscode { edits, meter } = self else {
            return None;
        };
        let meter = std::mem::take(&mut *meter.lock().expect("meter lock"));
        let inspection = Inspection {
            video: meter.finish(),
            edits,
        };
        Some(judge(info, Ok(inspection), settings))
    }
}

/// Measures what the probe cannot tell, or leaves it to the transcode (see
/// the module docs).
pub(super) async fn assess_source(
    source: &Path,
    info: &MediaInfo,
    settings: &AssetSettings,
) -> Measuring {
    let path = source.to_owned();
    let from_index = tokio::task::spawn_blocking(move || inspect::inspect_index(&path))
        .await
        .expect("index task does not panic");
    let inspection = match from_index.video {
        Some(video) => Ok(Inspection {
            video,
            edits: from_index.edits,
        }),
        // No video to measure: a pass would find none either.
        None if info.video.is_empty() => Ok(Inspection {
            video: None,
            edits: from_index.edits,
        }),
        None if measurable_during_transcode(info, settings) => {
            info!(
                "The probe proves the source non-standard; its video is measured during the transcode."
            );
            return Measuring::DuringTranscode {
                edits: from_index.edits,
                meter: Arc::default(),
            };
        }
        None => parse_pass(source.to_owned()).await.map(|video| Inspection {
            video,
            edits: from_index.edits,
        }),
    };
    let (reasons, assessment) = judge(info, inspection, settings);
    Measuring::Done {
        reasons,
        assessment,
    }
}

/// Whether the transcode can take the parse pass's place: the probe alone
/// finds a reason (so the measurement cannot make the source copyable), the
/// container declares a frame rate (a variable one would change the plan),
/// and the whole source is read (a test asset's transcode stops early).
fn measurable_during_transcode(info: &MediaInfo, settings: &AssetSettings) -> bool {
    let declared_rate = info.video.first().is_some_and(|v| v.fps().is_some());
    !settings.test
        && declared_rate
        && !standard::reasons(info, None, settings.max_resolution_tier).is_empty()
}

/// The reasons (`None` when standard) and the plan's assessment from what
/// was measured; a failed measurement counts as non-standard.
fn judge(
    info: &MediaInfo,
    inspection: Result<Inspection, InspectError>,
    settings: &AssetSettings,
) -> (Option<Reasons>, Assessment) {
    if let Err(e) = &inspection {
        warn!(error = %e, "Cannot measure the source's streams; it counts as non-standard.");
    }
    let inspection = inspection.ok();
    let found = standard::reasons(info, inspection.as_ref(), settings.max_resolution_tier);
    let measured = inspection.as_ref().and_then(|i| i.video.as_ref());
    let variable = measured.is_some_and(|m| m.variable_frame_rate);
    let steady_fps = measured
        .filter(|m| m.variable_frame_rate)
        .and_then(|m| m.typical_frame_rate);
    if let Some(fps) = steady_fps {
        info!(
            fps,
            "The source has a variable frame rate; the output is made steady."
        );
    }
    let assessment = Assessment {
        // Mux counts a variable frame rate as standard, but a copy would
        // keep it: such a source is encoded at a steady rate instead.
        copyable: found.is_empty() && !variable,
        steady_fps,
        audio_gain_db: None,
    };
    if found.is_empty() {
        (None, assessment)
    } else {
        info!(reasons = ?found, "The source is not a standard input.");
        (Some(found), assessment)
    }
}

async fn parse_pass(path: PathBuf) -> Result<Option<inspect::VideoMeasurements>, InspectError> {
    tokio::task::spawn_blocking(move || inspect::measure_video(&path))
        .await
        .expect("inspect task does not panic")
}

/// `normalize_audio`: the gain (dB) that brings the source's primary audio,
/// as it will be encoded, to the loudness target.
pub(super) async fn normalizing_gain(source: &Path, channels: u32) -> Result<f64, JobOutcome> {
    let path = source.to_owned();
    let measured = tokio::task::spawn_blocking(move || loudness::measure(&path, channels))
        .await
        .expect("loudness task does not panic")
        .map_err(|e| JobOutcome::InvalidInput(sentence(&e.to_string())))?;
    let gain = measured.normalizing_gain_db();
    info!(
        lufs = measured.integrated_lufs,
        true_peak = measured.true_peak_dbtp,
        gain_db = gain,
        "Audio measured for normalisation."
    );
    Ok(gain)
}
