use std::path::Path;
use std::process::Command;

use super::*;
use crate::test_media::ffmpeg;

const AV: &str = "-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=440 \
                  -t 3 -c:v libx264 -preset ultrafast -bf 2 -g 30 -pix_fmt yuv420p -c:a aac -shortest";
const BOTH: Keep = Keep {
    video: true,
    audio: true,
};

/// ffmpeg's framemd5 of every packet of `path`, copied (not decoded): the
/// streams' bytes and timestamps, one line per packet.
fn packets(path: &Path, map: &str) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", map, "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// ffmpeg's framemd5 of every decoded picture.
fn pictures(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn top_level(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let mut kinds = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let mut size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if size == 1 {
            size = u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap()) as usize;
        }
        kinds.push(String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned());
        assert!(size >= 8, "{kinds:?}");
        at += size;
    }
    assert_eq!(at, data.len(), "{kinds:?}");
    kinds
}

#[test]
fn the_index_moves_to_the_front_and_every_packet_stays_the_same() {
    let dir = tempfile::tempdir().unwrap();
    // ffmpeg's default: the index after the media data.
    let source = dir.path().join("late-index.mp4");
    ffmpeg(&source, &format!("{AV} -metadata title=private"));
    assert_eq!(top_level(&source).last().map(String::as_str), Some("moov"));
    let out = dir.path().join("master.mp4");
    remux(&source, &out, BOTH).unwrap();
    assert_eq!(top_level(&out), ["ftyp", "moov", "mdat"]);
    assert_eq!(packets(&out, "0"), packets(&source, "0"));
    assert_eq!(pictures(&out), pictures(&source));
    // The metadata is left behind, the media data is not grown.
    let text = std::fs::read(&out).unwrap();
    assert!(!text.windows(7).any(|w| w == b"private"));
    let (src_len, out_len) = (
        std::fs::metadata(&source).unwrap().len(),
        std::fs::metadata(&out).unwrap().len(),
    );
    assert!(out_len <= src_len, "{out_len} > {src_len}");
    // GStreamer reads it as the same media.
    let a = crate::probe::probe_file(&source).unwrap();
    let b = crate::probe::probe_file(&out).unwrap();
    assert_eq!(a.video[0].width, b.video[0].width);
    assert!((a.duration.unwrap() - b.duration.unwrap()).abs() < 0.01);

    // An index already in front moves too (its offsets go down).
    let early = dir.path().join("early-index.mp4");
    ffmpeg(&early, &format!("{AV} -movflags +faststart"));
    let again = dir.path().join("again.mp4");
    remux(&early, &again, BOTH).unwrap();
    assert_eq!(packets(&again, "0"), packets(&early, "0"));
}

#[test]
fn an_audio_track_the_plan_drops_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("av.mp4");
    ffmpeg(&source, AV);
    let out = dir.path().join("video-only.mp4");
    remux(
        &source,
        &out,
        Keep {
            video: true,
            audio: false,
        },
    )
    .unwrap();
    let info = crate::probe::probe_file(&out).unwrap();
    assert_eq!((info.video.len(), info.audio.len()), (1, 0));
    assert_eq!(packets(&out, "0:v"), packets(&source, "0:v"));
    // Audio only, as an M4A is.
    let m4a = dir.path().join("a.m4a");
    ffmpeg(&m4a, "-f lavfi -i sine=frequency=440 -t 2 -c:a aac");
    let out = dir.path().join("audio.mp4");
    remux(
        &m4a,
        &out,
        Keep {
            video: false,
            audio: true,
        },
    )
    .unwrap();
    assert_eq!(packets(&out, "0"), packets(&m4a, "0"));
}

#[test]
fn what_it_cannot_vouch_for_is_refused_and_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let refused = |source: &Path, keep: Keep, reason: &str| {
        let why = remux(source, &out, keep).unwrap_err();
        assert!(why.0.contains(reason), "{}: {why:?}", source.display());
        assert!(!out.exists());
    };
    let mov = dir.path().join("clip.mov");
    ffmpeg(&mov, AV);
    refused(&mov, BOTH, "QuickTime");
    let fragmented = dir.path().join("frag.mp4");
    ffmpeg(
        &fragmented,
        &format!("{AV} -movflags frag_keyframe+empty_moov"),
    );
    refused(&fragmented, BOTH, "fragmented");
    let two_audio = dir.path().join("two.mp4");
    ffmpeg(
        &two_audio,
        "-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine -f lavfi -i sine=frequency=880 \
         -t 2 -map 0 -map 1 -map 2 -c:v libx264 -preset ultrafast -c:a aac -shortest",
    );
    refused(&two_audio, BOTH, "more than one");
    let hevc = dir.path().join("hevc.mp4");
    ffmpeg(
        &hevc,
        "-f lavfi -i testsrc2=size=320x240:rate=30 -t 1 -c:v libx265 -preset ultrafast -x265-params log-level=none",
    );
    refused(
        &hevc,
        Keep {
            video: true,
            audio: false,
        },
        "hev1",
    );
    let source = dir.path().join("ok.mp4");
    ffmpeg(&source, AV);
    refused(
        &source,
        Keep {
            video: false,
            audio: true,
        },
        "not the ones",
    );
    // Cut short inside the media data (the index is at the end, so it is
    // lost too): refused, not copied half.
    let data = std::fs::read(&source).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    refused(&cut, BOTH, "");
    // The index names chunks past the media data.
    let early = dir.path().join("early.mp4");
    ffmpeg(&early, &format!("{AV} -movflags +faststart"));
    let data = std::fs::read(&early).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &data[..data.len() - 4096]).unwrap();
    refused(&truncated, BOTH, "");
}
