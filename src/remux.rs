//! The fast path's remux at disk speed: a standard MP4 keeps its own index
//! (`moov`), rewritten to sit before the media data, and its media data is
//! copied as it is by the kernel (`copy_file_range`), without a demuxer,
//! a muxer or a byte of it passing through reeld.
//!
//! The output is `ftyp`, the new `moov`, then one `mdat` holding the
//! source's media data unchanged; only the chunk offsets (`stco`/`co64`)
//! move, by the same amount for every chunk. Every sample, its timing, the
//! edit lists and the codec configuration stay byte for byte what they
//! were, so the decoded pictures are the source's. Metadata boxes (`udta`,
//! `meta`: names, places, cover art) are left out, as the GStreamer remux
//! leaves them out.
//!
//! Anything this module does not vouch for answers [`Refused`] with the
//! reason, before the output is touched, and the caller runs the GStreamer
//! remux instead: a QuickTime-branded file, a fragmented one, more than one
//! `mdat`, tracks besides one video and one audio, samples outside the
//! media data, encrypted or non-H.264/AAC sample entries, offsets that
//! would no longer fit their table.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::inspect::mp4::{TopBox, boxes, boxes_add_up, handler, top_level_boxes};

/// Largest `moov` box rewritten (a two-hour film's index is a few MB).
const MAX_MOOV_BYTES: u64 = 64 << 20;

/// Brands of ISO base media files this module writes like (`qt  ` is not).
const ISO_BRANDS: &[&[u8; 4]] = &[
    b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"M4A ",
    b"dash",
];

/// Why a source was not remuxed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused(why.into()))
}

impl From<std::io::Error> for Refused {
    fn from(e: std::io::Error) -> Refused {
        Refused(format!("I/O error: {e}"))
    }
}

/// Which of the source's tracks the output keeps.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// The video track (there must be exactly one).
    pub video: bool,
    /// The audio track (there must be at most one; required when kept).
    pub audio: bool,
}

/// A top-level box: where it starts, its header's length and its size.
#[derive(Debug, Clone, Copy)]
struct Span {
    at: u64,
    header: u64,
    size: u64,
}

