//! `reeldx264enc`: reeld's own GStreamer H.264 encoder element on libx264.
//!
//! GStreamer's `x264enc` keeps every picture it has handed to x264 mapped
//! until the encoded frame comes back, about twenty pictures per encode with
//! the veryfast preset on two cores, although x264 has already copied each
//! one into its own lookahead. A six-output ladder thus held some hundred MiB
//! of raw 1080p, 720p and 480p pictures twice. `reeldx264enc` gives each
//! picture back as soon as x264 has copied it, which is what ffmpeg does.
//!
//! It reads the properties of `x264enc` that reeld's fragments use, with the
//! same names, types, defaults and meaning (`speed-preset`, `tune`, `pass`,
//! `quantizer`, `bitrate`, `vbv-buf-capacity`, `key-int-max`, `threads`,
//! `option-string`), applies them to x264 in `x264enc`'s order, takes the
//! profile from the caps downstream as `x264enc` does, and produces the same
//! stream: I420 in, "avc" H.264 out with `codec_data`, its timestamps shifted
//! by 1000 hours with the segment so that no decoding time is negative.
//!
//! A leaf: it depends on nothing else in reeld. [`register`] runs once, from
//! `graph::init`.

mod element;
mod ffi;
mod properties;
#[cfg(test)]
mod tests;

use gst::prelude::*;

pub use ffi::{AccessUnit, Colour, Encoder, Picture, RateControl, Settings};

/// The element's factory name, as fragments write it.
pub const FACTORY_NAME: &str = "reeldx264enc";

/// Registers `reeldx264enc` with GStreamer for this process (later calls are
/// cheap no-ops). GStreamer must be initialised.
pub fn register() -> Result<(), gst::glib::BoolError> {
    static REGISTERED: std::sync::OnceLock<Result<(), gst::glib::BoolError>> =
        std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            gst::Element::register(
                None,
                FACTORY_NAME,
                gst::Rank::NONE,
                element::X264Enc::static_type(),
            )
        })
        .clone()
}

/// `pass` as `x264enc` spells it: `cbr` (the default), `quant` or `qual`.
/// The multi-pass modes are not offered: reeld encodes in one pass.
pub fn parse_pass(pass: &str) -> Result<RateControl, String> {
    match pass {
        "cbr" | "0" => Ok(RateControl::Abr),
        "quant" | "4" => Ok(RateControl::Cqp),
        "qual" | "5" => Ok(RateControl::Crf),
        other => Err(format!(
            "{FACTORY_NAME} has no pass {other:?}: it takes cbr, quant or qual"
        )),
    }
}

/// The x264 profile for a downstream `profile` caps field, as `x264enc` maps it.
pub fn x264_profile(caps_profile: &str) -> Result<&'static str, String> {
    match caps_profile {
        "constrained-baseline" | "baseline" => Ok("baseline"),
        "main" => Ok("main"),
        "high" => Ok("high"),
        other => Err(format!(
            "{FACTORY_NAME} encodes 8-bit 4:2:0 only, not profile {other}"
        )),
    }
}
