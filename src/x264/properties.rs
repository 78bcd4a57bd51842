//! `reeldx264enc`'s properties: x264enc's names, types, defaults and
//! meaning, and the encoder settings they make for one input.

use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::element::{X264EncImp, lock};
use super::ffi::{Colour, Settings};

/// The properties, with x264enc's names and defaults.
#[derive(Debug, Clone)]
pub(super) struct Properties {
    speed_preset: String,
    tune: Option<String>,
    pass: String,
    quantizer: u32,
    bitrate: u32,
    vbv_buf_capacity: u32,
    key_int_max: u32,
    threads: u32,
    option_string: Option<String>,
}

impl Default for Properties {
    fn default() -> Self {
        Properties {
            speed_preset: "medium".into(),
            tune: None,
            pass: "cbr".into(),
            quantizer: 21,
            bitrate: 2048,
            vbv_buf_capacity: 600,
            key_int_max: 0,
            threads: 0,
            option_string: None,
        }
    }
}

impl Properties {
    pub(super) fn settings(
        &self,
        info: &gst_video::VideoInfo,
        profile: Option<&'static str>,
    ) -> Result<Settings, String> {
        let p = self.clone();
        let fps = info.fps();
        let par = info.par();
        Ok(Settings {
            width: info.width(),
            height: info.height(),
            fps: (fps.numer(), fps.denom()),
            par: (par.numer(), par.denom()),
            preset: Some(p.speed_preset).filter(|s| !s.is_empty() && s != "None"),
            tune: p.tune.filter(|s| !s.is_empty()),
            profile: profile.map(str::to_owned),
            option_string: p.option_string.filter(|s| !s.is_empty()),
            rate_control: super::parse_pass(&p.pass)?,
            quantizer: p.quantizer as f32,
            bitrate_kbps: p.bitrate,
            vbv_buffer_ms: p.vbv_buf_capacity,
            keyint_max: p.key_int_max,
            threads: p.threads,
            colour: colour(info),
        })
    }
}

/// The input's colorimetry as VUI code points, as x264enc writes them.
fn colour(info: &gst_video::VideoInfo) -> Colour {
    let c = info.colorimetry();
    let site = info.chroma_site();
    let chroma_location = if site == gst_video::VideoChromaSite::JPEG {
        1
    } else if site == gst_video::VideoChromaSite::V_COSITED {
        3
    } else if site == gst_video::VideoChromaSite::DV {
        2
    } else {
        0
    };
    Colour {
        primaries: c.primaries().to_iso() as i32,
        transfer: c.transfer().to_iso() as i32,
        matrix: c.matrix().to_iso() as i32,
        full_range: c.range() == gst_video::VideoColorRange::Range0_255,
        chroma_location,
    }
}

impl ObjectImpl for X264EncImp {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let string = |name: &str, blurb: &str, default: Option<&str>| {
                glib::ParamSpecString::builder(name)
                    .blurb(blurb)
                    .default_value(default)
                    .build()
            };
            let uint = |name: &str, blurb: &str, max: u32, default: u32| {
                glib::ParamSpecUInt::builder(name)
                    .blurb(blurb)
                    .maximum(max)
                    .default_value(default)
                    .build()
            };
            vec![
                string(
                    "speed-preset",
                    "x264 speed preset (ultrafast … placebo)",
                    Some("medium"),
                ),
                string(
                    "tune",
                    "x264 tune (film, animation, grain, stillimage, …)",
                    None,
                ),
                string(
                    "pass",
                    "cbr (average bitrate), quant (constant quantizer) or qual (constant quality)",
                    Some("cbr"),
                ),
                uint(
                    "quantizer",
                    "CRF value for pass=qual, QP for pass=quant",
                    50,
                    21,
                ),
                uint(
                    "bitrate",
                    "Bitrate for pass=cbr, VBV maximum rate for pass=qual, kbit/s",
                    2_048_000,
                    2048,
                ),
                uint(
                    "vbv-buf-capacity",
                    "VBV buffer, milliseconds at the bitrate",
                    10_000,
                    600,
                ),
                uint(
                    "key-int-max",
                    "Longest GOP in frames (0: ten seconds)",
                    i32::MAX as u32,
                    0,
                ),
                uint("threads", "Encoder threads (0: x264 decides)", 128, 0),
                string(
                    "option-string",
                    "Further x264 options, key=value:key=value",
                    None,
                ),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut p = lock(&self.properties);
        let string = || value.get::<Option<String>>().ok().flatten();
        let uint = || value.get::<u32>().unwrap_or_default();
        match pspec.name() {
            "speed-preset" => p.speed_preset = string().unwrap_or_default(),
            "tune" => p.tune = string(),
            "pass" => p.pass = string().unwrap_or_else(|| "cbr".into()),
            "quantizer" => p.quantizer = uint(),
            "bitrate" => p.bitrate = uint(),
            "vbv-buf-capacity" => p.vbv_buf_capacity = uint(),
            "key-int-max" => p.key_int_max = uint(),
            "threads" => p.threads = uint(),
            "option-string" => p.option_string = string(),
            _ => {}
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let p = lock(&self.properties);
        match pspec.name() {
            "speed-preset" => p.speed_preset.to_value(),
            "tune" => p.tune.to_value(),
            "pass" => p.pass.to_value(),
            "quantizer" => p.quantizer.to_value(),
            "bitrate" => p.bitrate.to_value(),
            "vbv-buf-capacity" => p.vbv_buf_capacity.to_value(),
            "key-int-max" => p.key_int_max.to_value(),
            "threads" => p.threads.to_value(),
            "option-string" => p.option_string.to_value(),
            _ => pspec.default_value().clone(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad)
            .expect("a new element takes its sink pad");
        obj.add_pad(&self.srcpad)
            .expect("a new element takes its src pad");
    }
}
