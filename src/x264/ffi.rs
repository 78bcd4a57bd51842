//! A safe handle on libx264, through the C shim in `shim.c`.
//!
//! This is the one module of reeld with `unsafe` code: the calls into the
//! shim. Every pointer handed over is either owned by [`Encoder`] or borrowed
//! for the length of one call, and the encoder's output is copied out before
//! the next call can reuse x264's buffer.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char};

/// How the encoder spends bits. Keep in step with `REELD_RC_*` in `shim.c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum RateControl {
    /// Constant quality (x264's CRF), capped by the VBV when a bitrate is set.
    Crf = 0,
    /// Constant quantizer.
    Cqp = 1,
    /// Average bitrate, capped by the VBV at the same rate.
    Abr = 2,
}

/// What one encoder is opened with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Picture size in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Frame rate as a fraction; (0, 1) for a variable rate.
    pub fps: (i32, i32),
    /// Pixel aspect ratio.
    pub par: (i32, i32),
    /// x264's speed preset (`veryfast`, …), or its defaults.
    pub preset: Option<String>,
    /// x264's tune (`film`, `zerolatency`, …).
    pub tune: Option<String>,
    /// The H.264 profile to stay within (`high`, `main`, `baseline`).
    pub profile: Option<String>,
    /// Further x264 options, `key=value:key=value`.
    pub option_string: Option<String>,
    /// The rate control method.
    pub rate_control: RateControl,
    /// The CRF value or the constant quantizer.
    pub quantizer: f32,
    /// The average or maximum bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// The VBV buffer, in milliseconds at `bitrate_kbps`.
    pub vbv_buffer_ms: u32,
    /// The longest GOP in frames; 0 for ten seconds of frames.
    pub keyint_max: u32,
    /// Encoder threads; 0 lets x264 decide.
    pub threads: u32,
    /// The VUI colour description written into the SPS.
    pub colour: Colour,
}

/// The VUI colour description: ISO/IEC 23091-2 code points (2: unspecified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour {
    /// colour_primaries.
    pub primaries: i32,
    /// transfer_characteristics.
    pub transfer: i32,
    /// matrix_coefficients.
    pub matrix: i32,
    /// video_full_range_flag.
    pub full_range: bool,
    /// chroma_sample_loc_type (0: left, as MPEG-2).
    pub chroma_location: i32,
}

/// One encoded access unit: length-prefixed NAL units ("avc").
#[derive(Debug)]
pub struct AccessUnit {
    /// The NAL units, each behind a 4-byte big-endian length.
    pub data: Vec<u8>,
    /// Presentation time, in the input's nanoseconds.
    pub pts: i64,
    /// Decoding time, in the input's nanoseconds; it may be below the first
    /// `pts` when the stream has B-frames.
    pub dts: i64,
    /// An IDR picture.
    pub keyframe: bool,
}

/// One I420 picture borrowed for an [`Encoder::encode`] call.
pub struct Picture<'a> {
    /// The Y, U and V planes.
    pub planes: [&'a [u8]; 3],
    /// Each plane's stride in bytes.
    pub strides: [i32; 3],
}

#[repr(C)]
struct RawConfig {
    width: i32,
    height: i32,
    fps_num: i32,
    fps_den: i32,
    par_num: i32,
    par_den: i32,
    preset: *const c_char,
    tune: *const c_char,
    profile: *const c_char,
    option_string: *const c_char,
    rate_control: i32,
    quantizer: f32,
    bitrate_kbps: i32,
    vbv_buffer_ms: i32,
    keyint_max: i32,
    threads: i32,
    colour_primaries: i32,
    transfer: i32,
    matrix: i32,
    full_range: i32,
    chroma_location: i32,
}

#[repr(C)]
struct RawOutput {
    data: *const u8,
    size: i32,
    keyframe: i32,
    pts: i64,
    dts: i64,
}

#[repr(C)]
struct RawEncoder {
    _private: [u8; 0],
}

/// The shim's error buffer; keep in step with `ERROR_CAPACITY` in `shim.c`.
const ERROR_CAPACITY: usize = 256;
/// Far more than an SPS and a PPS take.
const AVCC_CAPACITY: usize = 1024;

