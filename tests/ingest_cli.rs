//! `reeld ingest FILE`: the whole job (probe, plan, pipeline, store, SQLite)
//! in one process, against real GStreamer, a real SQLite file and the local
//! object store. Outputs are checked with ffprobe.

mod common;

use common::*;
use serde_json::Value;

fn ingest(env: &TestEnv, file: &std::path::Path) -> (bool, Value, String) {
    env.ingest(file, None)
}

#[test]
fn a_1080p_source_becomes_a_ready_master_with_mux_fields() {
    let env = TestEnv::new(&[]);
    let src = env.dir.path().join("in1080.mp4");
    make_clip(&src, ClipSpec::av(1920, 1080, 2));
    let (ok, asset, err) = ingest(&env, &src);
    assert!(ok, "{err}");
    assert_eq!(asset["status"], "ready");
    assert_eq!(asset["resolution_tier"], "1080p");
    assert_eq!(asset["max_resolution_tier"], "1080p");
    assert_eq!(asset["aspect_ratio"], "16:9");
    assert_eq!(asset["max_stored_frame_rate"], 30.0);
    assert!(asset["created_at"].is_string(), "created_at is a string");
    assert!(asset["duration"].is_number());
    assert_eq!(asset["progress"]["state"], "completed");
    assert_eq!(asset["tracks"][0]["type"], "video");
    assert_eq!(asset["tracks"][0]["max_width"], 1920);
    assert_eq!(asset["tracks"][1]["type"], "audio");
    assert_eq!(asset["tracks"][1]["primary"], true);
    let source_duration = duration_of(&ffprobe(&src));
    assert_master(
        &env.master_path(asset["id"].as_str().unwrap()),
        1920,
        1080,
        true,
        source_duration,
    );
    // The CLI never touches the user's file.
    assert!(src.exists());
    // `assets get` serves the same object.
    let out = env.reeld(&["assets", "get", asset["id"].as_str().unwrap()]);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["data"], asset);
}

#[test]
fn a_2160p_source_is_capped_by_the_tier() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("in2160.mp4");
    make_clip(&src, ClipSpec::av(3840, 2160, 1));
    let source_duration = duration_of(&ffprobe(&src));

    let env = TestEnv::new(&[]);
    let (ok, asset, err) = ingest(&env, &src);
    assert!(ok, "{err}");
    assert_eq!(asset["resolution_tier"], "1080p");
    assert_master(
        &env.master_path(asset["id"].as_str().unwrap()),
        1920,
        1080,
        true,
        source_duration,
    );

    let env = TestEnv::new(&[(
        "max_resolution_tier = \"1080p\"",
        "max_resolution_tier = \"2160p\"",
    )]);
    let (ok, asset, err) = ingest(&env, &src);
    assert!(ok, "{err}");
    assert_eq!(asset["resolution_tier"], "2160p");
    assert_eq!(asset["max_resolution_tier"], "2160p");
    assert_master(
        &env.master_path(asset["id"].as_str().unwrap()),
        3840,
        2160,
        true,
        source_duration,
    );
}

#[test]
fn a_720p_source_is_not_upscaled() {
    let env = TestEnv::new(&[(
        "max_resolution_tier = \"1080p\"",
        "max_resolution_tier = \"2160p\"",
    )]);
    let src = env.dir.path().join("in720.mp4");
    make_clip(&src, ClipSpec::av(1280, 720, 2));
    let (ok, asset, err) = ingest(&env, &src);
    assert!(ok, "{err}");
    assert_eq!(asset["resolution_tier"], "720p");
    assert_master(
        &env.master_path(asset["id"].as_str().unwrap()),
        1280,
        720,
        true,
        duration_of(&ffprobe(&src)),
    );
}

