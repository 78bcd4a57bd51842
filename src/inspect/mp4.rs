//! MP4/MOV edit lists (`moov/trak/edts/elst`) and the size of the index,
//! read straight from the file.
//!
//! GStreamer applies edit lists while demuxing but does not report them, and
//! Mux counts an input with a complex one as non-standard. Only the top-level
//! box headers and the `moov` box are read, wherever `moov` is in the file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Largest `moov` box read (a two-hour film's index is a few MB).
const MAX_MOOV_BYTES: u64 = 64 << 20;

/// One entry of an edit list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit {
    /// In movie time scale units.
    pub segment_duration: u64,
    /// In media time scale units; -1 is an empty edit (a gap).
    pub media_time: i64,
    /// Playback rate, 16.16 fixed point (0x10000 is normal speed).
    pub media_rate: i32,
}

/// The edit lists of the first video and first audio track.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EditLists {
    /// The first video track's, empty when it has none.
    pub video: Vec<Edit>,
    /// The first audio track's, empty when it has none.
    pub audio: Vec<Edit>,
}

/// Whether an edit list is one Mux calls simple: none at all, or one entry at
/// normal speed, optionally after one empty edit that offsets the start.
pub fn is_simple(edits: &[Edit]) -> bool {
    let rest = match edits.split_first() {
        Some((first, rest)) if first.media_time == -1 => rest,
        _ => edits,
    };
    match rest {
        [] => edits.is_empty(),
        [only] => only.media_time >= 0 && only.media_rate == 0x10000,
        _ => false,
    }
}

/// A top-level box of a file: its type, where it starts, the length of its
/// header (8, or 16 with a 64-bit size) and its whole size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopBox {
    pub kind: [u8; 4],
    pub at: u64,
    pub header: u64,
    pub size: u64,
}

/// The top-level boxes of an open MP4/MOV file, in order, read header by
/// header. The walk ends with an `Err` at the first header that does not fit
/// the file, or at trailing bytes too few for a header.
pub(crate) fn top_level_boxes(
    file: &mut File,
) -> impl Iterator<Item = Result<TopBox, String>> + '_ {
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut at = 0u64;
    let mut ended = false;
    std::iter::from_fn(move || {
        if ended || at >= length {
            return None;
        }
        let next = read_top_box(file, at, length);
        match &next {
            // Every offset is checked: a crafted 64-bit box size must end
            // the walk, not wrap it back to the start of the file.
            Ok(b) => at = at.saturating_add(b.size),
            Err(_) => ended = true,
        }
        Some(next)
    })
}

fn read_top_box(file: &mut File, at: u64, length: u64) -> Result<TopBox, String> {
    if length - at < 8 {
        return Err("trailing bytes after the last box".into());
    }
    let io = |e: std::io::Error| format!("I/O error: {e}");
    file.seek(SeekFrom::Start(at)).map_err(io)?;
    let mut header = [0u8; 16];
    file.read_exact(&mut header[..8]).map_err(io)?;
    let mut size = u64::from(u32::from_be_bytes(header[..4].try_into().unwrap()));
    let kind: [u8; 4] = header[4..8].try_into().unwrap();
    let mut header_len = 8;
    if size == 1 {
        file.read_exact(&mut header[8..16]).map_err(io)?;
        size = u64::from_be_bytes(header[8..16].try_into().unwrap());
        header_len = 16;
    } else if size == 0 {
        size = length - at;
    }
    if size < header_len || size > length - at {
        return Err(format!(
            "the {} box's size does not fit the file",
            String::from_utf8_lossy(&kind)
        ));
    }
    Ok(TopBox {
        kind,
        at,
        header: header_len,
        size,
    })
}

/// Where the top-level `moov` box of an open MP4/MOV file lies: its offset,
/// header length and total size. `None` when there is none, or the box
/// headers before it do not add up.
fn find_moov(file: &mut File) -> Option<(u64, u64, u64)> {
    top_level_boxes(file)
        .map_while(Result::ok)
        .find(|b| &b.kind == b"moov")
        .map(|b| (b.at, b.header, b.size))
}