/// Writes `dest` from `source`: the index first, the media data copied.
/// On `Err` nothing usable is left at `dest` (it is removed if it was
/// begun), and the caller remuxes the usual way.
pub fn remux(source: &Path, dest: &Path, keep: Keep) -> Result<(), Refused> {
    let mut file = File::open(source)?;
    let (ftyp, moov, mdat) = top_level(&mut file)?;
    check_brands(&ftyp)?;
    if moov.size - moov.header > MAX_MOOV_BYTES {
        return refuse("the index is larger than 64 MiB");
    }
    let mut body = vec![0u8; (moov.size - moov.header) as usize];
    file.seek(SeekFrom::Start(moov.at + moov.header))?;
    file.read_exact(&mut body)?;

    let payload_start = mdat.at + mdat.header;
    let payload_len = mdat.size - mdat.header;
    let media = payload_start..payload_start + payload_len;
    // The index's size does not depend on the offsets in it: lay it out
    // once to learn where the media data will start, then for real.
    let sized = rewrite_moov(&body, keep, 0, &media)?;
    let ftyp_box = ftyp_box();
    let moov_len = 8 + sized.len() as u64;
    if moov_len > u64::from(u32::MAX) {
        return refuse("the index does not fit a 32-bit box");
    }
    let mdat_header: u64 = if payload_len + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    let new_start = ftyp_box.len() as u64 + moov_len + mdat_header;
    let delta = new_start as i64 - payload_start as i64;
    let moov_body = rewrite_moov(&body, keep, delta, &media)?;
    debug_assert_eq!(moov_body.len(), sized.len());

    let result = write(
        &mut file,
        dest,
        &ftyp_box,
        &moov_body,
        mdat_header,
        payload_start,
        payload_len,
    );
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

fn write(
    source: &mut File,
    dest: &Path,
    ftyp: &[u8],
    moov_body: &[u8],
    mdat_header: u64,
    payload_start: u64,
    payload_len: u64,
) -> Result<(), Refused> {
    let mut out = File::create(dest)?;
    let mut head = Vec::with_capacity(ftyp.len() + moov_body.len() + 24);
    head.extend_from_slice(ftyp);
    push_box(&mut head, b"moov", moov_body);
    if mdat_header == 16 {
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(b"mdat");
        head.extend_from_slice(&(payload_len + 16).to_be_bytes());
    } else {
        head.extend_from_slice(&((payload_len + 8) as u32).to_be_bytes());
        head.extend_from_slice(b"mdat");
    }
    out.write_all(&head)?;
    source.seek(SeekFrom::Start(payload_start))?;
    // File to file: the standard library hands this to copy_file_range, so
    // the media data is copied inside the kernel (or shared, on file
    // systems that can).
    let copied = std::io::copy(&mut source.take(payload_len), &mut out)?;
    if copied != payload_len {
        return refuse(format!(
            "the media data ended after {copied} of {payload_len} bytes"
        ));
    }
    Ok(())
}

/// The `ftyp`, `moov` and `mdat` boxes of the file, refusing files with
/// more than one `mdat`, fragments, or box sizes that do not add up.
fn top_level(file: &mut File) -> Result<(Vec<u8>, Span, Span), Refused> {
    let (mut ftyp, mut moov, mut mdat) = (None, None, None);
    let boxes: Vec<TopBox> = top_level_boxes(file)
        .collect::<Result<_, _>>()
        .map_err(Refused)?;
    for b in boxes {
        let span = Span {
            at: b.at,
            header: b.header,
            size: b.size,
        };
        match &b.kind {
            b"ftyp" if ftyp.is_none() => {
                let mut body = vec![0u8; (b.size - b.header).min(4096) as usize];
                file.seek(SeekFrom::Start(b.at + b.header))?;
                file.read_exact(&mut body)?;
                ftyp = Some(body);
            }
            b"moov" if moov.is_none() => moov = Some(span),
            b"mdat" if mdat.is_none() => mdat = Some(span),
            b"mdat" => return refuse("more than one mdat box"),
            b"moof" | b"sidx" | b"mfra" => return refuse("a fragmented file"),
            b"free" | b"skip" | b"wide" | b"uuid" | b"pdin" => {}
            kind => {
                return refuse(format!("a top-level {} box", String::from_utf8_lossy(kind)));
            }
        }
    }
    match (ftyp, moov, mdat) {
        (Some(f), Some(m), Some(d)) => Ok((f, m, d)),
        _ => refuse("no ftyp, moov or mdat box"),
    }
}

fn check_brands(ftyp: &[u8]) -> Result<(), Refused> {
    let major = ftyp.get(..4).unwrap_or_default();
    if major == b"qt  " {
        return refuse("a QuickTime file");
    }
    let brands = std::iter::once(major).chain(ftyp.get(8..).unwrap_or_default().chunks(4));
    if !brands
        .into_iter()
        .any(|b| ISO_BRANDS.iter().any(|iso| b == *iso))
    {
        return refuse("no ISO base media brand");
    }
    Ok(())
}

/// The `ftyp` box every output starts with.
fn ftyp_box() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(b"isom");
    body.extend_from_slice(&0x200u32.to_be_bytes());
    for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
        body.extend_from_slice(brand);
    }
    let mut out = Vec::new();
    push_box(&mut out, b"ftyp", &body);
    out
}

fn push_box(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(&((body.len() + 8) as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
}

/// Every child of `body`, or a refusal if the boxes do not add up.
fn all_children<'a>(body: &'a [u8], what: &str) -> Result<Vec<Child<'a>>, Refused> {
    let children: Vec<Child<'a>> = boxes(body).collect();
    if !boxes_add_up(body, &children) {
        return refuse(format!("the boxes inside {what} do not add up"));
    }
    Ok(children)
}

/// A child box: its type and body.
type Child<'a> = ([u8; 4], &'a [u8]);

