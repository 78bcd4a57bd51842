//! A bounded fuzz run over the probe → inspect path: real files (MP4 with
//! its index at the end and with faststart, Matroska, M4A) mutated the ways
//! broken files are broken (flipped bytes, cut short, box sizes of 0, 1, huge,
//! past the end or wrapping the offset, zeroed ranges, a repeated range), each probed and
//! inspected as a job would. Every input must end, within a time bound, as a
//! result or an error: no panic, no hang (a probe that stalls ends at
//! Discoverer's 60 s limit, as an error). A crash in GStreamer ends the test
//! process, which fails the run too.
//!
//! `REELD_FUZZ_CASES` sets the number of mutants through GStreamer (default
//! 32; the MP4 box walk alone gets 50 times as many) and `REELD_FUZZ_SEED`
//! replays a run; the seed is printed first.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::rng::{Rng, seed_from, setting};
use common::*;

/// The probe's own limit (60 s, after which Discoverer gives up with an
/// error) plus a margin: a mutant that takes longer is stuck.
const BOUND: Duration = Duration::from_secs(90);

/// Offsets of box headers (size + type) found by walking from the start and
/// into the usual containers, so that mutations hit sizes, not just payload.
fn box_offsets(data: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut stack = vec![(0usize, data.len())];
    while let Some((mut at, end)) = stack.pop() {
        while at + 8 <= end {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            let kind = &data[at + 4..at + 8];
            found.push(at);
            if size < 8 || at + size > end {
                break;
            }
            if matches!(
                kind,
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts"
            ) {
                stack.push((at + 8, at + size));
            }
            at += size;
        }
    }
    found
}

/// Offsets of the top-level boxes after the first.
fn top_level_offsets(data: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if at > 0 {
            found.push(at);
        }
        if size < 8 {
            break;
        }
        at += size;
    }
    found
}

