//! The first video track's packets, read from an MP4/MOV index (`moov`)
//! instead of the media data: decode steps from `stts`, composition offsets
//! from `ctts`, sizes from `stsz`, key frames from `stss`. For H.264 and HEVC
//! only the first bytes of each key frame are read (found through `stsc` and
//! `stco`/`co64`), to tell IDR pictures from open-GOP recovery points. These
//! are the packets the parse pass would deliver, at the cost of reading the
//! index and a few bytes per GOP.
//!
//! Anything this reader does not vouch for (a fragmented file, tables that
//! disagree, samples past the end of the file, encrypted entries) answers
//! `None`, and the caller runs the parse pass instead.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::mp4::{boxes, child, handler};
use super::{GopMeter, NalCodec, Packet, VideoMeasurements};

/// NAL units looked at in one key frame before giving up on finding its
/// first picture (parameter sets and SEI come first).
const MAX_NALS_PER_KEY_FRAME: usize = 32;

/// The first video track's measurements from the index: `Some(None)` when
/// the file has no video track, `None` when the index cannot stand in for
/// the parse pass.
#[cfg(test)]
pub fn measure_video(path: &std::path::Path) -> Option<Option<VideoMeasurements>> {
    let (file, moov) = super::mp4::read_moov(path)?;
    measure_video_in(&file, &moov)
}

