//! Static renditions: the whole ladder from one decode, per-asset settings
//! (sidecar, `--settings`, watch-folder profiles), legacy `mp4_support`, and
//! renditions added after the asset is ready. Outputs are checked with ffprobe.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use reeld::pipeline::x264_threads;
use serde_json::Value;

fn ingest(env: &TestEnv, file: &Path, settings: Option<&str>) -> (bool, Value, String) {
    env.ingest(file, settings)
}

fn stored(env: &TestEnv, asset: &Value, name: &str) -> std::path::PathBuf {
    env.stored(asset["id"].as_str().unwrap(), name)
}

/// Checks a stored rendition with ffprobe against its record.
fn assert_rendition(
    env: &TestEnv,
    asset: &Value,
    name: &str,
    size: Option<(u32, u32)>,
    duration: f64,
) {
    let f = rendition_file(asset, name);
    assert_eq!(f["status"], "ready", "{f}");
    let path = stored(env, asset, name);
    let p = ffprobe(&path);
    match size {
        Some((w, h)) => {
            let v = stream(&p, "video").unwrap_or_else(|| panic!("{name} has video"));
            assert_eq!(v["codec_name"], "h264");
            assert_eq!(v["profile"], "High");
            assert_eq!(
                (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap()),
                (w as u64, h as u64),
                "{name}"
            );
            assert_eq!(
                (f["width"].as_u64(), f["height"].as_u64()),
                (Some(w as u64), Some(h as u64)),
                "{name} record"
            );
        }
        None => assert!(stream(&p, "video").is_none(), "{name} is audio only"),
    }
    assert_eq!(stream(&p, "audio").unwrap()["codec_name"], "aac", "{name}");
    let d = duration_of(&p);
    assert!(
        (d - duration).abs() <= 0.1,
        "{name}: duration {d} vs {duration}"
    );
    assert_faststart(&path);
    let size_on_disk = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        f["filesize"],
        size_on_disk.to_string(),
        "{name}: filesize is the stored size, as a string"
    );
    let bitrate = f["bitrate"].as_u64().unwrap() as f64;
    let measured = size_on_disk as f64 * 8.0 / d;
    assert!(
        (bitrate - measured).abs() / measured < 0.02,
        "{name}: bitrate {bitrate} vs {measured}"
    );
}