/// One mutant of `data`.
fn mutate(data: &[u8], boxes: &[usize], rng: &mut Rng) -> (String, Vec<u8>) {
    let mut out = data.to_vec();
    let len = out.len();
    let top = top_level_offsets(data);
    match rng.below(7) {
        6 if !top.is_empty() => {
            // A 64-bit size that wraps the walk's offset back into the file:
            // unchecked, it loops for ever (release) or panics (debug).
            let at = top[rng.below(top.len())];
            let back = rng.below(at) as u64;
            let size = 0u64.wrapping_sub(at as u64).wrapping_add(back);
            out[at..at + 4].copy_from_slice(&1u32.to_be_bytes());
            out.splice(at + 8..at + 8, size.to_be_bytes());
            (
                format!("box at {at} with a 64-bit size wrapping to {back}"),
                out,
            )
        }
        0 => {
            let n = 1 + rng.below(16);
            for _ in 0..n {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            (format!("{n} flipped bits"), out)
        }
        1 => {
            let at = rng.below(len);
            out.truncate(at);
            (format!("cut at {at}"), out)
        }
        2 if !boxes.is_empty() => {
            let at = boxes[rng.below(boxes.len())];
            let size: u32 = match rng.below(5) {
                0 => 0,
                1 => 1, // a 64-bit size follows
                2 => u32::MAX,
                3 => (len - at + 1 + rng.below(1 << 20)) as u32,
                _ => rng.next() as u32,
            };
            out[at..at + 4].copy_from_slice(&size.to_be_bytes());
            if size == 1 && at + 16 <= len {
                out[at + 8..at + 16].copy_from_slice(&rng.next().to_be_bytes());
            }
            (format!("box at {at} sized {size}"), out)
        }
        3 => {
            let at = rng.below(len);
            let n = rng.below(4096).min(len - at);
            out[at..at + n].fill(0);
            (format!("{n} bytes zeroed at {at}"), out)
        }
        4 => {
            let at = rng.below(len);
            let n = rng.below(8192).min(len - at);
            let copy = out[at..at + n].to_vec();
            let to = rng.below(len);
            out.splice(to..to, copy);
            (format!("{n} bytes from {at} repeated at {to}"), out)
        }
        _ => {
            let at = rng.below(len);
            let n = 1 + rng.below(64).min(len - at - 1);
            for b in &mut out[at..at + n] {
                *b = rng.next() as u8;
            }
            (format!("{n} random bytes at {at}"), out)
        }
    }
}

/// Runs `f` on `input` on its own thread; panics if it panics or outlives
/// `BOUND`, keeping a copy of the input under the temp folder to look at.
fn bounded<T: Send + 'static>(
    what: &str,
    input: &Path,
    f: impl FnOnce(&Path) -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let path = input.to_owned();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&path)));
        let _ = tx.send(result);
    });
    let failure = match rx.recv_timeout(BOUND) {
        Ok(Ok(v)) => return v,
        Ok(Err(_)) => "panicked".to_owned(),
        Err(_) => format!("still running after {BOUND:?}"),
    };
    let kept = std::env::temp_dir().join(format!(
        "reeld-fuzz-failure-{}",
        input.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::copy(input, &kept);
    panic!(
        "{what}: {failure} (the input is kept at {})",
        kept.display()
    );
}

fn seeds(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let clip = dir.join("clip.mp4");
    make_clip(&clip, ClipSpec::av(320, 240, 2));
    let mkv = to_matroska(&clip);
    let faststart = dir.join("faststart.mp4");
    gst_launch(&format!(
        "videotestsrc num-buffers=50 ! video/x-raw,width=320,height=240,framerate=25/1 ! \
         x264enc key-int-max=25 ! h264parse ! mp4mux faststart=true ! filesink location={}",
        faststart.display()
    ));
    let m4a = dir.join("audio.m4a");
    gst_launch(&format!(
        "audiotestsrc num-buffers=100 ! audioconvert ! avenc_aac ! aacparse ! mp4mux ! filesink location={}",
        m4a.display()
    ));
    [clip, mkv, faststart, m4a]
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn mutated_files_end_as_a_result_or_an_error_in_bounded_time() {
    let cases: usize = setting("REELD_FUZZ_CASES", 32);
    let seed = seed_from("REELD_FUZZ_SEED");
    eprintln!("fuzz seed: {seed} (REELD_FUZZ_SEED={seed} replays it), {cases} cases");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let seeds = seeds(dir.path());
    // The harness reaches the real path: every unmutated seed probes.
    for (name, data) in &seeds {
        let path = dir.path().join(format!("seed-{name}"));
        std::fs::write(&path, data).unwrap();
        let info = reeld::probe::probe_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(info.duration.unwrap_or(0.0) > 1.0, "{name}: {info:?}");
    }

    // The MP4 box walk alone: pure Rust, so many mutants are cheap.
    for i in 0..cases * 50 {
        let (name, data) = &seeds[i % seeds.len()];
        let boxes = box_offsets(data);
        let (how, mutant) = mutate(data, &boxes, &mut rng);
        let path = dir.path().join(format!("walk-{i}.mp4"));
        std::fs::write(&path, &mutant).unwrap();
        bounded(&format!("edit-list walk of {name}, {how}"), &path, |p| {
            reeld::inspect::mp4::read_edit_lists(p)
        });
        std::fs::remove_file(&path).unwrap();
    }

    // Probe, then inspect, as a transcode job does.
    let (mut probed, mut refused) = (0, 0);
    for i in 0..cases {
        let (name, data) = &seeds[i % seeds.len()];
        let boxes = box_offsets(data);
        let (how, mutant) = mutate(data, &boxes, &mut rng);
        let path = dir.path().join(format!("{seed}-case-{i}-{name}"));
        std::fs::write(&path, &mutant).unwrap();
        let ok = bounded(&format!("probe of {name}, {how}"), &path, |p| {
            reeld::probe::probe_file(p).is_ok()
        });
        if ok {
            bounded(&format!("inspection of {name}, {how}"), &path, |p| {
                reeld::inspect::inspect(p).is_ok()
            });
        }
        if ok {
            probed += 1;
        } else {
            refused += 1;
        }
        std::fs::remove_file(&path).unwrap();
    }
    eprintln!(
        "{} box-walk mutants; {cases} probe and inspect mutants: {probed} probed, {refused} refused",
        cases * 50
    );
}