unsafe extern "C" {
    fn reeld_x264_open(config: *const RawConfig, error: *mut c_char) -> *mut RawEncoder;
    fn reeld_x264_avcc(encoder: *mut RawEncoder, out: *mut u8, capacity: i32) -> i32;
    fn reeld_x264_encode(
        encoder: *mut RawEncoder,
        planes: *const *const u8,
        strides: *const i32,
        pts: i64,
        force_keyframe: i32,
        out: *mut RawOutput,
    ) -> i32;
    fn reeld_x264_delayed_frames(encoder: *mut RawEncoder) -> i32;
    fn reeld_x264_maximum_delayed_frames(encoder: *mut RawEncoder) -> i32;
    fn reeld_x264_last_error(encoder: *mut RawEncoder) -> *const c_char;
    fn reeld_x264_close(encoder: *mut RawEncoder);
}

/// An open libx264 encoder.
pub struct Encoder {
    raw: *mut RawEncoder,
    /// Each I420 plane's row length in bytes and its number of rows: what x264
    /// reads, checked against every picture before the call.
    plane_shapes: [(usize, usize); 3],
}

// SAFETY: an x264_t may be used from any thread, one call at a time; `&mut
// self` on every call gives that.
unsafe impl Send for Encoder {}

fn c_string(what: &str, value: &Option<String>) -> Result<Option<CString>, String> {
    value
        .as_deref()
        .map(|s| CString::new(s).map_err(|_| format!("{what} contains a NUL byte")))
        .transpose()
}

fn as_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

impl Encoder {
    /// Opens an encoder, or says why x264 refused the settings.
    pub fn open(settings: &Settings) -> Result<Encoder, String> {
        let even = |n: u32| n > 0 && n.is_multiple_of(2) && n <= 16384;
        if !even(settings.width) || !even(settings.height) {
            return Err(format!(
                "an I420 picture of {}x{} cannot be encoded: both sides must be even and at most 16384",
                settings.width, settings.height
            ));
        }
        let preset = c_string("speed-preset", &settings.preset)?;
        let tune = c_string("tune", &settings.tune)?;
        let profile = c_string("profile", &settings.profile)?;
        let options = c_string("option-string", &settings.option_string)?;
        let config = RawConfig {
            width: settings.width as i32,
            height: settings.height as i32,
            fps_num: settings.fps.0,
            fps_den: settings.fps.1,
            par_num: settings.par.0,
            par_den: settings.par.1,
            preset: as_ptr(&preset),
            tune: as_ptr(&tune),
            profile: as_ptr(&profile),
            option_string: as_ptr(&options),
            rate_control: settings.rate_control as i32,
            quantizer: settings.quantizer,
            bitrate_kbps: settings.bitrate_kbps.min(i32::MAX as u32 / 100_000) as i32,
            vbv_buffer_ms: settings.vbv_buffer_ms.min(100_000) as i32,
            keyint_max: settings.keyint_max.min(i32::MAX as u32) as i32,
            threads: settings.threads.min(128) as i32,
            colour_primaries: settings.colour.primaries,
            transfer: settings.colour.transfer,
            matrix: settings.colour.matrix,
            full_range: i32::from(settings.colour.full_range),
            chroma_location: settings.colour.chroma_location,
        };
        let mut error = [0 as c_char; ERROR_CAPACITY];
        // SAFETY: `config` and the strings it points to outlive the call; the
        // shim writes at most ERROR_CAPACITY bytes, NUL-terminated, to `error`.
        let raw = unsafe { reeld_x264_open(&config, error.as_mut_ptr()) };
        if raw.is_null() {
            // SAFETY: the shim NUL-terminated the buffer.
            let message = unsafe { CStr::from_ptr(error.as_ptr()) };
            return Err(message.to_string_lossy().into_owned());
        }
        let (w, h) = (settings.width as usize, settings.height as usize);
        Ok(Encoder {
            raw,
            plane_shapes: [(w, h), (w / 2, h / 2), (w / 2, h / 2)],
        })
    }

