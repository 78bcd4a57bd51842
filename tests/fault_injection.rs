//! Fault injection: the real daemon is killed with SIGKILL at random moments
//! while it ingests a batch of files (probing, parsing, remuxing, encoding,
//! uploading, committing), restarted each time, and finally left to finish.
//! Then every source must be exactly one `ready` or `errored` asset, no source
//! lost, no duplicate, no orphan file in the store or the spool.
//!
//! The kill times come from a seed printed at the start (set REELD_FAULT_SEED
//! to replay a run). `REELD_FAULT_KILLS` and `REELD_FAULT_INGESTS` set the
//! number of SIGKILLs and of files (defaults 20 and 24; the closing line
//! reports lost, duplicated and stuck counts, all of which must be 0).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::rng::{Rng, seed_from, setting};
use common::*;

#[test]
fn kill_9_at_random_moments_loses_nothing_and_doubles_nothing() {
    const BAD: usize = 3;
    let kills = setting::<usize>("REELD_FAULT_KILLS", 20).max(1);
    let sources = setting::<usize>("REELD_FAULT_INGESTS", 24).max(BAD + 1);
    let seed = seed_from("REELD_FAULT_SEED");
    eprintln!("fault injection seed: {seed} (REELD_FAULT_SEED={seed} replays it)");
    let mut rng = Rng(seed);

    let env = TestEnv::new(&[("on_success = \"keep\"", "on_success = \"move\"")]);
    let watch = env.watch_dir();
    // Sources: remuxed MP4s, encoded Matroska files (some asking for a
    // rendition), and files that are not media.
    let mp4 = env.dir.path().join("clip.mp4");
    make_clip(&mp4, ClipSpec::av(640, 360, 2));
    let mkv = to_matroska(&mp4);
    let drop_source = |i: usize| -> String {
        if i < BAD {
            let name = format!("bad-{i:02}.mp4");
            std::fs::write(watch.join(&name), format!("not a video {i}\n")).unwrap();
            name
        } else if i.is_multiple_of(2) {
            let name = format!("remux-{i:02}.mp4");
            std::fs::copy(&mp4, watch.join(&name)).unwrap();
            name
        } else {
            let name = format!("encode-{i:02}.mkv");
            if i.is_multiple_of(3) {
                std::fs::write(
                    watch.join(format!("{name}.json")),
                    r#"{"static_renditions": [{"resolution": "270p"}]}"#,
                )
                .unwrap();
            }
            std::fs::copy(&mkv, watch.join(&name)).unwrap();
            name
        }
    };

    // Files arrive while the daemon is being killed, so that kills land in
    // every phase of the work, not only at the start.
    let mut dropped = BTreeSet::new();
    let mut next = 0;
    let mut states_at_kill = Vec::new();
    for kill in 0..kills {
        // The files are spread over the kills, the last arriving before the last kill.
        while next < (kill + 1) * sources / kills {
            dropped.insert(drop_source(next));
            next += 1;
        }
        let mut daemon = env.start_daemon();
        std::thread::sleep(rng.millis(200, 1800));
        daemon.kill9();
        let assets = env.assets();
        let busy: Vec<String> = assets
            .iter()
            .filter(|a| a["status"] == "preparing")
            .map(|a| a["progress"]["state"].as_str().unwrap_or("?").to_owned())
            .collect();
        states_at_kill.push(format!("{} assets, preparing: {busy:?}", assets.len()));
    }
    assert_eq!(next, sources);
    eprintln!("states when killed:\n  {}", states_at_kill.join("\n  "));

    let _daemon = env.start_daemon();
    let deadline = std::time::Instant::now() + Duration::from_secs(300 + 5 * sources as u64);
    let assets = loop {
        let assets = env.assets();
        let left = files_below(&watch);
        if (all_finished(&assets, sources) && left.is_empty())
            || std::time::Instant::now() > deadline
        {
            break assets;
        }
        std::thread::sleep(Duration::from_millis(500));
    };

    // The tally: a source is lost if it is in neither done/ nor failed/,
    // duplicated if it made two assets or is in both, stuck if its asset is
    // still preparing or its file still in the watch folder.
    let done = files_below(&env.data("done"));
    let failed = files_below(&env.data("failed"));
    let lost = dropped
        .iter()
        .filter(|n| !done.contains(*n) && !failed.contains(*n))
        .count();
    let duplicated = assets.len().saturating_sub(sources)
        + dropped
            .iter()
            .filter(|n| done.contains(*n) && failed.contains(*n))
            .count();
    let stuck = with_status(&assets, "preparing").len() + files_below(&watch).len();
    eprintln!(
        "ingests {sources}, kills {kills}, seed {seed}: lost {lost}, duplicated {duplicated}, stuck {stuck}"
    );
    assert_eq!(
        (lost, duplicated, stuck),
        (0, 0, 0),
        "assets: {assets:#?}\ndone {done:?}\nfailed {failed:?}\n{}",
        env.logs()
    );

    // One asset per source, none twice.
    assert_eq!(assets.len(), sources, "one asset per dropped file");
    let ready: Vec<_> = with_status(&assets, "ready");
    let errored: Vec<_> = with_status(&assets, "errored");
    eprintln!("ready {}, errored {}", ready.len(), errored.len());
    // A crash gives the attempt back, so good files end ready, unless the
    // kills hit the same job 3 times: then it is given up on, as a file that
    // crashes the media engine would be (no endless loop), and says so.
    let given_up = |a: &serde_json::Value| {
        a["errors"]["messages"][0]
            .as_str()
            .is_some_and(|m| m.contains("crashed the media engine 3 times"))
    };
    let crashed_out: Vec<String> = errored
        .iter()
        .filter(|a| given_up(a))
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ready.len() + crashed_out.len(),
        sources - BAD,
        "errored: {errored:#?}\n{}",
        env.logs()
    );
    assert_eq!(errored.len() - crashed_out.len(), BAD);
    for a in errored.iter().filter(|a| !given_up(a)) {
        assert_eq!(a["errors"]["type"], "invalid_input", "{a}");
    }
    eprintln!("given up after 3 crashes: {}", crashed_out.len());

    // Every ready source is in done/, every bad one in failed/ with its
    // .error.json.
    for name in &dropped {
        let is_bad = name.starts_with("bad-") || failed.contains(&format!("{name}.error.json"));
        let (here, there) = if is_bad {
            (&failed, &done)
        } else {
            (&done, &failed)
        };
        assert!(
            here.contains(name),
            "{name} is where it belongs: done {done:?} failed {failed:?}"
        );
        assert!(!there.contains(name), "{name} is in one place only");
        if is_bad {
            assert!(failed.contains(&format!("{name}.error.json")));
        }
    }

    // No orphans: the store holds exactly the files of the ready assets.
    let mut expected = BTreeSet::new();
    for a in &ready {
        let id = a["id"].as_str().unwrap();
        expected.insert(format!("assets/{id}/master.mp4"));
        for file in a["static_renditions"]["files"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(file["status"], "ready", "{a}");
            expected.insert(format!("assets/{id}/{}", file["name"].as_str().unwrap()));
        }
        let master = env.master_path(id);
        assert_faststart(&master);
        assert!((duration_of(&ffprobe(&master)) - 2.0).abs() < 0.1);
    }
    let stored = files_below(&env.store_root());
    assert_eq!(
        stored, expected,
        "the store holds the ready assets' files and nothing else"
    );
    let spool = files_below(&env.data("spool"));
    assert!(spool.is_empty(), "the spool is empty: {spool:?}");
}