/// `measure_video` on an open file and the body of its `moov` box, as
/// `mp4::read_moov` gives them (the edit lists are read from the same).
pub fn measure_video_in(file: &File, moov: &[u8]) -> Option<Option<VideoMeasurements>> {
    if child(moov, b"mvex").is_some() {
        // Fragmented: the samples are in `moof` boxes, not in the index.
        return None;
    }
    let Some(trak) = boxes(moov)
        .filter(|(kind, _)| kind == b"trak")
        .map(|(_, trak)| trak)
        .find(|trak| handler(trak) == Some(*b"vide"))
    else {
        return Some(None);
    };
    let length = file.metadata().ok()?.len();
    let packets = video_packets(file, length, trak)?;
    let mut meter = GopMeter::default();
    for packet in packets {
        meter.push(packet);
    }
    Some(meter.finish())
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// A full box's entries: its entry count (after version and flags) and the
/// bytes that follow, checked to hold `count` entries of `entry_len` bytes.
fn entries(body: &[u8], entry_len: usize) -> Option<(usize, &[u8])> {
    let count = u32_at(body, 4)? as usize;
    let rest = body.get(8..)?;
    (rest.len() / entry_len >= count).then_some((count, rest))
}

/// Every packet of the track in decode order, with its key-frame flag and,
/// for key frames of H.264/HEVC, whether it is an IDR picture.
fn video_packets(file: &File, file_length: u64, trak: &[u8]) -> Option<Vec<Packet>> {
    let mdia = child(trak, b"mdia")?;
    let mdhd = child(mdia, b"mdhd")?;
    let timescale = match mdhd.first()? {
        1 => u32_at(mdhd, 20)?,
        _ => u32_at(mdhd, 12)?,
    };
    if timescale == 0 {
        return None;
    }
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;

    let sizes = sample_sizes(child(stbl, b"stsz")?)?;
    let count = sizes.len();
    if count == 0 {
        return None;
    }
    let decode_steps = run_lengths(child(stbl, b"stts")?, count)?;
    let offsets = match child(stbl, b"ctts") {
        Some(ctts) => run_lengths(ctts, count)?,
        None => vec![0; count],
    };
    let keyframes: Option<Vec<bool>> = child(stbl, b"stss").map(|stss| {
        let mut flags = vec![false; count];
        if let Some((n, rest)) = entries(stss, 4) {
            for i in 0..n {
                if let Some(number) = u32_at(rest, 4 * i)
                    && let Some(flag) = flags.get_mut((number as usize).wrapping_sub(1))
                {
                    *flag = true;
                }
            }
        }
        flags
    });
    let positions = sample_positions(stbl, &sizes)?;
    if positions
        .iter()
        .zip(&sizes)
        .any(|(at, size)| at.checked_add(*size).is_none_or(|end| end > file_length))
    {
        // The media data ends early (a truncated file): the parse pass reports that.
        return None;
    }
    let codec = nal_codec(child(stbl, b"stsd")?)?;

    let to_ns = |t: i128| (t.max(0) as u128 * 1_000_000_000 / u128::from(timescale)) as u64;
    let mut packets = Vec::with_capacity(count);
    let mut dts: i128 = 0;
    for i in 0..count {
        let step = i128::from(decode_steps[i]);
        // `ctts` offsets are signed in version 1, and in practice in version
        // 0 too (writers put negative offsets there), as ffmpeg reads them.
        let pts = dts + i128::from(offsets[i] as i32);
        let keyframe = keyframes.as_ref().is_none_or(|k| k[i]);
        let closed = match (keyframe, codec) {
            (true, Some((codec, length_size))) => {
                starts_with_idr(file, positions[i], sizes[i], codec, length_size)
            }
            _ => true,
        };
        packets.push(Packet {
            pts: Some(to_ns(pts)),
            duration: Some(to_ns(step)),
            size: sizes[i],
            keyframe,
            closed,
        });
        dts += step;
    }
    Some(packets)
}

/// `stsz`: one size per sample.
fn sample_sizes(stsz: &[u8]) -> Option<Vec<u64>> {
    let fixed = u32_at(stsz, 4)?;
    let count = u32_at(stsz, 8)? as usize;
    if fixed != 0 {
        return Some(vec![u64::from(fixed); count]);
    }
    let table = stsz.get(12..)?;
    if table.len() / 4 < count {
        return None;
    }
    (0..count)
        .map(|i| u32_at(table, 4 * i).map(u64::from))
        .collect()
}

/// `stts` or `ctts`, (count, value) runs expanded to one value per sample;
/// they must cover exactly `samples`.
fn run_lengths(body: &[u8], samples: usize) -> Option<Vec<u32>> {
    let (n, rest) = entries(body, 8)?;
    let mut values = Vec::with_capacity(samples);
    for i in 0..n {
        let run = u32_at(rest, 8 * i)? as usize;
        let value = u32_at(rest, 8 * i + 4)?;
        if values.len() + run > samples {
            return None;
        }
        values.extend(std::iter::repeat_n(value, run));
    }
    (values.len() == samples).then_some(values)
}

/// Each sample's file offset, from the chunk table (`stsc`) and the chunk
/// offsets (`stco` or `co64`).
fn sample_positions(stbl: &[u8], sizes: &[u64]) -> Option<Vec<u64>> {
    let chunks: Vec<u64> = if let Some(stco) = child(stbl, b"stco") {
        let (n, rest) = entries(stco, 4)?;
        (0..n)
            .map(|i| u32_at(rest, 4 * i).map(u64::from))
            .collect::<Option<_>>()?
    } else {
        let (n, rest) = entries(child(stbl, b"co64")?, 8)?;
        (0..n).map(|i| u64_at(rest, 8 * i)).collect::<Option<_>>()?
    };
    let (runs, table) = entries(child(stbl, b"stsc")?, 12)?;
    let mut positions = Vec::with_capacity(sizes.len());
    for r in 0..runs {
        let first = u32_at(table, 12 * r)? as usize;
        let per_chunk = u32_at(table, 12 * r + 4)? as usize;
        let next = if r + 1 < runs {
            u32_at(table, 12 * (r + 1))? as usize
        } else {
            chunks.len() + 1
        };
        if first == 0 || next < first {
            return None;
        }
        for chunk in first..next {
            let mut at = *chunks.get(chunk - 1)?;
            for _ in 0..per_chunk {
                let size = *sizes.get(positions.len())?;
                positions.push(at);
                at = at.checked_add(size)?;
            }
        }
    }
    (positions.len() == sizes.len()).then_some(positions)
}

/// The codec of the first sample entry, with the NAL length prefix size of
/// H.264/HEVC (`avcC`/`hvcC`): `Some(None)` for other codecs, whose key
/// frames all count as closed; `None` for entries this reader refuses.
fn nal_codec(stsd: &[u8]) -> Option<Option<(NalCodec, usize)>> {
    let (kind, entry) = boxes(stsd.get(8..)?).next()?;
    // A visual sample entry's own fields take 78 bytes; its boxes follow.
    let inner = entry.get(78..)?;
    let (codec, config, at) = match &kind {
        b"avc1" | b"avc3" => (NalCodec::H264, b"avcC", 4),
        b"hvc1" | b"hev1" => (NalCodec::Hevc, b"hvcC", 21),
        b"encv" => return None,
        _ => return Some(None),
    };
    let byte = *child(inner, config)?.get(at)?;
    Some(Some((codec, usize::from(byte & 0x3) + 1)))
}

/// Whether the first picture of the access unit at `at` is an IDR picture,
/// reading only the NAL length prefixes and headers in front of it.
fn starts_with_idr(file: &File, at: u64, size: u64, codec: NalCodec, length_size: usize) -> bool {
    let end = at + size;
    let mut nal = at;
    for _ in 0..MAX_NALS_PER_KEY_FRAME {
        let mut head = [0u8; 5];
        let head = &mut head[..length_size + 1];
        if nal + head.len() as u64 > end || file.read_exact_at(head, nal).is_err() {
            break;
        }
        let length = head[..length_size]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let header = head[length_size];
        let (picture, idr) = match codec {
            NalCodec::H264 => {
                let kind = header & 0x1f;
                ((1..=5).contains(&kind), kind == 5)
            }
            NalCodec::Hevc => {
                let kind = (header >> 1) & 0x3f;
                (kind <= 31, (16..=20).contains(&kind))
            }
        };
        if picture {
            return idr;
        }
        nal += length_size as u64 + length;
    }
    // No picture found where one should be: the parse pass's rule, an
    // unreadable key frame counts as closed.
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_expand_to_one_value_per_sample_and_must_cover_them() {
        let mut stts = vec![0, 0, 0, 0, 0, 0, 0, 2];
        for (count, delta) in [(3u32, 1001u32), (1, 2002)] {
            stts.extend(count.to_be_bytes());
            stts.extend(delta.to_be_bytes());
        }
        assert_eq!(run_lengths(&stts, 4).unwrap(), [1001, 1001, 1001, 2002]);
        assert_eq!(run_lengths(&stts, 5), None, "one sample uncovered");
        assert_eq!(run_lengths(&stts, 3), None, "runs past the samples");
        // A count larger than the box holds is refused, not read past.
        let mut lying = stts.clone();
        lying[7] = 200;
        assert_eq!(run_lengths(&lying, 4), None);
    }
}

/// The index reader against the parse pass, on files ffmpeg makes: both
/// must see the same stream.
#[cfg(test)]
mod against_the_parse_pass {
    use super::measure_video;
    use crate::inspect::{VideoMeasurements, inspect_by_parse_pass};
    use crate::test_media::ffmpeg;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1e-9)
    }

    fn assert_same(name: &str, index: &VideoMeasurements, pass: &VideoMeasurements) {
        let frame = 1.0 / pass.typical_frame_rate.unwrap_or(30.0);
        let same = index.frames == pass.frames
            && (index.duration - pass.duration).abs() <= frame + 1e-6
            && (index.max_keyframe_interval - pass.max_keyframe_interval).abs() <= frame + 1e-6
            && close(index.average_bitrate, pass.average_bitrate, 0.05)
            && close(index.max_gop_bitrate, pass.max_gop_bitrate, 0.10)
            && index.open_gop == pass.open_gop
            && index.variable_frame_rate == pass.variable_frame_rate
            && close(
                index.typical_frame_rate.unwrap_or(0.0),
                pass.typical_frame_rate.unwrap_or(0.0),
                0.01,
            );
        assert!(same, "{name}:\n index {index:?}\n pass  {pass:?}");
    }

    #[test]
    fn the_index_sees_what_the_parse_pass_sees() {
        let dir = tempfile::tempdir().unwrap();
        let video = "-f lavfi -i testsrc2=size=320x240:rate=30 -t 6";
        let cases = [
            (
                "b-frames.mp4",
                format!("{video} -c:v libx264 -preset veryfast -g 60 -bf 3 -pix_fmt yuv420p"),
            ),
            (
                "open-gop.mp4",
                format!(
                    "{video} -c:v libx264 -preset veryfast -x264-params open-gop=1:keyint=30:min-keyint=30 -bf 3 -pix_fmt yuv420p"
                ),
            ),
            (
                "vfr.mp4",
                format!(
                    "{video} -vf select='not(between(mod(n,10),3,5))' -fps_mode vfr -c:v libx264 -preset veryfast -pix_fmt yuv420p"
                ),
            ),
            (
                "long-gop.mov",
                format!("{video} -c:v libx264 -preset veryfast -g 150 -pix_fmt yuv420p"),
            ),
            (
                "hevc.mp4",
                format!(
                    "{video} -c:v libx265 -preset ultrafast -x265-params log-level=error:keyint=30 -tag:v hvc1 -pix_fmt yuv420p"
                ),
            ),
            ("mpeg4.mp4", format!("{video} -c:v mpeg4 -g 45")),
        ];
        for (name, args) in cases {
            let path = dir.path().join(name);
            ffmpeg(&path, &args);
            let index = measure_video(&path)
                .unwrap_or_else(|| panic!("{name}: the index was not used"))
                .unwrap_or_else(|| panic!("{name}: no video in the index"));
            let pass = inspect_by_parse_pass(&path).unwrap().unwrap();
            assert_same(name, &index, &pass);
        }
        let open = measure_video(&dir.path().join("open-gop.mp4"))
            .unwrap()
            .unwrap();
        assert!(open.open_gop, "x264's open GOPs are seen");
        let vfr = measure_video(&dir.path().join("vfr.mp4")).unwrap().unwrap();
        assert!(vfr.variable_frame_rate);
    }

    #[test]
    fn files_the_index_cannot_vouch_for_go_to_the_parse_pass() {
        let dir = tempfile::tempdir().unwrap();
        let video = "-f lavfi -i testsrc2=size=320x240:rate=30 -t 3 -c:v libx264 -preset ultrafast -pix_fmt yuv420p";
        let fragmented = dir.path().join("fragmented.mp4");
        ffmpeg(
            &fragmented,
            &format!("{video} -movflags frag_keyframe+empty_moov"),
        );
        assert_eq!(measure_video(&fragmented), None);
        let mkv = dir.path().join("clip.mkv");
        ffmpeg(&mkv, video);
        assert_eq!(measure_video(&mkv), None);
        // Cut short: the index names samples past the end of the file.
        let whole = dir.path().join("whole.mp4");
        ffmpeg(&whole, &format!("{video} -movflags +faststart"));
        let data = std::fs::read(&whole).unwrap();
        let truncated = dir.path().join("truncated.mp4");
        std::fs::write(&truncated, &data[..data.len() * 2 / 3]).unwrap();
        assert_eq!(measure_video(&truncated), None);
        let audio_only = dir.path().join("audio.m4a");
        ffmpeg(&audio_only, "-f lavfi -i sine=frequency=440 -t 2 -c:a aac");
        assert_eq!(measure_video(&audio_only), Some(None));
    }
}