#[test]
fn a_rotated_phone_video_stays_portrait_and_upright() {
    let env = TestEnv::new(&[]);
    let landscape = env.dir.path().join("landscape.mp4");
    make_clip(&landscape, ClipSpec::av(1920, 1080, 2));
    // A phone held upright records landscape pixels plus a 90° display matrix.
    let rotated = env.dir.path().join("phone.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&landscape)
        .args(["-c", "copy", "-metadata:s:v:0", "rotate=90"])
        .arg(&rotated)
        .status()
        .unwrap();
    assert!(status.success());
    let probe = ffprobe(&rotated);
    let side = &stream(&probe, "video").unwrap()["side_data_list"];
    assert!(
        side.to_string().contains("rotation"),
        "fixture carries a rotation: {side}"
    );

    let (ok, asset, err) = ingest(&env, &rotated);
    assert!(ok, "{err}");
    assert_eq!(asset["aspect_ratio"], "9:16");
    assert_eq!(asset["tracks"][0]["max_width"], 1080);
    assert_eq!(asset["tracks"][0]["max_height"], 1920);
    let master = env.master_path(asset["id"].as_str().unwrap());
    assert_master(&master, 1080, 1920, true, duration_of(&probe));
    // Turned the right way: the picture matches what a player shows for the
    // source (ffmpeg applies the display matrix), not its mirror or upside-down.
    let psnr = first_frame_psnr(&rotated, &master, 1080, 1920);
    assert!(
        psnr > 25.0,
        "master's first frame differs from the displayed source: {psnr} dB"
    );
}

#[test]
fn an_audio_only_source_is_audio_only() {
    let env = TestEnv::new(&[]);
    let src = env.dir.path().join("song.m4a");
    make_clip(
        &src,
        ClipSpec {
            video: None,
            fps: 30,
            seconds: 2,
            audio: true,
        },
    );
    let (ok, asset, err) = ingest(&env, &src);
    assert!(ok, "{err}");
    assert_eq!(asset["resolution_tier"], "audio-only");
    assert_eq!(asset["tracks"].as_array().unwrap().len(), 1);
    assert_eq!(asset["tracks"][0]["type"], "audio");
    assert!(asset.get("aspect_ratio").is_none());
    let master = env.master_path(asset["id"].as_str().unwrap());
    let p = ffprobe(&master);
    assert!(stream(&p, "video").is_none());
    assert_eq!(stream(&p, "audio").unwrap()["codec_name"], "aac");
    assert_faststart(&master);
}

#[test]
fn a_video_without_audio_has_no_audio_track() {
    let env = TestEnv::new(&[]);
    let src = env.dir.path().join("silent.mp4");
    make_clip(
        &src,
        ClipSpec {
            video: Some((640, 360)),
            fps: 25,
            seconds: 2,
            audio: false,
        },
    );
    let (ok, asset, err) = ingest(&env, &src);
    assert!(ok, "{err}");
    assert_eq!(
        asset["resolution_tier"], "720p",
        "Mux has no tier below 720p"
    );
    assert_eq!(asset["max_stored_frame_rate"], 25.0);
    assert_eq!(asset["tracks"].as_array().unwrap().len(), 1);
    assert_master(
        &env.master_path(asset["id"].as_str().unwrap()),
        640,
        360,
        false,
        duration_of(&ffprobe(&src)),
    );
}

#[test]
fn bad_inputs_error_with_a_sentence_and_nothing_is_stored() {
    let env = TestEnv::new(&[]);
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "notes.mp4",
            b"these are not the frames you are looking for\n".to_vec(),
            "not media",
        ),
        ("empty.mp4", Vec::new(), "empty"),
        (
            "noise.mov",
            (0..200_000u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
            "not media",
        ),
    ];
    for (name, bytes, expect) in cases {
        let src = env.dir.path().join(name);
        std::fs::write(&src, bytes).unwrap();
        let (ok, asset, err) = ingest(&env, &src);
        assert!(!ok, "{name} must fail");
        assert!(err.contains(expect), "{name}: stderr {err:?}");
        assert_eq!(asset["status"], "errored", "{name}");
        assert_eq!(asset["errors"]["type"], "invalid_input", "{name}");
        let message = asset["errors"]["messages"][0].as_str().unwrap();
        assert!(
            message.ends_with('.') && message.contains(expect),
            "{name}: {message}"
        );
        assert_eq!(asset["progress"]["progress"], -1.0);
        assert!(!env.master_path(asset["id"].as_str().unwrap()).exists());
    }
    // No spool leftovers.
    let spool: Vec<_> = std::fs::read_dir(env.data("spool")).unwrap().collect();
    assert!(spool.is_empty(), "spool is clean: {spool:?}");
}

#[test]
fn a_truncated_mp4_is_errored_not_accepted_short() {
    let env = TestEnv::new(&[]);
    let src = env.dir.path().join("whole.mp4");
    make_clip(&src, ClipSpec::av(1280, 720, 4));
    // Fast-start files keep the index first: cutting the tail leaves an index
    // that promises 4 s over data that ends half-way.
    let faststart = env.dir.path().join("faststart.mp4");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&src)
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&faststart)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&faststart).unwrap();
    let cut = env.dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, asset, err) = ingest(&env, &cut);
    assert!(!ok, "a truncated file must not become ready: {asset}");
    assert_eq!(asset["errors"]["type"], "invalid_input", "{err}");
}

#[test]
fn a_config_with_only_the_contract_keys_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = root.join("minimal.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest]\nwatch_dir = \"{0}/in\"\nsettle_seconds = 1\non_success = \"delete\"\nfailed_dir = \"{0}/failed\"\n\
             [storage]\nurl = \"file://{0}/store\"\n[database]\npath = \"{0}/state/reeld.db\"\n",
            root.display()
        ),
    )
    .unwrap();
    let clip = root.join("clip.mp4");
    make_clip(&clip, ClipSpec::av(320, 240, 1));
    let out = std::process::Command::new(reeld_bin())
        .arg("--config")
        .arg(&config)
        .args(["ingest", clip.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asset: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(asset["data"]["status"], "ready");
    let id = asset["data"]["id"].as_str().unwrap();
    assert!(root.join(format!("store/assets/{id}/master.mp4")).exists());
    // Mistakes of every kind are named together: an unknown key, a value of
    // the wrong type, a value out of range and an empty path.
    std::fs::write(
        &config,
        "[ingest]\nsetle_seconds = 2\n[transcode]\nconcurrency = \"two\"\nmax_attempts = 0\n\
         [database]\npath = \"\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(reeld_bin())
        .arg("--config")
        .arg(&config)
        .args(["assets", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("4 problem(s)"), "{err}");
    for problem in [
        "unknown key ingest.setle_seconds (did you mean settle_seconds?)",
        "transcode.concurrency must be a number, not \"two\"",
        "transcode.max_attempts must be at least 1",
        "database.path is empty",
    ] {
        assert!(err.contains(problem), "{problem}: {err}");
    }
}