/// The size in bytes of the `moov` box (the index) of the MP4/MOV file at
/// `path`: what a remux of it needs for its own index, give or take.
pub fn moov_size(path: &Path) -> Option<u64> {
    let mut file = File::open(path).ok()?;
    find_moov(&mut file).map(|(_, _, size)| size)
}

/// The open file at `path` and the body of its `moov` box; `None` when it
/// is not an MP4/MOV file or its `moov` box cannot be read.
pub(super) fn read_moov(path: &Path) -> Option<(File, Vec<u8>)> {
    let mut file = File::open(path).ok()?;
    let (at, header_len, size) = find_moov(&mut file)?;
    let body = size - header_len;
    if body > MAX_MOOV_BYTES {
        return None;
    }
    file.seek(SeekFrom::Start(at + header_len)).ok()?;
    let mut moov = vec![0u8; body as usize];
    file.read_exact(&mut moov).ok()?;
    Some((file, moov))
}

/// Reads the edit lists of the file at `path`; `None` when it is not an
/// MP4/MOV file or its `moov` box cannot be read.
pub fn read_edit_lists(path: &Path) -> Option<EditLists> {
    read_moov(path).map(|(_, moov)| edit_lists_in_moov(&moov))
}

/// Child boxes of a box body: (type, body). The walk stops at the first
/// header that does not fit (see [`boxes_add_up`]).
pub(crate) fn boxes(mut data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 8 {
            return None;
        }
        let size = u32::from_be_bytes(data[..4].try_into().ok()?) as usize;
        let kind: [u8; 4] = data[4..8].try_into().ok()?;
        let (header, size) = match size {
            1 if data.len() >= 16 => (
                16,
                usize::try_from(u64::from_be_bytes(data[8..16].try_into().ok()?)).ok()?,
            ),
            0 => (8, data.len()),
            n => (8, n),
        };
        if size < header || size > data.len() {
            return None;
        }
        let body = &data[header..size];
        data = &data[size..];
        Some((kind, body))
    })
}

pub(crate) fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|(k, _)| k == kind).map(|(_, body)| body)
}

/// Whether `children`, as [`boxes`] walked them out of `data`, are all of
/// it: the last one ends where `data` ends.
pub(crate) fn boxes_add_up(data: &[u8], children: &[([u8; 4], &[u8])]) -> bool {
    match children.last() {
        Some((_, body)) => body.as_ptr_range().end == data.as_ptr_range().end,
        None => data.is_empty(),
    }
}

/// A track's handler type (`vide`, `soun`, …) from its `mdia/hdlr`.
pub(crate) fn handler(trak: &[u8]) -> Option<[u8; 4]> {
    let hdlr = child(child(trak, b"mdia")?, b"hdlr")?;
    hdlr.get(8..12)?.try_into().ok()
}

pub(super) fn edit_lists_in_moov(moov: &[u8]) -> EditLists {
    let mut lists = EditLists::default();
    let (mut seen_video, mut seen_audio) = (false, false);
    for (kind, trak) in boxes(moov) {
        if &kind != b"trak" {
            continue;
        }
        let handler = child(trak, b"mdia")
            .and_then(|mdia| child(mdia, b"hdlr"))
            .and_then(|hdlr| hdlr.get(8..12));
        let edits = child(trak, b"edts")
            .and_then(|edts| child(edts, b"elst"))
            .map(parse_elst)
            .unwrap_or_default();
        match handler {
            Some(b"vide") if !seen_video => {
                seen_video = true;
                lists.video = edits;
            }
            Some(b"soun") if !seen_audio => {
                seen_audio = true;
                lists.audio = edits;
            }
            _ => {}
        }
    }
    lists
}