    /// The AVCDecoderConfigurationRecord: `codec_data` of the "avc" caps.
    pub fn avcc(&mut self) -> Result<Vec<u8>, String> {
        let mut out = vec![0u8; AVCC_CAPACITY];
        // SAFETY: `out` has AVCC_CAPACITY bytes, and the shim writes at most
        // that many.
        let n = unsafe { reeld_x264_avcc(self.raw, out.as_mut_ptr(), AVCC_CAPACITY as i32) };
        if n <= 0 {
            return Err("x264 gave no SPS and PPS".into());
        }
        out.truncate(n as usize);
        Ok(out)
    }

    /// Encodes one picture; x264 has copied it when this returns. Gives the
    /// access unit that came out, if one did (the first ones are delayed).
    pub fn encode(
        &mut self,
        picture: &Picture<'_>,
        pts: i64,
        force_keyframe: bool,
    ) -> Result<Option<AccessUnit>, String> {
        for (i, plane) in picture.planes.iter().enumerate() {
            let (row_bytes, rows) = self.plane_shapes[i];
            let stride = picture.strides[i];
            let needed = (stride.max(0) as usize) * (rows - 1) + row_bytes;
            if stride <= 0 || (stride as usize) < row_bytes || plane.len() < needed {
                return Err(format!(
                    "plane {i} of the picture is {} bytes at stride {stride}; x264 reads {needed}",
                    plane.len()
                ));
            }
        }
        let planes = picture.planes.map(|p| p.as_ptr());
        self.call(Some((&planes, &picture.strides)), pts, force_keyframe)
    }

    /// Drains one delayed picture at the end of the stream.
    pub fn drain(&mut self) -> Result<Option<AccessUnit>, String> {
        self.call(None, 0, false)
    }

    /// Pictures x264 holds and has not given back yet.
    pub fn delayed_frames(&mut self) -> usize {
        // SAFETY: `raw` is an open encoder.
        unsafe { reeld_x264_delayed_frames(self.raw) }.max(0) as usize
    }

    /// The most pictures x264 holds at once with these settings.
    pub fn maximum_delayed_frames(&mut self) -> usize {
        // SAFETY: `raw` is an open encoder.
        unsafe { reeld_x264_maximum_delayed_frames(self.raw) }.max(0) as usize
    }

    fn call(
        &mut self,
        picture: Option<(&[*const u8; 3], &[i32; 3])>,
        pts: i64,
        force_keyframe: bool,
    ) -> Result<Option<AccessUnit>, String> {
        let mut out = RawOutput {
            data: std::ptr::null(),
            size: 0,
            keyframe: 0,
            pts: 0,
            dts: 0,
        };
        let (planes, strides) = match picture {
            Some((planes, strides)) => (planes.as_ptr(), strides.as_ptr()),
            None => (std::ptr::null(), std::ptr::null()),
        };
        // SAFETY: `raw` is open; `planes`/`strides` are null or point to three
        // entries each, whose planes the caller borrowed for this call and
        // `encode` checked against the picture size.
        let n = unsafe {
            reeld_x264_encode(
                self.raw,
                planes,
                strides,
                pts,
                i32::from(force_keyframe),
                &mut out,
            )
        };
        if n < 0 {
            // SAFETY: the shim keeps a NUL-terminated message in the encoder.
            let message = unsafe { CStr::from_ptr(reeld_x264_last_error(self.raw)) };
            return Err(format!(
                "x264 failed to encode a picture: {}",
                message.to_string_lossy()
            ));
        }
        if n == 0 || out.data.is_null() {
            return Ok(None);
        }
        // SAFETY: x264 keeps `size` bytes at `data` until the next call on
        // this encoder; they are copied out now.
        let data = unsafe { std::slice::from_raw_parts(out.data, out.size as usize) }.to_vec();
        Ok(Some(AccessUnit {
            data,
            pts: out.pts,
            dts: out.dts,
            keyframe: out.keyframe != 0,
        }))
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: `raw` came from reeld_x264_open and is closed once.
        unsafe { reeld_x264_close(self.raw) };
    }
}