/// The new `moov` body: the kept tracks with their chunk offsets moved by
/// `delta`, every offset checked to lie in `media` first.
fn rewrite_moov(
    moov: &[u8],
    keep: Keep,
    delta: i64,
    media: &std::ops::Range<u64>,
) -> Result<Vec<u8>, Refused> {
    let boxes = all_children(moov, "moov")?;
    let traks: Vec<_> = boxes.iter().filter(|(k, _)| k == b"trak").collect();
    let count = |h: &[u8; 4]| traks.iter().filter(|(_, t)| handler(t) == Some(*h)).count();
    let (videos, audios) = (count(b"vide"), count(b"soun"));
    if videos + audios != traks.len() {
        return refuse("a track that is neither video nor audio");
    }
    if videos > 1 || audios > 1 {
        return refuse("more than one video or audio track");
    }
    if keep.video != (videos == 1) || (keep.audio && audios == 0) {
        return refuse("the tracks are not the ones the plan copies");
    }
    let dropping_audio = audios == 1 && !keep.audio;
    let mut out = Vec::with_capacity(moov.len());
    for (kind, body) in &boxes {
        match kind {
            b"mvex" => return refuse("a fragmented file"),
            b"udta" | b"meta" | b"free" | b"skip" => {}
            b"trak" => {
                let keep_this = match handler(body) {
                    Some(h) if &h == b"vide" => true,
                    _ => !dropping_audio,
                };
                if keep_this {
                    let trak = rewrite_container(body, delta, media, dropping_audio)?;
                    push_box(&mut out, b"trak", &trak);
                }
            }
            _ => push_box(&mut out, kind, body),
        }
    }
    Ok(out)
}

/// A `trak`, `mdia`, `minf` or `stbl` body with what lies below rewritten.
fn rewrite_container(
    body: &[u8],
    delta: i64,
    media: &std::ops::Range<u64>,
    drop_references: bool,
) -> Result<Vec<u8>, Refused> {
    let mut out = Vec::with_capacity(body.len());
    for (kind, inner) in all_children(body, "a track")? {
        match &kind {
            b"mdia" | b"minf" | b"stbl" => {
                let rewritten = rewrite_container(inner, delta, media, drop_references)?;
                push_box(&mut out, &kind, &rewritten);
            }
            b"stsd" => {
                check_sample_entry(inner)?;
                push_box(&mut out, &kind, inner);
            }
            b"stco" => push_box(&mut out, &kind, &move_offsets(inner, 4, delta, media)?),
            b"co64" => push_box(&mut out, &kind, &move_offsets(inner, 8, delta, media)?),
            // Absolute offsets of sample auxiliary data (encryption).
            b"saio" => return refuse("sample auxiliary data (an encrypted file)"),
            b"udta" | b"meta" => {}
            b"tref" if drop_references => {}
            _ => push_box(&mut out, &kind, inner),
        }
    }
    Ok(out)
}

/// The one sample entry must be H.264 or AAC, not encrypted.
fn check_sample_entry(stsd: &[u8]) -> Result<(), Refused> {
    let count = stsd
        .get(4..8)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()));
    if count != Some(1) {
        return refuse("a track with other than one sample description");
    }
    match stsd.get(12..16) {
        Some(b"avc1" | b"avc3" | b"mp4a") => Ok(()),
        Some(other) => refuse(format!(
            "a {} sample description",
            String::from_utf8_lossy(other)
        )),
        None => refuse("an empty sample description"),
    }
}

/// An `stco` (`width` 4) or `co64` (8) body with every offset moved by
/// `delta`.
fn move_offsets(
    body: &[u8],
    width: usize,
    delta: i64,
    media: &std::ops::Range<u64>,
) -> Result<Vec<u8>, Refused> {
    let count = body
        .get(4..8)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()) as usize)
        .unwrap_or(usize::MAX);
    let table = body.get(8..).unwrap_or_default();
    if count == usize::MAX || table.len() / width < count {
        return refuse("a chunk offset table shorter than its count");
    }
    let mut out = Vec::with_capacity(8 + count * width);
    out.extend_from_slice(&body[..8]);
    for entry in table[..count * width].chunks_exact(width) {
        let old = if width == 4 {
            u64::from(u32::from_be_bytes(entry.try_into().unwrap()))
        } else {
            u64::from_be_bytes(entry.try_into().unwrap())
        };
        if !media.contains(&old) {
            return refuse("a chunk outside the media data");
        }
        let new = old.checked_add_signed(delta).unwrap_or(u64::MAX);
        if width == 4 {
            let Ok(new) = u32::try_from(new) else {
                return refuse("a chunk offset that no longer fits 32 bits");
            };
            out.extend_from_slice(&new.to_be_bytes());
        } else {
            out.extend_from_slice(&new.to_be_bytes());
        }
    }
    // Whatever followed the table (nothing, in a sound file) is kept.
    out.extend_from_slice(&table[count * width..]);
    Ok(out)
}

#[cfg(test)]
mod tests;
