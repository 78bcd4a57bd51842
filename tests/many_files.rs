//! Many files at once: every one becomes exactly one ready asset, the queue
//! limit holds files back in the folder instead of taking them all, and the
//! daemon's open files and memory stay flat while the API keeps answering.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Resident memory (KiB) and open file descriptors of a process.
fn rss_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

#[test]
fn a_full_queue_leaves_new_files_waiting_until_it_drains() {
    let env = TestEnv::new(&[("max_queued_files = 1000", "max_queued_files = 2")]);
    let watch = env.watch_dir();
    let clip = env.dir.path().join("clip.mp4");
    make_clip(&clip, ClipSpec::av(320, 180, 1));
    for i in 0..8 {
        std::fs::copy(&clip, watch.join(format!("f{i}.mp4"))).unwrap();
    }
    let _daemon = env.start_daemon();
    let assets = env.wait_for_assets(Duration::from_secs(120), "eight ready assets", |a| {
        all_finished(a, 8)
    });
    assert_eq!(with_status(&assets, "ready").len(), 8);
    let logs = env.logs();
    assert!(logs.contains("The queue is full"), "{logs}");
    assert!(logs.contains("The queue has room again"), "{logs}");
}

#[test]
fn five_hundred_small_files_all_become_ready_with_flat_memory_and_fds() {
    const FILES: usize = 500;
    let env = TestEnv::new(&[("concurrency = 1", "concurrency = 2")]);
    let watch = env.watch_dir();
    let clip = env.dir.path().join("tiny.mp4");
    make_clip(&clip, ClipSpec::av(160, 90, 1));
    for i in 0..FILES {
        std::fs::copy(&clip, watch.join(format!("tiny-{i:03}.mp4"))).unwrap();
    }
    let daemon = env.start_daemon();
    let pid = daemon.pid();

    // (ready assets, RSS KiB, fds, seconds `assets list` took)
    let mut samples: Vec<(usize, u64, usize, f64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let asked = Instant::now();
        let assets = env.assets();
        let took = asked.elapsed().as_secs_f64();
        let ready = with_status(&assets, "ready").len();
        let (rss, fds) = rss_and_fds(pid);
        samples.push((ready, rss, fds, took));
        if all_finished(&assets, FILES) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not done: {ready} ready\n{}",
            env.logs()
        );
        // Often enough that a fast run still has samples in the early window.
        std::thread::sleep(Duration::from_millis(500));
    }
    let assets = env.assets();
    assert_eq!(assets.len(), FILES, "one asset per file");
    assert_eq!(with_status(&assets, "ready").len(), FILES, "all ready");

    // Flat: the second half of the run uses no more fds than the first
    // samples (a leak of one per file would add hundreds), and memory grows
    // by far less than the files would cost if anything were kept per file.
    let early: Vec<_> = samples
        .iter()
        .filter(|s| s.0 >= 20 && s.0 < FILES / 4)
        .collect();
    let late: Vec<_> = samples.iter().filter(|s| s.0 >= FILES / 2).collect();
    assert!(
        !early.is_empty() && !late.is_empty(),
        "samples: {samples:?}"
    );
    let max_fds = |s: &[&(usize, u64, usize, f64)]| s.iter().map(|x| x.2).max().unwrap();
    let max_rss = |s: &[&(usize, u64, usize, f64)]| s.iter().map(|x| x.1).max().unwrap();
    assert!(
        max_fds(&late) <= max_fds(&early) + 16,
        "fds grow: early {} late {}",
        max_fds(&early),
        max_fds(&late)
    );
    assert!(
        max_rss(&late) <= max_rss(&early) + 64 * 1024,
        "memory grows: early {} KiB late {} KiB",
        max_rss(&early),
        max_rss(&late)
    );
    let slowest = samples.iter().map(|s| s.3).fold(0.0, f64::max);
    eprintln!(
        "{FILES} files: {} samples; fds early {} late {}; RSS early {} KiB late {} KiB; \
         slowest `assets list` {slowest:.3} s",
        samples.len(),
        max_fds(&early),
        max_fds(&late),
        max_rss(&early),
        max_rss(&late)
    );
}