fn parse_elst(body: &[u8]) -> Vec<Edit> {
    let Some(&version) = body.first() else {
        return Vec::new();
    };
    let Some(count) = body
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
    else {
        return Vec::new();
    };
    let entry_len = if version == 1 { 20 } else { 12 };
    let mut edits = Vec::new();
    for i in 0..count as usize {
        let Some(entry) = body.get(8 + i * entry_len..8 + (i + 1) * entry_len) else {
            break;
        };
        let be32 = |b: &[u8]| u32::from_be_bytes(b.try_into().expect("4 bytes"));
        let be64 = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("8 bytes"));
        let (segment_duration, media_time, rate) = if version == 1 {
            (
                be64(&entry[..8]),
                be64(&entry[8..16]) as i64,
                &entry[16..20],
            )
        } else {
            (
                u64::from(be32(&entry[..4])),
                i64::from(be32(&entry[4..8]) as i32),
                &entry[8..12],
            )
        };
        edits.push(Edit {
            segment_duration,
            media_time,
            media_rate: be32(rate) as i32,
        });
    }
    edits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn elst(entries: &[(u32, i32)]) -> Vec<u8> {
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for (duration, media_time) in entries {
            body.extend_from_slice(&duration.to_be_bytes());
            body.extend_from_slice(&media_time.to_be_bytes());
            body.extend_from_slice(&0x10000u32.to_be_bytes());
        }
        mp4_box(b"elst", &body)
    }

    fn trak(handler: &[u8; 4], elst: Option<Vec<u8>>) -> Vec<u8> {
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0u8; 13]);
        let mut body = Vec::new();
        if let Some(elst) = elst {
            body.extend(mp4_box(b"edts", &elst));
        }
        body.extend(mp4_box(b"mdia", &mp4_box(b"hdlr", &hdlr)));
        mp4_box(b"trak", &body)
    }

    #[test]
    fn reads_edit_lists_per_track_kind_from_a_file() {
        let mut moov = Vec::new();
        moov.extend(trak(
            b"vide",
            Some(elst(&[(1000, -1), (5000, 0), (2000, 9000)])),
        ));
        moov.extend(trak(b"soun", Some(elst(&[(7000, 1024)]))));
        moov.extend(trak(b"vide", None));
        let mut file = mp4_box(b"ftyp", b"isom\0\0\0\0");
        file.extend(mp4_box(b"mdat", &[0u8; 100]));
        file.extend(mp4_box(b"moov", &moov));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("edits.mp4");
        std::fs::write(&path, file).expect("write");

        let lists = read_edit_lists(&path).expect("an MP4");
        assert_eq!(lists.video.len(), 3);
        assert_eq!(lists.video[0].media_time, -1);
        assert_eq!(lists.video[2].media_time, 9000);
        assert_eq!(
            lists.audio,
            vec![Edit {
                segment_duration: 7000,
                media_time: 1024,
                media_rate: 0x10000
            }]
        );
        assert!(!is_simple(&lists.video));
        assert!(is_simple(&lists.audio));
    }

    #[test]
    fn simple_edit_lists() {
        let edit = |media_time, media_rate| Edit {
            segment_duration: 100,
            media_time,
            media_rate,
        };
        assert!(is_simple(&[]));
        assert!(is_simple(&[edit(0, 0x10000)]));
        assert!(is_simple(&[edit(-1, 0x10000), edit(2048, 0x10000)]));
        assert!(!is_simple(&[edit(0, 0x20000)]));
        assert!(!is_simple(&[edit(0, 0x10000), edit(500, 0x10000)]));
        assert!(!is_simple(&[edit(-1, 0x10000), edit(-1, 0x10000)]));
        assert!(!is_simple(&[edit(-1, 0x10000)]));
    }

    #[test]
    fn not_an_mp4() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("text.mp4");
        std::fs::write(&path, b"hello, this is not a movie at all").expect("write");
        assert!(read_edit_lists(&path).is_none());
    }

    #[test]
    fn box_sizes_past_the_end_or_wrapping_end_the_walk() {
        let dir = tempfile::tempdir().unwrap();
        let moov = mp4_box(b"moov", &[]);
        for size in [u64::MAX - 7, u64::MAX, 1 << 40] {
            // A 64-bit-size box claiming more than the file, then a moov.
            let mut file = 1u32.to_be_bytes().to_vec();
            file.extend_from_slice(b"free");
            file.extend_from_slice(&size.to_be_bytes());
            file.extend_from_slice(&moov);
            let path = dir.path().join("bad.mp4");
            std::fs::write(&path, &file).unwrap();
            assert!(read_edit_lists(&path).is_none(), "size {size}");
        }
    }
}
