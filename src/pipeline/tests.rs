//! The run's own checks: index space, box order of a remux, thread shares.

use super::*;

#[test]
fn index_space_holds_twice_the_source_index() {
    // A 20-minute film with a 1 MB index, video and audio.
    let space = index_space(1_000_000, 1200.0, 2).unwrap();
    assert_eq!(space.max_duration_ns, 1_350_000_000_000);
    let reserved = u64::from(space.bytes_per_second) * 2 * 1350;
    assert!(reserved >= 2 * 1_000_000 + 65_536, "{space:?}");
    // Short clips get mp4mux's default rate; nothing without a duration.
    assert_eq!(
        index_space(10_000, 10.0, 2).unwrap().bytes_per_second,
        1_044
    );
    assert_eq!(index_space(100, 600.0, 2).unwrap().bytes_per_second, 550);
    assert_eq!(index_space(1_000, f64::NAN, 2), None);
    assert_eq!(index_space(1_000, 10.0, 0), None);
    // More than mp4mux's per-second limit: the fast-start copy instead.
    assert_eq!(index_space(10_000_000, 10.0, 1), None);
}

/// The top-level boxes of an MP4 file, in order.
fn top_level_boxes(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap();
    let mut at = 0usize;
    let mut kinds = Vec::new();
    while at + 8 <= data.len() {
        let mut size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        if size == 1 {
            size = u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap()) as usize;
        }
        kinds.push(String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned());
        if size < 8 {
            break;
        }
        at += size;
    }
    kinds
}

#[test]
fn a_remux_writes_its_index_first_and_falls_back_when_it_outgrows_the_space() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    crate::test_media::ffmpeg(
        &clip,
        "-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=440 -t 4 \
         -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest",
    );
    let info = crate::probe::probe_file(&clip).unwrap();
    let settings = crate::asset::AssetSettings::defaults(
        crate::asset::MaxResolutionTier::P1080,
        crate::asset::VideoQuality::Plus,
    );
    let copyable = crate::plan::Assessment {
        copyable: true,
        ..Default::default()
    };
    let plan = crate::plan::plan_asset(&info, &settings, crate::plan::Scope::Everything, &copyable)
        .unwrap();
    assert!(plan.copies());
    let fragments =
        Fragments::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines")).unwrap();
    let options = RunOptions {
        fragments: &fragments,
        stall_timeout: Duration::from_secs(60),
        cancel: CancellationToken::new(),
        duration: plan.expected_duration,
        cores: 2,
        source_index_bytes: crate::inspect::mp4::moov_size(&clip),
        meter: None,
    };
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let master = spool.join(crate::plan::MASTER_NAME);
    let index_first = |path: &Path| {
        let kinds = top_level_boxes(path);
        let moov = kinds.iter().position(|k| k == "moov");
        let mdat = kinds.iter().position(|k| k == "mdat");
        assert!(moov.is_some() && moov < mdat, "{kinds:?}");
    };

    // Sized from the source's index: one write, no scratch file.
    transcode_with_gstreamer(&clip, &plan, &spool, &options, |_| {}).unwrap();
    index_first(&master);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1);

    // Space far too small: mp4mux refuses, and the remux runs again.
    let tiny = IndexSpace {
        max_duration_ns: 5_000_000_000,
        bytes_per_second: 20,
    };
    let refused = run(&clip, &plan, &spool, &options, Some(tiny), &mut |_| {});
    assert!(
        matches!(&refused, Err(PipelineError::Stream { debug, .. }) if debug.contains("reserved")),
        "{refused:?}"
    );
    std::fs::remove_file(&master).unwrap();
    transcode_reserving(&clip, &plan, &spool, &options, Some(tiny), &mut |_| {}).unwrap();
    index_first(&master);
    let copy = crate::probe::probe_file(&master).unwrap();
    assert!((copy.duration.unwrap() - info.duration.unwrap()).abs() < 0.1);
}

#[test]
fn x264_threads_follow_each_encodes_share_of_the_job() {
    const P1080: u64 = 1920 * 1080;
    const P720: u64 = 1280 * 720;
    const P480: u64 = 854 * 480;
    const P270: u64 = 480 * 270;
    const LADDER: u64 = P1080 + P720 + P480;
    // (cores, pixels of the encode, pixels of the job's encodes, threads)
    let cases = [
        // One encode: x264's own count, 1.5 per core rounded down.
        (1, P1080, P1080, 1),
        (2, P1080, P1080, 3),
        (3, P1080, P1080, 4),
        (4, P1080, P1080, 6),
        (16, P1080, P1080, 24),
        // 1080p + 720p + 480p on 2 cores: 2, 1, 1 (not 3 + 3 + 3).
        (2, P1080, LADDER, 2),
        (2, P720, LADDER, 1),
        (2, P480, LADDER, 1),
        // The same ladder on 16 cores.
        (16, P1080, LADDER, 15),
        (16, P720, LADDER, 7),
        (16, P480, LADDER, 3),
        // 1080p + 720p + 270p on 2 cores.
        (2, P1080, P1080 + P720 + P270, 2),
        (2, P270, P1080 + P720 + P270, 1),
        // Never fewer than one, never more than a lone encode.
        (1, 2, 1_000_000, 1),
        (2, P1080, 1, 3),
        (2, P1080, 0, 3),
        (0, P1080, P1080, 1),
    ];
    for (cores, pixels, job_pixels, threads) in cases {
        assert_eq!(
            x264_threads(cores, pixels, job_pixels),
            threads,
            "{cores} cores, {pixels} of {job_pixels} pixels"
        );
    }
}