#[test]
fn a_1080p_source_gets_the_requested_ladder_from_one_decode() {
    let env = TestEnv::new(&[]);
    let mp4 = env.dir.path().join("in.mp4");
    make_clip(&mp4, ClipSpec::av(1920, 1080, 2));
    // In Matroska, so that the master is encoded, not remuxed: then the
    // master and every rendition come out of one pipeline.
    let src = to_matroska(&mp4);
    let duration = duration_of(&ffprobe(&src));
    let dots = env.dir.path().join("dots");
    std::fs::create_dir_all(&dots).unwrap();
    let settings = r#"{"static_renditions": [{"resolution": "highest"}, {"resolution": "audio-only"},
        {"resolution": "2160p"}, {"resolution": "1080p"}, {"resolution": "720p"},
        {"resolution": "270p", "passthrough": "small"}]}"#;
    let out = std::process::Command::new(reeld_bin())
        .arg("--config")
        .arg(&env.config)
        .args(["ingest", src.to_str().unwrap(), "--settings", settings])
        .env("GST_DEBUG_DUMP_DOT_DIR", &dots)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asset: Value = serde_json::from_slice(&out.stdout).unwrap();
    let asset = &asset["data"];

    assert_eq!(asset["static_renditions"]["status"], "ready");
    assert_rendition(&env, asset, "highest.mp4", Some((1920, 1080)), duration);
    assert_rendition(&env, asset, "audio.m4a", None, duration);
    assert_rendition(&env, asset, "1080p.mp4", Some((1920, 1080)), duration);
    assert_rendition(&env, asset, "720p.mp4", Some((1280, 720)), duration);
    assert_rendition(&env, asset, "270p.mp4", Some((480, 270)), duration);
    assert_eq!(rendition_file(asset, "2160p.mp4")["status"], "skipped");
    assert!(!stored(&env, asset, "2160p.mp4").exists());
    assert_eq!(rendition_file(asset, "highest.mp4")["type"], "standard");
    assert_eq!(rendition_file(asset, "720p.mp4")["type"], "advanced");
    assert_eq!(rendition_file(asset, "720p.mp4")["resolution_tier"], "720p");
    assert_eq!(rendition_file(asset, "audio.m4a")["ext"], "m4a");
    assert_eq!(
        rendition_file(asset, "audio.m4a")["resolution_tier"],
        "audio-only"
    );
    assert_eq!(rendition_file(asset, "270p.mp4")["passthrough"], "small");
    assert_master(
        &env.master_path(asset["id"].as_str().unwrap()),
        1920,
        1080,
        true,
        duration,
    );

    // The pipeline graph: one demuxer and one decoder per stream for the
    // whole ladder; one H.264 encode per distinct size (1080, 720, 270).
    let dot = std::fs::read_dir(&dots)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("reeld-transcode.dot"))
        .expect("the pipeline graph was dumped");
    let graph = std::fs::read_to_string(dot).unwrap();
    let count = |element: &str| graph.matches(&format!("\\n{element}")).count();
    assert_eq!(count("avdec_h264"), 1, "one video decoder");
    assert_eq!(count("matroskademux"), 1, "one demuxer");
    assert_eq!(count("reeldx264enc"), 3, "one encode per distinct size");
    assert_eq!(count("mp4mux"), 6, "master + five files");

    // Each encode's x264 threads follow its share of the job's pixels
    // (on 2 cores: 2 for 1080p, 1 each for 720p and 270p), not x264's own
    // count for a lone encode: the numbers x264 wrote into each stream.
    let job_pixels = 1920 * 1080 + 1280 * 720 + 480 * 270;
    for (name, pixels) in [
        ("highest.mp4", 1920 * 1080),
        ("720p.mp4", 1280 * 720),
        ("270p.mp4", 480 * 270),
    ] {
        let expected = x264_threads(cores(), pixels, job_pixels).to_string();
        let path = stored(&env, asset, name);
        assert_eq!(
            x264_option(&path, "threads").as_deref(),
            Some(expected.as_str()),
            "{name}"
        );
    }
    let master = env.master_path(asset["id"].as_str().unwrap());
    assert_eq!(
        x264_option(&master, "threads"),
        x264_option(&stored(&env, asset, "highest.mp4"), "threads"),
        "the master shares the 1080p encode"
    );
}

/// The cores one job has: the machine's, with the default concurrency of 1.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn an_encoder_fragment_that_names_x264_threads_keeps_them() {
    // (the fragment's x264enc properties, expected threads of master and 270p)
    let job_pixels = 640 * 360 + 480 * 270;
    let automatic = (
        x264_threads(cores(), 640 * 360, job_pixels).to_string(),
        x264_threads(cores(), 480 * 270, job_pixels).to_string(),
    );
    let cases = [
        ("", automatic),
        ("threads=5 ", ("5".to_owned(), "5".to_owned())),
    ];
    for (properties, (master_threads, small_threads)) in cases {
        let env = TestEnv::new(&[]);
        env.edit_fragment("h264-plus.gst", |text| {
            text.replace("\nreeldx264enc ", &format!("\nreeldx264enc {properties}"))
        });
        let mp4 = env.dir.path().join("in.mp4");
        make_clip(&mp4, ClipSpec::av(640, 360, 1));
        let settings = r#"{"static_renditions": [{"resolution": "270p"}]}"#;
        let (ok, asset, err) = ingest(&env, &to_matroska(&mp4), Some(settings));
        assert!(ok, "{properties}: {err}");
        let master = env.master_path(asset["id"].as_str().unwrap());
        assert_eq!(
            x264_option(&master, "threads"),
            Some(master_threads),
            "{properties:?}: master"
        );
        assert_eq!(
            x264_option(&stored(&env, &asset, "270p.mp4"), "threads"),
            Some(small_threads),
            "{properties:?}: 270p"
        );
    }
}

#[test]
fn a_portrait_720p_rendition_is_720_wide() {
    let env = TestEnv::new(&[]);
    let landscape = env.dir.path().join("l.mp4");
    make_clip(&landscape, ClipSpec::av(1280, 720, 1));
    let portrait = env.dir.path().join("p.mp4");
    make_clip(&portrait, ClipSpec::av(720, 1280, 1));
    let (ok, asset, err) = ingest(
        &env,
        &portrait,
        Some(r#"{"static_renditions":[{"resolution":"720p"},{"resolution":"480p"}]}"#),
    );
    assert!(ok, "{err}");
    let d = duration_of(&ffprobe(&portrait));
    assert_rendition(&env, &asset, "720p.mp4", Some((720, 1280)), d);
    assert_rendition(&env, &asset, "480p.mp4", Some((480, 854)), d);
}

#[test]
fn legacy_mp4_support_standard_and_capped() {
    let env = TestEnv::new(&[]);
    let src = env.dir.path().join("in.mp4");
    make_clip(&src, ClipSpec::av(1920, 1080, 1));
    let d = duration_of(&ffprobe(&src));
    let (ok, asset, err) = ingest(&env, &src, Some(r#"{"mp4_support": "standard"}"#));
    assert!(ok, "{err}");
    assert_rendition(&env, &asset, "high.mp4", Some((1920, 1080)), d);
    assert_rendition(&env, &asset, "medium.mp4", Some((1280, 720)), d);
    assert_rendition(&env, &asset, "low.mp4", Some((640, 360)), d);
    let (ok, asset, err) = ingest(
        &env,
        &src,
        Some(r#"{"mp4_support": "audio-only,capped-1080p"}"#),
    );
    assert!(ok, "{err}");
    assert_rendition(&env, &asset, "capped-1080p.mp4", Some((1920, 1080)), d);
    assert_rendition(&env, &asset, "audio.m4a", None, d);
}

#[test]
fn a_bad_sidecar_errors_the_asset_and_names_the_field() {
    let env = TestEnv::new(&[]);
    let src = env.dir.path().join("clip.mp4");
    make_clip(&src, ClipSpec::av(640, 360, 1));
    std::fs::write(
        env.dir.path().join("clip.mp4.json"),
        r#"{"static_renditions": [{"resolution": "720p"}, {"resolution": "4k"}]}"#,
    )
    .unwrap();
    let (ok, asset, err) = ingest(&env, &src, None);
    assert!(!ok);
    assert_eq!(asset["status"], "errored");
    let message = asset["errors"]["messages"][0].as_str().unwrap();
    assert!(
        message.contains("static_renditions[1].resolution") && message.contains("4k"),
        "{message}"
    );
    assert!(message.contains("clip.mp4.json"), "{message}");
    assert!(err.contains("4k"), "{err}");
    assert!(!env.master_path(asset["id"].as_str().unwrap()).exists());

    // Invalid JSON too.
    std::fs::write(env.dir.path().join("clip.mp4.json"), "{\"test\": tru").unwrap();
    let (ok, asset, _) = ingest(&env, &src, None);
    assert!(!ok);
    assert!(
        asset["errors"]["messages"][0]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    // A good sidecar applies, and --settings overrides it.
    std::fs::write(
        env.dir.path().join("clip.mp4.json"),
        r#"{"passthrough": "from-sidecar", "static_renditions": [{"resolution": "360p"}]}"#,
    )
    .unwrap();
    let (ok, asset, err) = ingest(&env, &src, Some(r#"{"passthrough": "from-flag"}"#));
    assert!(ok, "{err}");
    assert_eq!(asset["passthrough"], "from-flag");
    assert_eq!(rendition_file(&asset, "360p.mp4")["status"], "ready");
}

#[test]
fn renditions_added_later_are_made_from_the_master() {
    let env = TestEnv::new(&[]);
    let src = env.dir.path().join("in.mp4");
    make_clip(&src, ClipSpec::av(1920, 1080, 2));
    let (ok, asset, err) = ingest(&env, &src, None);
    assert!(ok, "{err}");
    assert!(
        asset.get("static_renditions").is_none(),
        "none requested: no static_renditions"
    );
    let id = asset["id"].as_str().unwrap();
    let master_before = std::fs::metadata(env.master_path(id))
        .unwrap()
        .modified()
        .unwrap();
    // The source is gone: renditions must come from the stored master.
    std::fs::remove_file(&src).unwrap();

    let out = env.reeld(&["renditions", "add", id, "480p"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asset: Value = serde_json::from_slice(&out.stdout).unwrap();
    let asset = &asset["data"];
    assert_eq!(asset["status"], "ready");
    let d = asset["duration"].as_f64().unwrap();
    assert_rendition(&env, asset, "480p.mp4", Some((854, 480)), d);
    assert_eq!(
        std::fs::metadata(env.master_path(id))
            .unwrap()
            .modified()
            .unwrap(),
        master_before
    );

    // Above the source: skipped. Unknown value: a clear error.
    let out = env.reeld(&["renditions", "add", id, "1440p"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asset: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rendition_file(&asset["data"], "1440p.mp4")["status"],
        "skipped"
    );
    assert_eq!(
        rendition_file(&asset["data"], "480p.mp4")["status"],
        "ready"
    );
    let out = env.reeld(&["renditions", "add", id, "4k"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("4k"));
}

#[test]
fn watch_profiles_and_sidecars_apply_and_travel_with_the_source() {
    let env = TestEnv::new(&[(
        "[log]",
        "[profiles.web]\nstatic_renditions = [{ resolution = \"360p\" }]\npassthrough = \"web-profile\"\n\n[log]",
    )]);
    let watch = env.watch_dir();
    std::fs::create_dir_all(watch.join("web")).unwrap();
    let staging = env.dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let clip = staging.join("a.mp4");
    make_clip(&clip, ClipSpec::av(640, 360, 1));
    let _daemon = env.start_daemon();

    // Profile only.
    std::fs::copy(&clip, watch.join("web/plain.mp4")).unwrap();
    // Profile, then a sidecar that overrides the passthrough.
    std::fs::write(
        watch.join("web/side.mp4.json"),
        r#"{"passthrough": "sidecar"}"#,
    )
    .unwrap();
    std::fs::copy(&clip, watch.join("web/side.mp4")).unwrap();
    // A sidecar naming an unknown value.
    std::fs::write(watch.join("bad.json"), r#"{"max_resolution_tier": "8k"}"#).unwrap();
    std::fs::copy(&clip, watch.join("bad.mp4")).unwrap();

    let assets = env.wait_for_assets(Duration::from_secs(120), "three finished assets", |a| {
        all_finished(a, 3)
    });
    let by_pass = |p: &str| {
        assets
            .iter()
            .find(|a| a["passthrough"] == p)
            .unwrap_or_else(|| panic!("{p}: {assets:#?}"))
    };
    assert_eq!(
        rendition_file(by_pass("web-profile"), "360p.mp4")["status"],
        "ready"
    );
    assert_eq!(
        rendition_file(by_pass("sidecar"), "360p.mp4")["status"],
        "ready"
    );
    let bad = with_status(&assets, "errored");
    assert_eq!(bad.len(), 1);
    let message = bad[0]["errors"]["messages"][0].as_str().unwrap();
    assert!(
        message.contains("max_resolution_tier") && message.contains("8k"),
        "{message}"
    );
    // The bad file and its sidecar went to the failed folder together.
    // An errored source is held back a few settle times before it moves.
    common::wait_for(
        Duration::from_secs(30),
        "the bad file and its sidecar in failed/",
        || env.data("failed/bad.mp4").exists() && env.data("failed/bad.json").exists(),
    );
    assert!(!watch.join("bad.json").exists());
}
